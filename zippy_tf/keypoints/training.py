"""Self-supervised training of ZippyPoint and KP2D with ``model.fit``: the trainer, the schedule, checkpoints.

``KeypointTrainer`` wraps the dense keypoint network and the IO-Net and implements ``train_step``/``test_step`` on
(source, target, homography) pairs, so ``fit`` trains under any ``tf.distribute`` strategy. ``fit_keypoints`` adds
what a long run needs: per-epoch checkpoints with optimizer state, resuming, and stopping cleanly on a NaN loss.
"""

import contextlib
import functools
import json
import math
import os
import sys
import time

from zippy_tf._compat import Trainer, keras, tf
from zippy_tf.distribute import as_float32, float32_policy, synchronize_batch_norm
from zippy_tf.errors import UserError
from zippy_tf.io import atomic_path, resumable_checkpoint, write_json
from zippy_tf.keypoints.losses import (
    KP2D_LOSS_WEIGHTS, NEGATIVES, L2Distance, SoftHammingDistance, inlier_net, kp2d_losses,
)
from zippy_tf.keypoints.teacher import teacher_losses, warped_cell_mask

LOSS_TERMS = tuple(KP2D_LOSS_WEIGHTS)
TEACHER_TERMS = ("teacher_location", "teacher_score")


def kp2d_learning_rate(epoch, initial=1e-3, halve_every=10):
    r"""ZippyPoint's schedule (thesis §5.4.1): $\eta_e = \eta_0 \cdot 0.5^{\lfloor e / 10 \rfloor}$, 0-based epochs."""
    return initial * 0.5 ** (epoch // halve_every)


class KeypointTrainer(Trainer):
    r"""The dense keypoint network + IO-Net, trained on image pairs related by a known homography.

    Each step runs both images through the network (as two calls, like KP2D) and minimises
    $\mathcal{L} = \sum_t w_t \mathcal{L}_t$ over the KP2D terms (:data:`KP2D_LOSS_WEIGHTS`), averaged over the
    global batch: every replica sums its per-image losses and divides by the global batch size, so the summed
    replica gradients equal the single-device gradient.

    Args:
        network: dense network, image → {"score", "location", "descriptor"} (``zippy_tf.keypoints.model``).
        binary_descriptors: True for ZippyPoint (Bin.Norm + soft-Hamming), False for KP2D (L2).
        k: ones per binary descriptor.
        with_io: train the IO-Net outlier head (KP2D's final configuration); it is dropped at deployment.
        negatives: the descriptor triplet's negative, "hardest" (KP2D) or "semi_hard" (does not collapse the
            descriptors; see :func:`~zippy_tf.keypoints.losses.descriptor_triplet_loss`).
        sync_batch_norm: switch the network's BN layers (in place) to global-batch statistics; default: when
            the current strategy has several replicas.
        teacher_weight: weight of the Shi-Tomasi corner teacher of the score and location heads
            (:mod:`zippy_tf.keypoints.teacher`, not part of KP2D); 0 trains with the KP2D losses only.

    Example:
        >>> with strategy.scope():
        ...     trainer = KeypointTrainer(zippypoint(), binary_descriptors=True)
        ...     trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> trainer.fit(pair_dataset("images/"), epochs=50,
        ...             callbacks=[keras.callbacks.LearningRateScheduler(kp2d_learning_rate)])

    References:
        - Tang et al., KP2D (https://arxiv.org/abs/1912.10615); Kanakis et al., ZippyPoint
          (https://arxiv.org/abs/2203.03610)
    """

    def __init__(self, network, *, binary_descriptors, k=64, with_io=True, negatives="hardest", sync_batch_norm=None,
                 teacher_weight=0.0, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{network.name}_trainer"), **kwargs)
        self.network = network
        self.binary_descriptors = bool(binary_descriptors)
        self.k = int(k)
        if negatives not in NEGATIVES:
            raise UserError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
        self.negatives = negatives
        if teacher_weight < 0:
            raise UserError(f"teacher_weight must be >= 0, got {teacher_weight}")
        self.teacher_weight = float(teacher_weight)
        self.loss_terms = LOSS_TERMS + (TEACHER_TERMS if self.teacher_weight else ())
        with float32_policy():  # the IO-Net reads float32 keypoint geometry and distances, also in mixed precision
            self.io_net = inlier_net() if with_io else None
        self.distance = SoftHammingDistance(k) if binary_descriptors else L2Distance()
        if sync_batch_norm is None:
            sync_batch_norm = tf.distribute.get_strategy().num_replicas_in_sync > 1
        if sync_batch_norm:
            for model in (network, self.io_net):
                if model is not None:
                    synchronize_batch_norm(model)
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss", *(f"{t}_loss" for t in self.loss_terms), "descriptor_recall")}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, images, training=False):
        return self.network(images, training=training)

    def _image_size(self, images):
        size = tuple(images.shape[1:3])
        if None in size:
            raise UserError("training pairs need a static image size; batch them with a fixed height and width")
        return size

    def pair_losses(self, pair, training):
        """Per-image loss terms (B,) for a batch ``pair`` = {"source", "target", "homography"}, plus "total"."""
        source = as_float32(self.network(pair["source"], training=training))  # float16 under mixed precision
        target = as_float32(self.network(pair["target"], training=training))
        terms = kp2d_losses(source, target, pair["homography"], self._image_size(pair["source"]), self.distance,
                            self.io_net, training=training, negatives=self.negatives)
        terms["total"] = tf.add_n([KP2D_LOSS_WEIGHTS[t] * terms[t] for t in LOSS_TERMS])
        if self.teacher_weight:
            # Source cells outside the warped-in image content have no corners worth teaching.
            valid = warped_cell_mask(pair["homography"], tf.shape(source["score"]), self._image_size(pair["source"]))
            taught = (teacher_losses(source, pair["source"], valid), teacher_losses(target, pair["target"]))
            for t in TEACHER_TERMS:
                terms[t] = 0.5 * (taught[0][t] + taught[1][t])
            terms["total"] += self.teacher_weight * tf.add_n([terms[t] for t in TEACHER_TERMS])
        return terms

    def _update_metrics(self, terms):
        self.trackers["loss"].update_state(terms["total"])
        for t in self.loss_terms:
            self.trackers[f"{t}_loss"].update_state(terms[t])
        self.trackers["descriptor_recall"].update_state(terms["descriptor_recall"])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @tf.autograph.experimental.do_not_convert  # see zippy_tf._compat.register
    def train_step(self, pair):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            terms = self.pair_losses(pair, training=True)
            global_batch = tf.cast(tf.shape(terms["total"])[0] * replicas, tf.float32)
            loss = tf.reduce_sum(terms["total"]) / global_batch
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        return self._update_metrics(terms)

    @tf.autograph.experimental.do_not_convert  # see zippy_tf._compat.register
    def test_step(self, pair):
        return self._update_metrics(self.pair_losses(pair, training=False))

    def save_deployable(self, path):
        """Saves the dense network's weights only (.h5, atomically); the IO-Net is a training-time head."""
        with atomic_path(path) as tmp:
            self.network.save_weights(tmp)
        return path


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the trainer and optimizer state after every epoch whose loss is finite, with the epoch number and
    the history so far, so a killed run resumes losing at most the epoch in progress; with ``weights_path``, also
    the deployable weights, so the latest epoch can be evaluated while the run goes on."""

    def __init__(self, manager, epoch, history_path, history, weights_path=None):
        super().__init__()
        self.manager, self.epoch, self.history_path, self.history = manager, epoch, history_path, history
        self.weights_path = weights_path

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.model.stop_training or not all(math.isfinite(float(v)) for v in logs.values()):
            return
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        write_json(self.history_path, self.history)
        if self.weights_path is not None:
            self.model.save_deployable(self.weights_path)


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that remembers where the loss stopped being finite."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and not hasattr(self, "where"):
            self.where = (self.epoch + 1, batch + 1)


def _checkpoint(trainer, epoch):
    trainer.optimizer.build(trainer.trainable_variables)  # slot variables must exist before a restore fills them
    return tf.train.Checkpoint(trainer=trainer, optimizer=trainer.optimizer, epoch=epoch)


def _architecture(trainer):
    """What a checkpoint must match: the model name and every weight's name and shape."""
    return {"model": trainer.network.name, "weights": [[w.name, w.shape.as_list()] for w in trainer.weights]}


def _check_architecture(trainer, path):
    """Refuses a checkpoint folder written for another architecture before anything is restored into ``trainer``
    (a failed partial restore would leave it half-loaded)."""
    if not os.path.isfile(path):
        return
    ours = _architecture(trainer)
    with open(path) as f:
        theirs = json.load(f)
    if theirs != ours:
        raise UserError(f"checkpoints in {os.path.dirname(path)!r} are from model {theirs['model']!r} with other "
                        f"weights than {ours['model']!r}; they do not fit this model: resume with the same model and "
                        "config=, or use a new output=")


def fit_keypoints(trainer, dataset, *, output, epochs, steps_per_epoch=None, resume=False, learning_rate=1e-3,
                  verbose=1):
    """Trains ``trainer`` (compiled) for ``epochs`` with checkpoints in ``output``/checkpoints, the deployable weights
    of the last finished epoch in ``output``/weights.h5 and TensorBoard logs in ``output``/logs. Returns
    {"history": {metric: [per-epoch values]} including resumed epochs, "steps": steps trained in this call,
    "seconds": wall time of this call's ``fit``}. ``resume`` continues from the last checkpoint
    (:func:`zippy_tf.io.resumable_checkpoint`: required when there is one, refused when there is none).

    Raises :class:`UserError` on a NaN loss after restoring the last good checkpoint into ``trainer``.
    """
    folder = os.path.join(output, "checkpoints")
    history_path = os.path.join(folder, "history.json")
    with trainer.distribute_strategy.scope():
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = _checkpoint(trainer, epoch)
    architecture_path = os.path.join(folder, "architecture.json")
    if resume and tf.train.latest_checkpoint(folder):  # before the restore: a failed one would leave it half-loaded
        _check_architecture(trainer, architecture_path)
    manager = resumable_checkpoint(checkpoint, folder, resume, what="this model", new_folder="output=")
    history = {}
    if manager.latest_checkpoint:
        if os.path.isfile(history_path):
            with open(history_path) as f:
                history = json.load(f)
    else:
        os.makedirs(folder, exist_ok=True)
        write_json(architecture_path, _architecture(trainer))
    stop = StopOnNaN()
    callbacks = [
        keras.callbacks.LearningRateScheduler(functools.partial(kp2d_learning_rate, initial=learning_rate)),
        stop,
        EpochCheckpoint(manager, epoch, history_path, history, os.path.join(output, "weights.h5")),
        keras.callbacks.TensorBoard(os.path.join(output, "logs"), write_graph=False, profile_batch=0),
    ]
    steps_before, start = int(trainer.optimizer.iterations.numpy()), time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # Keras' progress bar writes to stdout; stdout is for the result
        trainer.fit(dataset, epochs=epochs, initial_epoch=int(epoch.numpy()), steps_per_epoch=steps_per_epoch,
                    callbacks=callbacks, verbose=verbose)
    if hasattr(stop, "where"):
        where = f"loss became NaN in epoch {stop.where[0]}, batch {stop.where[1]}"
        if not manager.latest_checkpoint:
            raise UserError(f"{where}, before any epoch finished, so no checkpoint was written; lower the learning "
                            "rate or check the data")
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        raise UserError(f"{where}; training stopped and the last good checkpoint (epoch {int(epoch.numpy())}) is "
                        f"kept in {folder!r}: lower the learning rate or check the data, then rerun with resume=True")
    return {"history": history, "steps": int(trainer.optimizer.iterations.numpy()) - steps_before,
            "seconds": time.perf_counter() - start}


__all__ = ["EpochCheckpoint", "KeypointTrainer", "StopOnNaN", "fit_keypoints", "kp2d_learning_rate",
           "synchronize_batch_norm"]
