"""Run as a script (``python mirrored_equivalence.py HEAD [batch|frozen]``): trains a tracker one step on one device
and under a two-replica MirroredStrategy from the same initial weights, and prints both losses and the weight
difference as JSON. ``frozen`` first estimates the BatchNorm statistics on the first batch and freezes them, as
``zippy-tf train --batch_norm frozen`` does inside the strategy's scope.

A separate process because logical CPU devices must be configured before TensorFlow initialises its devices.
"""

import json
import sys

import numpy as np

import zippy_tf  # noqa: F401  (Keras 2 before TensorFlow)
from zippy_tf._compat import keras, tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

from zippy_tf.tracking.model import build_tracker_network  # noqa: E402
from zippy_tf.tracking.training import (  # noqa: E402
    TrackerTrainer, estimate_batch_norm_statistics, freeze_batch_norm,
)

# One step: the random network is chaotic enough that after a second step at lr 0.05 the float rounding of the
# replicas' gradient sum had grown into a 1e-3 loss difference (after one step: 6e-6, weights 1e-4 of their change).
TEMPLATE, SEARCH, PAIRS, BATCH = 63, 128, 4, 4
LEARNING_RATE = 1e-3


def dataset():
    rng = np.random.default_rng(0)
    images = {"template": rng.uniform(0, 255, (PAIRS, TEMPLATE, TEMPLATE, 3)).astype(np.float32),
              "search": rng.uniform(0, 255, (PAIRS, SEARCH, SEARCH, 3)).astype(np.float32)}
    corner = rng.uniform(20, 60, (PAIRS, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(20, 50, (PAIRS, 2))], axis=1).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((images, {"box": boxes})).batch(BATCH)


def train(strategy, head, initial, batch_norm):
    with strategy.scope():
        network = build_tracker_network(head=head, template_size=TEMPLATE, search_size=SEARCH, ffn_dim=32,
                                        dropout=0.0)
        if initial is not None:
            network.pair_model().set_weights(initial)
        start = network.pair_model().get_weights()
        if batch_norm == "frozen":
            estimate_batch_norm_statistics(network, dataset(), steps=1)
            freeze_batch_norm(network)
        trainer = TrackerTrainer(network)
        trainer.compile(keras.optimizers.SGD(LEARNING_RATE, momentum=0.9))
    history = trainer.fit(dataset(), epochs=1, verbose=0)
    return start, history.history["loss"][0], trainer.pair.get_weights()


def main(head, batch_norm="batch"):
    keras.utils.set_random_seed(0)  # one network for every run: how far the two losses differ depends on it
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    start, single_loss, single = train(tf.distribute.get_strategy(), head, None, batch_norm)
    mirrored = tf.distribute.MirroredStrategy(devices)
    _, mirrored_loss, distributed = train(mirrored, head, start, batch_norm)
    change = max(float(np.abs(a - b).max()) for a, b in zip(single, start))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(single, distributed))
    print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "single_loss": single_loss,
                      "mirrored_loss": mirrored_loss, "weight_change": change, "weight_diff": diff}))


if __name__ == "__main__":
    main(*sys.argv[1:])
