"""RC and Residual Adapter layers: their equations, NFF, frozen filter banks, gradients, serialization, bad input.

(Named test_rcm_layers.py: tests/ has no packages, so a second test_layers.py would clash with quantization's.)
"""

import textwrap

import numpy as np
import pytest
from rcm_testing import randomize

from zippy_tf._compat import keras, tf
from zippy_tf.errors import UserError
from zippy_tf.multitask import FilterBank, ParallelResidualAdapter, ReparamConv2D, SeriesResidualAdapter

X = np.random.default_rng(1).normal(size=(2, 11, 13, 4)).astype(np.float32)
BANKS = [
    {"kernel_size": 3, "padding": "same"},
    {"kernel_size": 3, "strides": 2, "padding": "valid"},
    {"kernel_size": 3, "dilation_rate": 2, "padding": "same"},
    {"kernel_size": 1, "padding": "valid"},
]
LAYERS = [(ReparamConv2D, {"nff": False}), (ReparamConv2D, {"nff": True}), (SeriesResidualAdapter, {}),
          (ParallelResidualAdapter, {})]


def _layer(cls, kwargs, bank_kwargs, seed=0):
    layer = cls(FilterBank(6, name="bank", **bank_kwargs), name="task_conv", **kwargs)
    layer(X)
    randomize(layer, seed)
    return layer


def _conv(x, kernel, strides=1, padding="SAME", dilations=1):
    return tf.nn.conv2d(x, kernel, strides, padding, dilations=dilations).numpy()


def _bank_output(layer):
    bank = layer.filter_bank
    return _conv(X, bank.kernel, bank.strides, bank.padding.upper(), bank.dilation_rate)


@pytest.mark.parametrize("bank_kwargs", BANKS)
@pytest.mark.parametrize("cls,kwargs", LAYERS)
def test_config_round_trip_and_h5_save_load(cls, kwargs, bank_kwargs, tmp_path):
    layer = _layer(cls, kwargs, bank_kwargs)
    assert cls.from_config(layer.get_config()).get_config() == layer.get_config()
    inputs = keras.Input(X.shape[1:])
    model = keras.Model(inputs, _layer(cls, kwargs, bank_kwargs)(inputs))
    randomize(model)
    model.save(tmp_path / "m.h5")
    np.testing.assert_array_equal(keras.models.load_model(tmp_path / "m.h5")(X), model(X))


@pytest.mark.parametrize("bank_kwargs", BANKS)
def test_reparam_conv_is_modulator_after_filter_bank(bank_kwargs):
    layer = _layer(ReparamConv2D, {}, bank_kwargs)
    expected = np.einsum("bhwc,co->bhwo", _bank_output(layer), layer.kernel.numpy()[0, 0])
    np.testing.assert_allclose(layer(X), expected, rtol=1e-5, atol=1e-5)


def test_nff_normalises_each_output_row_and_starts_at_the_given_matrix():
    plain, nff = (_layer(ReparamConv2D, {"nff": flag}, BANKS[0]) for flag in (False, True))
    nff.filter_bank.kernel.assign(plain.filter_bank.kernel)
    matrix = np.random.default_rng(3).normal(size=(6, 6)).astype(np.float32)
    plain.set_modulator(matrix)
    nff.set_modulator(matrix)
    np.testing.assert_allclose(nff.modulator()[0, 0], matrix, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(nff(X), plain(X), rtol=1e-5, atol=1e-5)
    nff.g.assign(2 * np.ones(6, np.float32))  # w_o = g_o v_o / |v_o|: every output row has norm g_o
    np.testing.assert_allclose(np.linalg.norm(nff.modulator()[0, 0], axis=0), 2.0, rtol=1e-6)


@pytest.mark.parametrize("bank_kwargs", BANKS[:2])
def test_series_adapter_equation(bank_kwargs):
    layer = _layer(SeriesResidualAdapter, {}, bank_kwargs)
    shared = _bank_output(layer)
    bn = layer.adapter_bn
    normalised = (shared - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    normalised = normalised * bn.gamma.numpy() + bn.beta.numpy()
    expected = shared + np.einsum("bhwc,co->bhwo", normalised, layer.adapter.numpy()[0, 0])
    np.testing.assert_allclose(layer(X, training=False), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bank_kwargs", BANKS)
def test_parallel_adapter_reads_the_pixel_under_the_centre_tap(bank_kwargs):
    layer = _layer(ParallelResidualAdapter, {}, bank_kwargs)
    bank = layer.filter_bank
    centre = np.zeros(bank.kernel.shape, np.float32)  # A as a k×k kernel that is zero but at the centre tap
    centre[(bank.kernel_size[0] - 1) // 2, (bank.kernel_size[1] - 1) // 2] = layer.adapter.numpy()[0, 0]
    expected = _bank_output(layer) + _conv(X, centre, bank.strides, bank.padding.upper(), bank.dilation_rate)
    np.testing.assert_allclose(layer(X), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls,kwargs", LAYERS)
def test_only_the_task_part_trains_and_the_bank_stays_frozen(cls, kwargs):
    layer = _layer(cls, kwargs, BANKS[0])
    inputs = keras.Input(X.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    model.trainable = True  # Keras sets every sub-layer's flag: the filter bank must stay frozen
    assert layer.filter_bank.kernel.ref() not in {v.ref() for v in model.trainable_weights}
    assert layer.filter_bank.trainable_weights == []
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(X, training=True)))
    gradients = tape.gradient(loss, model.trainable_weights)
    assert model.trainable_weights and all(g is not None and np.any(g.numpy() != 0) for g in gradients)


def test_layers_sharing_a_bank_share_w_s_and_nothing_else():
    bank = FilterBank(6, 3, padding="same", name="bank")
    first, second = ReparamConv2D(bank, name="a_conv"), ReparamConv2D(bank, nff=True, name="b_conv")
    first(X), second(X)
    assert first.filter_bank.kernel is second.filter_bank.kernel
    assert not {v.ref() for v in first.trainable_weights} & {v.ref() for v in second.trainable_weights}


def test_bad_input():
    with pytest.raises(UserError, match="filter_bank must be a FilterBank"):
        ReparamConv2D(keras.layers.Conv2D(4, 3))
    with pytest.raises(UserError, match="odd kernel_size"):
        ParallelResidualAdapter(FilterBank(4, 2))


def test_module_docstring_example_runs_and_trains_one_task_only():
    from zippy_tf.multitask import layers

    example = layers.__doc__.split("two tasks, one filter bank)::")[1].split("\n\n", 1)[1].split("\nA layer's")[0]
    namespace = {}
    exec(textwrap.dedent(example), namespace)  # noqa: S102 (our own docstring)
    models = namespace["models"]
    depth, semseg = models["depth"], models["semseg"]
    assert not {v.ref() for v in depth.trainable_weights} & {v.ref() for v in semseg.trainable_weights}
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    before = semseg(x).numpy()
    depth.compile(keras.optimizers.SGD(0.1), "mse")
    depth.fit(x, np.ones((2, 64, 64, 1), np.float32), verbose=0)
    np.testing.assert_array_equal(semseg(x).numpy(), before)
