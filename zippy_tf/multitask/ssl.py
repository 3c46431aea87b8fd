"""Self-supervised auxiliary tasks of Composite Learning (thesis §3.3.2–3.3.3): rotation, MoCo v2 and DenseCL.

Each task is a head on the trunk's last feature map (a plain functional builder), a per-sample loss, and for the
contrastive tasks a memory bank and the momentum encoder's update. :class:`~zippy_tf.multitask.compl.CompLModel`
combines them with a target task.

Memory banks follow CompL rather than MoCo's FIFO queue: one slot per SSL image, written by sample id, and the
sample's own slot is masked out of the negatives, so each query has exactly one positive (thesis §3.4.1).
"""

import numpy as np

from zippy_tf._compat import keras, register, tf
from zippy_tf.errors import UserError

SSL_TASKS = ("none", "rotation", "moco", "densecl")
CONTRASTIVE = ("moco", "densecl")
SSL_WEIGHTS = {"none": 0.0, "rotation": 0.05, "moco": 0.2, "densecl": 0.2}  # λ of thesis §3.4.1
ROTATIONS = 4  # 0°, 90°, 180°, 270°
TEMPERATURE = 0.4  # the released CompL configs; the thesis gives no value
EMBEDDING = 128
HIDDEN = 256
DENSE_GRID = 8  # S for NYUD depth (32 for VOC semseg at 512 × 512)
DENSE_WEIGHT = 0.7  # w in (1 − w)·global + w·dense
MOMENTUM = 0.999


def check_ssl(ssl):
    """Raises :class:`UserError` unless ``ssl`` is one of :data:`SSL_TASKS`."""
    if ssl not in SSL_TASKS:
        raise UserError(f"unknown ssl {ssl!r}; choose one of {', '.join(SSL_TASKS)}")
    return ssl


@register
class GridPooling(keras.layers.Layer):
    """Average pooling of an (H, W) map to a ``grid`` × ``grid`` one, with PyTorch's adaptive pooling bins
    (cell i covers rows ⌊i·H/S⌋ to ⌈(i+1)·H/S⌉): DenseCL's pooling before the dense projection.

    Args:
        grid: S, the output side.

    Example:
        >>> GridPooling(8)(tf.ones((2, 32, 40, 16))).shape
        TensorShape([2, 8, 8, 16])
    """

    def __init__(self, grid, **kwargs):
        super().__init__(**kwargs)
        self.grid = int(grid)

    @staticmethod
    def bins(size, grid):
        """(grid, size) matrix whose row i averages the inputs of cell i."""
        matrix = np.zeros((grid, size), np.float32)
        for i in range(grid):
            start, end = (i * size) // grid, -((-(i + 1) * size) // grid)
            matrix[i, start:end] = 1.0 / (end - start)
        return matrix

    def build(self, input_shape):
        height, width = int(input_shape[1]), int(input_shape[2])
        if height < self.grid or width < self.grid:
            raise UserError(f"feature map {height}x{width} is smaller than the DenseCL grid {self.grid}; "
                            "pass a smaller grid or a larger input")
        self.rows = tf.constant(self.bins(height, self.grid))
        self.cols = tf.constant(self.bins(width, self.grid))
        super().build(input_shape)

    def call(self, inputs):
        return tf.einsum("ih,bhwc,jw->bijc", self.rows, inputs, self.cols)

    def get_config(self):
        return {**super().get_config(), "grid": self.grid}


def _projection(x, hidden, embedding, name, dense=False):
    """MoCo v2's two-layer projection: linear → ReLU → linear (1 × 1 convolutions when ``dense``)."""
    layer = (lambda units, **kw: keras.layers.Conv2D(units, 1, **kw)) if dense else keras.layers.Dense
    x = layer(hidden, activation="relu", name=f"{name}_hidden")(x)
    return layer(embedding, name=f"{name}_embedding")(x)


def rotation_head(feature_shape, *, name="rotation_head"):
    """GAP → Dense(4): the rotation classifier. Outputs ``{"logits": (B, 4)}``."""
    features = keras.Input(feature_shape)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    return keras.Model(features, {"logits": keras.layers.Dense(ROTATIONS, name="logits")(pooled)}, name=name)


def moco_head(feature_shape, *, hidden=HIDDEN, embedding=EMBEDDING, name="moco_head"):
    """GAP → Dense(hidden) → ReLU → Dense(embedding): MoCo v2's head. Outputs ``{"global": (B, embedding)}``."""
    features = keras.Input(feature_shape)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    return keras.Model(features, {"global": _projection(pooled, hidden, embedding, "global")}, name=name)


def densecl_head(feature_shape, *, hidden=HIDDEN, embedding=EMBEDDING, grid=DENSE_GRID, name="densecl_head"):
    """DenseCL's head: MoCo's global projection plus a dense one on the feature map pooled to a grid × grid map.

    Outputs:
        ``"global"`` (B, embedding); ``"dense"`` (B, S², embedding), the 1 × 1 conv projection of each cell;
        ``"dense_global"`` (B, embedding), its average over the cells (what the dense memory bank stores);
        ``"identity"`` (B, S², C), the pooled trunk features before projection (used to match cells).
    """
    features = keras.Input(feature_shape)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    cells = GridPooling(grid, name="grid_pool")(features)
    dense = _projection(cells, hidden, embedding, "dense", dense=True)
    flat = keras.layers.Reshape((grid * grid, embedding), name="dense_cells")(dense)
    return keras.Model(features, {
        "global": _projection(pooled, hidden, embedding, "global"),
        "dense": flat,
        "dense_global": keras.layers.GlobalAveragePooling1D(name="dense_pool")(flat),
        "identity": keras.layers.Reshape((grid * grid, int(feature_shape[-1])), name="identity")(cells),
    }, name=name)


def ssl_head(ssl, feature_shape, *, hidden=HIDDEN, embedding=EMBEDDING, grid=DENSE_GRID):
    """The head of SSL task ``ssl`` ("rotation", "moco" or "densecl") on features of ``feature_shape`` (H, W, C)."""
    if check_ssl(ssl) == "rotation":
        return rotation_head(feature_shape)
    if ssl == "moco":
        return moco_head(feature_shape, hidden=hidden, embedding=embedding)
    if ssl == "densecl":
        return densecl_head(feature_shape, hidden=hidden, embedding=embedding, grid=grid)
    raise UserError("ssl 'none' has no head; choose rotation, moco or densecl")


def rotate(images, rotations):
    """Each image of ``images`` (B, H, W, C) turned counter-clockwise by ``rotations`` (B,) quarter turns.

    Non-square images are resized back to H × W after a quarter turn, so that the rotated batch can be
    concatenated with the supervised one.
    """
    size = images.shape[1:3]
    turns = [tf.image.rot90(images, k) for k in range(ROTATIONS)]
    if size[0] != size[1]:
        turns = [t if k % 2 == 0 else tf.image.resize(t, size) for k, t in enumerate(turns)]
    return tf.gather(tf.stack(turns, axis=1), tf.cast(rotations, tf.int32), batch_dims=1)


def rotation_loss(logits, rotations):
    """Per-sample cross-entropy (B,) of the 4-way rotation classifier."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(rotations, tf.int32), logits)


def info_nce(query, key, bank, index, temperature=TEMPERATURE):
    r"""Per-sample InfoNCE (Eq. 3.2) of queries against their keys, with the memory bank as negatives.

    $$ \mathcal{L} = -\log \frac{\exp(q\cdot k^+/\tau)}{\exp(q\cdot k^+/\tau) + \sum_{j \ne i} \exp(q\cdot m_j/\tau)} $$

    q and k are L2-normalised here; the bank rows are stored normalised. Slot ``index`` (the sample's own, which
    holds an older key of the same image) is left out of the negatives.

    Args:
        query, key: (N, D).
        bank: (M, D) memory bank.
        index: (N,) sample ids; the own slot is ``index mod M``.
    """
    query = tf.math.l2_normalize(query, axis=-1)
    key = tf.math.l2_normalize(key, axis=-1)
    positive = tf.reduce_sum(query * key, axis=-1, keepdims=True)
    negatives = tf.matmul(query, bank, transpose_b=True)
    own = tf.one_hot(tf.cast(index, tf.int32) % tf.shape(bank)[0], tf.shape(bank)[0], on_value=True, off_value=False)
    negatives = tf.where(own, tf.constant(-np.inf, negatives.dtype), negatives)
    logits = tf.concat([positive, negatives], axis=-1) / temperature
    return -tf.nn.log_softmax(logits, axis=-1)[:, 0]


def dense_positives(identity_query, identity_key):
    """For each query cell, the key cell whose identity (trunk) feature is most cosine-similar: (B, S²) indices."""
    similarity = tf.matmul(tf.math.l2_normalize(identity_query, axis=-1),
                           tf.math.l2_normalize(identity_key, axis=-1), transpose_b=True)
    return tf.argmax(similarity, axis=-1, output_type=tf.int32)


def densecl_loss(query, key, global_bank, dense_bank, index, *, temperature=TEMPERATURE, dense_weight=DENSE_WEIGHT):
    """Per-sample DenseCL loss (B,): (1 − w)·global InfoNCE + w·dense InfoNCE averaged over the query's cells.

    Args:
        query, key: :func:`densecl_head` outputs of the query views (online) and the key views (momentum encoder).
        global_bank: (M, D) bank of global keys; dense_bank: (M, D) bank of cell-averaged dense keys.
        index: (B,) sample ids.
    """
    global_term = info_nce(query["global"], key["global"], global_bank, index, temperature)
    matched = tf.gather(key["dense"], dense_positives(query["identity"], key["identity"]), batch_dims=1)
    cells = tf.shape(query["dense"])[1]
    dimension = query["dense"].shape[-1]
    dense_term = info_nce(tf.reshape(query["dense"], (-1, dimension)), tf.reshape(matched, (-1, dimension)),
                          dense_bank, tf.repeat(index, cells), temperature)
    dense_term = tf.reduce_mean(tf.reshape(dense_term, (-1, cells)), axis=-1)
    return (1.0 - dense_weight) * global_term + dense_weight * dense_term


def bank_initializer(seed=0):
    """MoCo's memory-bank start: random unit vectors."""

    def initialize(shape, dtype=tf.float32):
        return tf.math.l2_normalize(tf.random.stateless_normal(shape, (seed, 0), dtype=dtype), axis=-1)

    return initialize


def _assign(variables, values):
    """Assigns ``values`` to ``variables`` from a replica (or without a strategy), on every replica's copy."""

    def merge(strategy, variables, values):
        for variable, value in zip(variables, values):
            strategy.extended.update(variable, lambda v, x: v.assign(x), args=(value,), group=False)

    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: already merged
        merge(tf.distribute.get_strategy(), list(variables), list(values))
    else:
        context.merge_call(merge, args=(list(variables), list(values)))


def momentum_update(key_variables, online_variables, momentum=MOMENTUM):
    """The momentum encoder's EMA, every variable: k ← m·k + (1 − m)·q. Call it from a replica (e.g. train_step)."""
    _assign(key_variables, [momentum * k + (1.0 - momentum) * q for k, q in zip(key_variables, online_variables)])


def update_bank(bank, keys, index):
    """Writes the L2-normalised ``keys`` (B, D) to slots ``index mod M`` of ``bank`` (M, D), the keys of every
    replica included. Call it from a replica (e.g. train_step)."""
    context = tf.distribute.get_replica_context()
    keys, index = tf.math.l2_normalize(keys, axis=-1), tf.cast(index, tf.int32)
    if context is not None and context.num_replicas_in_sync > 1:
        keys, index = context.all_gather(keys, axis=0), context.all_gather(index, axis=0)
    slots = (index % tf.shape(bank)[0])[:, None]
    _assign([bank], [tf.tensor_scatter_nd_update(bank, slots, tf.cast(keys, bank.dtype))])


__all__ = [
    "CONTRASTIVE", "DENSE_GRID", "DENSE_WEIGHT", "EMBEDDING", "GridPooling", "HIDDEN", "MOMENTUM", "ROTATIONS",
    "SSL_TASKS", "SSL_WEIGHTS", "TEMPERATURE", "bank_initializer", "check_ssl", "dense_positives", "densecl_head",
    "densecl_loss", "info_nce", "moco_head", "momentum_update", "rotate", "rotation_head", "rotation_loss",
    "ssl_head", "update_bank",
]
