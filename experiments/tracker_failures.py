"""Where a tracker loses its frames: each scored frame of a one-pass evaluation falls in one of four classes,

- ``good``: IoU with the true box ≥ 0.5 (what the success curve counts at its middle threshold);
- ``box``: the predicted centre is inside the true box but the box is wrong (size or shape);
- ``distractor``: the predicted centre is inside an annotated look-alike (``distractors_rect.txt``, which the
  generated sequences write) and not inside the target;
- ``elsewhere``: anything else (background, drift).

For the neural trackers it also records, from the tracker's own ``search_region()`` before each update, whether the
true target centre was inside the square the network saw: a tracker sitting on a look-alike with the target still
in view chose wrongly on its score map; with the target out of view it could not have recovered in that frame.
``jumps_to_distractor`` counts frames that move onto a look-alike from a good or box frame, with how far the nearest
look-alike was from the target then (in target sizes: below 1 they overlap or touch), ``recoveries`` frames that
move from a look-alike back to good. OpenCV's CSRT (``--baselines``) runs through the same loop and
classification in the same run, the baseline for every row.

The default split is generated with seed 4, 100 sequences × 60 frames (comparisons of trained trackers need ≥ 100
sequences: on 30, equal runs differ by up to 0.03 AUC; ``docs/tracker-findings.md``), disjoint from the training
(1, 5), validation (2, 3) and test (1000) seeds.

    python experiments/tracker_failures.py [--tracker ettrack] [--weights PATH --hyperparameters tracker.json ...] \
        [--runtime fp32] [--baselines csrt] [--data DIR] [--output experiments/results/tracker_failures.json]
"""

import os
import sys

import numpy as np
from absl import flags

import zippy_tf  # noqa: F401  (sets up Keras 2 before TensorFlow is imported)
from zippy_tf.errors import UserError
from zippy_tf.runtime import progress, set_threads
from zippy_tf.tracking.datasets import load_sequences
from zippy_tf.tracking.evaluate import OPENCV_TRACKERS, track_sequence, tracker_factory
from zippy_tf.tracking.hyperparameters import RUNTIMES, read_hyperparameters
from zippy_tf.tracking.metrics import iou, sequence_curves, summarize

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import _common  # noqa: E402  (benchmarks/_common.py: what the benchmark and experiment scripts share)

FLAGS = flags.FLAGS
_common.define_tracker_flags("weights to compare (default: the shipped ones); repeat the flag", multiple_weights=True,
                             data_help="OTB-layout sequences with distractors_rect.txt (default: generated, see "
                                       "--seed)")
flags.DEFINE_multi_string("hyperparameters", None, "tracker.json for each --weights, in the same order (default: "
                          "the shipped settings for the shipped weights, the reference's otherwise)")
flags.DEFINE_enum("runtime", "fp32", list(RUNTIMES), "how the neural tracker runs")
flags.DEFINE_list("baselines", ["csrt"], "OpenCV trackers run through the same loop")
flags.DEFINE_integer("seed", 4, "seed of the generated split")
flags.DEFINE_integer("num_sequences", 100, "generated sequences")
flags.DEFINE_integer("num_frames", 60, "frames per generated sequence")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")

CLASSES = ("good", "box", "distractor", "elsewhere")


class RecordingTracker:
    """Passes calls to ``tracker`` and keeps the search region each update used (None for OpenCV trackers)."""

    def __init__(self, tracker):
        self.tracker = tracker
        self.regions = []

    def init(self, frame, box):
        return self.tracker.init(frame, box)

    def update(self, frame):
        region = getattr(self.tracker, "search_region", None)
        self.regions.append(region() if region else None)
        return self.tracker.update(frame)


def inside(points, boxes):
    """Whether (..., 2) points lie in (..., 4) (x, y, w, h) boxes (broadcast)."""
    x, y = points[..., 0], points[..., 1]
    return ((x >= boxes[..., 0]) & (x <= boxes[..., 0] + boxes[..., 2])
            & (y >= boxes[..., 1]) & (y <= boxes[..., 1] + boxes[..., 3]))


def classify(predicted, truth, distractors):
    """The class index (into ``CLASSES``) of each frame of (N, 4) predictions."""
    centres = predicted[:, :2] + predicted[:, 2:] / 2
    on_target = inside(centres, truth)
    on_distractor = np.any(inside(centres[:, None], distractors), axis=1) & ~on_target
    good = iou(predicted, truth) >= 0.5
    return np.select([good, on_target, on_distractor], [0, 1, 2], default=3)


def lookalike_gap(truth, distractors):
    """Distance from each true target centre to the nearest look-alike's centre, in target sizes (√(w·h))."""
    centres = truth[:, None, :2] + truth[:, None, 2:] / 2
    others = distractors[..., :2] + distractors[..., 2:] / 2
    return np.linalg.norm(others - centres, axis=-1).min(axis=1) / np.sqrt(truth[:, 2] * truth[:, 3])


def target_in_view(regions, truth):
    """Whether each true target centre was inside the square search region (centre, side) of its update."""
    centres = truth[:, :2] + truth[:, 2:] / 2
    return np.array([np.all(np.abs(c - centre) <= side / 2) for c, (centre, side) in zip(centres, regions)])


def failure_breakdown(make_tracker, sequences, label):
    """Class fractions, look-alike jumps and recoveries, and (neural trackers) the target-in-view fractions."""
    counts = np.zeros(len(CLASSES), int)
    in_view = {name: [] for name in CLASSES}
    jumps = jumps_in_view = recoveries = 0
    jump_gaps = []
    success, precision, box_ious = [], [], []
    for k, sequence in enumerate(sequences):
        if sequence.distractors is None:
            raise UserError(f"sequence {sequence.name!r} has no distractors_rect.txt; pass generated sequences "
                            "(zippy_tf.tracking.generate.write_otb_sequences) or drop --data")
        recording = RecordingTracker(make_tracker())
        predicted, _, updates = track_sequence(recording, sequence)
        s, p = sequence_curves(predicted, sequence.boxes)
        success.append(s)
        precision.append(p)
        scored = slice(len(sequence) - updates, None)  # the frames after the first visible one
        truth, guess, lookalikes = sequence.boxes[scored], predicted[scored], sequence.distractors[scored]
        classes = classify(guess, truth, lookalikes)
        counts += np.bincount(classes, minlength=len(CLASSES))
        box_ious += list(iou(guess, truth)[classes == 1])
        previous = np.concatenate([[0], classes[:-1]])
        jump = (classes == 2) & (previous <= 1)
        jumps += int(jump.sum())
        jump_gaps += list(lookalike_gap(truth[jump], lookalikes[jump]))
        recoveries += int(((classes == 0) & (previous == 2)).sum())
        if recording.regions and recording.regions[0] is not None:  # none for OpenCV trackers or a 1-frame sequence
            view = target_in_view(recording.regions, truth)
            for c, name in enumerate(CLASSES):
                in_view[name] += list(view[classes == c])
            jumps_in_view += int((jump & view).sum())
        progress(f"{label} [{k + 1}/{len(sequences)}] {sequence.name}: "
                 + ", ".join(f"{n} {int((classes == c).sum())}" for c, n in enumerate(CLASSES)))
    summary = summarize(success, precision)
    frames = int(counts.sum())
    result = {
        "success_auc": round(summary["success_auc"], 4),
        "precision_20": round(summary["precision_20"], 4),
        "frames": frames,
        "fraction": {name: round(float(n) / frames, 4) for name, n in zip(CLASSES, counts)},
        "box_median_iou": round(float(np.median(box_ious)), 3) if box_ious else None,
        "jumps_to_distractor": jumps,
        "jump_lookalike_gap_median": round(float(np.median(jump_gaps)), 2) if jump_gaps else None,
        "jumps_with_lookalike_within_one_size": int(np.sum(np.array(jump_gaps) < 1.0)),
        "recoveries_from_distractor": recoveries,
    }
    if in_view["good"]:
        result["target_in_view"] = {name: round(float(np.mean(v)), 4) if v else None for name, v in in_view.items()}
        result["jumps_to_distractor_with_target_in_view"] = jumps_in_view
    return result


def entries():
    """(label, weights, hyper-parameters or None) for each neural row."""
    weights = FLAGS.weights or [None]
    settings = FLAGS.hyperparameters or [None] * len(weights)
    if len(settings) != len(weights):
        raise UserError(f"{len(weights)} --weights but {len(settings)} --hyperparameters; give one tracker.json per "
                        "weights file, or none")
    return [(f"{FLAGS.tracker}:{w or 'shipped'}", w, read_hyperparameters(h, FLAGS.runtime) if h else None)
            for w, h in zip(weights, settings)]


def run(data):
    unknown = [name for name in FLAGS.baselines if name not in OPENCV_TRACKERS]
    if unknown:  # before the long neural runs
        raise UserError(f"--baselines takes OpenCV trackers ({', '.join(OPENCV_TRACKERS)}), got {unknown[0]!r}")
    sequences = load_sequences(data, "otb")
    rows = {}
    for label, weights, hyperparameters in entries():
        make = tracker_factory(FLAGS.tracker, weights, hyperparameters, FLAGS.runtime)
        rows[label] = failure_breakdown(make, sequences, label)
    for name in FLAGS.baselines:
        rows[name] = failure_breakdown(tracker_factory(name), sequences, name)
    return rows


def main(argv):
    del argv
    set_threads(FLAGS.threads)
    split = FLAGS.data or f"generated seed {FLAGS.seed}, {FLAGS.num_sequences} x {FLAGS.num_frames}"
    progress(f"sequences: {split}")
    with _common.otb_sequences(FLAGS.data, FLAGS.num_sequences, FLAGS.num_frames, FLAGS.seed) as data:
        rows = run(data)
    result = {
        **_common.provenance(),
        "data": split,
        "runtime": FLAGS.runtime,
        "threads": FLAGS.threads,
        "classes": {
            "good": "IoU >= 0.5", "box": "centre inside the true box, IoU < 0.5",
            "distractor": "centre inside an annotated look-alike, not the target", "elsewhere": "the rest",
        },
        "trackers": rows,
    }
    _common.write_report(FLAGS.output, result, printed="\n".join(f"{name} {row}" for name, row in rows.items()))


if __name__ == "__main__":
    _common.run(main)
