"""Export to TFLite / LCE flatbuffers, inspection of flatbuffers, and running them next to Keras."""

from zippy_tf.export.convert import FORMATS, convert, convert_int8, strip_fake_quant, tflite_converter
from zippy_tf.export.flatbuffer import op_census, read_flatbuffer, validate_flatbuffer
from zippy_tf.export.runner import FlatbufferRunner

__all__ = [
    "FORMATS", "FlatbufferRunner", "convert", "convert_int8", "op_census", "read_flatbuffer", "strip_fake_quant",
    "tflite_converter", "validate_flatbuffer",
]
