"""Training a multi-task network: one task at a time (task-conditional, incremental) or all tasks jointly.

``network[task]`` is a Keras model whose ``trainable_weights`` are exactly that task's (frozen filter banks and
other tasks' layers are not in them), so training a task cannot change another one: not its weights, not its
BatchNorm statistics (other tasks' BatchNorms are not in the graph), not through weight decay (applied to the
trained variables only). That is the incremental setting of the thesis: :func:`~zippy_tf.multitask.deeplab.add_task`
then :func:`train_task`.

Data: a ``tf.data.Dataset`` of ``(images, labels)`` batches, images float32 (B, H, W, 3) normalised as for the
encoder, labels either a dict ``{task: tensor}`` (what ``zippy_tf.data`` multi-task pipelines yield; extra tasks
are ignored) or, when one task is trained, that task's tensor. Label formats: :mod:`zippy_tf.multitask.losses`.

Optimisation as the reference: SGD (momentum 0.9) with the poly schedule stepped every iteration, weight decay
1e-4 added to the gradients (PyTorch's coupled form), each task's loss multiplied by its weight
(``LOSS_WEIGHTS``) — which for a single task only rescales its learning rate, as in the reference.
Resuming: pass ``checkpoint_dir``; the trainer and optimizer state (momentum, step, so the schedule) are saved
after every epoch and restored with ``resume=True``.
"""

from zippy_tf._compat import Trainer, keras, tf
from zippy_tf.distribute import as_float32, scaled_loss, unscaled_gradients
from zippy_tf.errors import UserError
from zippy_tf.io import resumable_checkpoint
from zippy_tf.multitask.losses import LOSS_WEIGHTS, sgd, task_loss

WEIGHT_DECAY = 1e-4
LEARNING_RATE = 0.005


class MultiTaskTrainer(Trainer):
    """Wraps a task model (image -> prediction) or a joint model (image -> {task: prediction}) with the tasks'
    weighted losses and coupled weight decay. The wrapped model's weights are used, not copied.

    Args:
        model: ``network[task]`` or ``network.joint_model()``.
        tasks: the tasks of the model's outputs, in order (one task for a task model).
        weight_decay: L2 coefficient added to the gradients of the trained variables.
        loss_weights: {task: weight}; default ``LOSS_WEIGHTS``.
    """

    def __init__(self, model, tasks, weight_decay=WEIGHT_DECAY, loss_weights=None, **kwargs):
        super().__init__(name=kwargs.pop("name", "multitask_trainer"), **kwargs)
        self.task_model, self.tasks = model, tuple(tasks)
        self.weight_decay = float(weight_decay)
        weights = {**LOSS_WEIGHTS, **(loss_weights or {})}
        self.loss_functions = {task: (task_loss(task), weights[task]) for task in self.tasks}
        self.trackers = {name: keras.metrics.Mean(name) for name in ("loss", *self.tasks)}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, images, training=False):
        return self.task_model(images, training=training)

    def _as_dict(self, values):
        return values if isinstance(values, dict) else {self.tasks[0]: values}

    def task_losses(self, data, training):
        """{task: unweighted loss} and the weighted total of one batch."""
        images, labels = data[:2]
        # float16 under mixed precision: the losses are computed in float32
        labels, predictions = self._as_dict(labels), self._as_dict(as_float32(self(images, training=training)))
        losses = {task: fn(labels[task], predictions[task]) for task, (fn, _) in self.loss_functions.items()}
        total = tf.add_n([losses[task] * weight for task, (_, weight) in self.loss_functions.items()])
        return losses, total

    def _update(self, losses, total):
        self.trackers["loss"].update_state(total)
        for task, value in losses.items():
            self.trackers[task].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @tf.autograph.experimental.do_not_convert  # see zippy_tf._compat.register
    def train_step(self, data):
        variables = self.task_model.trainable_variables
        # the replicas' gradients are summed: each one contributes its share of the mean over the global batch
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            losses, total = self.task_losses(data, training=True)
            loss = scaled_loss(self.optimizer, total / replicas)
        gradients = unscaled_gradients(self.optimizer, tape.gradient(loss, variables))
        gradients = [g + self.weight_decay / replicas * v for g, v in zip(gradients, variables)]
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._update(losses, total)

    @tf.autograph.experimental.do_not_convert  # see zippy_tf._compat.register
    def test_step(self, data):
        return self._update(*self.task_losses(data, training=False))


class _SaveEachEpoch(keras.callbacks.Callback):
    def __init__(self, manager):
        super().__init__()
        self.manager = manager

    def on_epoch_end(self, epoch, logs=None):
        self.manager.save(checkpoint_number=epoch + 1)


def _check_dataset(dataset, model, tasks):
    """Checks the dataset's structure and image size before tracing (an error inside the traced step is not one
    line)."""
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        raise UserError("dataset must yield (images, labels) pairs")
    images, labels = spec[:2]
    expected = tuple(model.inputs[0].shape[1:])
    if not tf.TensorShape(images.shape[1:]).is_compatible_with(expected):
        raise UserError(f"dataset images of shape {tuple(images.shape[1:])} do not fit the network's input "
                        f"{expected}; crop the images to it or build the network with their input_shape")
    if isinstance(labels, dict):
        missing = [task for task in tasks if task not in labels]
        if missing:
            raise UserError(f"labels have no {missing[0]!r} entry (they have {sorted(labels)}); give labels for "
                            f"every trained task: {', '.join(tasks)}")
    elif len(tasks) != 1:
        raise UserError(f"labels must be a dict {{task: tensor}} when training {len(tasks)} tasks")


def _fit(trainer, dataset, steps, steps_per_epoch, learning_rate, checkpoint_dir, resume, verbose):
    _check_dataset(dataset, trainer.task_model, trainer.tasks)
    steps_per_epoch = int(steps_per_epoch or steps)
    if steps < 1 or steps % steps_per_epoch:
        raise UserError(f"steps ({steps}) must be a positive multiple of steps_per_epoch ({steps_per_epoch})")
    trainer.compile(optimizer=sgd(learning_rate, steps))
    trainer.optimizer.build(trainer.task_model.trainable_variables)  # slots must exist before a restore fills them
    callbacks, initial_epoch = [], 0
    if checkpoint_dir is not None:
        checkpoint = tf.train.Checkpoint(model=trainer.task_model, optimizer=trainer.optimizer)
        manager = resumable_checkpoint(checkpoint, checkpoint_dir, resume, what="this task model",
                                       new_folder="checkpoint_dir")
        if manager.latest_checkpoint:
            initial_epoch = int(trainer.optimizer.iterations.numpy()) // steps_per_epoch
        callbacks.append(_SaveEachEpoch(manager))
    history = trainer.fit(dataset.repeat(), epochs=steps // steps_per_epoch, initial_epoch=initial_epoch,
                          steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose)
    return {name: [float(v) for v in values] for name, values in history.history.items()}


def train_task(network, task, dataset, *, steps, steps_per_epoch=None, learning_rate=LEARNING_RATE,
               weight_decay=WEIGHT_DECAY, checkpoint_dir=None, resume=False, verbose=0):
    """Trains ``network[task]`` alone for ``steps`` iterations; other tasks are untouched.

    Args:
        network: a :class:`~zippy_tf.multitask.deeplab.MultiTaskNetwork`.
        task: the task to train (it must be in the network: :func:`~zippy_tf.multitask.deeplab.add_task` first).
        dataset: batches ``(images, labels)``, labels ``{task: tensor, ...}`` or the task's tensor; repeated as
            needed.
        steps: optimizer steps in total (the poly schedule reaches 0 there).
        steps_per_epoch: steps between checkpoints and progress lines (default: ``steps``).
        checkpoint_dir: where to keep the model + optimizer state after each epoch; ``resume`` continues from it.

    Returns:
        the Keras history ``{metric: [value per epoch]}`` (``loss`` weighted, ``{task}`` unweighted).
    """
    model = network[task]
    if network.variant.joint:
        raise UserError(f"variant {network.config.variant!r} shares a trainable encoder: train it with train_joint")
    trainer = MultiTaskTrainer(model, [task], weight_decay)
    return _fit(trainer, dataset, steps, steps_per_epoch, learning_rate, checkpoint_dir, resume, verbose)


def train_joint(network, dataset, *, steps, steps_per_epoch=None, learning_rate=LEARNING_RATE,
                weight_decay=WEIGHT_DECAY, checkpoint_dir=None, resume=False, verbose=0):
    """Trains every task of ``network`` together (the multi_task baseline): one forward pass through the shared
    encoder, the weighted sum of the tasks' losses. Labels must be dicts with every task. Arguments as
    :func:`train_task`."""
    trainer = MultiTaskTrainer(network.joint_model(), network.tasks, weight_decay)
    return _fit(trainer, dataset, steps, steps_per_epoch, learning_rate, checkpoint_dir, resume, verbose)


__all__ = ["LEARNING_RATE", "MultiTaskTrainer", "WEIGHT_DECAY", "train_joint", "train_task"]
