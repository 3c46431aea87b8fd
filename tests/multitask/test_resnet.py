"""The dilated ResNet encoder: PyTorch padding semantics and loading torchvision state dicts."""

import numpy as np
import pytest
from rcm_testing import randomize

from zippy_tf._compat import keras
from zippy_tf.errors import UserError
from zippy_tf.multitask.resnet import load_torchvision_weights, resnet, torchvision_name


def _state_dict(model):
    """The torchvision-layout tensors of a Keras ResNet (the inverse of the loader), with a classifier and BN
    counters as a real checkpoint has."""
    state = {"fc.weight": np.zeros((10, 8), np.float32), "fc.bias": np.zeros(10, np.float32)}
    names = {"kernel": "weight", "gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
             "moving_variance": "running_var"}
    for layer in model.layers:
        for variable in layer.weights:
            kind = variable.name.split("/")[-1].split(":")[0]
            value = variable.numpy()
            state[f"{torchvision_name(layer.name)}.{names[kind]}"] = value.transpose(3, 2, 0, 1) if value.ndim == 4 \
                else value
        if isinstance(layer, keras.layers.BatchNormalization):
            state[f"{torchvision_name(layer.name)}.num_batches_tracked"] = np.array(7)
    return state


@pytest.mark.parametrize("backbone", ["resnet18", "resnet26"])
def test_torchvision_state_dict_round_trip(backbone):
    source = randomize(resnet((29, 35, 3), backbone, width=0.125), seed=1)
    target = load_torchvision_weights(resnet((29, 35, 3), backbone, width=0.125), _state_dict(source))
    x = np.random.default_rng(0).normal(size=(2, 29, 35, 3)).astype(np.float32)
    for expected, actual in zip(source(x), target(x)):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("size", [(20, 23), (21, 22)])
def test_strided_stem_pads_symmetrically_like_pytorch(size):
    """conv1 (7×7, stride 2, padding 3), bn1, ReLU and maxpool (3×3, stride 2, padding 1) against a direct
    implementation of PyTorch's definitions, on even and odd sizes (TF's "same" would pad asymmetrically)."""
    model = randomize(resnet((*size, 3), width=0.125), seed=2)
    x = np.random.default_rng(3).normal(size=(1, *size, 3)).astype(np.float32)
    pool = next(layer for layer in model.layers if isinstance(layer, keras.layers.MaxPool2D))
    actual = keras.Model(model.inputs, pool.output)(x).numpy()[0]

    kernel, bn = model.get_layer("conv1").kernel.numpy(), model.get_layer("bn1")
    padded = np.pad(x[0], ((3, 3), (3, 3), (0, 0)))
    height, width = (size[0] + 6 - 7) // 2 + 1, (size[1] + 6 - 7) // 2 + 1
    conv = np.zeros((height, width, kernel.shape[-1]), np.float32)
    for i in range(7):
        for j in range(7):
            conv += padded[i:i + 2 * height:2, j:j + 2 * width:2] @ kernel[i, j]
    scale = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    relu = np.maximum((conv - bn.moving_mean.numpy()) * scale + bn.beta.numpy(), 0)
    pooled_padded = np.pad(relu, ((1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    out_h, out_w = (height + 2 - 3) // 2 + 1, (width + 2 - 3) // 2 + 1
    expected = np.max([pooled_padded[i:i + 2 * out_h:2, j:j + 2 * out_w:2] for i in range(3) for j in range(3)],
                      axis=0)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_bad_state_dicts():
    model = resnet((29, 35, 3), width=0.125)
    state = _state_dict(model)
    with pytest.raises(UserError, match="no tensor 'layer4.1.bn2.running_var'"):
        load_torchvision_weights(model, {k: v for k, v in state.items() if k != "layer4.1.bn2.running_var"})
    with pytest.raises(UserError, match="tensor 'conv1.weight' has shape"):
        load_torchvision_weights(model, {**state, "conv1.weight": np.zeros((64, 3, 7, 7))})
    with pytest.raises(UserError, match="tensors no layer takes \\(first 'layer5.0.conv1.weight'\\)"):
        load_torchvision_weights(model, {**state, "layer5.0.conv1.weight": np.zeros(1)})
