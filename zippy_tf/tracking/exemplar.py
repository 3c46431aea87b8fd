"""Exemplar Attention and the Exemplar Transformer layer of E.T.Track (thesis §4.3.1)."""

import math

from zippy_tf._compat import keras, register, tf
from zippy_tf.tracking.layers import BN_EPSILON, ChannelAttention, TransformerFeedForward, batch_norm

_ATTENTION_ARGS = ("kernel_size", "num_exemplars", "query_dim", "temperature", "scale_by_dim", "se_ratio",
                   "pointwise_form", "depthwise_form")
POINTWISE_FORMS = ("matmul", "conv_sum")
DEPTHWISE_FORMS = ("output_sum", "mixed_kernel")


def _weighted_sum(outputs, weights):
    """Σ_e a[b, e] · y[..., c·E + e]: contracts the exemplar axis of stacked convolution outputs (4-D ops only)."""
    h, w, channels = outputs.shape[1], outputs.shape[2], outputs.shape[3]
    num = weights.shape[-1]
    stacked = tf.reshape(outputs, [-1, h * w, channels // num, num])
    mixed = tf.reduce_sum(stacked * weights[:, None, None, :], axis=-1)
    return tf.reshape(mixed, [-1, h, w, channels // num])


def _mixed_pointwise(inputs, kernel, weights):
    """x_b · (Σ_e a[b, e] W_e): mixes the (C, C) pointwise kernels per sample, then one BATCH_MATMUL.

    ``kernel`` is the stacked 1×1 kernel (1, 1, C, C·E) with output channel c·E + e; rearranging it to (E, C·C) is
    constant-folded by the converter, so the graph is FULLY_CONNECTED/BATCH_MATMUL (B·E·C² MACs to mix) and one
    BATCH_MATMUL (H·W·C² MACs to apply): the cost of a single 1×1 convolution.
    """
    h, w, channels = inputs.shape[1], inputs.shape[2], inputs.shape[3]
    num = weights.shape[-1]
    stacked = tf.transpose(tf.reshape(kernel, [channels * channels, num]))  # (E, C_in·C_out)
    mixed = tf.reshape(tf.matmul(weights, stacked), [-1, channels, channels])  # (B, C_in, C_out)
    out = tf.matmul(tf.reshape(inputs, [-1, h * w, channels]), mixed)
    return tf.reshape(out, [-1, h, w, channels])


def _mixed_depthwise(inputs, kernel, weights):
    """conv(x_b, Σ_e a[b, e] V_e) (thesis Eq. 4.6): the per-sample mixed k×k kernels applied by ONE depthwise conv.

    ``kernel`` is the stacked depthwise kernel (k, k, C, E). With a static batch of 1 (the deployed tracker) the graph
    is one matmul that mixes the kernel and a plain depthwise convolution with that computed kernel (C·k² MACs per
    position instead of E·C·k²). Other batches fold the batch into the channels, (1, H, W, B·C), so that one
    depthwise convolution still applies every sample's own kernel.
    """
    k, channels = kernel.shape[0], inputs.shape[-1]
    stacked = tf.transpose(tf.reshape(kernel, [k * k * channels, weights.shape[-1]]))  # (E, k·k·C), constant-folded
    mixed = tf.reshape(tf.matmul(weights, stacked), [-1, k, k, channels])  # (B, k, k, C)
    if inputs.shape[0] == 1:
        return tf.nn.depthwise_conv2d(inputs, tf.reshape(mixed, [k, k, channels, 1]), [1, 1, 1, 1], "SAME")
    h, w = inputs.shape[1], inputs.shape[2]
    folded = tf.reshape(tf.transpose(inputs, [1, 2, 0, 3]), [1, h, w, -1])  # channel b·C + c
    kernels = tf.reshape(tf.transpose(mixed, [1, 2, 0, 3]), [k, k, -1, 1])
    out = tf.nn.depthwise_conv2d(folded, kernels, [1, 1, 1, 1], "SAME")
    return tf.transpose(tf.reshape(out, [h, w, -1, channels]), [2, 0, 1, 3])


@register
class ExemplarAttention(keras.layers.Layer):
    r"""Exemplar Attention: a global query attends over E learned exemplars whose values are convolution kernels.

    $$ a = \mathrm{softmax}\Big(\frac{\mathrm{ReLU}(\Psi_1(X)\,W_Q)\,W_K^\top}{\sqrt{d_k}\;\tau}\Big) \in \mathbb{R}^{E},
       \qquad A(X) = \Big[\sum_e a_e W_V^{(e)}\Big] \circledast X = \sum_e a_e \big(W_V^{(e)} \circledast X\big) $$

    $\Psi_1$ is global average pooling, $W_K \in \mathbb{R}^{E \times d_k}$ input-independent exemplar keys and each
    value $W_V^{(e)}$ a (depthwise $k \times k$, pointwise $1 \times 1$) kernel pair, mixed with the same weights, as
    in the released code: dw-conv → BN → ReLU → SE → pw-conv → BN → ReLU. The scale by $\sqrt{d_k}$ and temperature
    $\tau$ come before the softmax (the code, not Alg. 4.1). TFLite needs builtin ops only in every form:

    * depthwise (``depthwise_form="output_sum"``, the default, used for training): the right-hand form (Eq. 4.5),
      one DepthwiseConv2D with depth multiplier E and a constant filter whose E outputs per channel are summed with
      the per-sample weights (E× the depthwise MACs); ``"mixed_kernel"`` is the left-hand form (Eq. 4.6), the
      thesis's deployment form: the E kernels mixed by the weights first, then ONE depthwise convolution with the
      computed kernel (batch 1: a plain depthwise conv; larger batches are folded into the channels).
      :func:`~zippy_tf.tracking.model.deployment_form` switches a tracker to it for export;
    * pointwise (``pointwise_form="matmul"``, the default): the left-hand form, the per-sample mixed (C, C) kernel
      $\sum_e a_e W_V^{(e)}$ computed with one matmul and applied with one BATCH_MATMUL, i.e. the MACs of a single
      1×1 convolution (plus B·E·C² to mix); ``"conv_sum"`` instead sums the outputs of E fixed 1×1 convolutions
      (E× the MACs; the form of earlier versions, kept for comparison). The weights are the same in every form.

    ``call(..., mix_kernels=True)`` computes the textbook form (per-sample mixed kernels for both convolutions, with
    ``map_fn``) for testing the equivalence; it does not export.

    Input and output: (B, H, W, C), stride 1.

    Args:
        kernel_size: depthwise kernel size k (3 or 5 in E.T.Track).
        num_exemplars: E (4 in E.T.Track).
        query_dim: $d_k$, width of the query and keys (256).
        temperature: $\tau$ (2 in the released parameters).
        scale_by_dim: divide the logits by $\sqrt{d_k}$.
        se_ratio: width of the SE bottleneck relative to C (0.5).
        pointwise_form: "matmul" (mixed kernel, default) or "conv_sum" (E convolutions' outputs summed).
        depthwise_form: "output_sum" (E convolutions' outputs summed, default) or "mixed_kernel" (Eq. 4.6).

    Example:
        >>> y = ExemplarAttention(kernel_size=3)(tf.ones((2, 16, 16, 64)))  # (2, 16, 16, 64)

    References:
        - [Efficient Visual Tracking with Exemplar Transformers](https://arxiv.org/abs/2112.09686)
    """

    def __init__(self, kernel_size=3, num_exemplars=4, query_dim=256, temperature=2.0, scale_by_dim=True,
                 se_ratio=0.5, pointwise_form="matmul", depthwise_form="output_sum", **kwargs):
        super().__init__(**kwargs)
        if pointwise_form not in POINTWISE_FORMS:
            raise ValueError(f"pointwise_form must be one of {POINTWISE_FORMS}, not {pointwise_form!r}")
        if depthwise_form not in DEPTHWISE_FORMS:
            raise ValueError(f"depthwise_form must be one of {DEPTHWISE_FORMS}, not {depthwise_form!r}")
        self.pointwise_form = pointwise_form
        self.depthwise_form = depthwise_form
        self.kernel_size = int(kernel_size)
        self.num_exemplars = int(num_exemplars)
        self.query_dim = int(query_dim)
        self.temperature = float(temperature)
        self.scale_by_dim = bool(scale_by_dim)
        self.se_ratio = float(se_ratio)

    def build(self, input_shape):
        channels, k, num = int(input_shape[-1]), self.kernel_size, self.num_exemplars
        self.query = keras.layers.Dense(self.query_dim, activation="relu", name="query")
        self.keys = self.add_weight("keys", (num, self.query_dim), initializer=keras.initializers.RandomNormal(0, 1))
        # Kaiming-uniform bounds of the reference, ±1/sqrt(fan_in) with fan_in = k·k (dw) and C (pw); Keras would
        # count the depthwise fan-in as k·k·C, hence the explicit bound.
        self.depthwise = keras.layers.DepthwiseConv2D(
            k, padding="same", depth_multiplier=num, use_bias=False, name="depthwise",
            depthwise_initializer=keras.initializers.RandomUniform(-1.0 / k, 1.0 / k))
        self.pointwise = keras.layers.Conv2D(
            num * channels, 1, use_bias=False, name="pointwise",
            kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"))
        self.depthwise.build(input_shape)  # the mixed forms read the kernels without calling the layers
        self.pointwise.build(input_shape)
        self.depthwise_norm = batch_norm("depthwise_norm")
        self.pointwise_norm = batch_norm("pointwise_norm")
        self.excite = ChannelAttention(self.se_ratio, name="excite")
        super().build(input_shape)

    def attention(self, inputs):
        """The exemplar weights a (B, E): one softmax per sample over the E exemplar keys."""
        query = self.query(tf.reduce_mean(inputs, axis=[1, 2]))
        scale = 1.0 / self.temperature / (math.sqrt(self.query_dim) if self.scale_by_dim else 1.0)
        return tf.nn.softmax(tf.matmul(query, self.keys, transpose_b=True) * scale, axis=-1)

    def _mixed_kernel_convolutions(self, inputs, weights):
        """The "mix kernels, then convolve" form (thesis Eq. 4.6): one dynamic kernel pair per sample."""
        channels, num = inputs.shape[-1], self.num_exemplars
        dw = tf.reshape(self.depthwise.depthwise_kernel, [self.kernel_size, self.kernel_size, channels, num])
        pw = tf.reshape(self.pointwise.kernel, [channels, channels, num])  # (in, out, exemplar): out = c·E + e
        dw_mixed = tf.einsum("hwce,be->bhwc", dw, weights)
        pw_mixed = tf.einsum("ioe,be->bio", pw, weights)

        def depthwise(args):
            x, kernel = args
            return tf.nn.depthwise_conv2d(x[None], kernel[..., None], [1, 1, 1, 1], "SAME")[0]

        return (lambda x: tf.map_fn(depthwise, (x, dw_mixed), fn_output_signature=x.dtype),
                lambda x: tf.einsum("bhwi,bio->bhwo", x, pw_mixed))

    def call(self, inputs, training=None, mix_kernels=False):
        weights = self.attention(inputs)
        if mix_kernels:
            depthwise, pointwise = self._mixed_kernel_convolutions(inputs, weights)
        else:
            if self.depthwise_form == "mixed_kernel":
                depthwise = lambda x: _mixed_depthwise(x, self.depthwise.depthwise_kernel, weights)  # noqa: E731
            else:
                depthwise = lambda x: _weighted_sum(self.depthwise(x), weights)  # noqa: E731
            if self.pointwise_form == "matmul":
                pointwise = lambda x: _mixed_pointwise(x, self.pointwise.kernel, weights)  # noqa: E731
            else:
                pointwise = lambda x: _weighted_sum(self.pointwise(x), weights)  # noqa: E731
        # BatchNorm stays after the weighted sum: it is not linear in the weights.
        x = tf.nn.relu(self.depthwise_norm(depthwise(inputs), training=training))
        x = self.excite(x)
        return tf.nn.relu(self.pointwise_norm(pointwise(x), training=training))

    def get_config(self):
        return {**super().get_config(), **{key: getattr(self, key) for key in _ATTENTION_ARGS}}


@register
class ExemplarTransformer(keras.layers.Layer):
    r"""The Exemplar Transformer layer: Exemplar Attention, a residual connection, then the post-norm FFN.

    $$ T(X) = f\big(A(X) + X\big) $$

    with $A$ :class:`ExemplarAttention` and $f$ :class:`TransformerFeedForward` (LayerNorm, C→1024→C FFN with
    dropout 0.1, LayerNorm). A drop-in replacement for a stride-1, C→C convolution module of the tracker heads.

    Args:
        kernel_size, num_exemplars, query_dim, temperature, scale_by_dim, se_ratio, pointwise_form,
            depthwise_form: see :class:`ExemplarAttention`.
        ffn_dim: hidden width of the FFN (1024).
        dropout: FFN dropout (0.1).
        epsilon: LayerNorm epsilon.

    Example:
        >>> y = ExemplarTransformer(kernel_size=5, ffn_dim=128)(tf.ones((1, 16, 16, 64)))

    References:
        - [Efficient Visual Tracking with Exemplar Transformers](https://arxiv.org/abs/2112.09686)
        - [Attention Is All You Need](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, kernel_size=3, num_exemplars=4, query_dim=256, temperature=2.0, scale_by_dim=True,
                 se_ratio=0.5, ffn_dim=1024, dropout=0.1, epsilon=BN_EPSILON, pointwise_form="matmul",
                 depthwise_form="output_sum", **kwargs):
        super().__init__(**kwargs)
        self.attend = ExemplarAttention(kernel_size, num_exemplars, query_dim, temperature, scale_by_dim, se_ratio,
                                        pointwise_form, depthwise_form, name="attention")
        for key in _ATTENTION_ARGS:  # the attention's own (normalised) values
            setattr(self, key, getattr(self.attend, key))
        self.ffn_dim = int(ffn_dim)
        self.dropout = float(dropout)
        self.epsilon = float(epsilon)
        self.feed_forward = TransformerFeedForward(ffn_dim, dropout, epsilon, name="feed_forward")

    def call(self, inputs, training=None, mix_kernels=False):
        attended = self.attend(inputs, training=training, mix_kernels=mix_kernels)
        return self.feed_forward(attended + inputs, training=training)

    def get_config(self):
        return {**super().get_config(), **{key: getattr(self, key) for key in _ATTENTION_ARGS},
                "ffn_dim": self.ffn_dim, "dropout": self.dropout, "epsilon": self.epsilon}

__all__ = ["DEPTHWISE_FORMS", "POINTWISE_FORMS", "ExemplarAttention", "ExemplarTransformer"]
