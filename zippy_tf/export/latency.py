"""Latency of exported flatbuffers, always against a baseline timed in the same process.

Runs are interleaved (model, baseline, model, …, in alternating order) so that frequency scaling, caches and
other load on the machine hit every model alike; the reported figure is the median.
"""

import time

import numpy as np

from zippy_tf.export.runner import FlatbufferRunner


def _default_input(runner):
    """One sample per input of ``runner``, in its input order: a bundled photo for image inputs, uniform noise
    for feature inputs."""
    rng = np.random.default_rng(0)
    samples = []
    for shape in runner.input_shapes:
        if len(shape) == 4 and shape[-1] == 3:
            from zippy_tf.data.photos import calibration_images

            samples.append(calibration_images(shape[1], shape[2], 1))
        else:
            samples.append(rng.uniform(-1, 1, shape).astype(np.float32))
    return samples


def time_interleaved(runners, *, warmup=5, runs=50, inputs=None, progress=None):
    """Times several runners round-robin. Returns {name: [milliseconds per run]}.

    Args:
        runners: {name: FlatbufferRunner}.
        inputs: {name: one sample, as :meth:`FlatbufferRunner.invoke` takes it: a (1, H, W, C) float32 array, or a
            list / dict of them for several inputs}; default: a bundled photo at each image input's size, noise for
            the other inputs.
        progress: optional callable(done, total) for a progress display.
    """
    if inputs is None:
        inputs = {n: _default_input(r) for n, r in runners.items()}
    names = list(runners)
    for _ in range(warmup):
        for n in names:
            runners[n].invoke(inputs[n])
    times = {n: [] for n in names}
    for i in range(runs):
        for n in (names if i % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            runners[n].invoke(inputs[n])
            times[n].append((time.perf_counter() - start) * 1e3)
        if progress is not None:
            progress(i + 1, runs)
    return times


def compare(model, baseline, *, threads=1, warmup=5, runs=50, model_name="model", baseline_name="baseline",
            progress=None):
    """Benchmarks flatbuffer ``model`` against ``baseline`` (both bytes) in one run.

    Returns {"model", "baseline", "median_ms", "baseline_median_ms", "speedup", ...}; speedup > 1 means the
    model is faster than the baseline.
    """
    runners = {"model": FlatbufferRunner(model, threads), "baseline": FlatbufferRunner(baseline, threads)}
    times = time_interleaved(runners, warmup=warmup, runs=runs, progress=progress)
    median, base = float(np.median(times["model"])), float(np.median(times["baseline"]))
    return {
        "model": model_name,
        "baseline": baseline_name,
        "median_ms": round(median, 3),
        "baseline_median_ms": round(base, 3),
        "speedup": round(base / median, 3),
        "p90_ms": round(float(np.percentile(times["model"], 90)), 3),
        "baseline_p90_ms": round(float(np.percentile(times["baseline"], 90)), 3),
        "runtime": runners["model"].runtime,
        "baseline_runtime": runners["baseline"].runtime,
        "threads": threads,
        "warmup": warmup,
        "runs": runs,
    }


__all__ = ["compare", "time_interleaved"]
