"""Binary Normalization (Bin.Norm), thesis §5.3.3."""

import math

from zippy_tf._compat import keras, register, tf


def _solve_nu(x, k, candidates, iterations):
    """Finds ν with Σ_i σ(x_i + ν) = k per row by multi-point bracketing (vectorised, fixed iteration count).

    f(ν) = Σσ(x+ν) − k is increasing in ν. With c = logit(k/M), ν = c − max(x) makes every term ≤ k/M and
    ν = c − min(x) makes every term ≥ k/M, so [c − max x, c − min x] always brackets the root. Each iteration
    evaluates f on ``candidates`` evenly spaced points and keeps the sub-interval where f changes sign.
    """
    m = x.shape[-1]
    c = math.log(k / (m - k))
    lo = c - tf.reduce_max(x, axis=-1, keepdims=True)
    hi = c - tf.reduce_min(x, axis=-1, keepdims=True)
    t = tf.linspace(tf.constant(0.0, x.dtype), 1.0, candidates)  # (n,)
    for _ in range(iterations):
        width = hi - lo
        nus = lo + width * t  # (..., n)
        f = tf.reduce_sum(tf.sigmoid(x[..., None, :] + nus[..., None]), axis=-1) - k  # (..., n)
        below = tf.reduce_sum(tf.cast(f < 0.0, tf.int32), axis=-1, keepdims=True)  # f(nus[j]) < 0 for j < below
        lower = tf.clip_by_value(below - 1, 0, candidates - 2)
        lo = tf.gather(nus, lower, batch_dims=len(nus.shape) - 1)
        hi = tf.gather(nus, lower + 1, batch_dims=len(nus.shape) - 1)
    return 0.5 * (lo + hi)


def lml_projection(x, k, candidates=16, iterations=8):
    r"""Projects logits onto the set of soft descriptors with exactly ``k`` ones in sum (thesis Eq. 5.3–5.7).

    Forward: $y = \sigma(x + \nu^*)$ with $\sum_i y_i = k$. Backward (implicit differentiation of the LML
    projection): $h = y(1-y)$, $\dot\nu = \frac{\sum_i h_i g_i}{\sum_i h_i}$, $\partial L/\partial x = h (g - \dot\nu)$.
    """

    @tf.custom_gradient
    def project(logits):
        nu = _solve_nu(logits, k, candidates, iterations)
        y = tf.sigmoid(logits + nu)

        def grad(dy):
            h = y * (1.0 - y)
            nu_dot = tf.reduce_sum(h * dy, axis=-1, keepdims=True) / tf.maximum(
                tf.reduce_sum(h, axis=-1, keepdims=True), 1e-12
            )
            return h * (dy - nu_dot)

        return y, grad

    x = tf.convert_to_tensor(x)
    return project(x if x.dtype.is_floating else tf.cast(x, tf.float32))


def top_k_binarize(x, k):
    """Hard Bin.Norm used at inference: 1 for the ``k`` largest logits of each descriptor, else 0 (float32)."""
    x = tf.convert_to_tensor(x, tf.float32)
    indices = tf.math.top_k(x, k=k, sorted=False).indices
    return tf.reduce_sum(tf.one_hot(indices, x.shape[-1], dtype=tf.float32), axis=-2)


@register
class BinaryNorm(keras.layers.Layer):
    r"""Binary Normalization: binary descriptors with exactly ``k`` ones out of ``M``.

    In training it is the LML projection $y = \arg\min_{z \in [0,1]^M} -x^\top z - H_b(z)$ s.t. $1^\top z = k$,
    solved in closed form up to a scalar, $y = \sigma(x + \nu^*)$ (an adaptive sigmoid whose entries sum to k),
    with ν* found by bracketing. At inference it is the hard top-k, so every descriptor has exactly ``k`` ones,
    and Hamming distance orders matches the same way the training-time distance $2k - 2 y_a^\top y_b$ does.

    Args:
        k: number of ones per descriptor (ZippyPoint: 64 of 256).
        candidates: points evaluated per bracketing iteration.
        iterations: bracketing iterations; the bracket shrinks by ``candidates - 1`` per iteration.

    Example:
        >>> y = BinaryNorm(k=2)(tf.constant([[0.1, 3.0, -1.0, 2.0]]))  # inference: [[0, 1, 0, 1]]

    References:
        - Kanakis et al., ZippyPoint (https://arxiv.org/abs/2203.03610), §3.3
        - Amos, Koltun, Kolter, The Limited Multi-Label Projection Layer (https://arxiv.org/abs/1906.08707)
    """

    def __init__(self, k=64, candidates=16, iterations=8, **kwargs):
        super().__init__(**kwargs)
        self.k = int(k)
        self.candidates = int(candidates)
        self.iterations = int(iterations)

    def build(self, input_shape):
        size = input_shape[-1]
        if size is not None and not 0 < self.k < size:
            raise ValueError(f"BinaryNorm needs 0 < k < descriptor size, got k={self.k} for size {size}")
        super().build(input_shape)

    def call(self, inputs, training=None):
        if training is None:
            training = keras.backend.learning_phase()
        return tf.__internal__.smart_cond.smart_cond(
            training,
            lambda: lml_projection(inputs, self.k, self.candidates, self.iterations),
            lambda: top_k_binarize(inputs, self.k),
        )

    def get_config(self):
        return {**super().get_config(), "k": self.k, "candidates": self.candidates, "iterations": self.iterations}


__all__ = ["BinaryNorm", "lml_projection", "top_k_binarize"]
