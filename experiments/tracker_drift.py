"""Where a neural tracker loses its target: scale drift vs localisation, on validation sequences.

Three runs of the same network on the same sequences (Keras runtime, 1 thread):

- ``free_reference``: the tracker as deployed with the reference's settings (the baseline);
- ``free_tuned``: the same with the settings tuned for the weights (``models/<tracker>/tracker.json``, if given);
- ``oracle_state``: before every frame the tracker's state is reset to the true previous box, so each frame measures
  one network step alone: how often it finds the centre (within 20 px) and how its own box size (before the size
  learning rate) compares with the truth.

Per sequence it reports the final box's size relative to the truth (√ of the area ratio) and the precision at 20 px.
A tracker whose oracle-state precision is much higher than its free-running precision, with final sizes far from 1,
is losing its targets to drift rather than to confusion.

    python experiments/tracker_drift.py [--tracker ettrack] [--weights PATH] [--data DIR] \
        [--output experiments/results/tracker_drift.json]
"""

import os
import sys

import numpy as np
from absl import flags

import zippy_tf  # noqa: F401  (sets up Keras 2 before TensorFlow is imported)
from zippy_tf.runtime import progress, set_threads
from zippy_tf.tracking.datasets import load_sequences
from zippy_tf.tracking.evaluate import build_network, track_sequence
from zippy_tf.tracking.generate import VALIDATION_SPLIT, validation_sequences
from zippy_tf.tracking.hyperparameters import shipped_hyperparameters
from zippy_tf.tracking.metrics import center_error
from zippy_tf.tracking.tracker import Tracker

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import _common  # noqa: E402  (benchmarks/_common.py: what the benchmark and experiment scripts share)

FLAGS = flags.FLAGS
_common.define_tracker_flags("tracker weights (default: the shipped ones, with their tracker.json)")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")


def free_running(network, sequence, settings):
    predicted, _, _ = track_sequence(Tracker.for_network(network, **settings), sequence)
    truth = sequence.boxes
    return {"final_size_ratio": round(float(np.sqrt(np.prod(predicted[-1, 2:]) / np.prod(truth[-1, 2:]))), 3),
            "precision_20": round(float(np.mean(center_error(predicted[1:], truth[1:]) < 20)), 3)}


def oracle_state(network, sequence):
    truth = sequence.boxes
    tracker = Tracker.for_network(network)
    tracker.init(sequence.read(0), truth[0])
    boxes, sizes = [], []
    for i in range(1, len(sequence)):
        tracker.center, tracker.size = truth[i - 1, :2] + truth[i - 1, 2:] / 2, truth[i - 1, 2:].copy()
        boxes.append(tracker.update(sequence.read(i))[1])
        sizes.append(tracker.predicted_size / truth[i, 2:])
    sizes = np.array(sizes)
    return {"precision_20": round(float(np.mean(center_error(np.array(boxes), truth[1:]) < 20)), 3),
            "median_width_ratio": round(float(np.median(sizes[:, 0])), 3),
            "median_height_ratio": round(float(np.median(sizes[:, 1])), 3)}


def summary(rows, key):
    return round(float(np.mean([r[key] for r in rows.values()])), 3)


def run(data):
    sequences = load_sequences(data, "otb")
    network = build_network(FLAGS.tracker, FLAGS.weights)
    tuned = shipped_hyperparameters(FLAGS.tracker) if FLAGS.weights is None else {}
    modes = {"free_reference": lambda s: free_running(network, s, {}),
             "oracle_state": lambda s: oracle_state(network, s)}
    if tuned:
        modes["free_tuned"] = lambda s: free_running(network, s, tuned)
    result = {}
    for mode, measure in modes.items():
        rows = {}
        for sequence in sequences:
            rows[sequence.name] = measure(sequence)
            progress(f"{mode} {sequence.name}: {rows[sequence.name]}")
        keys = list(next(iter(rows.values())))
        result[mode] = {"mean": {k: summary(rows, k) for k in keys}, "per_sequence": rows}
    return result, tuned


def main(argv):
    del argv
    set_threads(FLAGS.threads)
    with validation_sequences(FLAGS.data) as data:
        modes, tuned = run(data)
    report = {
        "benchmark": "tracker failure analysis: free-running (reference and tuned settings) vs oracle state",
        **_common.provenance(),
        "tracker": FLAGS.tracker, "weights": FLAGS.weights or "shipped", "tuned_settings": tuned,
        "data": FLAGS.data or VALIDATION_SPLIT, "runtime": "keras fp32", "threads": FLAGS.threads,
        "baseline": "free_reference", "modes": modes,
    }
    _common.write_report(FLAGS.output, report, printed=str({mode: r["mean"] for mode, r in modes.items()}))


if __name__ == "__main__":
    _common.run(main)
