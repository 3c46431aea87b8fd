"""Where a tracker's per-frame time goes: the LT-Mobile backbone against the whole search branch (backbone, neck and
heads), for E.T.Track and both baselines, as fp32 and int8 TFLite, in one run.

The search branch is the network a tracker runs every frame (the template branch runs once). Each tracker's
backbone (its search image → 16×16×96 features, the same architecture in all three) and its whole search branch are
exported at the reference sizes (search 256) and timed round-robin on one thread with TFLite's builtin interpreter
(XNNPACK), int8 with ``INT8_FLOAT_OPS`` float as the tracker export does; the neck and heads are the difference.
Weights: the shipped ones (timing does not depend on them; int8 calibration does, slightly). Each figure is the best
of ``--runs`` (load on a shared machine only adds time).

    python experiments/tracker_stages.py [--runs 20] [--output experiments/results/tracker_stages.json]
"""

import os
import sys

from absl import flags

import zippy_tf  # noqa: F401  (sets up Keras 2 before TensorFlow is imported)
from zippy_tf._compat import keras
from zippy_tf.errors import UserError
from zippy_tf.export import FlatbufferRunner, convert, tflite_converter
from zippy_tf.export.latency import time_interleaved
from zippy_tf.presets import build_model
from zippy_tf.runtime import progress
from zippy_tf.tracking.export import INT8_FLOAT_OPS, convert_search_branch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import _common  # noqa: E402  (benchmarks/_common.py: what the benchmark and experiment scripts share)

TRACKERS = ("ettrack", "lighttrack", "attention")

FLAGS = flags.FLAGS
flags.DEFINE_list("trackers", list(TRACKERS), "tracker presets")
flags.DEFINE_integer("runs", 20, "timed runs per flatbuffer (interleaved; the best is reported)", lower_bound=1)
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")


def backbone_model(network):
    """The search branch's backbone on its own, with the search branch's static input size."""
    image = keras.Input(network.search_net.inputs[0].shape[1:], batch_size=1)
    return keras.Model(image, network.search_net.get_layer("backbone")(image))


def flatbuffers(name, calibration_count):
    network = build_model(name)
    backbone = backbone_model(network)
    return {
        (name, "backbone", "fp32"): tflite_converter(backbone).convert(),
        (name, "backbone", "int8"): convert(backbone, "int8", calibration_count=calibration_count,
                                            float_ops=INT8_FLOAT_OPS),
        (name, "search", "fp32"): convert_search_branch(network, "fp32"),
        (name, "search", "int8"): convert_search_branch(network, "int8", calibration_count=calibration_count),
    }


def run(trackers, runs, calibration_count=4):
    models = {}
    for name in trackers:
        progress(f"exporting {name}")
        models.update(flatbuffers(name, calibration_count))
    runners = {key: FlatbufferRunner(data, num_threads=1) for key, data in models.items()}
    times = time_interleaved(runners, warmup=2, runs=runs)
    best = {key: min(values) for key, values in times.items()}
    rows = {}
    for name in trackers:
        for precision in ("fp32", "int8"):
            backbone, search = best[(name, "backbone", precision)], best[(name, "search", precision)]
            rows[f"{name}_{precision}"] = {
                "backbone_ms": round(backbone, 2), "search_branch_ms": round(search, 2),
                "neck_and_heads_ms": round(search - backbone, 2),
                "neck_and_heads_share": round((search - backbone) / search, 3),
            }
    return {
        "benchmark": f"search branch vs its backbone alone, TFLite + XNNPACK, 1 thread, best of {runs} "
                     "interleaved runs, search 256, shipped weights",
        "int8_float_ops": list(INT8_FLOAT_OPS),
        "results": rows,
    }


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.trackers) - set(TRACKERS))
    if unknown:
        raise UserError(f"unknown --trackers {unknown}; choose from {', '.join(TRACKERS)}")
    _common.write_report(FLAGS.output, {**_common.provenance(), **run(FLAGS.trackers, FLAGS.runs)})


if __name__ == "__main__":
    _common.run(main)
