"""Layer-level latency: the Exemplar Transformer layer against the standard multi-head self-attention layer.

Both layers as the tracker heads use them (stride 1, C → C on a H×W map; E = 4 exemplars, 3×3 depthwise kernel,
8 heads, FFN 1024), exported to TFLite and timed in one run on TensorFlow Lite's interpreter, one thread,
interleaved round-robin within each (C, H×W) group so that machine load hits all of them alike; medians are
reported. Each layer with its FFN (``T(x) = f(A(x) + x)``) and without it (``A(x) + x``), at the reference head
sizes: C = 256 (classification tower) and 192 (regression tower) on 16×16 (search 256) and 18×18 (search 288) maps.
The Exemplar layer runs in its exported form (pointwise kernels mixed per sample, one BATCH_MATMUL) and in the
earlier output-sum form (``pointwise_form="conv_sum"``, E 1×1 convolutions), for comparison.

``heads`` times the part of the tracker heads that differs between E.T.Track and the attention baseline: the inner
modules of both towers (classification: 4 at C = 256 with kernels 5, 3, 3, 3; regression: 6 at C = 192 with
kernels 3, 3, 3, 3, 5, 5), one model per head type and map size. The first and last separable module of each tower
and everything before the heads are identical in both trackers and not included.

    python benchmarks/exemplar_vs_attention.py [--precisions fp32] [--runs 30] \\
        [--output benchmarks/results/exemplar_vs_attention.json] [--plot benchmarks/results/exemplar_vs_attention.png]
"""

import platform

import numpy as np
from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf._compat import keras
from zippy_tf.export import convert
from zippy_tf.export.latency import time_interleaved
from zippy_tf.export.runner import FlatbufferRunner
from zippy_tf.io import save_figure
from zippy_tf.runtime import progress, set_threads
from zippy_tf.tracking.attention import SelfAttention, SelfAttentionTransformer
from zippy_tf.tracking.exemplar import ExemplarAttention, ExemplarTransformer
from zippy_tf.tracking.model import CLS_CHANNELS, CLS_KERNELS, REG_CHANNELS, REG_KERNELS

import _common

FLAGS = flags.FLAGS
flags.DEFINE_list("precisions", ["fp32"], "TFLite precisions to time (fp32, int8)")
flags.DEFINE_list("channels", [str(CLS_CHANNELS), str(REG_CHANNELS)], "layer widths C")
flags.DEFINE_list("sizes", ["16", "18"], "map sides H = W")
flags.DEFINE_integer("runs", 30, "timed runs per model (after warm-up)")
flags.DEFINE_integer("warmup", 3, "untimed runs per model")
flags.DEFINE_integer("threads", 1, "interpreter threads")
flags.DEFINE_boolean("heads", True, "also time the tower stacks of each head type")
flags.DEFINE_string("note", "", "free text stored in the JSON (e.g. other load on the machine)")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")
flags.DEFINE_string("plot", _common.default_output(__file__, ".png"), "bar plot")

KERNEL_SIZE, NUM_EXEMPLARS, NUM_HEADS, FFN_DIM = 3, 4, 8, 1024


def _residual(attention):
    """``A(x) + x``: the attention half of a transformer layer, without the FFN."""
    return lambda x: attention(x) + x


LAYERS = {
    "exemplar": lambda: ExemplarTransformer(KERNEL_SIZE, NUM_EXEMPLARS, ffn_dim=FFN_DIM),
    "exemplar_no_ffn": lambda: _residual(ExemplarAttention(KERNEL_SIZE, NUM_EXEMPLARS)),
    "exemplar_conv_sum": lambda: ExemplarTransformer(KERNEL_SIZE, NUM_EXEMPLARS, ffn_dim=FFN_DIM,
                                                     pointwise_form="conv_sum"),
    "exemplar_conv_sum_no_ffn": lambda: _residual(ExemplarAttention(KERNEL_SIZE, NUM_EXEMPLARS,
                                                                    pointwise_form="conv_sum")),
    "attention": lambda: SelfAttentionTransformer(NUM_HEADS, FFN_DIM),
    "attention_no_ffn": lambda: _residual(SelfAttention(NUM_HEADS)),
}
HEAD_MODULES = {
    "exemplar": lambda k: ExemplarTransformer(k, NUM_EXEMPLARS, ffn_dim=FFN_DIM),
    "exemplar_conv_sum": lambda k: ExemplarTransformer(k, NUM_EXEMPLARS, ffn_dim=FFN_DIM, pointwise_form="conv_sum"),
    "attention": lambda k: SelfAttentionTransformer(NUM_HEADS, FFN_DIM),
}
# (ratio name, slower, faster): > 1 means the second is faster
RATIOS = [("attention / exemplar", "attention", "exemplar"),
          ("attention / exemplar, no FFN", "attention_no_ffn", "exemplar_no_ffn"),
          ("exemplar conv_sum / matmul", "exemplar_conv_sum", "exemplar"),
          ("exemplar conv_sum / matmul, no FFN", "exemplar_conv_sum_no_ffn", "exemplar_no_ffn")]


def _noise(shape, count=4):
    return np.random.default_rng(0).normal(size=(count, *shape)).astype(np.float32)


def layer_model(name, channels, size):
    inputs = keras.Input((size, size, channels))
    return keras.Model(inputs, LAYERS[name]()(inputs), name=name)


def head_model(name, size):
    """Both towers' inner modules of one head type, side by side (two inputs would not fit the runner: the
    regression tower's input is a 1×1 projection of the classification tower's, a negligible extra conv)."""
    inputs = keras.Input((size, size, CLS_CHANNELS))
    x = inputs
    for k in CLS_KERNELS[1:-1]:
        x = HEAD_MODULES[name](k)(x)
    y = keras.layers.Conv2D(REG_CHANNELS, 1, use_bias=False, name="to_reg_width")(inputs)
    for k in REG_KERNELS[1:-1]:
        y = HEAD_MODULES[name](k)(y)
    return keras.Model(inputs, [x, y], name=f"{name}_head")


def runner(model, precision):
    data = convert(model, precision, representative_data=_noise(model.inputs[0].shape[1:]))
    return FlatbufferRunner(data, num_threads=FLAGS.threads), len(data)


def time_group(models, precision):
    """{name: {"median_ms", "p90_ms", "size_bytes"}} of models timed round-robin in one loop."""
    runners, sizes = {}, {}
    for name, model in models.items():
        progress(f"  converting {name} ({precision})")
        runners[name], sizes[name] = runner(model, precision)
    inputs = {n: _noise(r.input_shape[1:], 1) for n, r in runners.items()}
    times = time_interleaved(runners, warmup=FLAGS.warmup, runs=FLAGS.runs, inputs=inputs)
    return {n: {"median_ms": round(float(np.median(t)), 3), "p90_ms": round(float(np.percentile(t, 90)), 3),
                "size_bytes": sizes[n]} for n, t in times.items()}


def ratios(group):
    return {label: round(group[a]["median_ms"] / group[b]["median_ms"], 2) for label, a, b in RATIOS
            if a in group and b in group}


def plot(report, path):
    plt = _common.pyplot()
    groups = [(f"{p} C={g['channels']} {g['size']}²", g["layers"]) for p, gs in report["layers"].items() for g in gs]
    groups += [(f"{p} heads {g['size']}²", g["heads"]) for p, gs in report.get("heads", {}).items() for g in gs]
    names = list(LAYERS)
    figure, axes = plt.subplots(figsize=(max(7, 1.6 * len(groups)), 4.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [g.get(name, {}).get("median_ms", np.nan) for _, g in groups]
        axes.bar(np.arange(len(groups)) + (i - len(names) / 2 + 0.5) * width, values, width, label=name)
    axes.set_xticks(np.arange(len(groups)), [label for label, _ in groups], fontsize=7, rotation=15)
    axes.set(ylabel="median latency (ms)", yscale="log",
             title=f"Exemplar vs self-attention transformer layer, TFLite, {FLAGS.threads} thread, "
                   f"{platform.machine()}")
    axes.grid(alpha=0.3, axis="y", which="both")
    axes.legend(fontsize=7, ncol=2)
    save_figure(figure, path)
    plt.close(figure)


def main(argv):
    del argv
    set_threads(FLAGS.threads)
    report = {"layers": {}, "heads": {}}
    for precision in FLAGS.precisions:
        report["layers"][precision] = []
        for channels in map(int, FLAGS.channels):
            for size in map(int, FLAGS.sizes):
                progress(f"layers C={channels} {size}x{size} {precision}")
                group = time_group({n: layer_model(n, channels, size) for n in LAYERS}, precision)
                report["layers"][precision].append({"channels": channels, "size": size, "layers": group,
                                                    "ratios": ratios(group)})
                progress(f"  {report['layers'][precision][-1]['ratios']}")
        if FLAGS.heads:
            report["heads"][precision] = []
            for size in map(int, FLAGS.sizes):
                progress(f"heads {size}x{size} {precision}")
                group = time_group({n: head_model(n, size) for n in HEAD_MODULES}, precision)
                report["heads"][precision].append({
                    "size": size, "heads": group,
                    "ratios": {"attention / exemplar": round(group["attention"]["median_ms"]
                                                             / group["exemplar"]["median_ms"], 2),
                               "exemplar conv_sum / matmul": round(group["exemplar_conv_sum"]["median_ms"]
                                                                   / group["exemplar"]["median_ms"], 2)}})
                progress(f"  {report['heads'][precision][-1]['ratios']}")
    report.update({
        **_common.provenance(),
        "runtime": f"tf.lite.Interpreter, {FLAGS.threads} thread(s), median of {FLAGS.runs} "
                   f"interleaved runs after {FLAGS.warmup} warm-up runs, batch 1",
        "config": {"exemplar": f"ExemplarTransformer kernel {KERNEL_SIZE}, E={NUM_EXEMPLARS}, FFN {FFN_DIM}",
                   "attention": f"SelfAttentionTransformer {NUM_HEADS} heads, FFN {FFN_DIM}",
                   "no_ffn": "A(x) + x only", "conv_sum": "exemplar pointwise as E 1x1 convs summed (earlier form)"},
        "target": "exemplar head >= 3x faster than the standard-attention head ('attention / exemplar' >= 3)",
        "note": FLAGS.note,
    })
    plot(report, FLAGS.plot)
    _common.write_report(FLAGS.output, report)


if __name__ == "__main__":
    _common.run(main)
