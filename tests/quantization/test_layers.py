import numpy as np
import pytest

from zippy_tf._compat import keras, tf
from zippy_tf.quantization.layers import (
    DepthToSpace, FakeQuant, HardSwish, SpaceToDepth, Subsample2D, activation_layer,
)

X = np.random.default_rng(0).normal(size=(2, 8, 12, 16)).astype(np.float32) * 4

LAYERS = [
    (FakeQuant, {"limit": 6.0}, (2, 8, 12, 16)),
    (FakeQuant, {"limit": 1.0, "num_bits": 4}, (2, 8, 12, 16)),
    (HardSwish, {}, (2, 8, 12, 16)),
    (SpaceToDepth, {"block_size": 2}, (2, 4, 6, 64)),
    (DepthToSpace, {"block_size": 2}, (2, 16, 24, 4)),
    (Subsample2D, {}, (2, 4, 6, 16)),
]


@pytest.mark.parametrize("cls,kwargs,shape", LAYERS)
def test_shape_config_and_save_load(cls, kwargs, shape, tmp_path):
    layer = cls(**kwargs)
    assert tuple(layer(X).shape) == shape
    assert cls.from_config(layer.get_config()).get_config() == layer.get_config()
    inputs = keras.Input(X.shape[1:])
    model = keras.Model(inputs, cls(**kwargs)(inputs))
    model.save(tmp_path / "m.h5")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "m.h5")(X), model(X), rtol=0, atol=0)


@pytest.mark.parametrize("limit", [1.0, 6.0])
def test_fake_quant_clips_and_uses_256_levels(limit):
    y = FakeQuant(limit)(tf.linspace(-2 * limit, 2 * limit, 5001)).numpy()
    step = limit / 128  # zero lies exactly on the grid
    assert y.min() == pytest.approx(-limit) and y.max() == pytest.approx(limit - step) and 0.0 in y
    assert len(np.unique(y)) == 256


def test_hard_swish_values():
    x = tf.constant([-4.0, -3.0, 0.0, 1.0, 3.0, 5.0])
    np.testing.assert_allclose(HardSwish()(x), [0, 0, 0, 1 * 4 / 6, 3, 5], atol=1e-6)


def test_depth_to_space_inverts_space_to_depth():
    np.testing.assert_array_equal(DepthToSpace(2)(SpaceToDepth(2)(X)), X)


def test_subsample_keeps_even_rows_and_columns():
    np.testing.assert_array_equal(Subsample2D()(X), X[:, ::2, ::2])


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match="hard_swish"):
        activation_layer("gelu")
