"""A trained tracker's BatchNorm statistics: as loaded (the baseline) vs re-estimated per branch (precise BatchNorm).

Trackers built since the template and search branches keep separate BatchNorm layers
(``zippy_tf.tracking.backbone.branch_twin``) can normalise each branch with its own statistics. Weight files written
before that hold one shared set, which the template branch starts from as a copy. This experiment measures, in one
run on the same validation sequences, what re-estimating them (``estimate_batch_norm_statistics`` on training
pairs) changes: held-out losses in inference mode (next to training mode, what the optimiser saw) and the online
tracker's OPE success AUC / precision on the Keras runtime.

The splits are generated unless given: training pairs from seed 1 (the shipped weights' training split), validation
sequences from seed 2; the benchmark test split of ``benchmarks/tracking_fps.py`` (seed 1000) is not touched.

    python experiments/tracker_batch_norm.py [--tracker ettrack] [--weights PATH] [--steps 25] \
        [--output experiments/results/tracker_batch_norm.json]

Committed: ``tracker_batch_norm.json`` (the 1,550-step E.T.Track weights, trained on batch statistics, from before
the per-branch split) and ``tracker_batch_norm_frozen_finetuned.json`` (those weights after fine-tuning with
``--batch_norm frozen``, for which ``as_loaded`` is the deployed model).
"""

import contextlib
import os
import sys
import time

from absl import flags

import zippy_tf  # noqa: F401  (sets up Keras 2 before TensorFlow is imported)
from zippy_tf.runtime import progress, set_threads
from zippy_tf.tracking.datasets import load_sequences
from zippy_tf.tracking.evaluate import build_network, evaluate
from zippy_tf.tracking.pairs import pair_dataset
from zippy_tf.tracking.tracker import Tracker
from zippy_tf.tracking.training import TrackerTrainer, batch_norm_momentum, estimate_batch_norm_statistics

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import _common  # noqa: E402  (benchmarks/_common.py: what the benchmark and experiment scripts share)

FLAGS = flags.FLAGS
_common.define_tracker_flags("tracker weights (default: the shipped ones)")
flags.DEFINE_string("train_data", None, "OTB-layout training sequences (default: generated, seed 1, 40 × 60)")
flags.DEFINE_integer("steps", 25, "training batches (of 8 pairs) to estimate the statistics from", lower_bound=1)
flags.DEFINE_integer("loss_batches", 10, "validation batches (of 8 pairs) for the held-out losses", lower_bound=1)
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")

BATCH = 8


def held_out_losses(trainer, batches):
    """Mean validation losses, inference mode and training mode (batch statistics; weights untouched)."""
    result = {}
    for mode, training in (("inference", False), ("training_mode", True)):
        with batch_norm_momentum(trainer.pair, 1.0):  # a training-mode call must not move the measured statistics
            losses = [trainer.pair_losses(batch, training=training) for batch in batches]
        for key in ("cls_loss", "reg_loss"):
            result[f"{mode}_{key}"] = round(float(sum(float(x[key].numpy().mean()) for x in losses) / len(losses)), 4)
    return result


def measure(trainer, sequences, batches):
    start = time.perf_counter()
    scores, _ = evaluate(sequences, lambda: Tracker.for_network(trainer.network))
    return {"success_auc": scores["success_auc"], "precision_20": scores["precision_20"],
            **held_out_losses(trainer, batches), "seconds": round(time.perf_counter() - start, 1)}


def run(train_root, data_root):
    train, validation = load_sequences(train_root, "otb"), load_sequences(data_root, "otb")
    network = build_network(FLAGS.tracker, FLAGS.weights)
    trainer = TrackerTrainer(network)
    batches = list(pair_dataset(validation, batch_size=BATCH, seed=7).take(FLAGS.loss_batches))  # both rows'
    rows = {}
    progress("measuring the statistics as loaded")
    rows["as_loaded"] = measure(trainer, validation, batches)
    progress(f"estimating BatchNorm statistics on {FLAGS.steps} training batches of {BATCH}")
    layers = estimate_batch_norm_statistics(network, pair_dataset(train, batch_size=BATCH, seed=11),
                                            steps=FLAGS.steps)
    rows["precise_per_branch"] = measure(trainer, validation, batches)
    return {
        **_common.provenance(),
        "benchmark": "tracker BatchNorm statistics: as loaded vs precise per-branch re-estimation",
        "tracker": FLAGS.tracker, "weights": FLAGS.weights or "shipped", "batch_norm_layers": layers,
        "estimation": {"batches": FLAGS.steps, "batch_size": BATCH, "data": FLAGS.train_data or "generated seed 1"},
        "validation": {"sequences": len(validation), "data": FLAGS.data or "generated seed 2",
                       "runtime": "keras fp32", "threads": FLAGS.threads},
        "rows": rows,
        "baseline": "as_loaded",
    }


def main(argv):
    del argv
    set_threads(FLAGS.threads)
    with contextlib.ExitStack() as stack:
        train = stack.enter_context(_common.otb_sequences(FLAGS.train_data, 40, 60, 1))
        validation = stack.enter_context(_common.otb_sequences(FLAGS.data, 10, 60, 2))
        result = run(train, validation)
    _common.write_report(FLAGS.output, result)


if __name__ == "__main__":
    _common.run(main)
