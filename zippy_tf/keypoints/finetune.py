"""Candidate evaluation for the precision search: fine-tune a configuration from its parent, then score it.

The search (``zippy_tf.search``) is generic over a configuration and a metric; this module supplies both for
keypoint networks: a short self-supervised fine-tuning run on the training folder, starting from the parent
configuration's weights (layers whose name and shape did not change), and an HPatches metric on a validation
folder in the HPatches layout.
"""

import contextlib
import hashlib
import os
import sys

from zippy_tf._compat import keras
from zippy_tf.data.image_folder import pair_dataset
from zippy_tf.keypoints.evaluate import NetworkDetector, evaluate_hpatches
from zippy_tf.keypoints.model import keypoint_network, load_weights
from zippy_tf.keypoints.training import KeypointTrainer


def transfer_weights(source, target):
    """Copies the weights of every layer of ``source`` into the layer of ``target`` with the same name, where all
    weight shapes agree. Returns the names of the layers copied."""
    copied = []
    for layer in target.layers:
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            continue
        weights = other.get_weights()
        if weights and [w.shape for w in weights] == [w.shape for w in layer.get_weights()]:
            layer.set_weights(weights)
            copied.append(layer.name)
    return copied


def weights_path(folder, key):
    return os.path.join(folder, hashlib.sha1(key.encode()).hexdigest()[:16] + ".h5")


class CandidateEvaluator:
    """``evaluator(blocks, parent_key) -> metric``: fine-tunes for ``steps`` steps and scores on ``validation``.

    Args:
        data: training image folder.
        validation: HPatches-layout validation folder (never the test set).
        output: folder for each candidate's weights (named by a hash of its configuration key).
        log: the search's :class:`~zippy_tf.io.RecordLog`, where the parent's configuration is read.
        resolution: (height, width) of training and validation images.
        steps: fine-tuning steps per candidate; batch_size: pairs per step.
        binary: binary (Bin.Norm) descriptors, as ZippyPoint; False for KP2D-style float descriptors.
        metric: the key of :func:`evaluate_hpatches`'s result to maximise.
        initial_weights: weights of the starting configuration (e.g. the shipped ones), if any.
    """

    def __init__(self, *, data, validation, output, log, resolution=(240, 320), steps=300, batch_size=8,
                 binary=True, metric="matching_score", learning_rate=1e-4, initial_weights=None, seed=0):
        self.data, self.validation, self.output, self.log = data, validation, output, log
        self.resolution, self.steps, self.batch_size = tuple(resolution), steps, batch_size
        self.binary, self.metric, self.learning_rate = binary, metric, learning_rate
        self.initial_weights, self.seed = initial_weights, seed
        os.makedirs(output, exist_ok=True)

    def _network(self, blocks):
        height, width = self.resolution
        return keypoint_network(blocks, input_shape=(height, width, 3))

    def __call__(self, blocks, parent_key):
        from zippy_tf.quantization.macro_block import MacroBlock
        from zippy_tf.quantization.macro_block import config_key

        network = self._network(blocks)
        if parent_key is not None:
            parent = self._network([MacroBlock.from_dict(d) for d in self.log[parent_key]["config"]])
            load_weights(parent, weights_path(self.output, parent_key))
            transfer_weights(parent, network)
        elif self.initial_weights:
            load_weights(network, self.initial_weights)
        trainer = KeypointTrainer(network, binary_descriptors=self.binary)
        trainer.compile(optimizer=keras.optimizers.Adam(self.learning_rate))
        height, width = self.resolution
        pairs = pair_dataset(self.data, height=height, width=width, batch_size=self.batch_size, seed=self.seed)
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the CLI's JSON
            trainer.fit(pairs.repeat(), epochs=1, steps_per_epoch=self.steps, verbose=0)
        network.save_weights(weights_path(self.output, config_key(blocks)))
        detector = NetworkDetector(network, binary=self.binary, name="candidate")
        return evaluate_hpatches(detector, self.validation, resolution=(width, height))[self.metric]


__all__ = ["CandidateEvaluator", "transfer_weights", "weights_path"]
