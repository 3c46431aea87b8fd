"""Export to TFLite / LCE flatbuffers, inspection of flatbuffers, running them next to Keras, and timing them
against a baseline in the same run.

Example:
    >>> from zippy_tf.export import FlatbufferRunner, convert, time_interleaved
    >>> flatbuffer = convert(model, "int8")
    >>> times = time_interleaved({"model": FlatbufferRunner(flatbuffer), "baseline": FlatbufferRunner(baseline)})
"""

from zippy_tf.export.convert import FORMATS, convert, convert_int8, strip_fake_quant, tflite_converter
from zippy_tf.export.flatbuffer import op_census, read_flatbuffer, validate_flatbuffer
from zippy_tf.export.latency import compare, time_interleaved
from zippy_tf.export.runner import FlatbufferRunner

__all__ = [
    "FORMATS", "FlatbufferRunner", "compare", "convert", "convert_int8", "op_census", "read_flatbuffer",
    "strip_fake_quant", "tflite_converter", "time_interleaved", "validate_flatbuffer",
]
