"""Composite Learning (CompL, thesis ch. 3): a dense target task trained jointly with a self-supervised auxiliary.

    min  L_t(X_t, y_t) + λ·L_a(X_a)                                                     (Eq. 3.1)

:class:`CompLModel` wraps any trunk (a Keras model image → feature map, e.g. the DeepLabv3+ decoder) and a target
head. Each training step takes a supervised batch and an independently drawn SSL batch
(:func:`zippy_tf.multitask.views.joint_dataset`), pushes the supervised images and the SSL query views through the
trunk once, concatenated along the batch, and branches both heads from the trunk's last feature map. The SSL head,
the momentum encoder and the memory banks exist only for training: :func:`deployable` returns the single-task
network (trunk + target head).

Label fractions (:func:`label_subset`) subsample the target task only; the SSL stream uses every image.
"""

import math

import numpy as np

from zippy_tf._compat import Trainer, keras, tf
from zippy_tf.distribute import as_float32, scaled_loss, unscaled_gradients
from zippy_tf.errors import UserError
from zippy_tf.multitask.layers import L2Normalize
from zippy_tf.multitask.losses import task_loss
from zippy_tf.multitask.ssl import (
    CONTRASTIVE, DENSE_GRID, DENSE_WEIGHT, EMBEDDING, HIDDEN, MOMENTUM, SSL_WEIGHTS, TEMPERATURE, bank_initializer,
    check_ssl, densecl_loss, info_nce, momentum_update, rotation_loss, ssl_head, update_bank,
)

MODES = ("joint", "ssl", "target")
WEIGHT_DECAY = 1e-4  # SGD's, coupled as PyTorch's (B2)
SSL_KEYS = {"rotation": ("query", "rotation"), "moco": ("query", "key", "index"), "densecl": ("query", "key", "index")}


def label_subset(ids, fraction, seed=0):
    """The labelled subset: ⌊fraction · N⌋ of the N ``ids``, sorted.

    Deterministic for a seed and nested across fractions (the 5 % subset is inside the 10 % one): every fraction
    takes a prefix of the same seeded permutation of the sorted ids.
    """
    ids = sorted(set(ids))
    if not ids:
        raise UserError("no image ids to take a label subset of; pass a non-empty training split")
    if not 0.0 < fraction <= 1.0:
        raise UserError(f"label_fraction {fraction} is outside (0, 1]; pass e.g. 0.05 for 5 % of the labels")
    count = math.floor(fraction * len(ids) + 1e-9)  # 0.29 · 100 is 28.999…
    if count == 0:
        raise UserError(f"label_fraction {fraction} of {len(ids)} images selects no image; "
                        f"pass label_fraction >= {1 / len(ids):.4g}")
    order = np.random.default_rng(seed).permutation(len(ids))
    return sorted(ids[i] for i in order[:count])


def compl_splits(ids, fraction, *, seed=0, same_subset=False):
    """(labelled ids, SSL ids): the target task's :func:`label_subset`; the SSL task every image, or the same
    subset with ``same_subset`` (thesis Tables 3.3 and 3.7)."""
    labelled = label_subset(ids, fraction, seed)
    return labelled, (labelled if same_subset else sorted(set(ids)))


def supervised_head(feature_shape, outputs, image_size, *, unit=False, name="target_head"):
    """The CompL target head (B2): a 1 × 1 convolution with bias to ``outputs`` channels, resized bilinearly to
    ``image_size`` (height, width); ``unit``: then L2-normalised over the channels (surface normals)."""
    features = keras.Input(feature_shape)
    x = keras.layers.Conv2D(outputs, 1, name="prediction")(features)
    x = keras.layers.Resizing(*image_size, name="upsample")(x)
    return keras.Model(features, L2Normalize(name="unit")(x) if unit else x, name=name)


def task_target_loss(task):
    """The target loss of an RCM task ("depth", "semseg", "normals", "edge", ...; :mod:`zippy_tf.multitask.losses`)
    as ``(labels, predictions) → scalar``; labels may be the multi-task pipeline's ``{task: tensor}`` dict.
    Unweighted: CompL's reference weighs the target task 1."""
    loss = task_loss(task)

    def target_loss(labels, predictions):
        return loss(labels[task] if isinstance(labels, dict) else labels, predictions)

    return target_loss


def target_model(trunk, target_head, *, name="target_model"):
    """The single-task network ``target_head(trunk(image))`` as one functional model (weights shared)."""
    image = keras.Input(trunk.input_shape[1:], name="image")
    return keras.Model(image, target_head(trunk(image)), name=name)


def _momentum_copy(model):
    """The momentum encoder's copy of ``model``: same architecture and weights, not trained by the optimizer."""
    try:
        copy = keras.models.clone_model(model)
    except ValueError as error:  # subclassed models cannot be cloned
        raise UserError(f"cannot copy {model.name} for the momentum encoder ({error}); "
                        "build the trunk as a functional keras.Model") from None
    copy.set_weights(model.get_weights())
    copy._name = f"momentum_{model.name}"  # unique layer names inside the CompL model
    copy.trainable = False
    return copy


def _replica_mean(loss):
    """(this replica's share of the global-batch mean, the plain mean) of a scalar or per-sample loss."""
    loss = tf.convert_to_tensor(loss)
    if loss.shape.rank == 0:  # already a mean over this replica's batch
        return loss / tf.distribute.get_strategy().num_replicas_in_sync, loss
    per_sample = tf.reduce_mean(tf.reshape(loss, (tf.shape(loss)[0], -1)), axis=-1)
    return tf.nn.compute_average_loss(per_sample), tf.reduce_mean(per_sample)


class CompLModel(Trainer):
    """A trunk and a target head trained with ``fit``, jointly with a self-supervised task.

    Modes (``model.mode``, settable between fits) and the dataset elements ``train_step`` reads:

    - "joint": ``((images, labels), ssl_batch)``, loss L_target + λ·L_ssl;
    - "ssl": ``ssl_batch``, loss L_ssl (self-supervised pre-training; the target head is not trained);
    - "target": ``(images, labels)``, loss L_target (target-only training, or fine-tuning after "ssl").

    ``ssl_batch`` is a dict (:func:`zippy_tf.multitask.views.ssl_views`): ``{"query", "rotation"}`` for rotation,
    ``{"query", "key", "index"}`` for MoCo and DenseCL, with query/key views of the supervised images' size and
    ``index`` the sample ids in [0, ssl_size). For MoCo and DenseCL each step first moves the momentum encoder
    (EMA of trunk + SSL head), then encodes the keys with it in inference mode (so no batch statistics leak between
    samples; with GroupNorm, as in the thesis, the mode changes nothing), and after the update writes the keys to
    the memory banks. Calling the model gives the target predictions. ``test_step`` reads ``(images, labels)``.

    Build it (and compile it) inside ``strategy.scope()`` to train on several devices.

    Args:
        trunk: functional keras.Model, images (B, H, W, 3) → features (B, h, w, C).
        target_head: keras.Model or layer, features → target predictions (e.g. :func:`supervised_head`).
        target_loss: callable ``(labels, predictions) → loss``, a scalar mean or per-sample values; None only for
            SSL pre-training.
        ssl: "none", "rotation", "moco" or "densecl".
        ssl_weight: λ; default 0.2 for MoCo/DenseCL, 0.05 for rotation (thesis §3.4.1).
        mode: "joint", "ssl" or "target"; default "joint" with an SSL task, else "target".
        ssl_size: number of SSL images (sample ids are below it); needed by MoCo and DenseCL.
        bank_size: memory-bank slots, at most ``ssl_size`` (default: ``ssl_size``, one slot per image; fewer slots
            are shared by ids with equal ``id mod bank_size``).
        temperature: τ of InfoNCE (0.4, the released configs; the thesis gives none).
        embedding, hidden: projection sizes (128, 256).
        grid: DenseCL grid side S (8 for NYUD depth, 32 for VOC semseg).
        dense_weight: w of DenseCL's (1 − w)·global + w·dense (0.7).
        momentum: EMA momentum of the momentum encoder (0.999).
        weight_decay: L2 coefficient added to the gradients of the trained variables (PyTorch's coupled SGD decay).
        seed: seed of the memory banks' random start.

    Example:
        >>> model = CompLModel(trunk, supervised_head(trunk.output_shape[1:], 1, (425, 560)),
        ...                    task_target_loss("depth"), ssl="densecl", ssl_size=795)
        >>> model.compile(keras.optimizers.SGD(0.005, momentum=0.9))
        >>> model.fit(joint_dataset(supervised, ssl_dataset(images, "densecl", batch_size=8)), steps_per_epoch=100)
        >>> deployable(model)  # trunk + target head only
    """

    def __init__(self, trunk, target_head, target_loss=None, *, ssl="none", ssl_weight=None, mode=None,
                 ssl_size=None, bank_size=None, temperature=TEMPERATURE, embedding=EMBEDDING, hidden=HIDDEN,
                 grid=DENSE_GRID, dense_weight=DENSE_WEIGHT, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, seed=0,
                 **kwargs):
        super().__init__(name=kwargs.pop("name", "compl"), **kwargs)
        self.ssl = check_ssl(ssl)
        self.trunk, self.target_head, self.target_loss = trunk, target_head, target_loss
        self.ssl_weight = SSL_WEIGHTS[ssl] if ssl_weight is None else float(ssl_weight)
        self.temperature, self.dense_weight, self.momentum = float(temperature), float(dense_weight), float(momentum)
        self.weight_decay, self.seed = float(weight_decay), int(seed)
        self.embedding, self.hidden, self.grid = int(embedding), int(hidden), int(grid)
        self.ssl_size = None if ssl_size is None else int(ssl_size)
        if ssl != "none":
            self.ssl_head = ssl_head(ssl, tuple(trunk.output_shape[1:]), hidden=hidden, embedding=embedding, grid=grid)
        if ssl in CONTRASTIVE:
            self.bank_size = self._check_bank(ssl_size, bank_size)
            self.key_trunk, self.key_head = _momentum_copy(trunk), _momentum_copy(self.ssl_head)
            self.global_bank = self.add_weight(name="global_bank", shape=(self.bank_size, embedding),
                                               initializer=bank_initializer(seed), trainable=False)
            if ssl == "densecl":
                self.dense_bank = self.add_weight(name="dense_bank", shape=(self.bank_size, embedding),
                                                  initializer=bank_initializer(seed + 1), trainable=False)
        self.trackers = {name: keras.metrics.Mean(name) for name in ("loss", "target_loss", "ssl_loss")}
        self.mode = mode or ("target" if ssl == "none" else "joint")

    @property
    def options(self):
        """The keyword arguments this model was built with (besides trunk, head and loss), as plain data:
        ``CompLModel(trunk, head, loss, **model.options)`` builds the same model."""
        return {"ssl": self.ssl, "ssl_weight": self.ssl_weight, "mode": self.mode, "ssl_size": self.ssl_size,
                "bank_size": getattr(self, "bank_size", None), "temperature": self.temperature,
                "embedding": self.embedding, "hidden": self.hidden, "grid": self.grid,
                "dense_weight": self.dense_weight, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "seed": self.seed}

    def _check_bank(self, ssl_size, bank_size):
        if ssl_size is None or int(ssl_size) < 1:
            raise UserError(f"ssl {self.ssl!r} needs ssl_size, the number of SSL images (the memory bank size)")
        bank_size = int(ssl_size if bank_size is None else bank_size)
        if bank_size > ssl_size:
            raise UserError(f"memory bank of {bank_size} slots is larger than the {ssl_size} SSL images; "
                            f"pass bank_size <= {ssl_size} (default: one slot per image)")
        if bank_size < 1:
            raise UserError(f"bank_size {bank_size} must be at least 1; pass the number of SSL images")
        return bank_size

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, mode):
        if mode not in MODES:
            raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode != "target" and self.ssl == "none":
            raise UserError(f"mode {mode!r} needs an SSL task; pass ssl='rotation', 'moco' or 'densecl'")
        if mode != "ssl" and self.target_loss is None:
            raise UserError(f"mode {mode!r} trains the target task; pass target_loss")
        self._mode = mode
        self.train_function = None  # the next fit traces the step for this mode's batches

    @property
    def metrics(self):
        return list(self.trackers.values())

    def sync_momentum_encoder(self):
        """Copies the trunk and SSL head into the momentum encoder: call it after loading weights into the trunk
        (e.g. an ImageNet initialisation) that the CompL model was built before."""
        for key, online in zip(self.momentum_encoder_variables, self.online_encoder_variables):
            key.assign(online)

    @property
    def online_encoder_variables(self):
        """Trunk + SSL head variables, in the order of :attr:`momentum_encoder_variables`."""
        return self.trunk.weights + self.ssl_head.weights

    @property
    def momentum_encoder_variables(self):
        return self.key_trunk.weights + self.key_head.weights

    def call(self, images, training=False):
        return self.target_head(self.trunk(images, training=training), training=training)

    def _split(self, data):
        """(supervised batch or None, SSL batch or None) of one dataset element, as the mode reads it."""
        if self.mode == "joint":
            if not (isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[1], dict)):
                raise UserError("mode 'joint' reads ((images, labels), ssl_batch) elements; "
                                "build the dataset with joint_dataset(supervised, ssl)")
            supervised, ssl_batch = data
        elif self.mode == "ssl":
            supervised, ssl_batch = None, data
        else:
            supervised, ssl_batch = data, None
        if ssl_batch is not None:
            missing = [k for k in SSL_KEYS[self.ssl] if not isinstance(ssl_batch, dict) or k not in ssl_batch]
            if missing:
                raise UserError(f"SSL batches for {self.ssl} need the keys {', '.join(SSL_KEYS[self.ssl])} "
                                f"(missing {', '.join(missing)}); build them with ssl_dataset(..., {self.ssl!r})")
        if supervised is not None and not (isinstance(supervised, (tuple, list)) and len(supervised) == 2):
            raise UserError(f"mode {self.mode!r} reads supervised batches (images, labels); "
                            "pass a dataset of (images, labels) pairs")
        return supervised, ssl_batch

    def momentum_keys(self, ssl_batch):
        """SSL head outputs of the key views through the momentum encoder (no gradient)."""
        outputs = self.key_head(self.key_trunk(ssl_batch["key"], training=False), training=False)
        return tf.nest.map_structure(tf.stop_gradient, as_float32(outputs))

    def ssl_loss(self, outputs, ssl_batch, keys=None):
        """Per-sample SSL loss (B,) of the SSL head's ``outputs`` on the query views."""
        if self.ssl == "rotation":
            return rotation_loss(outputs["logits"], ssl_batch["rotation"])
        if self.ssl == "moco":
            return info_nce(outputs["global"], keys["global"], self.global_bank, ssl_batch["index"],
                            self.temperature)
        return densecl_loss(outputs, keys, self.global_bank, self.dense_bank, ssl_batch["index"],
                            temperature=self.temperature, dense_weight=self.dense_weight)

    def compute_losses(self, supervised, ssl_batch, keys=None, training=True):
        """(loss to differentiate, this replica's share of the global-batch mean; logged means).

        Supervised images and SSL query views go through the trunk once, concatenated (supervised first); the
        target head sees the first B features, the SSL head the rest.
        """
        images = [supervised[0]] if supervised is not None else []
        images += [ssl_batch["query"]] if ssl_batch is not None else []
        if len(images) == 2 and images[0].shape[1:] != images[1].shape[1:]:
            raise UserError(f"SSL views {tuple(images[1].shape[1:])} and supervised images "
                            f"{tuple(images[0].shape[1:])} differ in size; set the views' output_size to the images'")
        features = self.trunk(tf.concat(images, axis=0) if len(images) > 1 else images[0], training=training)
        total, logged = 0.0, {}
        weight = self.ssl_weight if supervised is not None else 1.0  # λ balances the two tasks of a joint step
        if supervised is not None:
            count = tf.shape(supervised[0])[0]
            predictions = as_float32(self.target_head(features[:count], training=training))  # mixed precision
            total, logged["target_loss"] = _replica_mean(self.target_loss(supervised[1], predictions))
            features = features[count:]
        if ssl_batch is not None:
            per_sample = self.ssl_loss(as_float32(self.ssl_head(features, training=training)), ssl_batch, keys)
            total += weight * tf.nn.compute_average_loss(per_sample)
            logged["ssl_loss"] = tf.reduce_mean(per_sample)
        logged["loss"] = logged.get("target_loss", 0.0) + weight * logged.get("ssl_loss", 0.0)
        return total, logged

    def _log(self, logged):
        for name, value in logged.items():
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in logged}

    @tf.autograph.experimental.do_not_convert  # see zippy_tf._compat.register
    def train_step(self, data):
        supervised, ssl_batch = self._split(data)
        keys = None
        if ssl_batch is not None and self.ssl in CONTRASTIVE:
            momentum_update(self.momentum_encoder_variables, self.online_encoder_variables, self.momentum)
            keys = self.momentum_keys(ssl_batch)
        with tf.GradientTape() as tape:
            loss, logged = self.compute_losses(supervised, ssl_batch, keys, training=True)
            if self.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
            loss = scaled_loss(self.optimizer, loss)
        variables = self.trainable_variables
        # the replicas' gradients are summed, so each adds its share of the decay; the head of the task a mode
        # leaves out has no gradient, and is not decayed either
        decay = self.weight_decay / tf.distribute.get_strategy().num_replicas_in_sync
        gradients = unscaled_gradients(self.optimizer, tape.gradient(loss, variables))
        self.optimizer.apply_gradients([(g + decay * v, v) for g, v in zip(gradients, variables) if g is not None])
        if keys is not None:
            update_bank(self.global_bank, keys["global"], ssl_batch["index"])
            if self.ssl == "densecl":
                update_bank(self.dense_bank, keys["dense_global"], ssl_batch["index"])
        return self._log(logged)

    @tf.autograph.experimental.do_not_convert  # see zippy_tf._compat.register
    def test_step(self, data):
        if self.target_loss is None:
            raise UserError("evaluation scores the target task; pass target_loss")
        images, labels = data[:2]
        return self._log({"target_loss": _replica_mean(self.target_loss(labels, self(images)))[1]})


def deployable(model):
    """The single-task network of a :class:`CompLModel`: trunk + target head, without the SSL head, the momentum
    encoder or the memory banks. It shares the CompL model's weights."""
    return target_model(model.trunk, model.target_head, name=f"{model.name}_deployed")


__all__ = [
    "CompLModel", "MODES", "WEIGHT_DECAY", "compl_splits", "deployable", "label_subset", "supervised_head",
    "target_model", "task_target_loss",
]
