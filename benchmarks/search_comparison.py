"""Mixed-precision configurations side by side: params, analytic cost, LCE interpreter time, HPatches scores.

The table of the precision search (issue: layer partitioning and traversal): the all-Int8 start, the thesis's
ZippyPoint configuration and the configuration the search chose, each with its own trained weights. Latency is
the LCE interpreter on this machine, all flatbuffers timed interleaved in one run against the fp32 KP2D baseline
(x86 LCE binary kernels are reference code: these times misrank binary blocks; the analytic cost and an ARM run,
see BUILD.md, do not). HPatches scores on the project's standard test sets (see ``benchmarks/hpatches_table.py``).

    python benchmarks/search_comparison.py \
        --entry all-int8=int8,weights=models/zippypoint-int8/weights.h5 \
        --entry thesis=zippypoint,weights=models/zippypoint/weights.h5 \
        --entry searched=models/zippypoint-searched/config.json,weights=models/zippypoint-searched/weights.h5 \
        [--output benchmarks/results/search_comparison.json]
"""

import os

from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
import numpy as np

from zippy_tf.data.hpatches import STANDARD_TEST_SETS, standard_test_set
from zippy_tf.errors import UserError
from zippy_tf.export import FlatbufferRunner, convert
from zippy_tf.export.latency import time_interleaved
from zippy_tf.keypoints.evaluate import NetworkDetector, evaluate_hpatches
from zippy_tf.keypoints.model import as_blocks, kp2d_baseline, load_weights, zippypoint
from zippy_tf.quantization.cost import analytic_cost
from zippy_tf.runtime import progress

import _common

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("entry", [], "LABEL=CONFIG[,weights=PATH]; CONFIG: zippypoint, int8 or a JSON file")
flags.DEFINE_list("sets", list(STANDARD_TEST_SETS), "HPatches-layout test sets")
flags.DEFINE_string("data_dir", os.path.join("out", "hpatches_sets"), "where the test sets are (written if absent)")
flags.DEFINE_integer("runs", 20, "timed runs per flatbuffer (interleaved)")
flags.DEFINE_integer("threads", 1, "interpreter threads")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result (the table goes to .md)")

HEIGHT, WIDTH = 240, 320
METRICS = ("repeatability", "localization_error", "correctness_3", "matching_score")


def parse_entry(text):
    label, _, rest = text.partition("=")
    config, *options = rest.split(",")
    weights = None
    for option in options:
        key, _, value = option.partition("=")
        if key != "weights" or not value:
            raise UserError(f"--entry {text!r}: unknown option {option!r}; use weights=PATH")
        weights = value
    if not label or not config:
        raise UserError(f"--entry {text!r} is not LABEL=CONFIG[,weights=PATH]")
    return label, as_blocks(config), weights


def main(argv):
    del argv
    entries = [parse_entry(e) for e in FLAGS.entry]
    if not entries:
        raise UserError("pass at least one --entry LABEL=CONFIG[,weights=PATH]")
    rows, runners = {}, {"kp2d fp32 (baseline)": FlatbufferRunner(
        convert(kp2d_baseline(input_shape=(HEIGHT, WIDTH, 3)), "fp32"), FLAGS.threads)}
    for label, blocks, weights in entries:
        progress(f"{label}: cost and export")
        network = load_weights(zippypoint(config=blocks, input_shape=(HEIGHT, WIDTH, 3)), weights)
        cost = analytic_cost(network, "lce")
        rows[label] = {"weights": weights, "params": int(network.count_params()),
                       "bop_cost_g": round(cost["bop_cost"] / 1e9, 3),
                       "precisions": {b.name: b.choice for b in blocks if b.role != "head"}}
        runners[label] = FlatbufferRunner(convert(network, "lce"), FLAGS.threads)
        for set_name in FLAGS.sets:
            root = standard_test_set(set_name, FLAGS.data_dir, progress)
            progress(f"{label}: {set_name}")
            scores = evaluate_hpatches(NetworkDetector(network, binary=True, name=label), root,
                                       resolution=(WIDTH, HEIGHT))
            rows[label][set_name] = {m: scores[m] for m in (*METRICS, "correctness_1", "correctness_5",
                                                            "num_pairs")}
    progress(f"timing {len(runners)} flatbuffers interleaved, {FLAGS.runs} runs")
    times = {n: float(np.median(t)) for n, t in time_interleaved(runners, runs=FLAGS.runs).items()}
    baseline = times.pop("kp2d fp32 (baseline)")
    for label, ms in times.items():
        rows[label].update(lce_interpreter_ms=round(ms, 2), speedup_vs_kp2d_fp32=round(baseline / ms, 3))
    result = {**_common.provenance(), "resolution": f"{WIDTH}x{HEIGHT}", "threads": FLAGS.threads, "runs": FLAGS.runs,
              "baseline_kp2d_fp32_ms": round(baseline, 2), "rows": rows,
              "note": "LCE interpreter on x86: binary kernels are reference code (slow by design); ARM: BUILD.md"}
    header = ["config", "params", "BOP cost (G)", "LCE x86 ms (×KP2D fp32)"]
    header += [f"{s} {m}" for s in FLAGS.sets for m in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for label, row in rows.items():
        cells = [label, f"{row['params'] / 1e6:.2f} M", f"{row['bop_cost_g']:.2f}",
                 f"{row['lce_interpreter_ms']:.1f} ({row['speedup_vs_kp2d_fp32']:.2f}×)"]
        cells += [f"{row[s][m]:.3f}" for s in FLAGS.sets for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    _common.write_report(FLAGS.output, result, markdown="\n".join(lines))


if __name__ == "__main__":
    _common.run(main)
