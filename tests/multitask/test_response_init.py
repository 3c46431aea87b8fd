"""Response Initialization: the reparameterized model reproduces the plain one, bases are ordered PCA bases."""

import numpy as np
import pytest
from rcm_testing import config, encoder, images, randomize, relative_error

from zippy_tf._compat import keras
from zippy_tf.errors import UserError
from zippy_tf.multitask import (
    FilterBank, ReparamConv2D, build_multitask, reparameterize, response_bases, response_initialize,
)


def _plain_model():
    """conv-BN-ReLU (strided, explicitly padded) -> conv-BN + downsample shortcut -> ReLU, with random weights."""
    inputs = keras.Input((17, 21, 3))
    x = keras.layers.ZeroPadding2D(1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False, name="conv1")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn1")(x))
    y = keras.layers.Conv2D(12, 3, padding="same", dilation_rate=2, use_bias=False, name="conv2")(x)
    y = keras.layers.BatchNormalization(name="bn2")(y)
    shortcut = keras.layers.Conv2D(12, 1, use_bias=False, name="block_downsample_0")(x)
    outputs = keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))
    return randomize(keras.Model(inputs, keras.layers.Conv2D(2, 1, name="head")(outputs)), seed=2)


@pytest.mark.parametrize("nff", [False, True])
def test_ri_reproduces_the_plain_model(nff):
    model, x = _plain_model(), images(6, (17, 21), seed=3)
    ri = response_initialize(model, x, nff=nff)
    assert relative_error(ri(x), model(x)) <= 1e-4
    kinds = {layer.name: type(layer) for layer in ri.layers}
    assert kinds["conv1"] is ReparamConv2D and kinds["conv2"] is ReparamConv2D
    assert kinds["block_downsample_0"] is keras.layers.Conv2D  # shortcut convs stay plain and trainable
    assert ri.get_layer("block_downsample_0").trainable_weights
    assert kinds["head"] is keras.layers.Conv2D  # a conv with bias is not reparameterized


def test_bases_are_orthonormal_and_sort_the_filter_bank_by_response_variance():
    model, x = _plain_model(), images(6, (17, 21), seed=3)
    bases = response_bases(model, x, ["conv1", "conv2"])
    ri = reparameterize(model, bases)
    for name, (basis, mean) in bases.items():
        np.testing.assert_allclose(basis.T @ basis, np.eye(len(basis)), atol=1e-5)
        bank = ri.get_layer(name).filter_bank
        layer_inputs = keras.Model(ri.inputs, ri.get_layer(name).input)(x)
        variances = np.var(bank(layer_inputs).numpy().reshape(-1, bank.filters), axis=0)
        assert np.all(np.diff(variances) <= 1e-4 * variances[0])  # W_s = U^T W: channel variances decrease
        np.testing.assert_allclose(np.mean(keras.Model(model.inputs, model.get_layer(name).output)(x), axis=(0, 1, 2)),
                                   mean, rtol=1e-4, atol=1e-5)


def test_without_bases_the_bank_is_the_original_kernel_and_the_modulator_the_identity():
    model = _plain_model()
    copy = reparameterize(model)
    layer = copy.get_layer("conv2")
    np.testing.assert_array_equal(layer.filter_bank.kernel.numpy(), model.get_layer("conv2").kernel.numpy())
    np.testing.assert_array_equal(layer.modulator().numpy()[0, 0], np.eye(12))
    assert isinstance(layer.filter_bank, FilterBank) and not layer.filter_bank.trainable_weights


@pytest.mark.parametrize("variant", ["rc_ri", "rcm", "rc", "series_ra", "parallel_ra"])
def test_reparameterized_networks_start_as_the_single_task_network(variant):
    """Built from the same encoder (and with the same decoder weights), every reparameterized variant computes the
    single-task network before training: W_t·W_s = W, adapters start at zero."""
    enc, x = encoder(), images(4)
    single = build_multitask(config("single_task"), encoder=enc)
    network = build_multitask(config(variant), encoder=enc, ri_images=x)
    for task in ("semseg", "normals"):
        reference = randomize(single[task], seed=5)  # random decoder and head, then the encoder's weights again
        for layer in reference.layers:
            if layer.name.startswith(f"{task}_") and not layer.name.startswith((f"{task}_aspp", f"{task}_decoder",
                                                                               f"{task}_head")):
                layer.set_weights(enc.get_layer(layer.name[len(task) + 1:]).get_weights())
        for layer in network[task].layers:
            if layer.name.startswith((f"{task}_aspp", f"{task}_decoder", f"{task}_head")):
                layer.set_weights(reference.get_layer(layer.name).get_weights())
        assert relative_error(network[task](x), reference(x)) <= 1e-4


def test_bad_input():
    model = _plain_model()
    with pytest.raises(UserError, match="non-empty"):
        response_bases(model, np.zeros((0, 17, 21, 3)), ["conv1"])
    with pytest.raises(UserError, match="do not fit model"):
        response_bases(model, images(2, (17, 20)), ["conv1"])
    with pytest.raises(UserError, match="no layer 'conv9'"):
        response_bases(model, images(2, (17, 21)), ["conv9"])
    inputs = keras.Input((8, 8, 3))
    with pytest.raises(UserError, match="no bias-free Conv2D"):
        reparameterize(keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)))
    with pytest.raises(UserError, match="uses Response Initialization"):
        build_multitask(config("rcm"), encoder=encoder())
