"""Full-tracker speed and accuracy: E.T.Track, its conv-head and attention-head baselines, and OpenCV's KCF, CSRT
and MIL, in one run on the same generated test sequences, on one thread.

FPS counts every ``update`` call with its pre- and post-processing (crops, network, decoding); frames are read
from disk outside the timer. The neural trackers run their exported flatbuffers (``zippy_tf.tracking.export``,
template + search branch) on TensorFlow Lite's builtin interpreter (``--runtime tflite``, the deployment path), once
per ``--precisions`` entry: ``fp32`` and ``int8`` (integer kernels except ``INT8_FLOAT_OPS``, calibrated on photo
crops, float I/O); rows are named ``<tracker>`` (fp32) and ``<tracker>_int8``, and each row says its ``runtime``
and ``precision``. With ``--runtime keras`` they run their Keras models (fp32 only). Weights: the shipped ones from
models/, with the tracker hyper-parameters tuned for them (``models/<name>/tracker.json``, written by ``zippy-tf
tune``; its int8 settings for the int8 rows when it has them; the reference's where there is none). Without shipped
weights, ``--allow_untrained`` still measures their FPS (speed does not depend on the weights) and marks their AUC
as untrained. A tracker whose preset does not exist yet is listed with the reason instead of numbers.

The test split is rendered with seed 1000 (``--seed``); train on other seeds so no sequence is shared.

    python benchmarks/tracking_fps.py [--runtime tflite] [--precisions fp32,int8] [--num_sequences 10] \
        [--num_frames 60] \
        [--output benchmarks/results/tracking_fps.json] [--plot benchmarks/results/tracking_fps.png]
"""

import platform
import tempfile

from absl import app, flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf.errors import UserError
from zippy_tf.io import save_figure
from zippy_tf.runtime import progress, set_threads
from zippy_tf.tracking.datasets import load_sequences
from zippy_tf.tracking.evaluate import (
    NEURAL_TRACKERS, TRACKERS, build_network, evaluate, tracker_factory,
)
from zippy_tf.tracking.export import TRACKER_FORMATS, exported_network
from zippy_tf.tracking.hyperparameters import shipped_hyperparameters
from zippy_tf.tracking.tracker import Tracker
from zippy_tf.tracking.tuning import DEFAULTS

import _common

FLAGS = flags.FLAGS
flags.DEFINE_list("trackers", list(TRACKERS), "trackers to run")
flags.DEFINE_enum("runtime", "tflite", ["tflite", "keras"], "how the neural trackers run")
flags.DEFINE_list("precisions", ["fp32", "int8"], "TFLite exports of each neural tracker to time (fp32, int8)")
flags.DEFINE_boolean("allow_untrained", False, "measure neural trackers without shipped weights (FPS only)")
flags.DEFINE_string("data", None, "OTB-layout sequences to use instead of generating the test split")
flags.DEFINE_integer("seed", 1000, "seed of the generated test split (disjoint from training seeds)")
flags.DEFINE_integer("num_sequences", 10, "generated test sequences")
flags.DEFINE_integer("num_frames", 60, "frames per generated sequence")
flags.DEFINE_integer("threads", 1, "CPU threads for every tracker")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")
flags.DEFINE_string("plot", _common.default_output(__file__, ".png"), "FPS-vs-AUC plot")


def load_network(name):
    """(Keras tracker network, weights note): the shipped weights, or fresh ones with --allow_untrained."""
    from zippy_tf import presets

    try:
        return build_network(name), "shipped"
    except UserError:
        if not (FLAGS.allow_untrained and name in presets.PRESETS):
            raise
        return presets.build_model(name, use_shipped_weights=False), "untrained"


def neural_factory(network, precision, tmp, hyperparameters):
    """A tracker factory for ``network`` on the chosen runtime; ``precision`` picks the TFLite export."""
    if FLAGS.runtime == "tflite":
        progress(f"{network.search_net.name}: exporting the template and search branches to {precision} TFLite")
        network = exported_network(network, precision, tmp, num_threads=FLAGS.threads)
    return lambda: Tracker.for_network(network, **hyperparameters)


def runs(name):
    """(row name, precision) pairs of one tracker: every --precisions entry for a TFLite neural tracker."""
    if name not in NEURAL_TRACKERS:
        return [(name, "native")]
    if FLAGS.runtime == "keras":
        return [(name, "fp32")]
    return [(name if precision == "fp32" else f"{name}_{precision}", precision) for precision in FLAGS.precisions]


def plot(results, path):
    plt = _common.pyplot()
    import matplotlib.ticker

    figure, axes = plt.subplots(figsize=(6, 4))
    for name, r in results.items():
        if r.get("fps"):
            marker = {"fp32": "o", "int8": "^"}.get(r.get("precision"), "s")
            axes.scatter(r["fps"], r["success_auc"], marker=marker,
                         label=f"{name} ({r['runtime']} {r['precision']}, {r['weights']} weights)")
            axes.annotate(name, (r["fps"], r["success_auc"]), textcoords="offset points", xytext=(5, 3), fontsize=8)
    axes.set(xscale="log", xlabel=f"full-tracker FPS ({FLAGS.threads} thread, {platform.machine()})",
             ylim=(0, 1), ylabel="success AUC (OPE)", title="Speed vs accuracy on the generated test split")
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # log-axis minor labels overlap
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=7)
    save_figure(figure, path)


def targets(results):
    """The issue's targets, as ratios of the measured numbers (None where a tracker is missing)."""

    def ratio(a, b, key):
        return round(results[a][key] / results[b][key], 2) if results.get(a, {}).get(key) and \
            results.get(b, {}).get(key) else None

    return {
        "exemplar_vs_attention_fps (target >= 3)": ratio("ettrack", "attention", "fps"),
        "exemplar_vs_attention_fps_int8 (target >= 3)": ratio("ettrack_int8", "attention_int8", "fps"),
        "ettrack_vs_csrt_fps (target > 1, stretch 2)": ratio("ettrack", "csrt", "fps"),
        "ettrack_int8_vs_csrt_fps (target > 1, stretch 2)": ratio("ettrack_int8", "csrt", "fps"),
        "ettrack_vs_csrt_auc (target >= 1)": ratio("ettrack", "csrt", "success_auc"),
    }


def main(argv):
    unknown = set(FLAGS.trackers) - set(TRACKERS)
    if unknown:
        raise app.UsageError(f"unknown trackers {sorted(unknown)}; choose from {', '.join(TRACKERS)}")
    if not FLAGS.precisions or set(FLAGS.precisions) - set(TRACKER_FORMATS):
        raise app.UsageError(f"--precisions takes {', '.join(TRACKER_FORMATS)}, not {FLAGS.precisions}")
    set_threads(FLAGS.threads)
    with tempfile.TemporaryDirectory() as tmp, \
            _common.otb_sequences(FLAGS.data, FLAGS.num_sequences, FLAGS.num_frames, FLAGS.seed) as data:
        sequences = load_sequences(data, "otb")
        results = {}
        for name in FLAGS.trackers:
            try:
                network, weights = load_network(name) if name in NEURAL_TRACKERS else (None, "none")
            except UserError as e:
                progress(f"{name}: skipped: {e}")
                results[name] = {"unavailable": str(e)}
                continue
            for row, precision in runs(name):
                # the settings tuned for the shipped weights on this runtime (models/<name>/tracker.json)
                runtime = precision if FLAGS.runtime == "tflite" else "keras"
                hyperparameters = {**DEFAULTS, **shipped_hyperparameters(name, runtime)} if network else None
                try:
                    factory = (neural_factory(network, precision, tmp, hyperparameters) if network
                               else tracker_factory(name))
                except Exception as e:  # a conversion that fails is reported, not fatal for the other rows
                    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                    progress(f"{row}: skipped: {first}")
                    results[row] = {"unavailable": first, "precision": precision}
                    continue
                scores, _ = evaluate(sequences, factory)
                runtime = FLAGS.runtime if network else "opencv"
                results[row] = {"fps": scores["fps"], "success_auc": scores["success_auc"],
                                "precision_20": scores["precision_20"], "weights": weights, "runtime": runtime,
                                "precision": precision}
                if network:
                    results[row]["tracker_hyperparameters"] = hyperparameters
                progress(f"{row}: {results[row]}")
    report = {
        **_common.provenance(),
        "threads": FLAGS.threads,
        "data": FLAGS.data or {"generated_seed": FLAGS.seed, "num_sequences": FLAGS.num_sequences,
                               "num_frames": FLAGS.num_frames},
        "timing": "per update() call incl. crop, network and decoding; frames read outside the timer",
        "runtimes": {
            "tflite": "exported template + search flatbuffers on tf.lite.Interpreter (default builtin op resolver), "
                      f"{FLAGS.threads} thread(s); precision fp32 = float32 kernels, int8 = "
                      "integer kernels except zippy_tf.tracking.export.INT8_FLOAT_OPS (depthwise, LayerNorm), float32 "
                      "inputs/outputs, post-training calibrated on photo crops",
            "keras": "Keras model call, float32",
            "opencv": "OpenCV's C++ tracker (precision 'native')",
        },
        "trackers": results,
        "targets": targets(results),
    }
    plot(results, FLAGS.plot)
    _common.write_report(FLAGS.output, report)


if __name__ == "__main__":
    _common.run(main)
