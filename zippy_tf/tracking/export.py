"""Exporting a tracker: the template branch and the search branch as two TFLite flatbuffers.

The search branch has two inputs (search image, template features), which ``zippy_tf.export.convert`` cannot
calibrate for int8 (its representative data feeds one input), so it is converted here with representative pairs:
photo crops for the search image and the template branch's features of other crops.
"""

import os

from zippy_tf._compat import tf
from zippy_tf.errors import UserError
from zippy_tf.export import convert, convert_int8, op_census, tflite_converter
from zippy_tf.io import atomic_write, check_output_path
from zippy_tf.tracking.model import deployment_form

TRACKER_FORMATS = ("fp32", "int8")
# Ops kept float32 in the int8 export, because this TFLite's int8 kernels for them are slower than float (1 thread,
# x86): XNNPACK has no int8 7×7 depthwise, and TFLite's fallback ran 15× slower than float; LayerNorm (MEAN,
# SQUARED_DIFFERENCE, RSQRT) runs on reference int8 kernels. Measured on E.T.Track's search branch by
# benchmarks/int8_float_ops.py (benchmarks/results/int8_float_ops.json).
INT8_FLOAT_OPS = ("DEPTHWISE_CONV_2D", "MEAN", "SQUARED_DIFFERENCE", "RSQRT")


def calibration_data(network, count):
    """Int8 calibration inputs: (template crops, [search crops, template-branch features of other crops])."""
    from zippy_tf.data.photos import calibration_images

    template_size = network.template_net.inputs[0].shape[1]
    search_size = network.search_net.inputs[0].shape[1]
    templates = calibration_images(template_size, template_size, count)
    searches = calibration_images(search_size, search_size, count)
    features = network.template_net.predict(templates, batch_size=1, verbose=0)
    return templates, [searches, features[::-1]]  # features of other photos: calibrate off-target pairs too


def convert_search_branch(network, fmt, *, representative_pairs=None, calibration_count=8):
    """The search branch as flatbuffer bytes; int8 is calibrated on [search images, template features] pairs."""
    if fmt != "int8":
        return tflite_converter(network.search_net).convert()
    pairs = representative_pairs or calibration_data(network, calibration_count)[1]
    return convert_int8(network.search_net, [tf.convert_to_tensor(x, tf.float32) for x in pairs], INT8_FLOAT_OPS)


def branch_paths(output_path):
    """``out/ettrack.tflite`` → (``out/ettrack_template.tflite``, ``out/ettrack_search.tflite``)."""
    stem = output_path[: -len(".tflite")] if output_path.endswith(".tflite") else output_path
    return f"{stem}_template.tflite", f"{stem}_search.tflite"


def export_tracker(network, fmt, output_path, *, calibration_count=8):
    """Converts both branches of a :class:`~zippy_tf.tracking.model.TrackerNetwork` and writes two flatbuffers.

    Args:
        network: the tracker (its input sizes are baked into the flatbuffers). It exports in its deployment form
            (:func:`~zippy_tf.tracking.model.deployment_form`: batch 1, each Exemplar Attention's depthwise kernels
            mixed before one depthwise convolution, thesis Eq. 4.6).
        fmt: "fp32" or "int8" (integer kernels except ``INT8_FLOAT_OPS``: depthwise convolutions and LayerNorm;
            float32 inputs and outputs).
        output_path: ``<stem>.tflite``; writes ``<stem>_template.tflite`` and ``<stem>_search.tflite``. Both are
            converted before either is written, so a failed conversion leaves nothing behind.
        calibration_count: photos used to calibrate int8 ranges.

    Returns:
        ``{"format", "template", "search"}`` with, per branch, its ``path``, ``size_bytes`` and ``ops`` census.
        ``zippy_tf.tracking.tracker.FlatbufferNetwork`` runs the pair like the Keras network.
    """
    if fmt not in TRACKER_FORMATS:
        raise UserError(f"a tracker exports as {' or '.join(TRACKER_FORMATS)}, not {fmt!r}: it has no binary layers "
                        "for LCE; pass format='fp32' or format='int8'")
    paths = branch_paths(output_path)
    for path in paths:
        check_output_path(path)
    network = deployment_form(network)
    templates, pairs = calibration_data(network, calibration_count) if fmt == "int8" else (None, None)
    data = (convert(network.template_net, fmt, representative_data=templates, float_ops=INT8_FLOAT_OPS),
            convert_search_branch(network, fmt, representative_pairs=pairs))
    result = {"format": fmt}
    for branch, path, flatbuffer in zip(("template", "search"), paths, data):
        atomic_write(path, flatbuffer)
        result[branch] = {"path": os.path.abspath(path), "size_bytes": len(flatbuffer),
                          "ops": op_census(flatbuffer)["ops"]}
    return result


def exported_network(network, fmt, folder, *, num_threads=1):
    """``network`` exported as ``fmt`` into ``folder`` and loaded back, ready for the Tracker (the deployed path)."""
    from zippy_tf.export import read_flatbuffer
    from zippy_tf.tracking.tracker import FlatbufferNetwork

    path = os.path.join(folder, f"{network.search_net.name}_{fmt}.tflite")
    export_tracker(network, fmt, path)
    return FlatbufferNetwork(*(read_flatbuffer(p) for p in branch_paths(path)), num_threads=num_threads)


__all__ = ["TRACKER_FORMATS", "branch_paths", "convert_search_branch", "export_tracker", "exported_network"]
