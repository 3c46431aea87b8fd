import numpy as np
import pytest

from zippy_tf._compat import keras
from zippy_tf.errors import UserError
from zippy_tf.export import FlatbufferRunner, convert, op_census, read_flatbuffer, strip_fake_quant
from zippy_tf.export.convert import binding_clips
from zippy_tf.quantization.layers import Clip, FakeQuant


def _tiny():
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    return keras.Model(inputs, FakeQuant(1.0, name="fq")(x))


@pytest.fixture(scope="module")
def tiny_fp32():
    return convert(_tiny(), "fp32")


@pytest.mark.parametrize("data,message", [(b"", "not a TFLite flatbuffer"), (b"\x00" * 64, "not a TFLite"),
                                          (b"abcdTFL3" + b"\x00" * 4, "corrupt")])
def test_bad_flatbuffers_are_one_line_errors(data, message):
    with pytest.raises(UserError, match=message):
        op_census(data)


def test_truncated_flatbuffer(tiny_fp32):
    with pytest.raises(UserError):
        FlatbufferRunner(tiny_fp32[: len(tiny_fp32) // 3])


def test_read_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_flatbuffer(str(tmp_path / "none.tflite"))


def test_census_and_runner(tiny_fp32):
    census = op_census(tiny_fp32)
    assert census["ops"]["CONV_2D"] == 1 and census["op_types"]["CONV_2D"] == {"float32": 1}
    runner = FlatbufferRunner(tiny_fp32)
    assert runner.output_names == ["fq"] and runner.runtime == "tflite"
    with pytest.raises(UserError, match="does not match"):
        runner(np.zeros((1, 9, 8, 3), np.float32))


def test_unknown_format_and_dynamic_shape():
    with pytest.raises(UserError, match="unknown format"):
        convert(_tiny(), "int4")
    inputs = keras.Input((None, None, 3))
    with pytest.raises(UserError, match="not static"):
        convert(keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs)), "fp32")


def test_strip_fake_quant_keeps_weights_and_only_binding_clips():
    model = _tiny()
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32) * 10
    assert binding_clips(model, x) == {"fq"}
    assert binding_clips(model, x * 0) == set()
    clipped, plain = strip_fake_quant(model, {"fq"}), strip_fake_quant(model)
    assert isinstance(clipped.get_layer("fq"), Clip) and not any(isinstance(la, FakeQuant) for la in plain.layers)
    conv = model.get_layer("conv")(x).numpy()
    np.testing.assert_allclose(plain(x), conv, atol=1e-6)  # identity where the range never binds
    np.testing.assert_allclose(clipped(x), np.clip(conv, -1.0, 1.0 - 1.0 / 128), atol=1e-6)
    assert model.get_layer("fq") is not clipped.get_layer("fq")  # a new model, the original is untouched
