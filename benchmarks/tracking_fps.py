"""Full-tracker speed and accuracy at one thread and at all cores: E.T.Track, its lighter variant ``ettrack-s``, its
conv-head (LightTrack) and attention-head baselines, and OpenCV's CSRT, KCF and MIL, in one run on the same generated
test sequences.

FPS counts what ``zippy-tf eval track`` counts (``evaluate(..., time_reading=True)``): every ``update`` call with
reading and decoding its frame from disk, the crop, the network and the decoding of its output. Each tracker runs
the same frames once per ``--threads`` entry (``1,all``: one thread, then ``os.cpu_count()``), its thread counts back
to back. The neural trackers run their exported flatbuffers (template + search branch, in the deployment form, thesis
Eq. 4.6) on TensorFlow Lite's builtin interpreter with that many interpreter threads, as a user gets them
(``zippy_tf.tracking.export.cached_network``: exported once per weights into the user's cache), once per
``--precisions`` entry: ``fp32`` and ``int8`` (integer kernels except ``INT8_FLOAT_OPS``, calibrated on photo crops,
float I/O). Rows are named ``<tracker>_<precision>``; ``default_runtime`` marks the precision a user gets by default
(``DEFAULT_RUNTIMES``), so that row is the tracker as ``zippy-tf eval track`` runs it. The OpenCV trackers run with
``cv2.setNumThreads`` set to the thread count (so do the neural trackers' crops). With ``--eq45_reference`` every
tracker with Exemplar Attention also runs in fp32 with its depthwise kernels applied as E convolutions summed (thesis
Eq. 4.5, row ``<tracker>_fp32_eq4.5``): what the Eq. 4.6 deployment form saves, in the same run.

The report records the 1-minute load average at the start and the end: the all-cores figures mean something only on
an otherwise idle machine (on 2 cores with other processes running, E.T.Track's interpreter at 2 threads ran several
times slower than at 1, its threads waiting for each other).

Accuracy does not depend on the thread count: ``success_auc`` and ``precision_20`` are those of the first thread
count, and ``success_auc_change_over_threads`` says how far the other runs' AUC differed (0 for the same boxes).
Weights: the shipped ones from models/, with the tracker hyper-parameters tuned for them and that runtime
(``models/<name>/tracker.json``; the reference's where there is none). Without shipped weights, ``--allow_untrained``
still measures their FPS (speed does not depend on the weights) and marks their AUC as untrained. A tracker whose
preset or weights do not exist is listed with the reason instead of numbers.

``targets`` holds the targets of E.T.Track's deployment (ratios in this run, each with ``met``): ettrack-s at its
default runtime ≥ 1.2× CSRT's FPS at 1 thread, with a success AUC ≥ the shipped E.T.Track's − 0.02 (both at their
default runtimes); E.T.Track fp32 faster with Eq. 4.6 than with Eq. 4.5 at 1 thread; E.T.Track (default runtime)
faster than CSRT at all cores.

The test split is rendered with seed 1000 (``--seed``); train on other seeds so no sequence is shared.

    python benchmarks/tracking_fps.py [--threads 1,all] [--precisions fp32,int8] [--num_sequences 10] \\
        [--num_frames 60] [--output benchmarks/results/tracking_fps.json] [--plot benchmarks/results/tracking_fps.png]
    python benchmarks/tracking_fps.py --trackers csrt,ettrack --num_sequences 1 --num_frames 5 --output out/fps.json \
        --plot out/fps.png    # a smoke run
"""

import os
import platform

import cv2
from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf.errors import UserError
from zippy_tf.export import convert
from zippy_tf.io import save_figure
from zippy_tf.runtime import progress
from zippy_tf.tracking.datasets import load_sequences
from zippy_tf.tracking.evaluate import NEURAL_TRACKERS, TRACKERS, build_network, evaluate, tracker_factory
from zippy_tf.tracking.exemplar import ExemplarAttention
from zippy_tf.tracking.export import TRACKER_FORMATS, FlatbufferNetwork, cached_network, convert_search_branch
from zippy_tf.tracking.hyperparameters import default_runtime, shipped_hyperparameters
from zippy_tf.tracking.model import deployment_form
from zippy_tf.tracking.tracker import Tracker
from zippy_tf.tracking.tuning import DEFAULTS

import _common

LIGHT_ETTRACK = "ettrack-s"  # the lighter E.T.Track the targets name; listed with a reason while it has no preset
BENCHMARKED = TRACKERS[:1] + tuple(t for t in (LIGHT_ETTRACK,) if t not in TRACKERS) + TRACKERS[1:]
EQ45 = "fp32_eq4.5"

FLAGS = flags.FLAGS
flags.DEFINE_list("trackers", list(BENCHMARKED), "trackers to run")
flags.DEFINE_list("precisions", ["fp32", "int8"], "TFLite exports of each neural tracker to time (fp32, int8)")
flags.DEFINE_list("threads", ["1", "all"], "thread counts to time every tracker at ('all': os.cpu_count())")
flags.DEFINE_boolean("eq45_reference", True, "also time trackers with Exemplar Attention in fp32 with the Eq. 4.5 "
                     "depthwise form (E convolutions summed)")
flags.DEFINE_boolean("allow_untrained", False, "measure neural trackers without shipped weights (FPS only)")
flags.DEFINE_string("data", None, "OTB-layout sequences to use instead of generating the test split")
flags.DEFINE_integer("seed", 1000, "seed of the generated test split (disjoint from training seeds)")
flags.DEFINE_integer("num_sequences", 10, "generated test sequences")
flags.DEFINE_integer("num_frames", 60, "frames per generated sequence")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")
flags.DEFINE_string("plot", _common.default_output(__file__, ".png"), "FPS-vs-AUC plot")


def is_neural(name):
    return name in NEURAL_TRACKERS or name == LIGHT_ETTRACK


def load_network(name):
    """(Keras tracker network, weights note): the shipped weights, or fresh ones with --allow_untrained."""
    from zippy_tf import presets

    try:
        return build_network(name), "shipped"
    except UserError:
        if not (FLAGS.allow_untrained and name in presets.PRESETS):
            raise
        return presets.build_model(name, use_shipped_weights=False), "untrained"


def eq45_flatbuffers(network):
    """(template, search) fp32 flatbuffers of ``network`` in the deployment form (batch 1) but with each Exemplar
    Attention's depthwise kernels applied as E convolutions whose outputs are summed (thesis Eq. 4.5): the
    reference that shows what Eq. 4.6 saves."""
    reference = deployment_form(network)
    for layer in reference.search_net.submodules:
        if isinstance(layer, ExemplarAttention):
            layer.depthwise_form = "output_sum"  # read when the converter traces the call
    progress(f"{network.search_net.name}: exporting the Eq. 4.5 form to fp32 TFLite")
    return convert(reference.template_net, "fp32"), convert_search_branch(reference, "fp32")


def has_exemplar_attention(network):
    return any(isinstance(layer, ExemplarAttention) for layer in network.search_net.submodules)


def runs(name, network):
    """(row name, precision) pairs of one tracker: every --precisions entry of a neural tracker, and the Eq. 4.5
    reference of one with Exemplar Attention."""
    if network is None:
        return [(name, "native")]
    rows = [(f"{name}_{precision}", precision) for precision in FLAGS.precisions]
    if FLAGS.eq45_reference and has_exemplar_attention(network):
        rows.append((f"{name}_{EQ45}", EQ45))
    return rows


def runtime_of(precision):
    """The runtime whose tuned hyper-parameters a row uses (the Eq. 4.5 reference runs fp32 kernels)."""
    return "fp32" if precision == EQ45 else precision


def factories(name, network, precision, hyperparameters):
    """threads → a function returning a fresh tracker for each sequence, its network on that many threads."""
    if network is None:
        return lambda threads: tracker_factory(name)
    data = eq45_flatbuffers(network) if precision == EQ45 else None

    def make(threads):
        deployed = (FlatbufferNetwork(*data, num_threads=threads) if data
                    else cached_network(network, precision, num_threads=threads, progress=progress))
        return lambda: Tracker.for_network(deployed, **hyperparameters)

    return make


def measure(make, sequences, thread_counts):
    """One row: FPS at each thread count (``make(threads)``: a tracker factory), accuracy at the first."""
    fps, aucs, scores = {}, [], None
    for threads in thread_counts:
        cv2.setNumThreads(threads)
        result, _ = evaluate(sequences, make(threads), time_reading=True)
        scores = scores or result
        fps[str(threads)] = result["fps"]
        aucs.append(result["success_auc"])
    return {"fps": fps, "success_auc": scores["success_auc"], "precision_20": scores["precision_20"],
            "success_auc_change_over_threads": round(max(aucs) - min(aucs), 4)}


def first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def measure_tracker(name, sequences, thread_counts):
    """{row name: result} of one tracker (rows with ``unavailable`` where it cannot run)."""
    try:
        network, weights = load_network(name) if is_neural(name) else (None, "none")
    except UserError as error:
        progress(f"{name}: skipped: {error}")
        return {name: {"unavailable": str(error)}}
    results = {}
    for row, precision in runs(name, network):
        info = {"tracker": name, "precision": precision, "weights": weights,
                "runtime": "opencv" if network is None else "tflite",
                "default_runtime": network is None or precision == default_runtime(name)}
        if network is not None:
            info["tracker_hyperparameters"] = {**DEFAULTS, **shipped_hyperparameters(name, runtime_of(precision))}
        try:
            make = factories(name, network, precision, info.get("tracker_hyperparameters"))
            results[row] = {**info, **measure(make, sequences, thread_counts)}
        except Exception as error:  # a conversion that fails is reported, not fatal for the other rows
            progress(f"{row}: skipped: {first_line(error)}")
            results[row] = {**info, "unavailable": first_line(error)}
            continue
        progress(f"{row}: {results[row]}")
    return results


def default_row(results, name):
    """The row of tracker ``name`` at its default runtime (None if it did not run)."""
    return next((r for r in results.values() if r.get("tracker") == name and r.get("default_runtime")
                 and "fps" in r), None)


def target(value, goal, met, rows):
    """One target: its measured ``value``, the ``goal`` as text and whether ``met(value)`` (None without a value or
    a goal)."""
    return {"value": value, "target": goal, "met": None if value is None or met is None else bool(met(value)),
            "rows": rows}


def targets(results):
    """The targets of E.T.Track's deployment, as ratios or differences of this run's numbers (``value`` None where a
    row is missing)."""
    one, all_cores = "1", str(os.cpu_count())
    light, full, csrt = default_row(results, LIGHT_ETTRACK), default_row(results, "ettrack"), results.get("csrt", {})
    eq46, eq45 = results.get("ettrack_fp32", {}), results.get(f"ettrack_{EQ45}", {})

    def fps_ratio(a, b, threads):
        fa, fb = (a or {}).get("fps", {}).get(threads), (b or {}).get("fps", {}).get(threads)
        return round(fa / fb, 2) if fa and fb else None

    def row_name(row):
        return next((k for k, v in results.items() if v is row), None)

    trained = light and full and light["weights"] == full["weights"] == "shipped"  # untrained AUC says nothing
    auc_change = round(light["success_auc"] - full["success_auc"], 4) if trained else None
    saved = (round(1e3 / eq45["fps"][one] - 1e3 / eq46["fps"][one], 1)
             if eq45.get("fps", {}).get(one) and eq46.get("fps", {}).get(one) else None)
    return {
        f"{LIGHT_ETTRACK}_vs_csrt_fps_1_thread": target(
            fps_ratio(light, csrt, one), ">= 1.2", lambda v: v >= 1.2, [row_name(light), "csrt"]),
        f"{LIGHT_ETTRACK}_minus_ettrack_success_auc": target(
            auc_change, ">= -0.02", lambda v: v >= -0.02, [row_name(light), row_name(full)]),
        "ettrack_fp32_eq4.6_vs_eq4.5_fps_1_thread": {
            **target(fps_ratio(eq46, eq45, one), "> 1 (the Eq. 4.6 form pays in fp32)", lambda v: v > 1,
                     ["ettrack_fp32", f"ettrack_{EQ45}"]),
            "ms_saved_per_frame": saved,
            "note": "every fp32/int8 row runs the Eq. 4.6 export (the deployment form); the eq4.5 row applies the "
                    "E depthwise kernels as E convolutions summed, otherwise identical"},
        "ettrack_vs_csrt_fps_all_cores": target(
            fps_ratio(full, csrt, all_cores) if all_cores in (full or {}).get("fps", {}) else None, "> 1",
            lambda v: v > 1, [row_name(full), "csrt"]),
        "ettrack_vs_csrt_fps_1_thread (no target: the full FFNs dominate)": target(
            fps_ratio(full, csrt, one), None, None, [row_name(full), "csrt"]),
    }


def plot(results, thread_counts, path):
    """FPS (log) vs success AUC: one colour per row, a hollow marker at the first thread count and filled ones at
    the others, joined by a line; CSRT's FPS at the first thread count as a dotted line."""
    plt = _common.pyplot()
    import matplotlib.ticker

    figure, axes = plt.subplots(figsize=(7.5, 5))
    shapes = {"fp32": "o", "int8": "^", EQ45: "D", "native": "s"}
    rows = [(name, r) for name, r in results.items() if r.get("fps")]
    for i, (name, r) in enumerate(rows):
        color = "black" if name == "csrt" else plt.cm.tab10(i % 10)
        points = [(r["fps"][str(t)], t) for t in thread_counts if r["fps"].get(str(t))]
        axes.plot([f for f, _ in points], [r["success_auc"]] * len(points), color=color, lw=0.8, alpha=0.6)
        for fps, threads in points:
            axes.scatter(fps, r["success_auc"], marker="*" if name == "csrt" else shapes[r["precision"]], s=60,
                         edgecolors=color, facecolors="none" if threads == thread_counts[0] else color,
                         label=f"{name}{' (default)' if r['default_runtime'] and r['runtime'] != 'opencv' else ''}"
                         if threads == thread_counts[0] else None)
        axes.annotate(name, (points[-1][0], r["success_auc"]), textcoords="offset points", xytext=(5, 3), fontsize=7)
    csrt = results.get("csrt", {}).get("fps", {}).get(str(thread_counts[0]))
    if csrt:
        axes.axvline(csrt, color="black", ls=":", lw=1)
    counts = " / ".join(f"{t} thread{'s' * (t > 1)}" for t in thread_counts)
    axes.set(xscale="log", xlabel=f"full-tracker FPS incl. frame reading (hollow / filled: {counts}; "
             f"{platform.machine()})", ylim=(0, 1), ylabel="success AUC (OPE)",
             title="Speed vs accuracy on the generated test split (dotted: CSRT, 1 thread)")
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # log-axis minor labels overlap
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=7, loc="lower right")
    save_figure(figure, path)
    plt.close(figure)


def check_flags():
    unknown = set(FLAGS.trackers) - set(BENCHMARKED)
    if unknown:
        raise UserError(f"unknown trackers {sorted(unknown)}; pass --trackers among {', '.join(BENCHMARKED)}")
    if not FLAGS.precisions or set(FLAGS.precisions) - set(TRACKER_FORMATS):
        raise UserError(f"--precisions takes {', '.join(TRACKER_FORMATS)}, not {','.join(FLAGS.precisions)}")
    if FLAGS.data is None and (FLAGS.num_sequences < 1 or FLAGS.num_frames < 2):
        raise UserError("pass --num_sequences >= 1 and --num_frames >= 2")
    return _common.thread_counts(FLAGS.threads)


def main(argv):
    del argv
    thread_counts = check_flags()
    load_before = os.getloadavg()[0]
    with _common.otb_sequences(FLAGS.data, FLAGS.num_sequences, FLAGS.num_frames, FLAGS.seed) as data:
        sequences = load_sequences(data, "otb")
        results = {}
        for name in FLAGS.trackers:
            results.update(measure_tracker(name, sequences, thread_counts))
    report = {
        **_common.provenance(),
        "threads": thread_counts,
        "all_cores": os.cpu_count(),
        # other processes' load slows the multi-threaded runs most (the interpreter's threads wait for each other)
        "load_average_1min": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
        "data": FLAGS.data or {"generated_seed": FLAGS.seed, "num_sequences": FLAGS.num_sequences,
                               "num_frames": FLAGS.num_frames},
        "timing": "per update() call incl. reading and decoding the frame, crop, network and decoding, as zippy-tf "
                  "eval track counts it; fps per thread count; accuracy from the first thread count",
        "default_runtimes": {name: default_runtime(name) for name in FLAGS.trackers if is_neural(name)},
        "runtimes": {
            "tflite": "exported template + search flatbuffers (deployment form, Eq. 4.6) on tf.lite.Interpreter "
                      "(default builtin op resolver, XNNPACK) with num_threads = the thread count; precision fp32 = "
                      "float32 kernels, int8 = integer kernels except zippy_tf.tracking.export.INT8_FLOAT_OPS "
                      "(depthwise, LayerNorm), float32 inputs/outputs, post-training calibrated on photo crops; "
                      f"{EQ45} = fp32 with the Exemplar depthwise kernels as E convolutions summed (Eq. 4.5)",
            "opencv": "OpenCV's C++ tracker (precision 'native'), cv2.setNumThreads = the thread count",
        },
        "trackers": results,
        "targets": targets(results),
    }
    plot(results, thread_counts, FLAGS.plot)
    _common.write_report(FLAGS.output, report)


if __name__ == "__main__":
    _common.run(main)
