"""ZippyPoint latency against the float KP2D baseline, measured in one run on this CPU.

Builds the models, exports them (KP2D: fp32 and int8 TFLite; all-Int8 ZippyPoint: int8 TFLite; ZippyPoint:
LCE), times every flatbuffer interleaved with the KP2D fp32 baseline (1 thread by default), adds the analytic
cost (MACs per precision, BOP-weighted with int8 = 1/4 and binary = 1/64 of a float MAC), and writes
latency.json, the flatbuffers and latency.png to --output_dir.

On x86, LCE's binary convolutions are reference kernels (correct, not optimised), so the measured LCE time is
not what an ARM device shows; the analytic cost and BUILD.md's on-device benchmark are the ARM-relevant figures.

    python benchmarks/latency.py --output_dir out [--runs 30] [--resolution 320x240]
"""

import os

from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf.export import FlatbufferRunner, convert, op_census
from zippy_tf.export.latency import time_interleaved
from zippy_tf.io import atomic_write, check_output_path, save_figure, write_json
from zippy_tf.presets import build_model
from zippy_tf.quantization.cost import analytic_cost
from zippy_tf.runtime import parse_resolution, progress

import _common

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "out", "folder for latency.json, latency.png and the flatbuffers")
flags.DEFINE_string("resolution", "320x240", "input WIDTHxHEIGHT")
flags.DEFINE_integer("runs", 30, "timed runs per model")
flags.DEFINE_integer("warmup", 3, "warm-up runs per model")
flags.DEFINE_integer("threads", 1, "interpreter threads")
flags.DEFINE_string("results", None, "also copy latency.json here (e.g. benchmarks/results/latency.json)")

BASELINE = ("kp2d", "fp32")
CANDIDATES = (("kp2d", "int8"), ("zippypoint-int8", "int8"), ("zippypoint", "lce"))


def plot(rows, path):
    plt = _common.pyplot()
    labels = [f"{r['model']}\n{r['format']}" for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar([i - 0.2 for i in x], [r["speedup"] for r in rows], 0.4, label="measured here (x86, 1 thread)")
    ax.bar([i + 0.2 for i in x], [r["bop_speedup"] for r in rows], 0.4, label="analytic BOP-weighted cost")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("speed-up over KP2D fp32")
    ax.set_title("Latency against the KP2D fp32 baseline (same run)")
    ax.legend()
    save_figure(fig, path)


def main(argv):
    del argv
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    check_output_path(os.path.join(FLAGS.output_dir, "latency.json"))
    height, width = parse_resolution(FLAGS.resolution)
    runners, rows = {}, []
    for name, fmt in (BASELINE, *CANDIDATES):
        progress(f"building and exporting {name} ({fmt}) ...")
        model = build_model(name, input_shape=(height, width, 3), use_shipped_weights=False)
        data = convert(model, fmt)
        path = os.path.join(FLAGS.output_dir, f"{name}_{fmt}.tflite")
        atomic_write(path, data)
        runners[(name, fmt)] = FlatbufferRunner(data, FLAGS.threads)
        rows.append({"model": name, "format": fmt, "path": path, "size_bytes": len(data),
                     "ops": op_census(data)["ops"], **analytic_cost(model, fmt)})
    progress(f"timing {len(runners)} flatbuffers interleaved, {FLAGS.runs} runs each ...")
    times = time_interleaved(runners, warmup=FLAGS.warmup, runs=FLAGS.runs)
    import numpy as np

    base_ms = float(np.median(times[BASELINE]))
    base_cost = rows[0]["bop_cost"]
    for row, key in zip(rows, runners):
        row["median_ms"] = round(float(np.median(times[key])), 3)
        row["baseline_median_ms"] = round(base_ms, 3)
        row["speedup"] = round(base_ms / row["median_ms"], 3)
        row["bop_speedup"] = round(base_cost / row["bop_cost"], 3)
        row["runtime"] = runners[key].runtime
        row["baseline"] = "kp2d fp32"
    report = {
        **_common.provenance(),
        "resolution": FLAGS.resolution, "threads": FLAGS.threads, "runs": FLAGS.runs, "warmup": FLAGS.warmup,
        "baseline": {"model": BASELINE[0], "format": BASELINE[1], "median_ms": round(base_ms, 3)},
        "results": rows[1:],
        "note": "LCE binary kernels on x86 are reference code; use bop_speedup or an ARM run (BUILD.md) for LCE.",
    }
    write_json(os.path.join(FLAGS.output_dir, "latency.json"), report)
    if FLAGS.results:
        write_json(FLAGS.results, report)
    plot(rows[1:], os.path.join(FLAGS.output_dir, "latency.png"))
    for r in rows[1:]:
        print(f"{r['model']:>16} {r['format']:>5}: {r['median_ms']:8.1f} ms vs {base_ms:.1f} ms  "
              f"measured x{r['speedup']:.2f}  analytic x{r['bop_speedup']:.2f}")


if __name__ == "__main__":
    _common.run(main)
