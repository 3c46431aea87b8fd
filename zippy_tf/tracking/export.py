"""Exporting a tracker: the template branch and the search branch as two TFLite flatbuffers, and the cache of them
that the default (deployed) runtime runs.

The search branch has two inputs (search image, template features), which ``zippy_tf.export.convert`` cannot
calibrate for int8 (its representative data feeds one input), so it is converted here with representative pairs:
photo crops for the search image and the template branch's features of other crops.

:func:`cached_network` exports a network once per weights: the flatbuffers live in ``$ZIPPY_TF_CACHE`` (default
``~/.cache/zippy_tf``) under ``trackers/<name>-<format>-<key>/``, where the key hashes the weights' values, the
network's configuration, the format and the TensorFlow and zippy-tf versions. A record beside them holds the key and
each file's SHA-256, so a file that is corrupt, truncated or from other weights is exported again, never run.
"""

import hashlib
import json
import os

import numpy as np

from zippy_tf._compat import tf
from zippy_tf.errors import UserError
from zippy_tf.export import convert, convert_int8, op_census, tflite_converter
from zippy_tf.io import atomic_write, check_output_path, read_file, write_json
from zippy_tf.tracking.model import deployment_form

TRACKER_FORMATS = ("fp32", "int8")
CACHE_ENV = "ZIPPY_TF_CACHE"
_RECORD = "export.json"
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
        :class:`FlatbufferNetwork` runs the pair like the Keras network.
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

    path = os.path.join(folder, f"{network.search_net.name}_{fmt}.tflite")
    export_tracker(network, fmt, path)
    return FlatbufferNetwork(*(read_flatbuffer(p) for p in branch_paths(path)), num_threads=num_threads)


def cache_folder():
    """Where exported trackers are cached: ``$ZIPPY_TF_CACHE``, else ``$XDG_CACHE_HOME/zippy_tf``, else
    ``~/.cache/zippy_tf``."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                        "zippy_tf")


def export_key(network, fmt):
    """SHA-256 (hex) of what an export depends on: every weight's values, the network's configuration (its graph
    form aside: every form exports in its deployment form), the format, and the TensorFlow and zippy-tf versions."""
    import zippy_tf

    config = {k: v for k, v in network.config.items() if k not in ("depthwise_form", "batch_size")}
    digest = hashlib.sha256(json.dumps({"config": config, "format": fmt, "tensorflow": tf.__version__,
                                        "zippy_tf": zippy_tf.__version__}, sort_keys=True).encode())
    for net in (network.template_net, network.search_net):
        for weight in net.weights:
            value = weight.numpy()
            digest.update(str(value.shape).encode())
            digest.update(value.tobytes())
    return digest.hexdigest()


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _cached_flatbuffers(folder, key):
    """(template bytes, search bytes) of a cache entry if its record holds ``key`` and both files hash as recorded;
    else None."""
    try:
        record = json.loads(read_file(os.path.join(folder, _RECORD), "export record"))
        data = [read_file(path, "flatbuffer", binary=True) for path in branch_paths(os.path.join(folder, "tracker"))]
    except (UserError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or record.get("sha256") != [_sha256(d) for d in data]:
        return None
    return tuple(data)


def cached_network(network, fmt, *, num_threads=1, folder=None, progress=None):
    """``network`` as exported ``fmt`` flatbuffers, ready for the Tracker: exported once per weights and cached.

    Args:
        network: a :class:`~zippy_tf.tracking.model.TrackerNetwork`.
        fmt: "fp32" or "int8".
        num_threads: interpreter threads.
        folder: the cache folder (default :func:`cache_folder`).
        progress: called with one line when it exports (default: printed on stderr).

    Returns:
        a :class:`FlatbufferNetwork` whose ``weights_path`` is the network's.
    """
    from zippy_tf.runtime import progress as print_line

    if fmt not in TRACKER_FORMATS:
        raise UserError(f"a tracker runs exported as {' or '.join(TRACKER_FORMATS)}, not {fmt!r}")
    key = export_key(network, fmt)
    name = network.search_net.name[: -len("_search")] if network.search_net.name.endswith("_search") else "tracker"
    entry = os.path.join(folder or cache_folder(), "trackers", f"{name}-{fmt}-{key[:16]}")
    data = _cached_flatbuffers(entry, key)
    if data is None:
        stale = os.path.exists(os.path.join(entry, _RECORD))
        (progress or print_line)(
            f"{name}: the cached {fmt} TFLite export in {entry} is corrupt or from other weights; exporting it again"
            if stale else f"{name}: exporting to {fmt} TFLite once for these weights (cached in {entry})")
        os.makedirs(entry, exist_ok=True)
        if stale:  # no valid record while the files are rewritten
            os.remove(os.path.join(entry, _RECORD))
        paths = branch_paths(os.path.join(entry, "tracker.tflite"))
        export_tracker(network, fmt, os.path.join(entry, "tracker.tflite"))
        data = tuple(read_file(path, "flatbuffer", binary=True) for path in paths)
        write_json(os.path.join(entry, _RECORD), {"key": key, "format": fmt, "sha256": [_sha256(d) for d in data]})
    deployed = FlatbufferNetwork(*data, num_threads=num_threads)
    deployed.weights_path = network.weights_path
    return deployed


class FlatbufferNetwork:
    """The ``template_net`` / ``search_net`` interface over two exported flatbuffers (template, search branch).

    The search flatbuffer has two inputs (search image, template features) and runs on TensorFlow Lite's interpreter
    directly, not through :class:`~zippy_tf.export.runner.FlatbufferRunner`, because it must accept branches exported
    under any names: inputs are told apart by shape (the image is the one with 3 channels) and outputs by name
    ("cls"/"reg") or, failing that, by their last dimension (1 or 4).

    Args:
        template_data, search_data: flatbuffer bytes.
        num_threads: interpreter threads.

    Attributes:
        weights_path: the weights file the flatbuffers were exported from, if known (None).
    """

    weights_path = None

    def __init__(self, template_data, search_data, num_threads=1):
        from zippy_tf._compat import tf
        from zippy_tf.export.flatbuffer import op_census
        from zippy_tf.export.runner import FlatbufferRunner

        self.template_runner = FlatbufferRunner(template_data, num_threads=num_threads)
        if any(op.startswith("Lce") for op in op_census(search_data)["ops"]):
            raise UserError("the search flatbuffer has LCE ops; export the tracker as fp32 or int8 TFLite")
        self._search = tf.lite.Interpreter(model_content=search_data, num_threads=num_threads)
        self._search.allocate_tensors()
        inputs = self._search.get_input_details()
        if len(inputs) != 2:
            raise UserError(f"the search flatbuffer has {len(inputs)} inputs, not 2 (image, template features); "
                            "re-export the search branch")
        self._image_input, self._feature_input = sorted(inputs, key=lambda d: d["shape"][-1] != 3)
        self.search_size = int(self._image_input["shape"][1])
        self.template_size = int(self.template_runner.input_shape[1])
        self._outputs = {}
        for detail in self._search.get_output_details():
            name = detail["name"].lower()
            key = "cls" if "cls" in name else "reg" if "reg" in name else ("cls" if detail["shape"][-1] == 1 else "reg")
            self._outputs[key] = detail["index"]
        if sorted(self._outputs) != ["cls", "reg"]:
            raise UserError("the search flatbuffer does not have a cls and a reg output; re-export the search branch")

    def template_net(self, template_batch):
        (features,) = self.template_runner(template_batch).values()
        return features

    def search_net(self, inputs):
        search_batch, features = inputs
        self._search.set_tensor(self._image_input["index"], np.asarray(search_batch, np.float32))
        self._search.set_tensor(self._feature_input["index"], np.asarray(features, np.float32))
        self._search.invoke()
        return {key: self._search.get_tensor(index) for key, index in self._outputs.items()}


__all__ = ["CACHE_ENV", "TRACKER_FORMATS", "FlatbufferNetwork", "branch_paths", "cache_folder", "cached_network",
           "convert_search_branch", "export_key", "export_tracker", "exported_network"]
