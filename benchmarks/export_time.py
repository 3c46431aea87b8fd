"""Export time: ``zippy_tf.export.tflite_converter`` (a serving function) against TensorFlow's
``TFLiteConverter.from_keras_model`` on the same Keras models, in one run, alternating the two per model.

``from_keras_model`` first saves the Keras model as a SavedModel, which traces every layer's call functions; the
serving function holds only the variables. Both must write the same flatbuffer: the benchmark checks that the
signatures and op counts agree and records the byte sizes.

    python benchmarks/export_time.py [--models ettrack,zippypoint-int8] [--repeats 2] \
        [--output benchmarks/results/export_time.json]
"""

import statistics
import time

from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf._compat import tf
from zippy_tf.export import op_census, tflite_converter
from zippy_tf.export.flatbuffer import signature_io
from zippy_tf.presets import build_model
from zippy_tf.runtime import progress, set_threads

import _common

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["ettrack", "zippypoint-int8"], "model presets to export (trackers: both branches)")
flags.DEFINE_integer("repeats", 2, "conversions per model and converter (the median is reported)", lower_bound=1)
flags.DEFINE_string("note", "", "free text stored in the JSON (e.g. other load on the machine)")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")

CONVERTERS = {
    "from_keras_model": tf.lite.TFLiteConverter.from_keras_model,
    "serving_function": tflite_converter,
}


def keras_models(name):
    """{label: Keras model} of preset ``name``: its two branches for a tracker, else the network itself."""
    network = build_model(name)
    if hasattr(network, "search_net"):
        return {f"{name}/template": network.template_net, f"{name}/search": network.search_net}
    return {name: network}


def measure(model, repeats):
    seconds, flatbuffers = {key: [] for key in CONVERTERS}, {}
    for _ in range(repeats):
        for key, make in CONVERTERS.items():  # alternated: machine load hits both alike
            start = time.perf_counter()
            flatbuffers[key] = make(model).convert()
            seconds[key].append(time.perf_counter() - start)
    ours, reference = flatbuffers["serving_function"], flatbuffers["from_keras_model"]
    same = (signature_io(ours) == signature_io(reference)
            and op_census(ours)["op_types"] == op_census(reference)["op_types"])
    medians = {key: round(statistics.median(values), 2) for key, values in seconds.items()}
    return {"seconds": medians, "speedup": round(medians["from_keras_model"] / medians["serving_function"], 2),
            "bytes": {key: len(data) for key, data in flatbuffers.items()}, "same_signature_and_ops": same}


def main(argv):
    del argv
    set_threads(1)
    results = {}
    for name in FLAGS.models:
        for label, model in keras_models(name).items():
            progress(f"converting {label} ...")
            results[label] = measure(model, FLAGS.repeats)
            progress(f"{label}: {results[label]}")
    _common.write_report(FLAGS.output, {
        "benchmark": "fp32 TFLite conversion time, serving function vs from_keras_model, same models, one run",
        **_common.provenance(),
        "note": FLAGS.note,
        "repeats": FLAGS.repeats,
        "threads": 1,
        "results": results,
    })


if __name__ == "__main__":
    _common.run(main)
