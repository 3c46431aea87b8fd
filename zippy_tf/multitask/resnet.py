"""Dilated ResNet encoders for DeepLabv3+ (output stride 16), with torchvision-like layer names.

ResNet-18 (BasicBlock [2, 2, 2, 2]) and ResNet-26 (Bottleneck [2, 2, 2, 2], expansion 4). Strides of (conv1,
maxpool, layer1..layer4) = (2, 2, 1, 2, 2, 1); layer4 is dilated by 2 instead of strided (every 3×3 convolution of
its blocks), which keeps its receptive field at output stride 16.

**Layer names** (what a converter from a torchvision ``state_dict`` maps to; ``.`` becomes ``_``):

====================================  ===================================================
torchvision                           here
====================================  ===================================================
``conv1``, ``bn1``                    ``conv1``, ``bn1``
``layer{i}.{j}.conv{n}``              ``layer{i}_{j}_conv{n}`` (n = 1, 2; 3 in Bottleneck)
``layer{i}.{j}.bn{n}``                ``layer{i}_{j}_bn{n}``
``layer{i}.0.downsample.0`` / ``.1``  ``layer{i}_0_downsample_0`` (1×1 conv) / ``_1`` (norm)
====================================  ===================================================

Convolutions have no bias. Kernels are Keras's (kh, kw, cin, cout) (torchvision's are (cout, cin, kh, kw)).
Strided convolutions pad explicitly and symmetrically (``ZeroPadding2D`` + ``"valid"``), as PyTorch does, so
torchvision weights compute the same function; stride-1 ones use ``"same"`` (symmetric for odd kernels).
Downsample blocks exist in layer2.0, layer3.0 and layer4.0 (stride, channel count or dilation changes).

:func:`load_torchvision_weights` sets a model's layers from a torchvision ``state_dict`` saved as ``.npz``.

The body is written once over a *layer factory*, ``make(kind, name, **spec)`` with kind "conv" (the
reparameterizable convolutions: conv1 and the blocks' convolutions), "downsample" (the 1×1 shortcut convolutions)
or "norm"; :func:`plain_layers` gives ordinary Keras layers, and the multi-task builder
(:mod:`zippy_tf.multitask.deeplab`) gives shared, frozen or task-specific ones per variant.
"""

import math

import numpy as np

from zippy_tf._compat import keras
from zippy_tf.errors import UserError

BACKBONES = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet26": ("bottleneck", (2, 2, 2, 2))}
NORMS = ("batch", "group")
STAGE_STRIDES = (1, 2, 2, 1)  # layer1..layer4 at output stride 16
STAGE_DILATIONS = (1, 1, 1, 2)
STAGE_WIDTHS = (64, 128, 256, 512)


def channels(count, width):
    """``count`` channels scaled by the width multiplier (at least 1)."""
    return max(1, int(round(count * width)))


def norm_layer(norm, name, num_channels, trainable=True, groups=32):
    """A BatchNormalization (PyTorch's epsilon 1e-5, momentum 0.1) or a GroupNormalization with ``groups`` groups
    (fewer when the channel count is smaller or not divisible)."""
    if norm == "batch":
        return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name, trainable=trainable)
    if norm == "group":
        return keras.layers.GroupNormalization(math.gcd(groups, num_channels), epsilon=1e-5, name=name,
                                               trainable=trainable)
    raise UserError(f"unknown norm {norm!r}; choose one of: {', '.join(NORMS)}")


def conv_layer(name, filters, kernel_size, strides=1, dilation_rate=1, padding="same", trainable=True,
               initializer="he_normal"):
    """A bias-free ``Conv2D``."""
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, dilation_rate=dilation_rate,
                               use_bias=False, name=name, trainable=trainable, kernel_initializer=initializer)


def plain_layers(norm="batch", prefix="", trainable=True):
    """The layer factory of an ordinary ResNet: plain ``Conv2D`` and ``norm`` layers named ``prefix + name``."""

    def make(kind, name, **spec):
        if kind == "norm":
            return norm_layer(norm, prefix + name, spec["channels"], trainable)
        return conv_layer(prefix + name, trainable=trainable, **spec)

    return make


def _conv(make, x, kind, name, filters, kernel_size, strides=1, dilation_rate=1):
    """``make``'s convolution on ``x``, padded as PyTorch pads ((k - 1)·d / 2 on each side)."""
    pad = (kernel_size - 1) * dilation_rate // 2
    padding = "same"
    if strides > 1 and pad:
        x, padding = keras.layers.ZeroPadding2D(pad)(x), "valid"
    elif kernel_size == 1:
        padding = "valid"
    layer = make(kind, name, filters=filters, kernel_size=kernel_size, strides=strides,
                 dilation_rate=dilation_rate, padding=padding)
    return layer(x)


def _norm(make, x, name, relu=True):
    x = make("norm", name, channels=int(x.shape[-1]))(x)
    return keras.layers.ReLU()(x) if relu else x


def _basic_block(make, x, name, planes, strides, dilation, downsample):
    y = _conv(make, x, "conv", f"{name}_conv1", planes, 3, strides, dilation)
    y = _norm(make, y, f"{name}_bn1")
    y = _conv(make, y, "conv", f"{name}_conv2", planes, 3, 1, dilation)
    y = _norm(make, y, f"{name}_bn2", relu=False)
    return _residual(make, x, y, name, planes, strides, downsample)


def _bottleneck_block(make, x, name, planes, strides, dilation, downsample):
    y = _conv(make, x, "conv", f"{name}_conv1", planes, 1)
    y = _norm(make, y, f"{name}_bn1")
    y = _conv(make, y, "conv", f"{name}_conv2", planes, 3, strides, dilation)
    y = _norm(make, y, f"{name}_bn2")
    y = _conv(make, y, "conv", f"{name}_conv3", planes * 4, 1)
    y = _norm(make, y, f"{name}_bn3", relu=False)
    return _residual(make, x, y, name, planes * 4, strides, downsample)


def _residual(make, x, y, name, filters, strides, downsample):
    if downsample:
        x = _conv(make, x, "downsample", f"{name}_downsample_0", filters, 1, strides)
        x = _norm(make, x, f"{name}_downsample_1", relu=False)
    return keras.layers.ReLU()(keras.layers.Add()([x, y]))


def resnet_body(image, make, backbone="resnet18", width=1.0):
    """(layer1 output, layer4 output) of the dilated ResNet on ``image``, with the layers ``make`` gives."""
    if backbone not in BACKBONES:
        raise UserError(f"unknown backbone {backbone!r}; choose one of: {', '.join(BACKBONES)}")
    block_type, depths = BACKBONES[backbone]
    block, expansion = (_basic_block, 1) if block_type == "basic" else (_bottleneck_block, 4)
    x = _conv(make, image, "conv", "conv1", channels(64, width), 7, 2)
    x = _norm(make, x, "bn1")
    x = keras.layers.MaxPool2D(3, 2)(keras.layers.ZeroPadding2D(1)(x))  # after ReLU, zero padding = -inf padding
    in_channels, low_level = int(x.shape[-1]), None
    for stage, (depth, strides, stage_dilation) in enumerate(zip(depths, STAGE_STRIDES, STAGE_DILATIONS), 1):
        planes = channels(STAGE_WIDTHS[stage - 1], width)
        for index in range(depth):
            first = index == 0
            downsample = first and (strides != 1 or in_channels != planes * expansion or stage_dilation != 1)
            x = block(make, x, f"layer{stage}_{index}", planes, strides if first else 1, stage_dilation, downsample)
            in_channels = planes * expansion
        if stage == 1:
            low_level = x
    return low_level, x


def resnet(input_shape=(None, None, 3), backbone="resnet18", norm="batch", width=1.0, name=None):
    """A plain dilated ResNet encoder: ``image -> [layer1 feature (stride 4), layer4 feature (stride 16)]``.

    This is the network whose weights (pretrained, or converted from torchvision) initialise the multi-task
    encoders: :func:`zippy_tf.multitask.deeplab.build_multitask` reads it by the layer names above.
    """
    image = keras.Input(tuple(input_shape), name="image")
    low_level, features = resnet_body(image, plain_layers(norm), backbone, width)
    return keras.Model(image, [low_level, features], name=name or backbone)


NORM_TENSORS = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
IGNORED_TENSORS = ("fc.", "num_batches_tracked")  # the classifier and a PyTorch BN counter


def torchvision_name(layer_name):
    """The torchvision module name of a ResNet layer here (``layer1_0_downsample_0`` -> ``layer1.0.downsample.0``)."""
    return layer_name.replace("_", ".")


def load_torchvision_weights(model, state):
    """Sets every ResNet layer of ``model`` from a torchvision ``state_dict`` given as {name: array} (for instance
    ``dict(np.load("resnet18.npz"))``): convolution weights (cout, cin, kh, kw) become Keras kernels (kh, kw, cin,
    cout); norm ``weight``/``bias``/``running_mean``/``running_var`` become ``gamma``/``beta``/``moving_mean``/
    ``moving_variance``. The classifier (``fc.*``) is ignored.

    Raises:
        UserError: a tensor the model needs is missing or has another shape, or ``state`` has tensors no layer takes
            (another architecture).
    """
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = torchvision_name(layer.name)
        values = []
        for variable in layer.weights:
            kind = variable.name.split("/")[-1].split(":")[0]
            key = f"{prefix}.{'weight' if kind == 'kernel' else NORM_TENSORS.get(kind, kind)}"
            if key not in state:
                raise UserError(f"the weights file has no tensor {key!r} for layer {layer.name!r}; convert a "
                                "torchvision ResNet of the same depth and width")
            value = np.asarray(state[key], np.float32)
            value = value.transpose(2, 3, 1, 0) if kind == "kernel" else value
            if value.shape != tuple(variable.shape):
                raise UserError(f"tensor {key!r} has shape {value.shape} but layer {layer.name!r} needs "
                                f"{tuple(variable.shape)} (Keras layout); convert a ResNet of the same width")
            values.append(value)
            used.add(key)
        layer.set_weights(values)
    extra = sorted(k for k in state if k not in used and not any(word in k for word in IGNORED_TENSORS))
    if extra:
        raise UserError(f"the weights file has {len(extra)} tensors no layer takes (first {extra[0]!r}); it is "
                        f"not a {model.name} of this configuration")
    return model


__all__ = ["BACKBONES", "NORMS", "channels", "conv_layer", "load_torchvision_weights", "norm_layer", "plain_layers",
           "resnet", "resnet_body", "torchvision_name"]
