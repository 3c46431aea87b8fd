"""Export to TFLite / LCE flatbuffers, inspection of flatbuffers, and running them next to Keras."""

from zippy_tf.export.convert import FORMATS, convert, strip_fake_quant
from zippy_tf.export.flatbuffer import op_census, read_flatbuffer, validate_flatbuffer
from zippy_tf.export.runner import FlatbufferRunner

__all__ = [
    "FORMATS", "FlatbufferRunner", "convert", "op_census", "read_flatbuffer", "strip_fake_quant",
    "validate_flatbuffer",
]
