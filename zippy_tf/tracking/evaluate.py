"""One-pass evaluation of any tracker on a list of sequences, and the success / precision plots.

Every tracker, neural or OpenCV, runs through :func:`track_sequence`: the same frames, the first frame initialises
with the ground truth (which also counts as the first prediction, as the toolkits do), and the timer covers each
``update`` call, pre- and post-processing included; with ``time_reading=True`` (``zippy-tf eval track``) it also
covers reading and decoding the frame from disk, else frames are read outside it, as a camera would deliver them.
"""

import os
import time

import numpy as np

from zippy_tf.errors import UserError
from zippy_tf.io import save_figure
from zippy_tf.tracking.metrics import PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS, sequence_curves, summarize
from zippy_tf.tracking.opencv_trackers import OPENCV_TRACKERS, OpenCVTracker

NEURAL_TRACKERS = ("ettrack", "ettrack-s", "lighttrack", "attention")
TRACKERS = NEURAL_TRACKERS + tuple(OPENCV_TRACKERS)


def build_network(name, weights=None):
    """The template/search network of neural tracker ``name`` from its preset (shipped weights by default)."""
    from zippy_tf import presets

    if name not in presets.PRESETS:
        raise UserError(
            f"tracker {name!r} needs the {name!r} model preset, which this version does not have yet; "
            f"use one of the OpenCV trackers: {', '.join(OPENCV_TRACKERS)}"
        )
    if weights is not None and not os.path.isfile(weights):
        raise UserError(f"weights={weights!r} does not exist; pass the path of a tracker weights file")
    if weights is None and presets.PRESETS[name].shipped_weights is None:
        raise UserError(f"no shipped weights for {name!r} in {presets.MODELS_DIR / name}; pass weights=PATH "
                        f"(train them with `zippy-tf train {name}`)")
    network = presets.build_model(name, weights=weights)
    if not (hasattr(network, "template_net") and hasattr(network, "search_net")):
        raise UserError(f"model {name!r} has no template_net/search_net; it is not a tracker network")
    return network


def tracker_factory(name, weights=None, hyperparameters=None, runtime=None, *, num_threads=1):
    """A function returning a fresh tracker ``name`` for each sequence (the network is built once).

    ``runtime``: "fp32" / "int8" run the network exported to flatbuffers (the deployed path; exported once per
    weights and cached, see :func:`~zippy_tf.tracking.export.cached_network`); "keras" runs the Keras network;
    None: the tracker's default (:data:`~zippy_tf.tracking.hyperparameters.DEFAULT_RUNTIMES`). ``num_threads``:
    the flatbuffer interpreter's threads. ``hyperparameters`` ({"penalty_k", "window_influence", "lr"}, any
    subset) default to those tuned for the shipped weights on that runtime (``models/<name>/tracker.json``) when
    ``weights`` is None, else to the reference's.
    """
    from zippy_tf.tracking.tracker import Tracker
    from zippy_tf.tracking.hyperparameters import shipped_hyperparameters

    if name in OPENCV_TRACKERS:
        if weights is not None or hyperparameters is not None or runtime not in (None, "keras"):
            raise UserError(f"weights=, hyperparameters= and runtime= do not apply to the OpenCV tracker {name!r}; "
                            "drop them")
        return lambda: OpenCVTracker(name)
    if name not in NEURAL_TRACKERS:
        raise UserError(f"unknown tracker {name!r}; choose one of: {', '.join(TRACKERS)}")
    network, runtime = runtime_network(name, weights, runtime, num_threads=num_threads)
    if hyperparameters is None:
        hyperparameters = shipped_hyperparameters(name, runtime) if weights is None else {}
    return lambda: Tracker.for_network(network, **hyperparameters)


def runtime_network(name, weights=None, runtime=None, *, num_threads=1):
    """(network, runtime) of neural tracker ``name`` as ``runtime`` runs it (None: the tracker's default): the Keras
    network, or its flatbuffers exported once per weights (:func:`~zippy_tf.tracking.export.cached_network`)."""
    from zippy_tf.tracking.export import cached_network
    from zippy_tf.tracking.hyperparameters import check_runtime, default_runtime

    runtime = check_runtime(default_runtime(name) if runtime is None else runtime)
    network = build_network(name, weights)
    return (network if runtime == "keras" else cached_network(network, runtime, num_threads=num_threads)), runtime


def track_sequence(tracker, sequence, *, time_reading=False):
    """(predicted (N, 4) boxes, seconds spent in ``update`` (and in reading frames, with ``time_reading``), number
    of updates) for one sequence."""
    valid = np.flatnonzero(np.all(np.isfinite(sequence.boxes), axis=1))
    predicted = np.full((len(sequence), 4), np.nan)
    if valid.size == 0:
        return predicted, 0.0, 0
    first = valid[0]  # initialise where the target is first visible; earlier frames are not scored
    tracker.init(sequence.read(first), sequence.boxes[first])
    predicted[first] = sequence.boxes[first]
    seconds = 0.0
    for i in range(first + 1, len(sequence)):
        start = time.perf_counter()
        frame = sequence.read(i)
        if not time_reading:
            start = time.perf_counter()
        _, box = tracker.update(frame)
        seconds += time.perf_counter() - start
        predicted[i] = box
    return predicted, seconds, len(sequence) - first - 1


def _fps(frames, seconds):
    return round(frames / seconds, 2) if seconds > 0 else None


def evaluate(sequences, make_tracker, progress=None, *, time_reading=False):
    """OPE over ``sequences``; returns (scores dict, {"success_curve", "precision_curve"}). ``time_reading``: the
    FPS counts reading the frames too (see :func:`track_sequence`)."""
    success, precision, per_sequence = [], [], {}
    total_frames, total_seconds = 0, 0.0
    for k, sequence in enumerate(sequences):
        predicted, seconds, frames = track_sequence(make_tracker(), sequence, time_reading=time_reading)
        s, p = sequence_curves(predicted, sequence.boxes)
        success.append(s)
        precision.append(p)
        total_frames, total_seconds = total_frames + frames, total_seconds + seconds
        per_sequence[sequence.name] = {
            "success_auc": round(float(s.mean()), 4), "precision_20": round(float(p[20]), 4),
            "fps": _fps(frames, seconds), "frames": len(sequence),
        }
        if progress:
            progress(f"[{k + 1}/{len(sequences)}] {sequence.name}: {per_sequence[sequence.name]}")
    summary = summarize(success, precision)
    scores = {
        "success_auc": round(summary["success_auc"], 4),
        "precision_20": round(summary["precision_20"], 4),
        "fps": _fps(total_frames, total_seconds),
        "num_sequences": len(sequences),
        "per_sequence": per_sequence,
    }
    return scores, {"success_curve": summary["success_curve"], "precision_curve": summary["precision_curve"]}


def plot_curves(results, folder):
    """Writes ``success.png`` and ``precision.png`` (OTB style) to ``folder``.

    Args:
        results: {tracker label: {"success_auc", "precision_20", "success_curve", "precision_curve"}}.

    Returns:
        the two paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for kind, thresholds, curve, score, xlabel in (
        ("success", SUCCESS_THRESHOLDS, "success_curve", "success_auc", "overlap threshold (IoU)"),
        ("precision", PRECISION_THRESHOLDS, "precision_curve", "precision_20", "location error threshold (px)"),
    ):
        figure, axes = plt.subplots(figsize=(5, 4))
        for label, result in sorted(results.items(), key=lambda kv: -kv[1][score]):
            axes.plot(thresholds, result[curve], label=f"{label} [{result[score]:.3f}]")
        axes.set(xlabel=xlabel, ylabel=f"{kind} rate", title=f"{kind} plot of OPE", ylim=(0, 1.02),
                 xlim=(thresholds[0], thresholds[-1]))
        axes.grid(alpha=0.3)
        axes.legend(loc="lower left" if kind == "success" else "lower right", fontsize=8)
        paths.append(os.path.join(folder, f"{kind}.png"))
        save_figure(figure, paths[-1])
        plt.close(figure)
    return paths


__all__ = [
    "NEURAL_TRACKERS", "TRACKERS", "build_network", "evaluate", "plot_curves", "runtime_network", "track_sequence",
    "tracker_factory",
]
