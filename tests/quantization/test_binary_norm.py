import numpy as np
import pytest

from zippy_tf._compat import keras, tf
from zippy_tf.quantization.binary_norm import BinaryNorm, lml_projection, top_k_binarize

SIZES = [(256, 64), (32, 8), (16, 1), (16, 15)]


@pytest.mark.parametrize("m,k", SIZES)
def test_inference_has_exactly_k_ones(m, k):
    x = tf.random.stateless_normal((50, m), seed=(1, m)) * 4.0
    y = BinaryNorm(k)(x, training=False).numpy()
    assert set(np.unique(y)) <= {0.0, 1.0}
    np.testing.assert_array_equal(y.sum(-1), k)


@pytest.mark.parametrize("m,k", SIZES)
def test_ones_are_the_k_largest_logits(m, k):
    x = np.random.default_rng(m).normal(size=(20, m)).astype(np.float32)
    y = top_k_binarize(x, k).numpy()
    kth = np.sort(x, -1)[:, -k][:, None]
    np.testing.assert_array_equal(y, (x >= kth).astype(np.float32))


@pytest.mark.parametrize("m,k", SIZES)
@pytest.mark.parametrize("scale", [0.1, 3.0, 30.0])
def test_projection_sums_to_k_and_preserves_order(m, k, scale):
    x = tf.random.stateless_normal((40, m), seed=(2, k)) * scale
    y = lml_projection(x, k).numpy()
    assert np.all((y >= 0) & (y <= 1))
    np.testing.assert_allclose(y.sum(-1), k, rtol=1e-4)
    # the soft descriptor is a monotone map of the logits: its top-k is the hard Bin.Norm
    np.testing.assert_array_equal(top_k_binarize(y, k).numpy(), top_k_binarize(x, k).numpy())


def test_gradient_matches_finite_differences():
    x = tf.random.stateless_normal((3, 24), seed=(3, 4), dtype=tf.float64) * 2.0
    analytic, numeric = tf.test.compute_gradient(lambda t: lml_projection(t, 6, iterations=20), [x])
    np.testing.assert_allclose(analytic[0], numeric[0], atol=1e-6)


def test_gradient_is_orthogonal_to_constant_shift():
    # y(x + c) = y(x): the projection is invariant to a shift of all logits, so gradients sum to zero per row
    x = tf.random.stateless_normal((5, 64), seed=(5, 6))
    g = tf.random.stateless_normal((5, 64), seed=(7, 8))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = lml_projection(x, 16)
    grad = tape.gradient(y, x, output_gradients=g).numpy()
    np.testing.assert_allclose(grad.sum(-1), 0.0, atol=1e-5)


def test_training_flag_switches_between_soft_and_hard():
    inputs = keras.Input((32,))
    model = keras.Model(inputs, BinaryNorm(8)(inputs))
    x = np.random.default_rng(0).normal(size=(4, 32)).astype(np.float32)
    hard, soft = model(x, training=False).numpy(), model(x, training=True).numpy()
    np.testing.assert_array_equal(hard.sum(-1), 8)
    assert np.any((soft > 0.01) & (soft < 0.99))


def test_config_round_trip_and_serialization(tmp_path):
    layer = BinaryNorm(k=8, candidates=12, iterations=6)
    clone = BinaryNorm.from_config(layer.get_config())
    assert (clone.k, clone.candidates, clone.iterations) == (8, 12, 6)
    inputs = keras.Input((32,))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "m.h5")
    loaded = keras.models.load_model(tmp_path / "m.h5")
    assert isinstance(loaded.layers[-1], BinaryNorm) and loaded.layers[-1].k == 8


def test_rejects_k_outside_descriptor():
    with pytest.raises(ValueError, match="0 < k < descriptor size"):
        BinaryNorm(32)(tf.zeros((2, 32)))
