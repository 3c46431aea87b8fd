"""Output transforms of the keypoint heads (shared by ZippyPoint and KP2D)."""

from zippy_tf._compat import keras, register, tf


@register
class BorderMask(keras.layers.Layer):
    """Zeroes the outermost ring of cells of a score map: keypoints there cannot be matched reliably."""

    def call(self, inputs):
        h, w = tf.shape(inputs)[1], tf.shape(inputs)[2]
        inner = tf.ones(tf.stack([h - 2, w - 2]), inputs.dtype)
        return inputs * tf.pad(inner, [[1, 1], [1, 1]])[None, :, :, None]


@register
class CellToPixel(keras.layers.Layer):
    r"""Maps per-cell offsets in [−1, 1] (tanh) to pixel positions (x, y) of the input image.

    For cell (r, c): $x = s c + \frac{s-1}{2} + \rho\frac{s-1}{2}\,t_x$, same for y, clipped to the image, with
    cell size $s$ and cross ratio $\rho$ (2 lets a point move into the neighbouring cell), as in KP2D.

    Args:
        cell: cell size in pixels (8: the score map is at 1/8 resolution).
        cross_ratio: how far a point may leave its cell, in half-cells.
    """

    def __init__(self, cell=8, cross_ratio=2.0, **kwargs):
        super().__init__(**kwargs)
        self.cell = int(cell)
        self.cross_ratio = float(cross_ratio)

    def call(self, inputs):
        h, w = tf.shape(inputs)[1], tf.shape(inputs)[2]
        half = (self.cell - 1) / 2.0
        cols = tf.cast(tf.range(w), inputs.dtype) * self.cell + half
        rows = tf.cast(tf.range(h), inputs.dtype) * self.cell + half
        x = cols[None, None, :] + self.cross_ratio * half * inputs[..., 0]
        y = rows[None, :, None] + self.cross_ratio * half * inputs[..., 1]
        x = tf.clip_by_value(x, 0.0, tf.cast(w * self.cell - 1, inputs.dtype))
        y = tf.clip_by_value(y, 0.0, tf.cast(h * self.cell - 1, inputs.dtype))
        return tf.stack([x, y], axis=-1)

    def get_config(self):
        return {**super().get_config(), "cell": self.cell, "cross_ratio": self.cross_ratio}


__all__ = ["BorderMask", "CellToPixel"]
