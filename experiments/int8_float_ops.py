"""Which ops to keep float in a tracker's int8 export: the search branch (the per-frame network) timed as fp32 and
as int8 with different ops left float32, in one run, 1 thread, TFLite's builtin interpreter with XNNPACK, timed
round-robin (``zippy_tf.export.latency.time_interleaved``); each variant's figure is its best run.

Chooses ``zippy_tf.tracking.export.INT8_FLOAT_OPS``: an int8 kernel that XNNPACK cannot take falls back to
TFLite's own, which can be slower than float (7×7 depthwise, LayerNorm's MEAN / SQUARED_DIFFERENCE / RSQRT).

    python experiments/int8_float_ops.py [--model ettrack] [--runs 20] \
        [--output experiments/results/int8_float_ops.json]
"""

import os
import sys

from absl import flags

import zippy_tf  # noqa: F401  (sets up Keras 2 before TensorFlow is imported)
from zippy_tf._compat import tf
from zippy_tf.export import FlatbufferRunner, convert_int8, op_census, tflite_converter
from zippy_tf.export.latency import time_interleaved
from zippy_tf.presets import build_model
from zippy_tf.tracking.export import INT8_FLOAT_OPS, calibration_data

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import _common  # noqa: E402  (benchmarks/_common.py: what the benchmark and experiment scripts share)

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "ettrack", "tracker preset whose search branch is exported")
flags.DEFINE_integer("runs", 20, "timed runs per variant (interleaved; the best is reported)", lower_bound=1)
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")

LAYER_NORM = ("MEAN", "SQUARED_DIFFERENCE", "RSQRT")
VARIANTS = {
    "int8_all": (),
    "int8_float_depthwise": ("DEPTHWISE_CONV_2D",),
    "int8_float_layernorm": LAYER_NORM,
    "int8_float_depthwise_layernorm": ("DEPTHWISE_CONV_2D", *LAYER_NORM),
    "int8_float_depthwise_layernorm_attention": ("DEPTHWISE_CONV_2D", *LAYER_NORM, "BATCH_MATMUL", "SOFTMAX"),
}


def time_best_ms(flatbuffers, runs, warmup=2):
    """{name: best milliseconds of ``runs``} for {name: flatbuffer}, timed round-robin on one thread (load on a
    shared machine hits every variant alike), inputs the runner's defaults (a photo, noise template features)."""
    runners = {name: FlatbufferRunner(flatbuffer, num_threads=1) for name, flatbuffer in flatbuffers.items()}
    return {name: min(times) for name, times in time_interleaved(runners, warmup=warmup, runs=runs).items()}


def run(model_name, runs, calibration_count=4):
    network = build_model(model_name)
    pairs = [tf.convert_to_tensor(x, tf.float32) for x in calibration_data(network, calibration_count)[1]]
    flatbuffers = {"fp32": tflite_converter(network.search_net).convert()}
    flatbuffers.update({name: convert_int8(network.search_net, pairs, ops) for name, ops in VARIANTS.items()})
    milliseconds = time_best_ms(flatbuffers, runs)
    rows = {}
    for name, flatbuffer in flatbuffers.items():
        census = op_census(flatbuffer)["op_types"]
        rows[name] = {"float_ops": list(VARIANTS.get(name, ("all",))), "ms": round(milliseconds[name], 2),
                      "speedup_vs_fp32": round(milliseconds["fp32"] / milliseconds[name], 2),
                      "float32_ops": sum(types.get("float32", 0) for types in census.values())}
    return {
        "benchmark": f"{model_name} search branch, int8 variants vs fp32, TFLite + XNNPACK, 1 thread, best of "
                     f"{runs} interleaved runs",
        **_common.provenance(),
        "chosen": list(INT8_FLOAT_OPS),
        "results": rows,
    }


def main(argv):
    del argv
    _common.write_report(FLAGS.output, run(FLAGS.model, FLAGS.runs))


if __name__ == "__main__":
    _common.run(main)
