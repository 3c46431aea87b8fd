"""Does the keypoint location head learn from KP2D's location loss alone? Fresh batches vs one fixed batch.

The location loss (mean distance of each warped source keypoint to its nearest target keypoint) is the only signal
that teaches a network sub-cell keypoint offsets. This trains a network on that loss alone, with Adam, in three
settings, and logs the loss every ``--log_every`` steps:

- ``shipped_fresh_batches``: the shipped weights, a new batch of pairs every step (what training does);
- ``shipped_one_batch``: the shipped weights, the same batch every step (the baseline: can the head fit at all?);
- ``random_fresh_batches``: a random initialisation, a new batch every step.

A loss that falls on one batch but not on fresh ones means the gradient is right but carries no rule that
generalises within the budget. About 2.5 px is what keypoints at their cells' centres give.

    python experiments/location_learning.py --data DIR [--model kp2d] [--steps 150] \
        [--output experiments/results/location_learning.json]
"""

import os
import sys
import time

import numpy as np
from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf._compat import keras, tf
from zippy_tf.data.image_folder import pair_dataset
from zippy_tf.errors import UserError
from zippy_tf.keypoints.losses import PairGeometry, location_loss
from zippy_tf.presets import build_model
from zippy_tf.runtime import parse_resolution, progress

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import _common  # noqa: E402  (benchmarks/_common.py: what the benchmark and experiment scripts share)

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "training image folder (e.g. the bundled data/train)")
flags.DEFINE_string("model", "kp2d", "network preset with shipped weights: kp2d, zippypoint, zippypoint-int8")
flags.DEFINE_integer("steps", 150, "Adam steps per setting")
flags.DEFINE_integer("log_every", 10, "steps per logged mean loss")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (the training default)")
flags.DEFINE_string("resolution", "160x120", "WIDTHxHEIGHT of the pairs (the shipped weights' training size)")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")

SETTINGS = {"shipped_fresh_batches": (True, True), "shipped_one_batch": (True, False),
            "random_fresh_batches": (False, True)}


def train_location(network, batches, steps, learning_rate, image_size, log_every):
    """Adam on the location loss alone; returns the mean loss of each block of ``log_every`` steps."""
    optimizer = keras.optimizers.Adam(learning_rate)

    @tf.function
    def step(pair):
        with tf.GradientTape() as tape:
            geometry = PairGeometry(network(pair["source"], training=True), network(pair["target"], training=True),
                                    pair["homography"], image_size)
            loss = tf.reduce_mean(location_loss(geometry))
        variables = network.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])
        return loss

    losses = [float(step(next(batches))) for _ in range(steps)]
    return [round(float(np.mean(losses[i:i + log_every])), 3) for i in range(0, steps, log_every)]


def main(argv):
    del argv
    if FLAGS.data is None:
        raise UserError("--data is required: a folder of training images")
    height, width = parse_resolution(FLAGS.resolution)
    results = {**_common.provenance(), "model": FLAGS.model, "data": FLAGS.data, "resolution": FLAGS.resolution,
               "steps": FLAGS.steps, "learning_rate": FLAGS.learning_rate, "log_every": FLAGS.log_every,
               "settings": {}}
    for name, (shipped, fresh) in SETTINGS.items():
        progress(name)
        keras.utils.set_random_seed(0)
        stream = iter(pair_dataset(FLAGS.data, height=height, width=width, batch_size=8, seed=0).repeat())
        if not fresh:
            one = next(stream)
            stream = iter(lambda: one, None)
        network = build_model(FLAGS.model, input_shape=(height, width, 3), use_shipped_weights=shipped)
        start = time.perf_counter()
        curve = train_location(network, stream, FLAGS.steps, FLAGS.learning_rate, (height, width), FLAGS.log_every)
        results["settings"][name] = {"location_loss": curve, "seconds": round(time.perf_counter() - start, 1)}
        progress(f"{name:>24}: location loss {curve[0]:.3f} → {curve[-1]:.3f} px")
    _common.write_report(FLAGS.output, results)


if __name__ == "__main__":
    _common.run(main)
