"""Builders for the quantized blocks of thesis §5.3.2 / §5.4.2, one function for any precision.

The blocks are added to a functional graph as standard Keras / Larq layers (prefixed with the block's name), not
wrapped in composite layers: the converters then see the exact op order they fuse (binary conv → ReLU → BN,
conv → BN → fake-quant), and ``larq.models.summary`` counts every weight and MAC by precision.
"""

import larq as lq

from zippy_tf._compat import keras
from zippy_tf.quantization.layers import FakeQuant, SpaceToDepth, Subsample2D, activation_layer

BN_MOMENTUM = 0.9  # ZippyPoint reference (= PyTorch's 0.1 in KP2D)


def _is_fake_quantized(tensor):
    return isinstance(getattr(tensor, "_keras_history", (None,))[0], FakeQuant)


def _apply(x, layer):
    return x if layer is None else layer(x)


def float_conv(x, filters, kernel_size, *, activation, name, batch_norm=True):
    """Conv → BN → activation (the KP2D / full-precision unit). Without BN the conv carries a bias."""
    x = keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=not batch_norm, name=f"{name}_conv")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return _apply(x, activation_layer(activation, f"{name}_act"))


def int8_conv(x, filters, kernel_size, *, activation, name, qmax=6.0, batch_norm=True):
    """The Int8 module: FQ → conv → BN → FQ → activation → FQ.

    The intermediate FQ before a non-ReLU activation matches the reference, so that TFLite's int8 hard-swish
    sees a quantized input. Weights are quantized by the converter (per channel), as in the reference. The input
    FQ is skipped when the input is already fake-quantized: an int8 conv consumes any input scale, and
    re-quantizing onto a coarser grid creates exact ties that TF and TFLite round differently.
    """
    if not _is_fake_quantized(x):
        x = FakeQuant(qmax, name=f"{name}_fq_in")(x)
    x = keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=not batch_norm, name=f"{name}_conv")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    act = activation_layer(activation, f"{name}_act")
    if act is not None and activation != "relu":
        x = FakeQuant(qmax, name=f"{name}_fq_pre")(x)
    return FakeQuant(qmax, name=f"{name}_fq_out")(_apply(x, act))


def binary_conv(x, filters, kernel_size, *, residual, activation, name, qmax=6.0):
    """Bin (``residual=False``) or Bin-R (``residual=True``): a binary conv with an Int8 residual path.

    Main path: sign(x) ⊛ sign(W) (latent weights clipped to [−1, 1], padding with +1 so LCE uses its fast
    kernel) → ReLU → BN → FQ. Bin-R adds the input back, through an Int8 1×1 conv (with bias) when the number
    of channels changes, then FQ; ``activation`` (if any) follows the add.
    """
    main = lq.layers.QuantConv2D(
        filters,
        kernel_size,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        name=f"{name}_bconv",
    )(x)
    main = keras.layers.ReLU(name=f"{name}_relu")(main)  # ReLU before BN: the order LCE fuses
    main = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(main)
    out = FakeQuant(qmax, name=f"{name}_fq_main")(main)
    if residual:
        shortcut = x
        if x.shape[-1] != filters:
            shortcut = keras.layers.Conv2D(filters, 1, name=f"{name}_shortcut")(x)
            shortcut = FakeQuant(qmax, name=f"{name}_fq_shortcut")(shortcut)
        out = FakeQuant(qmax, name=f"{name}_fq_add")(keras.layers.Add(name=f"{name}_add")([out, shortcut]))
    act = activation_layer(activation, f"{name}_act")
    return out if act is None else FakeQuant(qmax, name=f"{name}_fq_out")(act(out))


def conv_unit(x, precision, filters, kernel_size=3, *, activation, name, qmax=6.0, batch_norm=True):
    """One convolution of any precision (float, int8, bin, bin_r)."""
    if precision == "float":
        return float_conv(x, filters, kernel_size, activation=activation, name=name, batch_norm=batch_norm)
    if precision == "int8":
        return int8_conv(x, filters, kernel_size, activation=activation, name=name, qmax=qmax, batch_norm=batch_norm)
    return binary_conv(
        x, filters, kernel_size, residual=precision == "bin_r", activation=activation, name=name, qmax=qmax
    )


def pool_block(x, block):
    """Spatial reduction ÷2: max, average, sub-sampling, or learned (space-to-depth 2 + 1×1 conv)."""
    if block.pooling == "max":
        return keras.layers.MaxPool2D(2, name=f"{block.name}_max")(x)
    if block.pooling == "avg":
        return keras.layers.AveragePooling2D(2, name=f"{block.name}_avg")(x)
    if block.pooling == "subsample":
        return Subsample2D(name=f"{block.name}_subsample")(x)
    x = SpaceToDepth(2, name=f"{block.name}_s2d")(x)
    precision = "int8" if block.precision in ("bin", "bin_r") else block.precision  # 1×1 binary convs don't pay
    return conv_unit(
        x, precision, block.filters or x.shape[-1] // 4, 1, activation=block.activation, name=block.name,
        qmax=block.qmax,
    )


def build_macro_block(block, x):
    """Adds one :class:`MacroBlock` to the graph and returns its output tensor.

    Conv blocks apply ``num_convs`` units of the block's precision; binary blocks put the activation after the
    last unit only (the reference's BinRes … BinResAct pattern). Head blocks are one conv with a bias, no BN.
    """
    if block.role == "pool":
        return pool_block(x, block)
    if block.role == "head":
        return conv_unit(
            x, block.precision, block.filters, block.kernel_size, activation=block.activation, name=block.name,
            qmax=block.qmax, batch_norm=False,
        )
    binary = block.precision in ("bin", "bin_r")
    for i in range(block.num_convs):
        last = i == block.num_convs - 1
        x = conv_unit(
            x, block.precision, block.filters, block.kernel_size,
            activation=block.activation if (last or not binary) else None,
            name=f"{block.name}_{i}", qmax=block.qmax,
        )
    return x


__all__ = ["binary_conv", "build_macro_block", "conv_unit", "float_conv", "int8_conv", "pool_block"]
