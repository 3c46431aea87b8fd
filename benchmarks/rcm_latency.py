"""A folded RCM task costs what a single-task network costs (thesis §2.3.3): latency, parameters and operators of
each NYUD task's folded RCM network against a single-task DeepLabv3+ built plainly, measured in one run.

For each task: the task's path of an RCM network (``build_multitask`` variant ``rcm``) folded into plain
convolutions (``fold_model``), and the same task's network of variant ``single_task`` (plain ``Conv2D`` +
BatchNorm, as a user would build it). Both are exported to fp32 and int8 TFLite (``zippy_tf.export.convert``,
int8 calibrated on the same normalised photos) and all flatbuffers are timed interleaved in one process
(``zippy_tf.export.latency.time_interleaved``) on one thread. Reported per task and format: median latencies and
their ratio (folded / single-task, ≈ 1.0 is the claim), deployed parameters (convolution and dense weights and
biases, plus one bias per BatchNorm channel, which is what BatchNorm becomes once folded), flatbuffer sizes, and
whether the two op censuses are equal (and where not, which ops the single-task flatbuffer has more of: the
TFLite converter folds a BatchNorm into its convolution except after a dilated one, which it lowers to
SPACE_TO_BATCH_ND / CONV_2D / BATCH_TO_SPACE_ND and leaves a MUL; ``fold_model`` folds those in Keras). Weights
are random (no training is needed for cost); the RCM network is built without Response Initialization, which
changes values, not shapes.

    python benchmarks/rcm_latency.py [--resolution 320x240] [--runs 20] [--tasks edge,semseg,normals,depth]
"""

import numpy as np
from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf._compat import keras
from zippy_tf.data.multitask import DATASET_TASKS
from zippy_tf.data.multitask_pipeline import normalize_image
from zippy_tf.data.photos import calibration_images
from zippy_tf.export import FlatbufferRunner, convert, op_census
from zippy_tf.export.latency import time_interleaved
from zippy_tf.multitask import MultiTaskConfig, build_multitask, fold_model
from zippy_tf.runtime import parse_resolution, progress

import _common

FLAGS = flags.FLAGS
flags.DEFINE_string("resolution", "320x240", "input WIDTHxHEIGHT")
flags.DEFINE_list("tasks", list(DATASET_TASKS["nyud"]), "NYUD tasks to measure")
flags.DEFINE_list("formats", ["fp32", "int8"], "TFLite formats")
flags.DEFINE_float("width", 1.0, "channel multiplier of encoder, ASPP and decoder (1.0 = the reference)")
flags.DEFINE_integer("runs", 20, "timed runs per flatbuffer")
flags.DEFINE_integer("warmup", 3, "warm-up runs per flatbuffer")
flags.DEFINE_integer("threads", 1, "interpreter threads")
flags.DEFINE_string("output", _common.default_output(__file__), "result JSON")


def deployed_parameters(model):
    """Weights of ``model`` once BatchNorms are folded: convolution / dense kernels and biases, and one bias per
    BatchNorm channel (its scale goes into the preceding kernel, its shift becomes that bias)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            total += int(layer.moving_mean.shape[0])
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            total += sum(int(np.prod(w.shape)) for w in layer.weights)
    return total


def main(argv):
    del argv
    height, width = parse_resolution(FLAGS.resolution)
    tasks = tuple(FLAGS.tasks)
    rcm = build_multitask(MultiTaskConfig("rcm", "nyud", tasks=tasks, input_shape=(height, width), width=FLAGS.width))
    images = normalize_image(calibration_images(height, width, 8)[..., ::-1]).numpy()  # BGR photos -> RGB
    runners, rows = {}, {}
    for task in tasks:
        progress(f"{task}: folding the RCM path and building the single-task network ...")
        models = {
            "rcm_folded": fold_model(rcm[task]),
            "single_task": build_multitask(MultiTaskConfig("single_task", "nyud", tasks=(task,),
                                                           input_shape=(height, width), width=FLAGS.width))[task],
        }
        for fmt in FLAGS.formats:
            progress(f"{task}: exporting {fmt} ...")
            row = {"task": task, "format": fmt}
            censuses = {}
            for kind, model in models.items():
                data = convert(model, fmt, representative_data=images)
                runners[(task, fmt, kind)] = FlatbufferRunner(data, FLAGS.threads)
                censuses[kind] = op_census(data)["ops"]
                row[kind] = {"parameters": deployed_parameters(model), "flatbuffer_bytes": len(data)}
            folded, single = censuses["rcm_folded"], censuses["single_task"]
            row["ops"] = folded
            row["ops_equal"] = folded == single
            row["ops_single_task_minus_folded"] = {op: single.get(op, 0) - folded.get(op, 0)
                                                   for op in sorted({*folded, *single})
                                                   if single.get(op, 0) != folded.get(op, 0)}
            rows[(task, fmt)] = row
    progress(f"timing {len(runners)} flatbuffers interleaved, {FLAGS.runs} runs each ...")
    inputs = {key: images[:1] for key in runners}
    times = time_interleaved(runners, warmup=FLAGS.warmup, runs=FLAGS.runs, inputs=inputs)
    for (task, fmt), row in rows.items():
        for kind in ("rcm_folded", "single_task"):
            row[kind]["median_ms"] = round(float(np.median(times[(task, fmt, kind)])), 3)
            row[kind]["runtime"] = runners[(task, fmt, kind)].runtime
        row["latency_ratio"] = round(row["rcm_folded"]["median_ms"] / row["single_task"]["median_ms"], 3)
        row["parameters_equal"] = row["rcm_folded"]["parameters"] == row["single_task"]["parameters"]
    results = list(rows.values())
    report = {
        **_common.provenance(),
        "claim": "a folded RCM task network costs what a single-task DeepLabv3+ costs (latency ratio ~1.0)",
        "resolution": FLAGS.resolution, "width": FLAGS.width, "threads": FLAGS.threads, "runs": FLAGS.runs,
        "warmup": FLAGS.warmup, "baseline": "single_task DeepLabv3+ (ResNet-18, OS16), timed in the same run",
        "note": "ops_single_task_minus_folded lists the BatchNorm scales TFLite leaves after dilated convolutions",
        "latency_ratio": {fmt: round(float(np.median([r["latency_ratio"] for r in results if r["format"] == fmt])), 3)
                          for fmt in FLAGS.formats},
        "results": results,
    }
    lines = [f"{r['task']:>8} {r['format']:>5}: folded RCM {r['rcm_folded']['median_ms']:8.1f} ms  single-task "
             f"{r['single_task']['median_ms']:8.1f} ms  ratio {r['latency_ratio']:.3f}  params equal "
             f"{r['parameters_equal']}  ops equal {r['ops_equal']}" for r in results]
    _common.write_report(FLAGS.output, report, printed="\n".join(lines))


if __name__ == "__main__":
    _common.run(main)
