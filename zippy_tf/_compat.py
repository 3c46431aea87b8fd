"""The one place that imports TensorFlow and chooses the Keras version.

TensorFlow 2.16 ships Keras 3 as ``tf.keras``; Larq and LCE need Keras 2 (the ``tf-keras`` package). TensorFlow
reads ``TF_USE_LEGACY_KERAS`` once, at its first import, so ``zippy_tf/__init__.py`` (which Python runs before this
module) sets it when TensorFlow has not been imported yet; here we refuse to continue (with the fix in the
message) when some earlier import already loaded Keras 3. Note that the variable affects every package in this
process, which is what Larq needs anyway.

TensorFlow itself is an extra, as in Larq, so that a GPU user does not get the CPU-only wheel: without it this
module (which ``import zippy_tf`` runs first then) raises an ``ImportError`` whose one line names both extras.
"""

NO_TENSORFLOW = ("zippy-tf needs TensorFlow 2.16, which is not installed: pip install 'zippy-tf[cpu]' (CPU only) or "
                 "'zippy-tf[gpu]' (NVIDIA GPUs, CUDA from pip)")

try:
    import tensorflow as tf
except ModuleNotFoundError as e:
    if e.name != "tensorflow":  # TensorFlow is there but one of its own dependencies is not: its message says which
        raise
    raise ImportError(NO_TENSORFLOW, name="tensorflow") from None

from zippy_tf.errors import UserError  # noqa: E402  (after the TensorFlow check, which must come first)

keras = tf.keras
if not keras.layers.Layer.__module__.startswith("tf_keras"):  # Keras 3 layers live in keras.src
    raise UserError(
        "TensorFlow was imported with Keras 3 before zippy_tf; import zippy_tf first, or set "
        "TF_USE_LEGACY_KERAS=1 before importing TensorFlow (and `pip install tf-keras~=2.16`)."
    )


def register(cls):
    """Registers a Keras class for (de)serialization under the ``zippy_tf>`` prefix, and has Keras call it without
    AutoGraph.

    Keras runs every subclassed layer's ``call`` through AutoGraph, which also converts each nested Keras call
    inside it: building the E.T.Track network spent 23 of its 26 s there, and tracing its training step over a
    minute. Our layers have no Python control flow on tensor values (only on Python arguments and shapes), so
    there is nothing for AutoGraph to convert.
    """
    cls._should_use_autograph = _without_autograph
    return keras.utils.register_keras_serializable(package="zippy_tf")(cls)


def _without_autograph(layer):
    return False


class Trainer(keras.Model):
    """Base of the methods' trainers: ``fit`` traces the training step once.

    The optimizer's slot variables are created before tracing; created inside the first call, they make
    ``tf.function`` trace the whole step a second time (a third of a tracker test's fit). Subclasses mark their
    ``train_step``/``test_step`` ``do_not_convert`` for the reason given in :func:`register`.
    """

    def make_train_function(self, force=False):
        if hasattr(self.optimizer, "build"):  # Keras's legacy optimizers have no build; they trace twice
            self.optimizer.build(self.trainable_variables)
        return super().make_train_function(force)


__all__ = ["NO_TENSORFLOW", "Trainer", "keras", "register", "tf"]
