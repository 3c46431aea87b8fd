r"""Shi-Tomasi corners: the response map, and keypoint refinement onto its maxima.

Shi & Tomasi, Good Features to Track (CVPR 1994): the smaller eigenvalue of the structure tensor
$M = \sum_{w} \nabla I \nabla I^\top$ over a ``block_size`` window, with 3×3 Sobel gradients, as
``cv2.cornerMinEigenVal(grey, block_size, 3)`` (up to a constant factor). The corner teacher
(:mod:`zippy_tf.keypoints.teacher`) trains towards its per-cell maxima; :func:`refine_to_corners` moves a
network's keypoints onto them at inference.
"""

from zippy_tf._compat import tf

BGR_TO_GREY = (0.114, 0.587, 0.299)  # OpenCV's BGR → grey weights


def _reflect(x, before, after):
    """Pads the rows and columns of (B, H, W) like OpenCV's default border (reflect-101)."""
    return tf.pad(x, [[0, 0], [before, after], [before, after]], mode="REFLECT")


def _filter(x, axis, taps):
    """Σ_i taps[i] · x[j + i] along ``axis`` (1: rows, 2: columns) of (B, H, W): a 1-D filter, valid part."""
    n = tf.shape(x)[axis] - len(taps) + 1
    shifted = [x[:, i:i + n] if axis == 1 else x[:, :, i:i + n] for i in range(len(taps))]
    return tf.add_n([t if w == 1 else w * t for w, t in zip(taps, shifted) if w])


@tf.function(reduce_retracing=True)
def corner_response(images, block_size=3):
    """(B, H, W, 3) BGR images → (B, H, W, 1) Shi-Tomasi response (borders reflected like OpenCV's default).

    Separable filters as shifted slices of (B, H, W) tensors, in one graph: a 1-channel ``conv2d`` and
    ``avg_pool2d`` are several times slower on the CPU at these sizes.
    """
    grey = tf.reduce_sum(tf.cast(images, tf.float32) * tf.constant(BGR_TO_GREY), -1)
    padded = _reflect(grey, 1, 1)
    gx = _filter(_filter(padded, 1, (1, 2, 1)), 2, (-1, 0, 1))  # 3×3 Sobel d/dx
    gy = _filter(_filter(padded, 2, (1, 2, 1)), 1, (-1, 0, 1))  # and d/dy
    products = tf.concat([gx * gx, gx * gy, gy * gy], 0)  # (3B, H, W): one window sum for all three
    before = block_size // 2  # the window's anchor, as OpenCV places it for even sizes too
    box = (1,) * block_size
    window = _filter(_filter(_reflect(products, before, block_size - 1 - before), 1, box), 2, box)
    a, b, c = tf.split(window / float(block_size * block_size), 3)
    minimum = 0.5 * (a + c) - tf.sqrt(tf.square(0.5 * (a - c)) + tf.square(b))
    return tf.maximum(minimum, 0.0)[..., None]  # ≥ 0 in exact arithmetic; clip float rounding


def _window_offsets(radius):
    """(dx, dy) of a (2r+1)² window, nearest first, so that ``argmax`` breaks ties towards the window's centre."""
    span = tf.range(-radius, radius + 1)
    dy, dx = tf.meshgrid(span, span, indexing="ij")
    offsets = tf.reshape(tf.stack([dx, dy], -1), [-1, 2])
    distance = tf.reduce_sum(tf.square(offsets), -1) * (2 * radius + 1) ** 2 + tf.range(tf.shape(offsets)[0])
    return tf.gather(offsets, tf.argsort(distance))  # stable order: by distance, then row-major


@tf.function(reduce_retracing=True)
def refine_to_corners(images, keypoints, radius=4):
    """Moves each keypoint onto the strongest Shi-Tomasi corner within ``radius`` px (our addition to ZippyPoint).

    Why: in CPU-sized training runs the location heads of ZippyPoint and KP2D do not learn sub-cell offsets
    (``docs/keypoint-findings.md``); the cells the score head picks are right, the positions inside them are not.
    Each keypoint, rounded to a pixel, is replaced by the maximum of the corner response over the (2r+1)² window
    around it, cut at the image border; ties (flat regions) keep the candidate nearest the centre. The default
    radius, half an 8-px cell, lets a point reach any pixel of a cell-sized neighbourhood.

    Args:
        images: (B, H, W, 3) BGR images in [0, 255], the ones the keypoints were detected in.
        keypoints: (B, N, 2) pixel (x, y).
        radius: window half-size in pixels; 0 only rounds.
    Returns:
        (B, N, 2) float32 pixel (x, y) on the pixel grid.
    """
    response = corner_response(images)[..., 0]
    size = tf.shape(response)[1:3]  # (H, W)
    limit = tf.stack([size[1], size[0]]) - 1  # largest x, y
    centres = tf.clip_by_value(tf.cast(tf.round(keypoints), tf.int32), 0, limit)
    candidates = centres[:, :, None, :] + _window_offsets(int(radius))[None, None]  # (B, N, K, 2)
    inside = tf.reduce_all((candidates >= 0) & (candidates <= limit), -1)
    clipped = tf.clip_by_value(candidates, 0, limit)
    values = tf.gather_nd(response, tf.reverse(clipped, [-1]), batch_dims=1)  # index (y, x)
    best = tf.argmax(tf.where(inside, values, -1.0), -1, output_type=tf.int32)
    return tf.cast(tf.gather(candidates, best, batch_dims=2), tf.float32)


__all__ = ["corner_response", "refine_to_corners"]
