"""Which half of a keypoint network loses pairs, the detector or the descriptor? Swap in other keypoints.

On the generated HPatches-layout test set, every network entry is evaluated three ways through the HPatches
protocol (``zippy_tf.keypoints.evaluate``), with ORB itself as the baseline of the same run:

- ``own``: the network's keypoints and descriptors (what ``zippy-tf eval hpatches`` reports);
- ``orb_keypoints``: ORB's keypoints, the network's descriptors sampled there;
- ``corner_cells``: in every 8-px cell off the border ring, the strongest Shi-Tomasi corner (the targets of
  ``zippy_tf.keypoints.teacher``), ranked by the cell's corner strength; the network's descriptors sampled there.

If the swapped rows beat ``own`` by far, the descriptors are fine and the score / location heads are what to train.

    python experiments/keypoint_swap.py [--entry zippypoint=zippypoint --entry kp2d=kp2d,weights=PATH] \
        [--data_dir out/hpatches_sets] [--output experiments/results/keypoint_swap.json]
"""

import os
import sys

import numpy as np
from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf.data.hpatches import standard_test_set
from zippy_tf.errors import UserError
from zippy_tf.keypoints.evaluate import (
    NetworkDetector, OpenCVDetector, evaluate_hpatches, make_detector, parse_detector_entry,
)
from zippy_tf.keypoints.metrics import TOP_K
from zippy_tf.keypoints.postprocess import pad_image
from zippy_tf.keypoints.teacher import cell_teacher
from zippy_tf.runtime import hpatches_resolution, progress

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import _common  # noqa: E402  (benchmarks/_common.py: what the benchmark and experiment scripts share)

FLAGS = flags.FLAGS
_common.define_hpatches_flags(["zippypoint=zippypoint", "kp2d=kp2d"],
                              "LABEL=MODEL[,weights=PATH][,config=PATH] of a network, as in "
                              "benchmarks/hpatches_table.py")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")

METRICS = ("repeatability", "localization_error", "correctness_3", "matching_score")


def orb_keypoints(orb):
    def keypoints(image, padded):
        found = orb(image)
        return found["keypoints"], found["scores"]
    return keypoints


def corner_cells(image, padded):
    """Per-cell Shi-Tomasi maxima of the padded image, border ring dropped, in the padded image's pixels."""
    teacher = cell_teacher(padded[None])
    location, rank = teacher["location"].numpy()[0], teacher["rank"].numpy()[0]
    return location[1:-1, 1:-1].reshape(-1, 2), rank[1:-1, 1:-1].ravel()


class SwappedKeypoints:
    """A network detector whose keypoints come from ``keypoints(image, padded) -> (points, scores)``; the network
    only describes them. ORB's points are in the image's pixels, the corner cells' in the padded image's."""

    def __init__(self, network_detector, keypoints, in_padded_pixels):
        self.detector, self.keypoints, self.in_padded_pixels = network_detector, keypoints, in_padded_pixels
        self.binary = network_detector.binary

    def __call__(self, image):
        padded, (top, left) = pad_image(image)
        points, scores = self.keypoints(image, padded)
        points = np.asarray(points, np.float32) - (np.array([left, top], np.float32) if self.in_padded_pixels else 0)
        return {"keypoints": points, "scores": np.asarray(scores),
                "descriptors": self.detector.describe_points(image, points)}


def summary(result):
    row = {m: round(float(result[m]), 4) for m in METRICS}
    for kind in ("viewpoint", "illumination"):
        row[kind] = {m: round(float(result[kind][m]), 4) for m in ("correctness_3", "matching_score")}
    return row


def main(argv):
    del argv
    resolution, orb = hpatches_resolution(FLAGS.resolution), OpenCVDetector("orb")
    root = standard_test_set("generated", FLAGS.data_dir, progress)
    results = {**_common.provenance(), "resolution": FLAGS.resolution, "top_k": TOP_K, "test_set": "generated",
               "baseline": {"orb": summary(evaluate_hpatches(orb, root, resolution=resolution))}, "networks": {}}
    for label, model, kwargs in map(parse_detector_entry, FLAGS.entry):
        detector = make_detector(model, resolution=resolution, **kwargs)
        if not isinstance(detector, NetworkDetector):
            raise UserError(f"--entry {label}={model}: keypoint swapping needs a network, not an OpenCV detector")
        rows = {"model": model, **kwargs}
        variants = {"own": detector, "orb_keypoints": SwappedKeypoints(detector, orb_keypoints(orb), False),
                    "corner_cells": SwappedKeypoints(detector, corner_cells, True)}
        for name, variant in variants.items():
            progress(f"{label}: {name}")
            rows[name] = summary(evaluate_hpatches(variant, root, resolution=resolution))
        results["networks"][label] = rows
    lines = [("orb", results["baseline"]["orb"])]
    lines += [(f"{label} {name}", rows[name]) for label, rows in results["networks"].items()
              for name in ("own", "orb_keypoints", "corner_cells")]
    _common.write_report(FLAGS.output, results, printed="\n".join(
        f"{label:>32}: c@3 {r['correctness_3']:.3f} MS {r['matching_score']:.3f} "
        f"(viewpoint c@3 {r['viewpoint']['correctness_3']:.3f})" for label, r in lines))


if __name__ == "__main__":
    _common.run(main)
