"""zippy-tf: efficient deep networks (ZippyPoint, E.T.Track, RCM, CompL) in TensorFlow/Keras + Larq.

Importing the package selects Keras 2 (``tf-keras``) for TensorFlow, because Larq and the Larq Compute Engine
converter only work with Keras 2. See ``zippy_tf._compat`` for the details.
"""

from zippy_tf._compat import keras, tf  # noqa: F401  (must run before anything imports TensorFlow)

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("zippy-tf")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["__version__", "keras", "tf"]
