"""What the corner refinement (`refine_to_corners`) adds to a keypoint network's time, measured in one run.

Baseline: the network it refines, the all-Int8 ZippyPoint exported to an int8 TFLite flatbuffer (the fastest
network x86 runs well; the binary ZippyPoint's LCE kernels are reference code here). Timed interleaved with it on
the same photo, 1 thread: the refinement of 300 keypoints at radius 4 (what `--refine_radius 4` runs per image),
the Shi-Tomasi response alone, and `cv2.cornerMinEigenVal`, which computes the same map in C++ (the floor).

    python experiments/refinement_cost.py [--runs 50] [--output experiments/results/refinement_cost.json]
"""

import os
import sys

from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf.export import FlatbufferRunner, convert
from zippy_tf.export.latency import time_interleaved
from zippy_tf.presets import build_model
from zippy_tf.runtime import parse_resolution, progress, set_threads

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import _common  # noqa: E402  (benchmarks/_common.py: what the benchmark and experiment scripts share)

FLAGS = flags.FLAGS
flags.DEFINE_string("resolution", "320x240", "input WIDTHxHEIGHT")
flags.DEFINE_integer("keypoints", 300, "keypoints refined per image (the evaluation protocol's top-k)")
flags.DEFINE_integer("radius", 4, "refinement radius in pixels")
flags.DEFINE_integer("runs", 50, "timed runs per entry")
flags.DEFINE_integer("threads", 1, "TensorFlow, OpenCV and interpreter threads")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")

BASELINE = "zippypoint-int8 network (int8 TFLite)"


class Call:
    """Adapts a function of one input to the ``invoke`` that ``time_interleaved`` calls."""

    def __init__(self, function):
        self.function = function

    def invoke(self, inputs):
        return self.function(inputs)


def main(argv):
    del argv
    import cv2
    import numpy as np

    from zippy_tf.data.photos import calibration_images
    from zippy_tf.keypoints.corners import corner_response, refine_to_corners

    set_threads(FLAGS.threads)
    height, width = parse_resolution(FLAGS.resolution)
    image = calibration_images(height, width, 1).astype(np.float32)  # (1, H, W, 3) BGR in [0, 255]
    grey = cv2.cvtColor(image[0].astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
    keypoints = np.random.default_rng(0).uniform([0, 0], [width - 1, height - 1], (1, FLAGS.keypoints, 2))
    keypoints = keypoints.astype(np.float32)

    progress("exporting the all-Int8 ZippyPoint (int8) ...")
    network = build_model("zippypoint-int8", input_shape=(height, width, 3), use_shipped_weights=False)
    runners = {
        BASELINE: FlatbufferRunner(convert(network, "int8"), FLAGS.threads),
        f"refine_to_corners ({FLAGS.keypoints} keypoints, radius {FLAGS.radius})": Call(
            lambda x: refine_to_corners(x, keypoints, FLAGS.radius).numpy()),
        "corner_response (TensorFlow)": Call(lambda x: corner_response(x).numpy()),
        "cv2.cornerMinEigenVal (the same map, C++)": Call(lambda x: cv2.cornerMinEigenVal(grey, 3, 3)),
    }
    times = time_interleaved(runners, warmup=3, runs=FLAGS.runs, inputs={name: image for name in runners})
    base = float(np.median(times[BASELINE]))
    rows = [{"entry": name, "median_ms": round(float(np.median(t)), 3),
             "fraction_of_network": round(float(np.median(t)) / base, 3)} for name, t in times.items()]
    report = {
        **_common.provenance(),
        "resolution": FLAGS.resolution, "threads": FLAGS.threads, "runs": FLAGS.runs,
        "baseline": {"entry": BASELINE, "median_ms": round(base, 3)},
        "results": rows,
    }
    _common.write_report(FLAGS.output, report, printed="\n".join(
        f"{row['entry']:>48}: {row['median_ms']:7.2f} ms  ({row['fraction_of_network']:.2f}x the network)"
        for row in rows))


if __name__ == "__main__":
    _common.run(main)
