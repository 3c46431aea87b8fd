"""The standard multi-head self-attention transformer layer: the "Standard" head baseline of thesis Table 4.11."""

import math

from zippy_tf._compat import keras, register, tf
from zippy_tf.tracking.layers import BN_EPSILON, TransformerFeedForward


@register
class SelfAttention(keras.layers.Layer):
    r"""Multi-head scaled dot-product self-attention over the H·W positions of a feature map.

    $$ A(x) = \mathrm{softmax}\Big(\frac{(x W_Q)(x W_K)^\top}{\sqrt{d_k}}\Big)\, x W_V \; W_O, \qquad d_k = C / h $$

    Cost grows with $(HW)^2$: the comparison point for Exemplar Attention, whose cost is linear in $HW$.
    Input and output: (B, H, W, C); C must be divisible by ``num_heads``.

    Args:
        num_heads: h.

    Example:
        >>> y = SelfAttention(num_heads=4)(tf.ones((1, 8, 8, 32)))

    References:
        - [Attention Is All You Need](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, num_heads=8, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if channels % self.num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({self.num_heads})")
        self.qkv = keras.layers.Conv2D(3 * channels, 1, name="qkv")  # per-position linear maps, as 1×1 convs
        self.output_projection = keras.layers.Conv2D(channels, 1, name="output_projection")
        super().build(input_shape)

    def call(self, inputs):
        h, w, channels = inputs.shape[1], inputs.shape[2], inputs.shape[3]
        heads, depth = self.num_heads, channels // self.num_heads
        qkv = tf.reshape(self.qkv(inputs), [-1, h * w, 3, heads, depth])
        q, k, v = (tf.transpose(qkv[:, :, i], [0, 2, 1, 3]) for i in range(3))  # (B, heads, HW, depth)
        weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(depth)), axis=-1)
        attended = tf.reshape(tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3]), [-1, h, w, channels])
        return self.output_projection(attended)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads}


@register
class SelfAttentionTransformer(keras.layers.Layer):
    r"""A standard post-norm transformer layer on a feature map: $T(x) = f(A(x) + x)$ with :class:`SelfAttention`.

    Same residual and FFN (:class:`TransformerFeedForward`) as :class:`ExemplarTransformer`, so the two heads differ
    only in the attention.

    Args:
        num_heads: attention heads.
        ffn_dim: hidden width of the FFN.
        dropout: FFN dropout.
        epsilon: LayerNorm epsilon.

    Example:
        >>> y = SelfAttentionTransformer(num_heads=4, ffn_dim=64)(tf.ones((1, 8, 8, 32)))

    References:
        - [Attention Is All You Need](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, num_heads=8, ffn_dim=1024, dropout=0.1, epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.ffn_dim = int(ffn_dim)
        self.dropout = float(dropout)
        self.epsilon = float(epsilon)
        self.attend = SelfAttention(num_heads, name="attention")
        self.feed_forward = TransformerFeedForward(ffn_dim, dropout, epsilon, name="feed_forward")

    def call(self, inputs, training=None):
        return self.feed_forward(self.attend(inputs) + inputs, training=training)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "ffn_dim": self.ffn_dim,
                "dropout": self.dropout, "epsilon": self.epsilon}


__all__ = ["SelfAttention", "SelfAttentionTransformer"]
