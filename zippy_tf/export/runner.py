"""Runs an exported flatbuffer from Python, with the interpreter it needs."""

import numpy as np

from zippy_tf.errors import UserError
from zippy_tf.export.flatbuffer import op_census, signature_io


class FlatbufferRunner:
    """Calls a flatbuffer like a Keras model: ``runner(images) -> {output name: array}``.

    Flatbuffers with LCE custom ops run on LCE's interpreter (on x86 its binary kernels are reference code:
    correct, slow); the others on TensorFlow Lite's, whose default XNNPACK delegate is what a phone would use.
    Batches are run one sample at a time, as the exported graphs have batch size 1.

    Args:
        data: flatbuffer bytes.
        num_threads: interpreter threads.
    """

    def __init__(self, data, num_threads=1):
        self.census = op_census(data)
        self.input_names, self.output_names = signature_io(data)
        self.uses_lce = any(name.startswith("Lce") for name in self.census["ops"])
        self.num_threads = num_threads
        if self.uses_lce:
            import larq_compute_engine as lce

            self._lce = lce.testing.Interpreter(data, num_threads=num_threads, use_xnnpack=True)
            self.input_shape = tuple(self._lce.input_shapes[0])
            dtypes = [np.dtype(t) for t in self._lce.input_types + self._lce.output_types]
        else:
            from zippy_tf._compat import tf

            self._tfl = tf.lite.Interpreter(model_content=data, num_threads=num_threads)
            self._tfl.allocate_tensors()
            self._in = self._tfl.get_input_details()
            self._out = self._tfl.get_output_details()
            self.input_shape = tuple(self._in[0]["shape"])
            dtypes = [np.dtype(d["dtype"]) for d in self._in + self._out]
        if any(d != np.float32 for d in dtypes):
            raise UserError("flatbuffer has non-float32 inputs or outputs; export with float I/O (the default)")

    @property
    def runtime(self):
        return "lce" if self.uses_lce else "tflite"

    def invoke(self, sample):
        """One forward pass of a (1, H, W, C) float32 array; returns the raw output list (subgraph order)."""
        if self.uses_lce:
            return self._lce.interpreter.predict([sample])
        self._tfl.set_tensor(self._in[0]["index"], sample)
        self._tfl.invoke()
        return [self._tfl.get_tensor(d["index"]) for d in self._out]

    def __call__(self, images):
        images = np.asarray(images, np.float32)
        if images.ndim == len(self.input_shape) - 1:
            images = images[None]
        if images.shape[1:] != self.input_shape[1:]:
            raise UserError(
                f"input of shape {images.shape[1:]} does not match the flatbuffer's {self.input_shape[1:]}; "
                "resize the image or re-export at this resolution"
            )
        outputs = [self.invoke(images[i : i + 1]) for i in range(images.shape[0])]
        return {name: np.concatenate([o[j] for o in outputs]) for j, name in enumerate(self.output_names)}


__all__ = ["FlatbufferRunner"]
