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

import random
import threading

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


class _SeedStream(random.Random):
    """``keras.utils.set_random_seed``'s stream of layer seeds, drawn as ``randint(1, 1e9)``: Python 3.12 refuses
    the float bound (tf-keras#803), so bounds become ints; the numbers drawn are the same on every version."""

    def randint(self, a, b):
        return super().randint(int(a), int(b))


class _SeedGeneratorSlot(threading.local):
    """tf-keras's per-thread ``_SEED_GENERATOR``, keeping whatever ``random.Random`` it is given as a
    :class:`_SeedStream` in the same state."""

    @property
    def generator(self):
        return self.__dict__.get("generator")

    @generator.setter
    def generator(self, value):
        if value is not None and not isinstance(value, _SeedStream):
            stream = _SeedStream()
            stream.setstate(value.getstate())
            value = stream
        self.__dict__["generator"] = value


def _patch_seed_generator():
    from tf_keras.src import backend

    if not isinstance(backend._SEED_GENERATOR, _SeedGeneratorSlot):
        slot = _SeedGeneratorSlot()
        slot.generator = getattr(backend._SEED_GENERATOR, "generator", None)
        backend._SEED_GENERATOR = slot


_patch_seed_generator()


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
