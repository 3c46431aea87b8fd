"""Training throughput (pairs per second) of ZippyPoint and KP2D on this CPU, measured in one run.

Each model trains on the same fixed batch of pairs (made by the training pipeline's ``make_pair`` from the
bundled photographs, so data loading is not measured): ``--warmup`` steps (graph tracing), then ``--steps``
timed steps of ``model.fit`` with Adam, the IO-Net and every KP2D loss. The CPU is shared, so the figures are
for comparison within one run, not absolute.

    python benchmarks/training_throughput.py [--batch_size 8] [--resolution 320x240] [--steps 20]
"""

import time

import cv2
import numpy as np
from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf._compat import keras, tf
from zippy_tf.data.image_folder import make_pair
from zippy_tf.data.photos import PHOTOS, load_photo
from zippy_tf.keypoints.training import KeypointTrainer
from zippy_tf.presets import build_model
from zippy_tf.runtime import parse_resolution, progress

import _common

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 8, "pairs per step")
flags.DEFINE_string("resolution", "320x240", "training WIDTHxHEIGHT")
flags.DEFINE_integer("steps", 20, "timed steps per model")
flags.DEFINE_integer("warmup", 2, "untimed steps per model (the first one traces the graph)")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")

MODELS = ("zippypoint", "kp2d")


def pair_batch(batch_size, height, width, seed=0):
    rng = np.random.default_rng(seed)
    images = [cv2.resize(load_photo(PHOTOS[i % len(PHOTOS)]), (width, height), interpolation=cv2.INTER_AREA)
              for i in range(batch_size)]
    source, target, homography = (np.stack(parts) for parts in zip(*(make_pair(rng, im) for im in images)))
    return {"source": source, "target": target, "homography": homography}


def measure(name, dataset, height, width):
    keras.utils.set_random_seed(0)
    network = build_model(name, input_shape=(height, width, 3), use_shipped_weights=False)
    trainer = KeypointTrainer(network, binary_descriptors=name != "kp2d")
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    trainer.fit(dataset, epochs=1, steps_per_epoch=FLAGS.warmup, verbose=0)
    start = time.perf_counter()
    history = trainer.fit(dataset, epochs=1, steps_per_epoch=FLAGS.steps, verbose=0).history
    seconds = time.perf_counter() - start
    return {"seconds_per_step": seconds / FLAGS.steps,
            "pairs_per_second": FLAGS.steps * FLAGS.batch_size / seconds,
            "final_loss": history["loss"][-1],
            "params": network.count_params()}


def main(argv):
    del argv
    height, width = parse_resolution(FLAGS.resolution)
    dataset = tf.data.Dataset.from_tensors(pair_batch(FLAGS.batch_size, height, width)).repeat()
    results = {}
    for name in MODELS:
        results[name] = measure(name, dataset, height, width)
        progress(f"{name}: {results[name]}")
    _common.write_report(FLAGS.output, {
        **_common.provenance(),
        "models": results,
        "batch_size": FLAGS.batch_size,
        "resolution": FLAGS.resolution,
        "steps": FLAGS.steps,
        "warmup": FLAGS.warmup,
        "note": "one process, models measured one after the other on a CPU shared with other jobs",
    })


if __name__ == "__main__":
    _common.run(main)
