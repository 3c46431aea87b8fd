"""The one place that imports TensorFlow and chooses the Keras version.

TensorFlow 2.16 ships Keras 3 as ``tf.keras``; Larq and LCE need Keras 2 (the ``tf-keras`` package). TensorFlow
reads ``TF_USE_LEGACY_KERAS`` once, at its first import, so we set it here when TensorFlow has not been imported
yet, and refuse to continue (with the fix in the message) when some earlier import already loaded Keras 3.
Note that the variable affects every package in this process, which is what Larq needs anyway.
"""

import os
import sys

from zippy_tf.errors import UserError

if "tensorflow" not in sys.modules:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide CUDA-probe noise on CPU hosts

import tensorflow as tf  # noqa: E402

keras = tf.keras
if not keras.layers.Layer.__module__.startswith("tf_keras"):  # Keras 3 layers live in keras.src
    raise UserError(
        "TensorFlow was imported with Keras 3 before zippy_tf; import zippy_tf first, or set "
        "TF_USE_LEGACY_KERAS=1 before importing TensorFlow (and `pip install tf-keras~=2.16`)."
    )


def register(cls):
    """Registers a Keras class for (de)serialization under the ``zippy_tf>`` prefix."""
    return keras.utils.register_keras_serializable(package="zippy_tf")(cls)


__all__ = ["keras", "register", "tf"]
