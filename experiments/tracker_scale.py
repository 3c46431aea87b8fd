"""Does a tracker's box regression measure the target's size, or predict the usual one?

Template/search pairs from validation sequences, sampled as in training but with the search crop's scale jitter
widened (``--search_scale``, 0.4 by default) so the target's size in the crop ranges over 0.71–1.67× its usual
size (per axis). For each pair the network's box is read at the grid cell nearest the true centre (localisation
taken as given) and compared with the truth:

- ``slope_width`` / ``slope_height``: least-squares slope of log(predicted) on log(true) size. 1 means the head
  measures the size; 0 means it predicts one size whatever the target, which makes the online tracker drift;
- ``width_ratio`` / ``height_ratio``: geometric mean of predicted / true (the bias);
- ``mean_iou``: IoU of the predicted box with the truth.

The baseline, computed in the same run on the same pairs, is the constant box: the pairs' mean true size, centred on
the true centre (``constant_size_iou``). A head that measures sizes beats it.

    python experiments/tracker_scale.py [--tracker ettrack] [--weights PATH ...] [--data DIR] \
        [--output experiments/results/tracker_scale.json]
"""

import os
import sys

import numpy as np
from absl import flags

import zippy_tf  # noqa: F401  (sets up Keras 2 before TensorFlow is imported)
from zippy_tf.runtime import set_threads
from zippy_tf.tracking.datasets import load_sequences
from zippy_tf.tracking.generate import VALIDATION_SPLIT, validation_sequences
from zippy_tf.tracking.metrics import iou
from zippy_tf.tracking.pairs import sample_pair

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import _common  # noqa: E402  (benchmarks/_common.py: what the benchmark and experiment scripts share)

FLAGS = flags.FLAGS
_common.define_tracker_flags("weights to compare (default: the shipped ones); repeat the flag", multiple_weights=True)
flags.DEFINE_integer("pairs", 192, "pairs to measure", lower_bound=8)
flags.DEFINE_float("search_scale", 0.4, "per-axis scale jitter of the search crop (training's default is 0.18)",
                   lower_bound=0.0, upper_bound=0.9)
flags.DEFINE_integer("seed", 0, "pair sampling seed")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")


def xywh(corners):
    """(N, 4) x1, y1, x2, y2 → x, y, w, h, the boxes ``zippy_tf.tracking.metrics`` takes."""
    return np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)


def sample(data):
    sequences = load_sequences(data, "otb")
    rng = np.random.default_rng(FLAGS.seed)
    pairs = [sample_pair(rng, sequences, template_shift=0, template_scale=0, search_shift=32,
                         search_scale=FLAGS.search_scale) for _ in range(FLAGS.pairs)]
    templates = np.stack([p[0]["template"] for p in pairs])
    searches = np.stack([p[0]["search"] for p in pairs])
    return templates, searches, np.stack([p[1] for p in pairs]).astype(np.float64)


def predicted_boxes(network, templates, searches, truth):
    """The box each pair's network output gives at the cell nearest the true centre, (N, 4) x1, y1, x2, y2."""
    reg = _common.pair_outputs(network, templates, searches, "reg")
    row, col, grid = _common.nearest_cells(reg.shape[1], searches.shape[1], (truth[:, :2] + truth[:, 2:]) / 2)
    l, t, r, b = reg[np.arange(len(truth)), row, col].T.astype(np.float64)
    gx, gy = grid[col], grid[row]
    return np.stack([gx - l, gy - t, gx + r, gy + b], axis=1)


def scores(predicted, truth):
    size_p, size_t = predicted[:, 2:] - predicted[:, :2], truth[:, 2:] - truth[:, :2]
    log_p, log_t = np.log(np.maximum(size_p, 1e-3)), np.log(size_t)
    return {"slope_width": round(float(np.polyfit(log_t[:, 0], log_p[:, 0], 1)[0]), 3),
            "slope_height": round(float(np.polyfit(log_t[:, 1], log_p[:, 1], 1)[0]), 3),
            "width_ratio": round(float(np.exp(np.mean(log_p[:, 0] - log_t[:, 0]))), 3),
            "height_ratio": round(float(np.exp(np.mean(log_p[:, 1] - log_t[:, 1]))), 3),
            "mean_iou": round(float(np.mean(iou(xywh(predicted), xywh(truth)))), 3)}


def main(argv):
    del argv
    set_threads(FLAGS.threads)
    with validation_sequences(FLAGS.data) as data:
        templates, searches, truth = sample(data)
    sizes = truth[:, 2:] - truth[:, :2]
    mean_size = np.broadcast_to(np.exp(np.log(sizes).mean(0)), sizes.shape)
    constant = np.concatenate([(truth[:, :2] + truth[:, 2:] - mean_size) / 2, mean_size], axis=1)  # x, y, w, h
    results = _common.compare_weights(lambda network: scores(predicted_boxes(network, templates, searches, truth),
                                                             truth))
    report = {
        "benchmark": "does the box regression measure the target's size (cell nearest the true centre)",
        **_common.provenance(),
        "tracker": FLAGS.tracker, "data": FLAGS.data or VALIDATION_SPLIT, "pairs": FLAGS.pairs,
        "search_scale": FLAGS.search_scale, "seed": FLAGS.seed, "runtime": "keras fp32",
        "baseline": "constant_size", "constant_size_iou": round(float(np.mean(iou(constant, xywh(truth)))), 3),
        "weights": results,
    }
    _common.write_report(FLAGS.output, report, printed=str({"constant_size_iou": report["constant_size_iou"],
                                                            **results}))


if __name__ == "__main__":
    _common.run(main)
