"""What differs between E.T.Track's head and the standard-attention head, timed: the attention layer alone, and the
heads with their identical FFNs.

``layers``: one attention layer ``A(x)`` on the search branch's map (C → C, stride 1, batch 1; C = 256 as in the
classification tower and 192 as in the regression tower, on 16×16 for a 256 search image and 18×18 for 288), the FFN
aside: Exemplar Attention in its deployment form (thesis Eq. 4.6: the E = 4 exemplar kernels mixed by the attention
weights, then one 3×3 depthwise and one 1×1 convolution), the same with its depthwise kernels applied as E
convolutions summed (Eq. 4.5), and standard multi-head self-attention (8 heads); beside them the two modules the
claims compare against: LightTrack's separable convolution (3×3 depthwise + 1×1, the layer Exemplar Attention
replaces) and the FFN both transformer layers add (C → 1024 → C with two LayerNorms).

``heads``: the part of the tracker heads that differs between E.T.Track, the attention baseline and LightTrack: the
inner modules of both towers (classification: 4 at C = 256 with kernels 5, 3, 3, 3; regression: 6 at C = 192 with
kernels 3, 3, 3, 3, 5, 5), as Exemplar Transformers (Eq. 4.6), standard self-attention transformers (the same FFN,
1024 wide) and separable convolutions, one model per head type and map size. The first and last separable module of
each tower and everything before the heads are identical in all three trackers and not included.

Every model is exported to TFLite fp32 and int8 (integer kernels except ``INT8_FLOAT_OPS``: depthwise convolutions
and LayerNorm stay float, as the trackers export), and all of one group (one map size and width, both precisions) are
timed round-robin in one loop on TensorFlow Lite's interpreter, one thread, so that machine load hits them alike;
medians are reported with ratios and analytic multiply-accumulates (``MACS``).

    python benchmarks/exemplar_vs_attention.py [--precisions fp32,int8] [--runs 30] \\
        [--output benchmarks/results/exemplar_vs_attention.json] [--plot benchmarks/results/exemplar_vs_attention.png]
"""

import os
import platform

import numpy as np
from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf._compat import keras
from zippy_tf.errors import UserError
from zippy_tf.export import convert
from zippy_tf.export.latency import time_interleaved
from zippy_tf.export.runner import FlatbufferRunner
from zippy_tf.io import save_figure
from zippy_tf.runtime import progress, set_threads
from zippy_tf.tracking.attention import SelfAttention, SelfAttentionTransformer
from zippy_tf.tracking.exemplar import ExemplarAttention, ExemplarTransformer
from zippy_tf.tracking.export import INT8_FLOAT_OPS, TRACKER_FORMATS
from zippy_tf.tracking.layers import TransformerFeedForward
from zippy_tf.tracking.model import CLS_CHANNELS, CLS_KERNELS, REG_CHANNELS, REG_KERNELS

import _common

FLAGS = flags.FLAGS
flags.DEFINE_list("precisions", ["fp32", "int8"], "TFLite precisions to time (fp32, int8)")
flags.DEFINE_list("channels", [str(CLS_CHANNELS), str(REG_CHANNELS)], "layer widths C")
flags.DEFINE_list("sizes", ["16", "18"], "map sides H = W")
flags.DEFINE_integer("runs", 30, "timed runs per model (after warm-up)")
flags.DEFINE_integer("warmup", 3, "untimed runs per model")
flags.DEFINE_integer("threads", 1, "interpreter threads")
flags.DEFINE_boolean("heads", True, "also time the tower stacks of each head type")
flags.DEFINE_string("note", "", "free text stored in the JSON (e.g. other load on the machine)")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")
flags.DEFINE_string("plot", _common.default_output(__file__, ".png"), "bar plot")

KERNEL_SIZE, NUM_EXEMPLARS, NUM_HEADS, FFN_DIM, QUERY_DIM = 3, 4, 8, 1024, 256


def _separable(k):
    """LightTrack's separable module (depthwise k×k, 1×1, BN, ReLU): the convolution an Exemplar layer replaces."""
    def module(x):
        x = keras.layers.DepthwiseConv2D(k, padding="same", use_bias=False)(x)
        x = keras.layers.Conv2D(x.shape[-1], 1, use_bias=False)(x)
        return keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    return module


LAYERS = {
    "exemplar": lambda: ExemplarAttention(KERNEL_SIZE, NUM_EXEMPLARS, QUERY_DIM, depthwise_form="mixed_kernel"),
    "exemplar_eq4.5": lambda: ExemplarAttention(KERNEL_SIZE, NUM_EXEMPLARS, QUERY_DIM, depthwise_form="output_sum"),
    "attention": lambda: SelfAttention(NUM_HEADS),
    "separable_conv": lambda: _separable(KERNEL_SIZE),
    "ffn": lambda: TransformerFeedForward(FFN_DIM),
}
HEAD_MODULES = {
    "exemplar": lambda k: ExemplarTransformer(k, NUM_EXEMPLARS, QUERY_DIM, ffn_dim=FFN_DIM,
                                              depthwise_form="mixed_kernel"),
    "attention": lambda k: SelfAttentionTransformer(NUM_HEADS, FFN_DIM),
    "separable_conv": _separable,
}
# (ratio name, numerator, denominator) of median times and of MACs
LAYER_RATIOS = [("attention / exemplar", "attention", "exemplar"),
                ("exemplar eq4.5 / eq4.6", "exemplar_eq4.5", "exemplar"),
                ("exemplar / separable_conv", "exemplar", "separable_conv"),
                ("ffn / exemplar", "ffn", "exemplar")]
HEAD_RATIOS = [("attention / exemplar", "attention", "exemplar"),
               ("exemplar / separable_conv", "exemplar", "separable_conv")]


def layer_macs(name, channels, size, kernel=KERNEL_SIZE):
    """Analytic multiply-accumulates of one module on a (size × size × C) map, batch 1 (additions, softmax and
    normalisation aside). With N = H·W: Exemplar Attention (Eq. 4.6) N·C·k² (depthwise) + N·C² (pointwise) + the
    global query C·d_k, E·d_k logits, E·(k²·C + C²) to mix the kernels and C² for the SE block; Eq. 4.5 adds
    (E − 1)·N·C·k²; self-attention 4·N·C² (Q, K, V, output projections) + 2·N²·C (Q·Kᵀ and the weighted sum); the
    separable convolution N·C·k² + N·C²; the FFN 2·N·C·1024."""
    n, c, k, e = size * size, channels, kernel, NUM_EXEMPLARS
    exemplar = n * c * k * k + n * c * c + c * QUERY_DIM + e * QUERY_DIM + e * (k * k * c + c * c) + c * c
    return {
        "exemplar": exemplar,
        "exemplar_eq4.5": exemplar + (e - 1) * n * c * k * k,
        "attention": 4 * n * c * c + 2 * n * n * c,
        "separable_conv": n * c * k * k + n * c * c,
        "ffn": 2 * n * c * FFN_DIM,
    }[name]


def head_macs(name, size):
    """MACs of :func:`head_model` (transformer modules with their FFN; the 1×1 projection to the regression width)."""
    def module(k, channels):
        ffn = layer_macs("ffn", channels, size) if name != "separable_conv" else 0
        return layer_macs(name, channels, size, k) + ffn
    return (size * size * CLS_CHANNELS * REG_CHANNELS + sum(module(k, CLS_CHANNELS) for k in CLS_KERNELS[1:-1])
            + sum(module(k, REG_CHANNELS) for k in REG_KERNELS[1:-1]))


def _noise(shape, count=4):
    return np.random.default_rng(0).normal(size=(count, *shape)).astype(np.float32)


def layer_model(name, channels, size):
    inputs = keras.Input((size, size, channels), batch_size=1)  # batch 1: Eq. 4.6 is then one plain depthwise conv
    return keras.Model(inputs, LAYERS[name]()(inputs), name=name.replace(".", "_"))


def head_model(name, size):
    """Both towers' inner modules of one head type, side by side (two inputs would not fit the runner: the
    regression tower's input is a 1×1 projection of the classification tower's, a negligible extra conv)."""
    inputs = keras.Input((size, size, CLS_CHANNELS), batch_size=1)
    x = inputs
    for k in CLS_KERNELS[1:-1]:
        x = HEAD_MODULES[name](k)(x)
    y = keras.layers.Conv2D(REG_CHANNELS, 1, use_bias=False, name="to_reg_width")(inputs)
    for k in REG_KERNELS[1:-1]:
        y = HEAD_MODULES[name](k)(y)
    return keras.Model(inputs, [x, y], name=f"{name}_head")


def time_group(models, macs):
    """{name: {precision: {"median_ms", "p90_ms", "size_bytes"}, "macs"}} of ``models`` ({name: Keras model}), each
    exported at every --precisions entry and all timed round-robin in one loop."""
    runners, sizes = {}, {}
    for name, model in models.items():
        for precision in FLAGS.precisions:
            progress(f"  converting {name} ({precision})")
            data = convert(model, precision, representative_data=_noise(model.inputs[0].shape[1:]),
                           float_ops=INT8_FLOAT_OPS if precision == "int8" else ())
            runners[name, precision], sizes[name, precision] = FlatbufferRunner(data, FLAGS.threads), len(data)
    keys = {f"{name} {precision}": (name, precision) for name, precision in runners}
    times = time_interleaved({label: runners[key] for label, key in keys.items()}, warmup=FLAGS.warmup,
                             runs=FLAGS.runs, inputs={label: _noise(runners[key].input_shape[1:], 1)
                                                      for label, key in keys.items()})
    group = {name: {"macs": macs[name]} for name in models}
    for label, (name, precision) in keys.items():
        group[name][precision] = {"median_ms": round(float(np.median(times[label])), 3),
                                  "p90_ms": round(float(np.percentile(times[label], 90)), 3),
                                  "size_bytes": sizes[name, precision]}
    return group


def ratios(group, pairs):
    """{ratio name: {precision: time ratio, "macs": MAC ratio}} (> 1: the denominator is the faster / smaller)."""
    result = {}
    for label, a, b in pairs:
        if a in group and b in group:
            result[label] = {p: round(group[a][p]["median_ms"] / group[b][p]["median_ms"], 2)
                             for p in FLAGS.precisions}
            result[label]["macs"] = round(group[a]["macs"] / group[b]["macs"], 2)
    return result


def plot(report, path):
    """Median latency per module (bars, log scale) for every group and precision."""
    plt = _common.pyplot()
    groups = [(f"{p} C={g['channels']} {g['size']}²", g["models"], p) for g in report["layers"]
              for p in FLAGS.precisions]
    groups += [(f"{p} heads {g['size']}²", g["models"], p) for g in report["heads"] for p in FLAGS.precisions]
    names = list(dict.fromkeys(n for _, models, _ in groups for n in models))
    figure, axes = plt.subplots(figsize=(max(7, 1.3 * len(groups)), 4.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [models[name][p]["median_ms"] if name in models else np.nan for _, models, p in groups]
        axes.bar(np.arange(len(groups)) + (i - len(names) / 2 + 0.5) * width, values, width, label=name)
    axes.set_xticks(np.arange(len(groups)), [label for label, _, _ in groups], fontsize=7, rotation=20)
    axes.set(ylabel="median latency (ms)", yscale="log",
             title=f"Attention layers (FFN aside) and heads, TFLite, {FLAGS.threads} thread, {platform.machine()}")
    axes.grid(alpha=0.3, axis="y", which="both")
    axes.legend(fontsize=7, ncol=3)
    save_figure(figure, path)
    plt.close(figure)


def main(argv):
    del argv
    if not FLAGS.precisions or set(FLAGS.precisions) - set(TRACKER_FORMATS):
        raise UserError(f"--precisions takes {', '.join(TRACKER_FORMATS)}, not {','.join(FLAGS.precisions)}")
    set_threads(FLAGS.threads)
    report = {"layers": [], "heads": [], "load_average_1min": {"start": round(os.getloadavg()[0], 2)}}
    for channels in map(int, FLAGS.channels):
        for size in map(int, FLAGS.sizes):
            progress(f"layers C={channels} {size}x{size}")
            group = time_group({n: layer_model(n, channels, size) for n in LAYERS},
                               {n: layer_macs(n, channels, size) for n in LAYERS})
            report["layers"].append({"channels": channels, "size": size, "models": group,
                                     "ratios": ratios(group, LAYER_RATIOS)})
            progress(f"  {report['layers'][-1]['ratios']}")
    for size in map(int, FLAGS.sizes) if FLAGS.heads else ():
        progress(f"heads {size}x{size}")
        group = time_group({n: head_model(n, size) for n in HEAD_MODULES},
                           {n: head_macs(n, size) for n in HEAD_MODULES})
        report["heads"].append({"size": size, "models": group, "ratios": ratios(group, HEAD_RATIOS)})
        progress(f"  {report['heads'][-1]['ratios']}")
    report["load_average_1min"]["end"] = round(os.getloadavg()[0], 2)
    report.update({
        **_common.provenance(),
        "runtime": f"tf.lite.Interpreter, {FLAGS.threads} thread(s), median of {FLAGS.runs} interleaved runs after "
                   f"{FLAGS.warmup} warm-up runs, batch 1; int8 keeps {', '.join(INT8_FLOAT_OPS)} in float32",
        "config": {
            "exemplar": f"ExemplarAttention A(x), kernel {KERNEL_SIZE}, E={NUM_EXEMPLARS}, d_k={QUERY_DIM}, Eq. 4.6 "
                        "(depthwise_form='mixed_kernel'); in heads ExemplarTransformer with FFN "
                        f"{FFN_DIM}",
            "exemplar_eq4.5": "the same with the depthwise kernels as E convolutions summed (Eq. 4.5)",
            "attention": f"SelfAttention A(x), {NUM_HEADS} heads; in heads SelfAttentionTransformer with FFN "
                         f"{FFN_DIM}",
            "separable_conv": f"LightTrack's separable module, depthwise {KERNEL_SIZE}x{KERNEL_SIZE} + 1x1 + BN + "
                              "ReLU (kernels of the tower in heads)",
            "ffn": f"TransformerFeedForward C -> {FFN_DIM} -> C with two LayerNorms (both transformer heads)",
            "macs": "analytic, batch 1 (see layer_macs)",
        },
        "note": FLAGS.note,
    })
    plot(report, FLAGS.plot)
    _common.write_report(FLAGS.output, report)


if __name__ == "__main__":
    _common.run(main)
