"""zippy-tf: efficient deep networks (ZippyPoint, E.T.Track, RCM, CompL) in TensorFlow/Keras + Larq.

Importing the package selects Keras 2 (``tf-keras``) for TensorFlow, because Larq and the Larq Compute Engine
converter only work with Keras 2 (see ``zippy_tf._compat``). TensorFlow itself and the subpackages are imported on
first access (``zippy_tf.keypoints``, ``from zippy_tf import keras, tf``), so the command line answers ``--help``
without loading TensorFlow.

Example:
    >>> import zippy_tf
    >>> detector = zippy_tf.keypoints.KeypointDetector.from_preset("zippypoint")
"""

import importlib
import importlib.util
import os
import sys


def _tensorflow_installed():
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # blocked by an import hook, or sys.modules["tensorflow"] is None
        return False


if not _tensorflow_installed():  # say so now, in one line naming the extras, not at the first use of a model
    importlib.import_module("zippy_tf._compat")
elif "tensorflow" not in sys.modules:  # TensorFlow reads these once, at its first import
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide CUDA-probe and oneDNN notices on CPU hosts
else:  # already loaded: check now that it runs Keras 2, with the fix in the message if not
    importlib.import_module("zippy_tf._compat")

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("zippy-tf")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

SUBPACKAGES = ("data", "export", "keypoints", "multitask", "presets", "quantization", "search", "tracking")


def __getattr__(name):
    if name in ("keras", "tf"):
        return getattr(importlib.import_module("zippy_tf._compat"), name)
    if name in SUBPACKAGES:
        return importlib.import_module(f"zippy_tf.{name}")
    raise AttributeError(f"module 'zippy_tf' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), "keras", "tf", *SUBPACKAGES})


__all__ = ["__version__", "keras", "tf", *SUBPACKAGES]
