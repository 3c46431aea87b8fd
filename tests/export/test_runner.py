"""FlatbufferRunner and time_interleaved on a flatbuffer with two inputs (like the E.T.Track search branch)."""

import numpy as np
import pytest

from zippy_tf._compat import keras
from zippy_tf.errors import UserError
from zippy_tf.export import FlatbufferRunner, convert
from zippy_tf.export.latency import time_interleaved

SHAPES = {"image": (8, 8, 3), "features": (4, 4, 2)}


def _two_inputs():
    """A search-branch-like model: an image and template features, one output that depends on both."""
    image, features = keras.Input(SHAPES["image"], name="image"), keras.Input(SHAPES["features"], name="features")
    x = keras.layers.Conv2D(2, 3, strides=2, padding="same", name="conv")(image)
    score = keras.layers.Conv2D(1, 1, name="score")(keras.layers.Multiply()([x, features]))
    return keras.Model([image, features], score)


@pytest.fixture(scope="module")
def two_inputs():
    model = _two_inputs()
    return model, FlatbufferRunner(convert(model, "fp32"))


def _batch(n, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=(n, *shape)).astype(np.float32) for name, shape in SHAPES.items()}


def test_two_inputs_match_keras(two_inputs):
    model, runner = two_inputs
    assert sorted(runner.input_names) == sorted(SHAPES)
    assert runner.input_shapes == [(1, *SHAPES[name]) for name in runner.input_names]
    batch = _batch(3)
    expected = model([batch["image"], batch["features"]]).numpy()
    in_order = [batch[name] for name in runner.input_names]  # the flatbuffer's input order
    for inputs in (batch, in_order, tuple(in_order)):
        (out,) = runner(inputs).values()
        np.testing.assert_allclose(out, expected, atol=1e-5)
    (raw,) = runner.invoke({name: x[:1] for name, x in batch.items()})  # one sample
    np.testing.assert_allclose(raw, expected[:1], atol=1e-5)
    other = dict(batch, features=_batch(3, seed=1)["features"])  # the second input counts too
    assert not np.allclose(next(iter(runner(other).values())), expected, atol=1e-3)


def test_time_interleaved_with_two_inputs(two_inputs):
    _, runner = two_inputs
    times = time_interleaved({"two": runner}, warmup=1, runs=3)  # default inputs: a photo and noise
    assert list(times) == ["two"] and len(times["two"]) == 3 and all(t > 0 for t in times["two"])
    sample = {name: x[:1] for name, x in _batch(1).items()}
    assert len(time_interleaved({"two": runner}, warmup=0, runs=2, inputs={"two": sample})["two"]) == 2


@pytest.mark.parametrize("inputs,message", [
    (lambda b: b["image"], r"got 1 input\(s\), the flatbuffer takes 2"),
    (lambda b: [b["image"], b["features"], b["image"]], r"got 3 input\(s\), the flatbuffer takes 2"),
    (lambda b: {"image": b["image"], "template": b["features"]}, "do not match the flatbuffer's"),
    (lambda b: dict(b, features=b["features"][:, :2]), r"input 'features' of shape \(2, 4, 2\) does not match"),
    (lambda b: dict(b, features=b["features"][:1]), "different batch sizes"),
])
def test_bad_inputs_are_one_line_errors(two_inputs, inputs, message):
    _, runner = two_inputs
    with pytest.raises(UserError, match=message) as error:
        runner(inputs(_batch(2)))
    assert "\n" not in str(error.value)


def test_invoke_takes_one_sample(two_inputs):
    _, runner = two_inputs
    with pytest.raises(UserError, match="invoke runs one sample, got a batch of 2"):
        runner.invoke(_batch(2))
