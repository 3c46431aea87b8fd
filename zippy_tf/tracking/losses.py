"""Training targets and losses of the Ocean / LightTrack / E.T.Track family (anchor-free classification + IoU).

Per pair: cls = 0.5·BCE over positive cells + 0.5·BCE over negative cells, reg = UnitBox IoU loss over the cells
inside the ground-truth box, total = cls + 1.2·reg (a negative pair: cls over its cells, all negative, and no
reg). The reference averages positives and inside-cells over the whole batch; here each pair is normalised on its
own and pairs are averaged, so the loss of a batch split over replicas is exactly the loss of the whole batch
(``tf.distribute``).
"""

from zippy_tf._compat import tf
from zippy_tf.tracking.backbone import STRIDE
from zippy_tf.tracking.model import grid_points

CLS_WEIGHT = 1.0
REG_WEIGHT = 1.2
POSITIVE_RADIUS = 16.0  # pixels: cells within this Manhattan distance (in cells: radius / stride) are positives


def assign_targets(boxes, *, output_size, search_size, stride=STRIDE):
    """Ground-truth boxes in search-crop pixels → targets on the output grid.

    Args:
        boxes: (B, 4) float x1, y1, x2, y2.
        output_size: S, the grid side.
        search_size: the search crop side (fixes where the grid points are).

    Returns:
        ``(label, reg_target, reg_weight)``: label (B, S, S, 1) is 1 on the cell nearest the box centre and its
        neighbours within ``POSITIVE_RADIUS`` (Manhattan distance, in cells), else 0; reg_target (B, S, S, 4) the
        distances (l, t, r, b) from each grid point to the box sides; reg_weight (B, S, S, 1) is 1 where the grid
        point lies strictly inside the box.
    """
    boxes = tf.cast(boxes, tf.float32)
    grid = tf.constant(grid_points(output_size, search_size, stride), tf.float32)
    x1, y1, x2, y2 = (boxes[:, i, None, None] for i in range(4))
    gy, gx = (g[None] for g in tf.meshgrid(grid, grid, indexing="ij"))  # (1, S, S): row, column coordinates
    reg_target = tf.stack([gx - x1, gy - y1, x2 - gx, y2 - gy], axis=-1)
    reg_weight = tf.cast(tf.reduce_min(reg_target, axis=-1, keepdims=True) > 0, tf.float32)
    # centre cell of the target, shifted from the grid's middle cell
    cells = tf.range(output_size, dtype=tf.float32)
    col = tf.round(((x1 + x2) / 2 - search_size // 2) / stride) + output_size // 2
    row = tf.round(((y1 + y2) / 2 - search_size // 2) / stride) + output_size // 2
    distance = tf.abs(cells[None, None, :] - col) + tf.abs(cells[None, :, None] - row)
    label = tf.cast(distance <= POSITIVE_RADIUS / stride, tf.float32)[..., None]
    return label, reg_target, reg_weight


def _masked_mean(values, mask):
    """Per-pair mean of ``values`` over ``mask`` (0 for a pair with an empty mask)."""
    axes = list(range(1, values.shape.rank))
    return tf.reduce_sum(values * mask, axes) / tf.maximum(tf.reduce_sum(mask, axes), 1.0)


def classification_loss(label, logits):
    """Per-pair balanced BCE: 0.5 · mean over positives + 0.5 · mean over negatives. Shape (B,)."""
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=logits)
    return 0.5 * _masked_mean(bce, label) + 0.5 * _masked_mean(bce, 1.0 - label)


def iou_loss(reg_target, reg_pred, reg_weight):
    r"""Per-pair UnitBox IoU loss over the weighted cells, $-\log\frac{I + 1}{U + 1}$ on (l, t, r, b). Shape (B,)."""
    pl, pt, pr, pb = tf.unstack(tf.maximum(reg_pred, 0.0), axis=-1)
    # cells outside the box have negative target distances; clamped, their (masked-out) loss and gradient stay finite
    tl, tt, tr, tb = tf.unstack(tf.maximum(reg_target, 0.0), axis=-1)
    intersection = (tf.minimum(pl, tl) + tf.minimum(pr, tr)) * (tf.minimum(pt, tt) + tf.minimum(pb, tb))
    union = (pl + pr) * (pt + pb) + (tl + tr) * (tt + tb) - intersection
    loss = -tf.math.log((intersection + 1.0) / (union + 1.0))
    return _masked_mean(loss[..., None], reg_weight)


def tracking_losses(boxes, outputs, *, search_size, stride=STRIDE, positive=None):
    """Per-pair losses {"loss", "cls_loss", "reg_loss"} (each (B,)) of network ``outputs`` for ground-truth ``boxes``.

    ``positive`` (B,), optional: 0 marks a negative pair (``zippy_tf.tracking.pairs``), whose cells are all negatives
    and which has no regression loss; 1 (the default for every pair) a positive one.
    """
    label, reg_target, reg_weight = assign_targets(
        boxes, output_size=outputs["cls"].shape[1], search_size=search_size, stride=stride)
    if positive is not None:
        positive = tf.reshape(tf.cast(positive, tf.float32), [-1, 1, 1, 1])
        label, reg_weight = label * positive, reg_weight * positive
    cls = classification_loss(label, outputs["cls"])
    reg = iou_loss(reg_target, outputs["reg"], reg_weight)
    return {"loss": CLS_WEIGHT * cls + REG_WEIGHT * reg, "cls_loss": cls, "reg_loss": reg}


__all__ = ["CLS_WEIGHT", "POSITIVE_RADIUS", "REG_WEIGHT", "assign_targets", "classification_loss", "iou_loss",
           "tracking_losses"]
