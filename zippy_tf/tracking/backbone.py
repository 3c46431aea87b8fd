"""LT-Mobile: the LightTrack-Mobile backbone that E.T.Track and both baselines share (stride 16, 96 channels).

Decoded from the NAS path ``back_04502514044521042540`` cut after block 2 of the 96-channel stage (``ops_32``): a
3×3 stem, one depthwise-separable block, then inverted-residual blocks with squeeze-and-excitation and Swish.
"""

from zippy_tf._compat import keras
from zippy_tf.tracking.layers import ChannelAttention, batch_norm, make_divisible

STRIDE = 16
CHANNELS = 96
STEM_CHANNELS = 16
# (kernel, expansion, stride, output channels) of the inverted-residual blocks after the separable block.
BLOCKS = (
    (7, 4, 2, 24), (7, 6, 1, 24),
    (3, 4, 2, 40), (5, 4, 1, 40), (7, 6, 1, 40), (3, 6, 1, 40),
    (7, 4, 2, 80), (3, 4, 1, 80), (7, 4, 1, 80), (7, 4, 1, 80),
    (7, 6, 1, 96), (5, 4, 1, 96), (3, 6, 1, 96),
)
# ImageNet statistics in [0, 255] units: the backbone takes raw RGB pixels.
MEAN = tuple(255.0 * m for m in (0.485, 0.456, 0.406))
STD = tuple(255.0 * s for s in (0.229, 0.224, 0.225))


def _conv(x, filters, kernel_size, stride, name, depthwise=False):
    """Bias-free conv with symmetric (k−1)/2 padding, also at stride 2 (Keras 'same' would pad asymmetrically)."""
    if stride > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    padding = "valid" if stride > 1 else "same"
    if depthwise:
        return keras.layers.DepthwiseConv2D(kernel_size, stride, padding, use_bias=False, name=name)(x)
    return keras.layers.Conv2D(filters, kernel_size, stride, padding, use_bias=False, name=name)(x)


def _bn_act(x, name, activation="swish"):
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.Activation(activation, name=f"{name}_act")(x) if activation else x


def _squeeze_excite(x, mid, name):
    reduced_ratio = make_divisible(0.25 * mid, 8) / mid
    return ChannelAttention(reduced_ratio, divisor=1, gate="hard_sigmoid", name=f"{name}_se")(x)


def _block(x, kernel_size, expansion, stride, filters, name):
    """Inverted residual (expand → depthwise → SE → project); with expansion 1, the depthwise-separable block."""
    inputs, in_channels = x, x.shape[-1]
    mid = make_divisible(in_channels * expansion, 8)
    if expansion != 1:
        x = _bn_act(_conv(x, mid, 1, 1, f"{name}_expand"), f"{name}_expand")
    x = _bn_act(_conv(x, None, kernel_size, stride, f"{name}_dw", depthwise=True), f"{name}_dw")
    x = _squeeze_excite(x, mid, name)
    x = _bn_act(_conv(x, filters, 1, 1, f"{name}_project"), f"{name}_project", activation=None)
    if stride == 1 and in_channels == filters:
        x = keras.layers.Add(name=f"{name}_add")([inputs, x])
    return x


def lt_mobile(*, input_shape=(None, None, 3), name="lt_mobile"):
    """LT-Mobile feature extractor: RGB image in [0, 255] → (H/16, W/16, 96) features (stride 16).

    A 127×127 template gives 8×8 features, a 256×256 search image 16×16, 288×288 gives 18×18.

    References:
        - [LightTrack](https://arxiv.org/abs/2104.14545)
    """
    image = keras.Input(input_shape, name="image")
    x = keras.layers.Normalization(mean=MEAN, variance=[s * s for s in STD], name="normalize")(image)
    x = _bn_act(_conv(x, STEM_CHANNELS, 3, 2, "stem"), "stem")
    x = _block(x, 3, 1, 1, STEM_CHANNELS, "block0")
    for i, (kernel_size, expansion, stride, filters) in enumerate(BLOCKS, start=1):
        x = _block(x, kernel_size, expansion, stride, filters, f"block{i}")
    return keras.Model(image, x, name=name)


def branch_twin(backbone, prefix, *, name):
    """A twin of ``backbone`` that shares every weight except BatchNorm's: each BatchNorm layer is a new
    :func:`~zippy_tf.tracking.layers.batch_norm`, named ``prefix`` + its name, with its own statistics and affine
    parameters.

    Why: a Siamese tracker runs one backbone on two input distributions, template crops and search crops. BatchNorm
    trains on each call's batch statistics, so a single set of moving statistics blends the two, and the deployed
    branches would normalise differently from training (last-block variance about 300× apart). Twins keep one set
    per branch; at export BatchNorm folds into the convolutions, so per-frame compute is unchanged.
    """
    def twin(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            # not from_config: tf-keras 2.16 leaves `synchronized` out of the config
            return batch_norm(prefix + layer.name)
        return layer  # the same layer object: its weights are shared

    clone = keras.models.clone_model(backbone, clone_function=twin)
    return keras.Model(clone.inputs, clone.outputs, name=name)


__all__ = ["BLOCKS", "CHANNELS", "STRIDE", "branch_twin", "lt_mobile"]
