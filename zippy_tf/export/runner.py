"""Runs an exported flatbuffer from Python, with the interpreter it needs."""

import numpy as np

from zippy_tf.errors import UserError
from zippy_tf.export.flatbuffer import op_census, signature_io
from zippy_tf.runtime import native_notices_hidden


class FlatbufferRunner:
    """Calls a flatbuffer like a Keras model: ``runner(images) -> {output name: array}``.

    Flatbuffers with LCE custom ops run on LCE's interpreter (on x86 its binary kernels are reference code:
    correct, slow); the others on TensorFlow Lite's, whose default XNNPACK delegate is what a phone would use.
    Batches are run one sample at a time, as the exported graphs have batch size 1.

    A flatbuffer with several inputs (the E.T.Track search branch: search image, template features) takes them as
    a list or tuple in its input order (:attr:`input_names`, :attr:`input_shapes`) or as a dict by input name;
    a single-input one takes the array alone (or a one-element list or dict).

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

            with native_notices_hidden():
                self._lce = lce.testing.Interpreter(data, num_threads=num_threads, use_xnnpack=True)
            shapes = self._lce.input_shapes
            dtypes = [np.dtype(t) for t in self._lce.input_types + self._lce.output_types]
        else:
            from zippy_tf._compat import tf

            with native_notices_hidden():  # the XNNPACK delegate's notice
                self._tfl = tf.lite.Interpreter(model_content=data, num_threads=num_threads)
                self._tfl.allocate_tensors()
            self._in = self._tfl.get_input_details()
            self._out = self._tfl.get_output_details()
            shapes = [d["shape"] for d in self._in]
            dtypes = [np.dtype(d["dtype"]) for d in self._in + self._out]
        self.input_shapes = [tuple(int(d) for d in shape) for shape in shapes]  # flatbuffer input order
        self.input_shape = self.input_shapes[0]  # the (first) input's: what single-input callers read
        if any(d != np.float32 for d in dtypes):
            raise UserError("flatbuffer has non-float32 inputs or outputs; export with float I/O (the default)")

    @property
    def runtime(self):
        return "lce" if self.uses_lce else "tflite"

    def _inputs(self, inputs):
        """``inputs`` as float32 arrays in flatbuffer input order, each with a batch axis; UserError if they do not
        fit the flatbuffer."""
        expected = len(self.input_shapes)
        if isinstance(inputs, dict):
            if sorted(inputs) != sorted(self.input_names):
                raise UserError(f"inputs named {sorted(inputs)} do not match the flatbuffer's {self.input_names}; "
                                "pass one array per input name")
            inputs = [inputs[name] for name in self.input_names]
        elif isinstance(inputs, (list, tuple)) and (expected > 1 or len(inputs) == 1):
            inputs = list(inputs)
        else:  # one array (for one input, a list of several images is stacked into a batch, as it always was)
            inputs = [inputs]
        if len(inputs) != expected:
            raise UserError(f"got {len(inputs)} input(s), the flatbuffer takes {expected} "
                            f"({', '.join(self.input_names)}); pass a list in that order or a dict by name")
        arrays = []
        for name, shape, x in zip(self.input_names, self.input_shapes, inputs):
            x = np.asarray(x, np.float32)
            if x.ndim == len(shape) - 1:
                x = x[None]
            if x.shape[1:] != shape[1:]:
                label = "input" if expected == 1 else f"input {name!r}"
                raise UserError(f"{label} of shape {x.shape[1:]} does not match the flatbuffer's {shape[1:]}; "
                                "resize the image or re-export at this resolution")
            arrays.append(x)
        if len({len(x) for x in arrays}) > 1:
            raise UserError(f"the inputs have different batch sizes {[len(x) for x in arrays]}; pass the same "
                            "number of samples for every input")
        return arrays

    def _invoke(self, arrays):
        if self.uses_lce:
            return self._lce.interpreter.predict(arrays)
        for detail, x in zip(self._in, arrays):
            self._tfl.set_tensor(detail["index"], x)
        self._tfl.invoke()
        return [self._tfl.get_tensor(d["index"]) for d in self._out]

    def invoke(self, sample):
        """One forward pass of one sample: a (1, H, W, C) float32 array, or for several inputs a list / tuple of
        them in flatbuffer input order or a dict by input name. Returns the raw output list (subgraph order)."""
        arrays = self._inputs(sample)
        if len(arrays[0]) != 1:
            raise UserError(f"invoke runs one sample, got a batch of {len(arrays[0])}; call the runner for batches")
        return self._invoke(arrays)

    def __call__(self, inputs):
        """``inputs``: a batch or one sample (no batch axis) per input; returns {output name: batched array}."""
        arrays = self._inputs(inputs)
        outputs = [self._invoke([x[i : i + 1] for x in arrays]) for i in range(len(arrays[0]))]
        return {name: np.concatenate([o[j] for o in outputs]) for j, name in enumerate(self.output_names)}


__all__ = ["FlatbufferRunner"]
