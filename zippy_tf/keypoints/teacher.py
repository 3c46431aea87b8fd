r"""A Shi-Tomasi corner teacher for the score and location heads (our addition to the KP2D recipe, off by default).

Why: in CPU-sized runs the self-supervised location loss does not teach the location head sub-cell offsets (it
stays at the ≈2.5 px that cell centres give, see ``docs/keypoint-findings.md``), and the score head, trained by the
usp loss from those locations, picks cells that are not repeatable. The trained descriptors are not the main
problem: sampled at per-cell Shi-Tomasi maxima instead of the network's own keypoints, KP2D's reach a higher
homography correctness and matching score than ORB on the generated test set (``experiments/keypoint_swap.py``).
The teacher gives the heads that signal directly, per image and with no correspondence search: in every 8×8 cell,
the location of the strongest corner response (:func:`cell_teacher`) and the cell's rank by that response. It is a
dense regression target, so it is learned in far fewer steps than the KP2D losses; they keep training everything
alongside it.

The corner response is :func:`zippy_tf.keypoints.corners.corner_response` (Shi & Tomasi, CVPR 1994).
"""

from zippy_tf._compat import tf
from zippy_tf.keypoints.corners import corner_response
from zippy_tf.keypoints.losses import inner_cell_mask, warp_points

CELL = 8


def cell_teacher(images, *, cell=CELL, block_size=3):
    """Per-cell corner targets of (B, H, W, 3) BGR images (H, W multiples of ``cell``).

    Returns {"location": (B, H/cell, W/cell, 2) pixel (x, y) of each cell's strongest response (the network's
    location convention: pixel centres at integer coordinates), "rank": (B, H/cell, W/cell) each cell's strength
    as a quantile among the image's cells, 0 (weakest) … 1 (strongest)}.
    """
    response = corner_response(images, block_size)
    cells = tf.nn.space_to_depth(response, cell)  # depth index = row-in-cell · cell + column-in-cell
    index = tf.argmax(cells, -1, output_type=tf.int32)
    shape = tf.shape(index)
    cols = tf.range(shape[2])[None, None, :] * cell + index % cell
    rows = tf.range(shape[1])[None, :, None] * cell + index // cell
    location = tf.cast(tf.stack([cols, rows], -1), tf.float32)
    strength = tf.reshape(tf.reduce_max(cells, -1), [shape[0], -1])
    order = tf.argsort(tf.argsort(strength, axis=-1, stable=True), axis=-1, stable=True)
    rank = tf.cast(order, tf.float32) / tf.cast(tf.maximum(tf.shape(strength)[1] - 1, 1), tf.float32)
    return {"location": location, "rank": tf.reshape(rank, shape)}


def teacher_losses(dense, images, valid=None, *, top_fraction=0.5):
    r"""The teacher's two terms for a batch, each (B,).

    location: mean distance (px) between the network's keypoint and the teacher's corner, over the cells whose
    rank is in the top ``top_fraction`` (in weak cells the strongest pixel is noise, and the evaluation keeps
    the best-scoring quarter of the cells). score: binary cross-entropy of the score against the cell's rank,
    so the network ranks cells as the corner response does. Both over the inner cells (the network zeroes the
    border ring) where ``valid`` (B, Hc, Wc) is 1, e.g. the cells a warp filled with image content.

    Args:
        dense: the network's {"score" (B, Hc, Wc, 1), "location" (B, Hc, Wc, 2), ...}.
        images: the (B, H, W, 3) BGR images the network saw.
    """
    target = cell_teacher(images)  # integer positions and ranks: no gradient flows into the target
    inner = inner_cell_mask(target["rank"])
    mask = inner if valid is None else inner * tf.cast(valid, tf.float32)
    strong = mask * tf.cast(target["rank"] >= 1.0 - top_fraction, tf.float32)
    distance = tf.norm(dense["location"] - target["location"], axis=-1)
    score = tf.clip_by_value(dense["score"][..., 0], 1e-6, 1.0 - 1e-6)
    cross_entropy = -(target["rank"] * tf.math.log(score) + (1.0 - target["rank"]) * tf.math.log(1.0 - score))

    def mean(values, weights):
        return tf.reduce_sum(values * weights, [1, 2]) / tf.maximum(tf.reduce_sum(weights, [1, 2]), 1.0)

    return {"teacher_location": mean(distance, strong), "teacher_score": mean(cross_entropy, mask)}


def warped_cell_mask(homography, score_shape, image_size, *, cell=CELL):
    """(B, Hc, Wc) 1 where a source cell's centre, mapped by ``homography`` (B, 3, 3, source → target pixels),
    lands at least one cell inside the target: the source cells with image content (a warp fills the rest)."""
    hc, wc = score_shape[1], score_shape[2]
    ys, xs = tf.meshgrid(tf.range(hc, dtype=tf.float32), tf.range(wc, dtype=tf.float32), indexing="ij")
    centres = tf.reshape(tf.stack([xs, ys], -1) * cell + (cell - 1) / 2.0, [1, -1, 2])
    warped = warp_points(tf.tile(centres, [tf.shape(homography)[0], 1, 1]), tf.cast(homography, tf.float32))
    h, w = float(image_size[0]), float(image_size[1])
    inside = ((warped[..., 0] >= cell) & (warped[..., 0] <= w - 1 - cell) & (warped[..., 1] >= cell)
              & (warped[..., 1] <= h - 1 - cell))
    return tf.reshape(tf.cast(inside, tf.float32), [-1, hc, wc])


__all__ = ["cell_teacher", "teacher_losses", "warped_cell_mask"]
