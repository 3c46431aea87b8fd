"""Small stateless layers that the quantized blocks are made of.

Each maps to one TFLite builtin op (or a pattern the converter fuses), so the exported graph stays builtin-only.
"""

from zippy_tf._compat import keras, register, tf


@register
class FakeQuant(keras.layers.Layer):
    r"""Simulated 8-bit quantization with a fixed symmetric range.

    $$ q(x) = s\,\mathrm{round}\big(\mathrm{clip}(x, -m, m - s) / s\big), \qquad s = m / 2^{b-1} $$

    The converters (TFLite and LCE) read the range from the op and make the surrounding ops int8. Fixed ranges
    (±1 in the stem, ±6 elsewhere) follow the ZippyPoint reference, which trains with them. The range is
    $[-m, m - s]$ rather than $[-m, m]$: with 2^b levels a symmetric range puts zero between two levels, and
    TensorFlow and TFLite nudge it to opposite sides, so the Keras model and the flatbuffer would clip at
    different values. On this grid zero is exact and both agree bit for bit.

    Args:
        limit: the range is ``[-limit, limit]``.
        num_bits: quantization bits (8 for TFLite int8).
    """

    def __init__(self, limit=6.0, num_bits=8, **kwargs):
        super().__init__(**kwargs)
        self.limit = float(limit)
        self.num_bits = int(num_bits)

    @property
    def range(self):
        return -self.limit, self.limit - self.limit / 2 ** (self.num_bits - 1)

    def call(self, inputs):
        low, high = self.range
        return tf.quantization.fake_quant_with_min_max_vars(inputs, min=low, max=high, num_bits=self.num_bits)

    def get_config(self):
        return {**super().get_config(), "limit": self.limit, "num_bits": self.num_bits}


@register
class Clip(keras.layers.Layer):
    """Clips to ``[low, high]``: what a :class:`FakeQuant` keeps of its function once the rounding is left to a
    post-training int8 converter."""

    def __init__(self, low, high, **kwargs):
        super().__init__(**kwargs)
        self.low = float(low)
        self.high = float(high)

    def call(self, inputs):
        return tf.clip_by_value(inputs, self.low, self.high)

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high}


@register
class HardSwish(keras.layers.Layer):
    r"""$x \cdot \mathrm{ReLU6}(x + 3) / 6$; TFLite fuses the pattern into its HARD_SWISH op."""

    def call(self, inputs):
        return inputs * tf.nn.relu6(inputs + 3.0) * (1.0 / 6.0)


@register
class SpaceToDepth(keras.layers.Layer):
    """Moves each ``block_size``×``block_size`` patch into channels (H, W ÷ b; C × b²)."""

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, inputs):
        return tf.nn.space_to_depth(inputs, self.block_size)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@register
class DepthToSpace(SpaceToDepth):
    """Inverse of :class:`SpaceToDepth` ("pixel shuffle"): H, W × b; C ÷ b²."""

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)


@register
class Subsample2D(keras.layers.Layer):
    """Keeps every second row and column: the "sub-sampling" pooling candidate of the search."""

    def call(self, inputs):
        return inputs[:, ::2, ::2, :]


def activation_layer(name, layer_name=None):
    """The activation layers the blocks use, by name: hard_swish, relu, leaky_relu, sigmoid, tanh or None."""
    if name in (None, "none", "linear"):
        return None
    if name == "hard_swish":
        return HardSwish(name=layer_name)
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(0.01, name=layer_name)  # KP2D's slope
    if name in ("relu", "sigmoid", "tanh"):
        return keras.layers.Activation(name, name=layer_name)
    raise ValueError(f"unknown activation {name!r}; use hard_swish, relu, leaky_relu, sigmoid, tanh or none")


__all__ = ["Clip", "DepthToSpace", "FakeQuant", "HardSwish", "SpaceToDepth", "Subsample2D", "activation_layer"]
