"""Training a tracker with ``model.fit``: the pair trainer, the reference learning-rate schedule, resumable runs.

The trainer consumes the pair sampler's batches (``zippy_tf.tracking.pairs.pair_dataset``):
``({"template": (B, T, T, 3), "search": (B, S, S, 3)}, {"box": (B, 4), "positive": (B,)})`` float32, images RGB in
[0, 255], boxes x1, y1, x2, y2 in search-crop pixels, ``positive`` 0 for a negative pair (optional). Targets are
assigned in the graph from the boxes. Build the network and the trainer under ``strategy.scope()`` to train on
several devices: losses are per pair and BatchNorm is synchronised, so N replicas compute what one device computes
on the same global batch.
"""

import contextlib
import math
import os
import sys

import numpy as np

from zippy_tf._compat import Trainer, keras, tf
from zippy_tf.distribute import as_float32
from zippy_tf.errors import UserError
from zippy_tf.io import atomic_path, resumable_checkpoint
from zippy_tf.tracking.losses import tracking_losses

LOSS_NAMES = ("loss", "cls_loss", "reg_loss")


def reference_learning_rate(epoch, *, epochs=50, peak=0.1):
    """Thesis §4.4.1: step warm-up from peak/5 to ``peak`` over 5 of 50 epochs, then log-decay to peak/500.

    (2e-2 → 1e-1 → 2e-4 with the default peak.) Shorter runs keep the proportions: the warm-up is a tenth of them.
    """
    warmup = max(1, round(epochs / 10)) if epochs > 1 else 0
    if epoch < warmup:
        return float(peak / 5 + (peak - peak / 5) * epoch / warmup)
    decay = np.logspace(math.log10(peak), math.log10(peak / 500), max(epochs - warmup, 1))
    return float(decay[min(epoch - warmup, len(decay) - 1)])


class TrackerTrainer(Trainer):
    """Trains a :class:`~zippy_tf.tracking.model.TrackerNetwork` on template/search pairs.

    ``call`` maps ``{"template", "search"}`` to the network's ``{"cls", "reg"}``; ``train_step`` adds the
    classification and IoU losses (``zippy_tf.tracking.losses``). Weights are the network's own (shared, not copied).

    Args:
        network: the tracker network, built in the same strategy scope as the trainer.

    Example:
        >>> with strategy.scope():
        ...     trainer = TrackerTrainer(ettrack())
        ...     trainer.compile(keras.optimizers.SGD(0.01, momentum=0.9))
        >>> trainer.fit(pair_dataset(sequences, batch_size=32, seed=0), steps_per_epoch=100)
    """

    def __init__(self, network, **kwargs):
        super().__init__(name=kwargs.pop("name", "tracker_trainer"), **kwargs)
        self.network = network
        self.pair = network.pair_model()
        self.search_size = int(network.search_net.inputs[0].shape[1])
        self.trackers = {name: keras.metrics.Mean(name) for name in LOSS_NAMES}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        return self.pair([inputs["template"], inputs["search"]], training=training)

    def pair_losses(self, data, training):
        """Per-pair losses {"loss", "cls_loss", "reg_loss"}, each (B,), of one batch."""
        inputs, targets = data[:2]
        predictions = as_float32(self(inputs, training=training))  # float16 under mixed precision
        return tracking_losses(targets["box"], predictions, search_size=self.search_size,
                               positive=targets.get("positive"))

    def _update(self, losses):
        for name in LOSS_NAMES:
            self.trackers[name].update_state(losses[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @tf.autograph.experimental.do_not_convert  # see zippy_tf._compat.register
    def train_step(self, data):
        with tf.GradientTape() as tape:
            losses = self.pair_losses(data, training=True)
            # sum over this replica's pairs / global batch: the replicas' gradients add up to the global mean's
            loss = tf.nn.compute_average_loss(losses["loss"])
            if self.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        return self._update(losses)

    @tf.autograph.experimental.do_not_convert  # see zippy_tf._compat.register
    def test_step(self, data):
        return self._update(self.pair_losses(data, training=False))


class _EpochGuard(keras.callbacks.Callback):
    """Stops at the first non-finite loss; after each finite epoch saves the checkpoint and the tracker weights."""

    def __init__(self, manager, epoch, weights_path):
        super().__init__()
        self.manager, self.epoch, self.weights_path = manager, epoch, weights_path
        self.failed_at = None
        self._current = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.failed_at is None and not math.isfinite(float((logs or {}).get("loss", 0.0))):
            self.failed_at = (self._current + 1, batch + 1)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.failed_at is not None:
            return
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        save_tracker_weights(self.model.network, self.weights_path)


def batch_norm_layers(model):
    """Every BatchNorm layer in ``model``, nested ones (backbones, Exemplar Attention) included."""
    return [m for m in model.submodules if isinstance(m, keras.layers.BatchNormalization)]


@contextlib.contextmanager
def batch_norm_momentum(model, momentum):
    """Sets every BatchNorm's momentum inside the block (0: keep the last batch's statistics; 1: freeze them)."""
    layers = batch_norm_layers(model)
    saved = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = momentum
        yield layers
    finally:
        for layer, value in zip(layers, saved):
            layer.momentum = value


def estimate_batch_norm_statistics(network, dataset, *, steps):
    """Precise BatchNorm: sets every BatchNorm's moving statistics to the mean of its training-mode batch statistics.

    Runs the pair model in training mode (as in ``train_step``, weights untouched) on ``steps`` batches of ``dataset``
    (the pair sampler's batches), then assigns each layer the average batch mean and variance it saw. After one batch,
    inference mode reproduces training mode on that batch (dropout aside), which the per-branch BatchNorm layers make
    possible. Use it after loading weights whose statistics were estimated differently (shared statistics, or a
    moving average lagging the last steps).

    Returns:
        The number of BatchNorm layers updated.
    """
    pair = network.pair_model()
    count = 0
    with batch_norm_momentum(pair, 0.0) as layers:  # each call leaves exactly its batch statistics in place
        sums = [[tf.zeros_like(layer.moving_mean), tf.zeros_like(layer.moving_variance)] for layer in layers]
        for inputs, _ in dataset.take(steps):
            pair([inputs["template"], inputs["search"]], training=True)
            for total, layer in zip(sums, layers):
                total[0] += layer.moving_mean
                total[1] += layer.moving_variance
            count += 1
    if count == 0:
        raise UserError("no batches to estimate BatchNorm statistics from; pass a non-empty dataset")
    for (mean, variance), layer in zip(sums, layers):
        layer.moving_mean.assign(mean / count)
        layer.moving_variance.assign(variance / count)
    return len(layers)


def freeze_batch_norm(network):
    """Makes every BatchNorm of ``network`` run in inference mode with fixed statistics and affine parameters
    (Keras's ``trainable = False``), so that training optimises exactly what the deployed tracker computes.

    Why: with 8 pairs per step the network learns to rely on batch statistics (held-out classification loss 0.25 in
    training mode, 0.36 in inference mode even with precise per-branch statistics, shipped E.T.Track weights;
    ``benchmarks/results/tracker_batch_norm.json``). Estimate the statistics first
    (:func:`estimate_batch_norm_statistics`), then fine-tune frozen, as Siamese trackers fine-tune pretrained
    backbones. Build the trainer after this call.

    Returns:
        The number of BatchNorm layers frozen.
    """
    layers = batch_norm_layers(network.pair_model())
    for layer in layers:
        layer.trainable = False
    return len(layers)


def save_tracker_weights(network, path, *, float16=False):
    """Writes ``network``'s weights to ``path`` (.h5) via a temporary file: a crash never leaves half a file.
    ``float16``: store them as float16 (see :meth:`~zippy_tf.tracking.model.TrackerNetwork.save_weights`)."""
    with atomic_path(path) as tmp:
        network.save_weights(tmp, float16=float16)
    return path


def fit_tracker(trainer, dataset, *, output, epochs, steps_per_epoch, resume=False, learning_rate=None,
                verbose=1):
    """Fits a compiled :class:`TrackerTrainer` with checkpoints, TensorBoard logs and the tracker weights in ``output``.

    ``output``/checkpoints holds the trainer + optimizer state after every finished epoch, ``output``/weights.h5 the
    last good tracker weights (``build_tracker_network(weights=...)`` reads them), ``output``/logs TensorBoard logs.

    Args:
        learning_rate: ``epoch -> rate``; default: :func:`reference_learning_rate` over ``epochs``.
        resume: continue from the last checkpoint in ``output`` (required when there is one, refused otherwise).

    Returns:
        ``{"epochs_done", "history", "weights", "checkpoint"}``.

    Raises:
        UserError: on a non-finite loss (the last good checkpoint and weights are kept) or a resume mismatch.
    """
    folder = os.path.join(output, "checkpoints")
    with trainer.distribute_strategy.scope():
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        trainer.optimizer.build(trainer.trainable_variables)  # slots must exist before a restore fills them
    checkpoint = tf.train.Checkpoint(trainer=trainer, optimizer=trainer.optimizer, epoch=epoch)
    manager = resumable_checkpoint(checkpoint, folder, resume, what="this tracker", new_folder="output=")
    schedule = learning_rate or (lambda e: reference_learning_rate(e, epochs=epochs))
    guard = _EpochGuard(manager, epoch, os.path.join(output, "weights.h5"))
    callbacks = [keras.callbacks.LearningRateScheduler(schedule), guard,
                 keras.callbacks.TensorBoard(os.path.join(output, "logs"), write_graph=False, profile_batch=0)]
    start = int(epoch.numpy())
    with contextlib.redirect_stdout(sys.stderr):  # the progress bar goes to stderr; stdout carries the JSON result
        history = trainer.fit(dataset, epochs=epochs, initial_epoch=start, steps_per_epoch=steps_per_epoch,
                              callbacks=callbacks, verbose=verbose)
    if guard.failed_at is not None:
        kept = (f"the last good checkpoint (epoch {int(epoch.numpy())}) and weights are kept in {output!r}"
                if manager.latest_checkpoint else "no epoch had finished, so nothing was saved")
        raise UserError(f"loss became NaN/inf in epoch {guard.failed_at[0]}, batch {guard.failed_at[1]}; {kept}: "
                        "lower learning_rate= or check the data, then rerun with resume=True")
    return {"epochs_done": int(epoch.numpy()), "history": {k: [float(v) for v in vals]
                                                             for k, vals in history.history.items()},
            "weights": os.path.join(output, "weights.h5"), "checkpoint": manager.latest_checkpoint}


__all__ = ["LOSS_NAMES", "TrackerTrainer", "batch_norm_layers", "batch_norm_momentum", "estimate_batch_norm_statistics",
           "fit_tracker", "freeze_batch_norm", "reference_learning_rate", "save_tracker_weights"]
