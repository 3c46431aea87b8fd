"""How fast descriptors start to learn: training descriptor recall after a short, equal budget for KP2D, KP2D
without its encoder→decoder skip (the thesis's "Baseline"), and the all-Int8 ZippyPoint network with float (L2) and
with binary (Bin.Norm, soft-Hamming) descriptors. Same data, seed, resolution, batch and optimiser for every row.

It answers "why do the short-trained ZippyPoint weights match so poorly?" with a measurement: the skip that the
thesis removes (§5.4.2) is what lets KP2D's descriptors learn within a few hundred CPU steps.

    python experiments/descriptor_learning.py --data DIR [--epochs 3] [--steps_per_epoch 40] \
        [--output experiments/results/descriptor_learning.json]

DIR: a training image folder, e.g. one written by ``zippy_tf.data.image_folder.write_training_folder``.
"""

import os
import sys
import tempfile
import time

from absl import flags

import zippy_tf  # noqa: F401  (sets up Keras 2 before TensorFlow is imported)
from zippy_tf._compat import keras
from zippy_tf.data.image_folder import pair_dataset
from zippy_tf.keypoints.configs import KP2D
from zippy_tf.keypoints.model import keypoint_network
from zippy_tf.keypoints.training import KeypointTrainer, fit_keypoints
from zippy_tf.presets import build_model
from zippy_tf.runtime import progress

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import _common  # noqa: E402  (benchmarks/_common.py: what the benchmark and experiment scripts share)

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "training image folder (e.g. the bundled data/train)")
flags.DEFINE_integer("epochs", 3, "training epochs per row")
flags.DEFINE_integer("steps_per_epoch", 40, "steps per epoch")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")
flags.mark_flag_as_required("data")

HEIGHT, WIDTH = 120, 160


def network(name):
    if name == "kp2d_no_skip":
        return keypoint_network(KP2D, input_shape=(HEIGHT, WIDTH, 3), descriptor_skip=None, name=name)
    return build_model(name, input_shape=(HEIGHT, WIDTH, 3), use_shipped_weights=False)


# (row label, network, binary descriptors)
ROWS = (("kp2d", "kp2d", False), ("kp2d_no_skip", "kp2d_no_skip", False),
        ("zippypoint_int8_l2", "zippypoint-int8", False), ("zippypoint_int8_binary", "zippypoint-int8", True))


def run(data, epochs, steps_per_epoch, batch_size=8, learning_rate=1e-3, seed=0):
    rows = {}
    for label, name, binary in ROWS:
        progress(f"training {label}")
        keras.utils.set_random_seed(seed)
        dataset = pair_dataset(data, height=HEIGHT, width=WIDTH, batch_size=batch_size, seed=seed).repeat()
        trainer = KeypointTrainer(network(name), binary_descriptors=binary, with_io=True)
        trainer.compile(optimizer=keras.optimizers.Adam(learning_rate))
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as output:
            history = fit_keypoints(trainer, dataset, output=output, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                    learning_rate=learning_rate)["history"]
        rows[label] = {"descriptor_recall": [round(v, 4) for v in history["descriptor_recall"]],
                       "location_loss": [round(v, 3) for v in history["location_loss"]],
                       "seconds": round(time.perf_counter() - start, 1)}
    return {
        **_common.provenance(),
        "benchmark": f"training descriptor recall per epoch, {epochs} x {steps_per_epoch} steps, batch {batch_size}, "
                     f"{WIDTH}x{HEIGHT}, Adam {learning_rate}, seed {seed}",
        "data": data,
        "results": rows,
    }


def main(argv):
    del argv
    _common.write_report(FLAGS.output, run(FLAGS.data, FLAGS.epochs, FLAGS.steps_per_epoch))


if __name__ == "__main__":
    _common.run(main)
