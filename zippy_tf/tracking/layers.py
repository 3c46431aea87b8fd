"""Small layers shared by the tracker's backbone, neck and heads: normalisation, channel attention, correlation, FFN.

Each lowers to TFLite builtin ops (MEAN, CONV_2D, LOGISTIC, MUL, BATCH_MATMUL), so both tracker
branches export without custom ops.
"""

from zippy_tf._compat import keras, register, tf

BN_EPSILON = 1e-5  # PyTorch's default, which the reference checkpoints were trained with (Keras's is 1e-3)


def batch_norm(name=None):
    """BatchNorm with the reference's epsilon and momentum (PyTorch 0.1 = Keras 0.9).

    Synchronised across replicas, so a ``tf.distribute`` run normalises over the global batch and trains exactly like
    one device with the same global batch; without a strategy it is an ordinary BatchNorm.
    """
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.9, synchronized=True, name=name)


def make_divisible(value, divisor=8):
    """Rounds ``value`` to a multiple of ``divisor`` without going more than 10% below it (the MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@register
class ChannelAttention(keras.layers.Layer):
    r"""Squeeze-and-excitation: channels rescaled by a gate computed from their global average.

    $$ y = x \odot g\big(W_2\,\mathrm{ReLU}(W_1\,\bar{x} + b_1) + b_2\big), \qquad \bar{x} = \mathrm{GAP}(x) $$

    Used three ways in E.T.Track: in the backbone (ratio 0.25 of the expanded width rounded to 8, hard-sigmoid
    gate), in each Exemplar Attention (ratio 0.5, sigmoid) and in the neck (ratio 1, sigmoid).

    Args:
        ratio: reduced channels = ``make_divisible(ratio · C, divisor)``.
        divisor: the reduced width is a multiple of this.
        gate: "sigmoid" or "hard_sigmoid" (ReLU6(x + 3) / 6).

    Example:
        >>> y = ChannelAttention(ratio=0.5)(tf.ones((1, 8, 8, 32)))

    References:
        - [Squeeze-and-Excitation Networks](https://arxiv.org/abs/1709.01507)
    """

    def __init__(self, ratio=0.5, divisor=1, gate="sigmoid", **kwargs):
        super().__init__(**kwargs)
        if gate not in ("sigmoid", "hard_sigmoid"):
            raise ValueError(f"gate must be 'sigmoid' or 'hard_sigmoid', not {gate!r}")
        self.ratio = float(ratio)
        self.divisor = int(divisor)
        self.gate = gate

    def build(self, input_shape):
        channels = int(input_shape[-1])
        reduced = make_divisible(self.ratio * channels, self.divisor)
        self.reduce = keras.layers.Conv2D(reduced, 1, activation="relu", name="reduce")
        self.expand = keras.layers.Conv2D(channels, 1, name="expand")
        super().build(input_shape)

    def call(self, inputs):
        s = self.expand(self.reduce(tf.reduce_mean(inputs, axis=[1, 2], keepdims=True)))
        s = tf.nn.sigmoid(s) if self.gate == "sigmoid" else tf.nn.relu6(s + 3.0) * (1.0 / 6.0)
        return inputs * s

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio, "divisor": self.divisor, "gate": self.gate}


@register
class PixelwiseCorrelation(keras.layers.Layer):
    r"""Pixel-wise correlation of search features with every template position (one output channel per position).

    $$ y_{h,w,i} = \langle z_i,\ x_{h,w} \rangle, \qquad i = 1 \dots H_z W_z $$

    Inputs ``[search (B, H, W, C), template (B, Hz, Wz, C)]``; output (B, H, W, Hz·Wz), template positions in
    row-major order. One BATCH_MATMUL: cheaper than a depth-wise cross-correlation and export-friendly.

    Example:
        >>> y = PixelwiseCorrelation()([tf.ones((1, 16, 16, 96)), tf.ones((1, 8, 8, 96))])  # (1, 16, 16, 64)

    References:
        - [Alpha-Refine](https://arxiv.org/abs/2012.06815) (pixel-wise correlation)
        - [LightTrack](https://arxiv.org/abs/2104.14545)
    """

    def call(self, inputs):
        search, template = inputs
        h, w, c = search.shape[1], search.shape[2], search.shape[3]
        positions = template.shape[1] * template.shape[2]
        x = tf.reshape(search, [-1, h * w, c])
        z = tf.reshape(template, [-1, positions, c])
        return tf.reshape(tf.matmul(x, z, transpose_b=True), [-1, h, w, positions])


@register
class TransformerFeedForward(keras.layers.Layer):
    r"""The post-norm feed-forward half of a transformer layer, applied at every position.

    $$ f(z) = \mathrm{LN}_2\big(u + \mathrm{Drop}(W_2\,\mathrm{ReLU}(W_1 u))\big), \qquad u = \mathrm{LN}_1(z) $$

    With $z = A(x) + x$ this is $T(x) = f(A(x) + x)$ of Vaswani et al. (thesis Eq. 4.1).

    Args:
        hidden_dim: width of the hidden linear layer (1024 in E.T.Track).
        dropout: dropout after the second linear layer (0.1 in E.T.Track).
        epsilon: LayerNorm epsilon.

    Example:
        >>> y = TransformerFeedForward(64)(tf.ones((1, 8, 8, 32)))

    References:
        - [Attention Is All You Need](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, hidden_dim=1024, dropout=0.1, epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.dropout = float(dropout)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.norm1 = keras.layers.LayerNormalization(epsilon=self.epsilon, name="norm1")
        # 1×1 convolutions = per-position linear layers; Dense on a 4-D map would export as a tensordot with
        # GATHER/SHAPE ops around FULLY_CONNECTED.
        self.linear1 = keras.layers.Conv2D(self.hidden_dim, 1, activation="relu", name="linear1")
        self.linear2 = keras.layers.Conv2D(int(input_shape[-1]), 1, name="linear2")
        self.drop = keras.layers.Dropout(self.dropout)
        self.norm2 = keras.layers.LayerNormalization(epsilon=self.epsilon, name="norm2")
        super().build(input_shape)

    def call(self, inputs, training=None):
        u = self.norm1(inputs)
        return self.norm2(u + self.drop(self.linear2(self.linear1(u)), training=training))

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "dropout": self.dropout,
                "epsilon": self.epsilon}


__all__ = ["BN_EPSILON", "ChannelAttention", "PixelwiseCorrelation", "TransformerFeedForward", "batch_norm",
           "make_divisible"]
