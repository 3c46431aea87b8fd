"""Does a tracker's score map depend on the template, or does it find any object near the centre?

A Siamese tracker should score the target's cell high only when the template shows that target. This experiment
takes template/search pairs from validation sequences (sampled as in training) and scores every search crop twice
with the same network: with its own template, and with the template of another sequence (a "foreign" template; the
search crop is identical). Per weights file:

- ``target_score_own`` / ``target_score_foreign``: mean sigmoid score at the cell nearest the target's centre;
- ``swap_auc``: fraction of pairs whose target cell scores higher with the own template than with the foreign one
  (ties count half). A network that ignores the template scores 0.5, the in-run baseline for every row;
- ``peak_auc``: how well the map's peak separates own-template crops from foreign-template ones (ROC AUC over
  all pairs): whether the score says "the template's target is not here";
- ``distractor_auc`` (when the sequences annotate their look-alike distractors, as the generated ones do): search
  crops centred on a distractor of the same frame, with the target elsewhere in the crop (≥ 2 cells away); the
  fraction whose target cell scores higher than the distractor's (ties half). 0.5 cannot tell them apart; below
  0.5 the network prefers whatever is at the centre, the tracker's failure mode of jumping to a look-alike.

    python experiments/tracker_template_dependence.py [--tracker ettrack] [--weights PATH ...] [--data DIR] \
        [--output experiments/results/tracker_template_dependence.json]
"""

import os
import sys

import numpy as np
from absl import flags

import zippy_tf  # noqa: F401  (sets up Keras 2 before TensorFlow is imported)
from zippy_tf.errors import UserError
from zippy_tf.runtime import set_threads
from zippy_tf.tracking.backbone import STRIDE
from zippy_tf.tracking.datasets import load_sequences
from zippy_tf.tracking.generate import VALIDATION_SPLIT, validation_sequences
from zippy_tf.tracking.pairs import sample_pair

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import _common  # noqa: E402  (benchmarks/_common.py: what the benchmark and experiment scripts share)

FLAGS = flags.FLAGS
_common.define_tracker_flags("weights to compare (default: the shipped ones); repeat the flag", multiple_weights=True)
flags.DEFINE_integer("pairs_per_sequence", 16, "pairs drawn from each sequence", lower_bound=1)
flags.DEFINE_integer("seed", 0, "pair sampling seed")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")

MIN_CELLS_APART = 2


def sample(sequences, data):
    """Own templates, foreign templates (from the next sequence), search crops and target boxes (x1, y1, x2, y2)."""
    if len(sequences) < 2:
        raise UserError(f"--data {data} holds {len(sequences)} sequence(s); foreign templates need at least two, "
                        "pass a folder with more")
    rng = np.random.default_rng(FLAGS.seed)
    own, foreign, searches, boxes = [], [], [], []
    for i, sequence in enumerate(sequences):
        other = sequences[(i + 1) % len(sequences)]
        for _ in range(FLAGS.pairs_per_sequence):
            images, box = sample_pair(rng, [sequence])
            own.append(images["template"])
            searches.append(images["search"])
            boxes.append(box)
            foreign.append(sample_pair(rng, [other])[0]["template"])
    return np.stack(own), np.stack(foreign), np.stack(searches), np.stack(boxes)


def sample_distractor_pairs(sequences, search_size, stride):
    """Templates, search crops centred exactly on a same-frame distractor, and target boxes, for the sequences that
    annotate distractors, keeping the pairs whose target centre lies in the crop ≥ ``MIN_CELLS_APART`` cells from
    the centre; None when no sequence annotates them or no pair qualifies."""
    sequences = [s for s in sequences if s.distractors is not None]
    if not sequences:
        return None
    rng = np.random.default_rng(FLAGS.seed + 1)
    templates, searches, boxes = [], [], []
    for sequence in sequences:
        for _ in range(FLAGS.pairs_per_sequence * 4):  # most distractors are too far from the target: draw more
            images, box = sample_pair(rng, [sequence], distractor=True, search_shift=0)
            offset = np.abs((box[:2] + box[2:]) / 2 - search_size / 2)
            if offset.max() < search_size / 2 - stride and offset.max() >= MIN_CELLS_APART * stride:
                templates.append(images["template"])
                searches.append(images["search"])
                boxes.append(box)
    if not boxes:
        return None
    return np.stack(templates), np.stack(searches), np.stack(boxes)


def score_maps(network, templates, searches):
    logits = _common.pair_outputs(network, templates, searches, "cls")
    return 1.0 / (1.0 + np.exp(-logits[..., 0].astype(np.float64)))


def auc(higher, lower):
    """P(a random ``higher`` value exceeds a random ``lower`` one), ties half (the ROC AUC)."""
    higher, lower = np.asarray(higher)[:, None], np.asarray(lower)[None, :]
    return float(np.mean((higher > lower) + 0.5 * (higher == lower)))


def paired_win_rate(first, second):
    """Fraction of pairs i with first[i] > second[i], ties half."""
    return round(float(np.mean((first > second) + 0.5 * (first == second))), 3)


def at_points(maps, points, search_size):
    """Each map's value at the cell nearest its (x, y) point in search-crop pixels."""
    row, col, _ = _common.nearest_cells(maps.shape[1], search_size, points)
    return maps[np.arange(len(points)), row, col]


def measure(network, own, foreign, searches, boxes, distractor_pairs):
    with_own, with_foreign = score_maps(network, own, searches), score_maps(network, foreign, searches)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    at_own, at_foreign = at_points(with_own, centres, searches.shape[1]), at_points(with_foreign, centres,
                                                                                    searches.shape[1])
    result = {}
    if distractor_pairs is not None:
        templates, crops, targets = distractor_pairs
        maps = score_maps(network, templates, crops)
        at_target = at_points(maps, (targets[:, :2] + targets[:, 2:]) / 2, crops.shape[1])
        at_distractor = at_points(maps, np.full((len(crops), 2), crops.shape[1] / 2), crops.shape[1])
        result = {"distractor_auc": paired_win_rate(at_target, at_distractor),
                  "target_score_distractor_crop": round(float(at_target.mean()), 3),
                  "distractor_score": round(float(at_distractor.mean()), 3)}
    return {"target_score_own": round(float(at_own.mean()), 3),
            "target_score_foreign": round(float(at_foreign.mean()), 3),
            "swap_auc": paired_win_rate(at_own, at_foreign),
            "peak_auc": round(auc(with_own.max((1, 2)), with_foreign.max((1, 2))), 3),
            "peak_own": round(float(with_own.max((1, 2)).mean()), 3),
            "peak_foreign": round(float(with_foreign.max((1, 2)).mean()), 3), **result}


def main(argv):
    del argv
    set_threads(FLAGS.threads)
    with validation_sequences(FLAGS.data) as data:
        sequences = load_sequences(data, "otb")
        own, foreign, searches, boxes = sample(sequences, data)
        distractor_pairs = sample_distractor_pairs(sequences, searches.shape[1], STRIDE)
    results = _common.compare_weights(lambda network: measure(network, own, foreign, searches, boxes,
                                                              distractor_pairs))
    report = {
        "benchmark": "does the score map depend on the template (own vs another sequence's template, same crop)",
        **_common.provenance(),
        "tracker": FLAGS.tracker, "data": FLAGS.data or VALIDATION_SPLIT, "pairs": len(boxes), "seed": FLAGS.seed,
        "distractor_pairs": 0 if distractor_pairs is None else len(distractor_pairs[0]),
        "runtime": "keras fp32",
        "baseline": "a network that cannot tell the template's target from others: swap_auc = peak_auc = "
                    "distractor_auc = 0.5",
        "weights": results,
    }
    _common.write_report(FLAGS.output, report, printed=str(results))


if __name__ == "__main__":
    _common.run(main)
