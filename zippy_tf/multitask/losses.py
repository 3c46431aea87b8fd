"""Task losses, loss weights and the SGD + poly schedule of the reference (thesis §2.4.3).

======== ======================================================================== =======
task     loss                                                                     weight
======== ======================================================================== =======
edge     class-balanced BCE (positives 0.95, negatives 0.05), labels > 1 ignored  50
semseg   cross-entropy, label 255 ignored                                         1
parts    cross-entropy, label 255 ignored                                         2
sal      BCE, labels > 1 ignored                                                  5
normals  L1 of unit predictions, pixels whose label is the zero vector ignored   10
depth    L1, pixels with label 0 ignored                                          1
======== ======================================================================== =======

Every loss is the mean over valid elements (0 when there are none). Predictions are the networks' outputs: logits
for edge, sal, semseg and human_parts (B, H, W, C), unit normals, depth. Labels are (B, H, W) or (B, H, W, 1) for
the single-channel tasks and class maps, (B, H, W, 3) for normals.
"""

from zippy_tf._compat import keras, register, tf
from zippy_tf.data.multitask import IGNORE_LABEL
from zippy_tf.errors import UserError

LOSS_WEIGHTS = {"edge": 50.0, "semseg": 1.0, "human_parts": 2.0, "sal": 5.0, "normals": 10.0, "depth": 1.0}
EDGE_POSITIVE_WEIGHT = 0.95


def _like(labels, predictions):
    return tf.reshape(tf.cast(labels, tf.float32), tf.shape(predictions))


def _masked_mean(values, mask):
    mask = tf.cast(mask, tf.float32)
    return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def edge_loss(labels, logits, positive_weight=EDGE_POSITIVE_WEIGHT):
    """Class-balanced binary cross-entropy: positives weighted ``positive_weight``, negatives 1 − that."""
    labels = _like(labels, logits)
    positive = tf.cast(labels >= 0.5, tf.float32)
    weights = positive * positive_weight + (1.0 - positive) * (1.0 - positive_weight)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(positive, logits)
    return _masked_mean(weights * bce, labels <= 1.0)


def saliency_loss(labels, logits):
    """Binary cross-entropy with logits over pixels whose label is 0 or 1."""
    labels = _like(labels, logits)
    return _masked_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.minimum(labels, 1.0), logits), labels <= 1.0)


def segmentation_loss(labels, logits):
    """Cross-entropy over the classes; pixels labelled 255 are ignored."""
    labels = tf.reshape(tf.cast(labels, tf.int32), tf.shape(logits)[:-1])
    valid = tf.not_equal(labels, IGNORE_LABEL)
    safe = tf.where(valid, labels, tf.zeros_like(labels))
    return _masked_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(safe, logits), valid)


def normals_loss(labels, normals):
    """L1 between unit predicted normals and the labels, over the channels of pixels with a non-zero label."""
    labels = tf.cast(labels, tf.float32)
    valid = tf.reduce_any(tf.not_equal(labels, 0.0), axis=-1, keepdims=True)
    return _masked_mean(tf.abs(normals - labels), tf.broadcast_to(valid, tf.shape(labels)))


def depth_loss(labels, depth):
    """L1 over pixels with a non-zero depth label."""
    labels = _like(labels, depth)
    return _masked_mean(tf.abs(depth - labels), tf.not_equal(labels, 0.0))


TASK_LOSSES = {"edge": edge_loss, "semseg": segmentation_loss, "human_parts": segmentation_loss,
               "sal": saliency_loss, "normals": normals_loss, "depth": depth_loss}


def task_loss(task):
    """The loss function ``(labels, predictions) -> scalar`` of ``task``."""
    if task not in TASK_LOSSES:
        raise UserError(f"unknown task {task!r}; choose one of: {', '.join(TASK_LOSSES)}")
    return TASK_LOSSES[task]


@register
class PolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = initial · (1 − step / total_steps)^power, stepped every iteration (0 from ``total_steps`` on)."""

    def __init__(self, initial_learning_rate, total_steps, power=0.9):
        if int(total_steps) < 1:
            raise UserError(f"total_steps must be at least 1, got {total_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)
        self.power = float(power)

    def __call__(self, step):
        progress = tf.minimum(tf.cast(step, tf.float32) / self.total_steps, 1.0)
        return self.initial_learning_rate * tf.pow(1.0 - progress, self.power)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "total_steps": self.total_steps,
                "power": self.power}


def sgd(learning_rate, total_steps, momentum=0.9, power=0.9):
    """SGD with momentum and the poly schedule. Weight decay (1e-4 in the reference) is PyTorch's, added to the
    gradients by :class:`zippy_tf.multitask.training.MultiTaskTrainer`, not Keras's decoupled form."""
    return keras.optimizers.SGD(PolyDecay(learning_rate, total_steps, power), momentum=momentum)


__all__ = ["EDGE_POSITIVE_WEIGHT", "LOSS_WEIGHTS", "PolyDecay", "TASK_LOSSES", "depth_loss",
           "edge_loss", "normals_loss", "saliency_loss", "segmentation_loss", "sgd", "task_loss"]
