"""Tiny CompL models and batches shared by ``test_compl.py`` and the ``compl_mirrored.py`` script."""

import numpy as np

from zippy_tf import keras, tf
from zippy_tf.multitask.compl import CompLModel, supervised_head

SIZE, BATCH, IMAGES = 16, 2, 6
SSL_SIZE = 6


def tiny_trunk(seed=0):
    """Image → stride-4, 8-channel feature map; GroupNorm keeps the samples of a batch independent."""
    init = keras.initializers.GlorotUniform(seed)
    image = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", kernel_initializer=init)(image / 255.0)
    x = keras.layers.GroupNormalization(groups=2)(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", kernel_initializer=init)(x)
    return keras.Model(image, x, name="trunk")


def depth_loss(labels, predictions):
    """Per-sample L1, the shape of the RCM depth loss."""
    return tf.reduce_mean(tf.abs(labels - predictions), axis=[1, 2, 3])


def build(ssl="none", seed=0, **kwargs):
    """A CompL model on :func:`tiny_trunk` with a 1-channel (depth) head and small projections; the heads'
    initialisation is seeded too."""
    keras.utils.set_random_seed(seed)
    trunk = tiny_trunk(seed)
    kwargs.setdefault("ssl_size", SSL_SIZE if ssl in ("moco", "densecl") else None)
    return CompLModel(trunk, supervised_head(trunk.output_shape[1:], 1, (SIZE, SIZE)), depth_loss, ssl=ssl,
                      embedding=8, hidden=8, grid=2, **kwargs)


def _images(rng, batch, high=255.0, channels=3):
    return tf.constant(rng.uniform(0, high, (batch, SIZE, SIZE, channels)).astype(np.float32))


def supervised_batch(seed=0, batch=BATCH):
    """(images, depth) of ``batch`` random samples."""
    rng = np.random.default_rng(seed)
    return _images(rng, batch), _images(rng, batch, 1.0, 1)


def ssl_batch(ssl, seed=1, batch=BATCH):
    """An SSL batch of random views, as ``ssl_dataset`` gives: distinct sample ids, every rotation label."""
    rng = np.random.default_rng(seed)
    if ssl == "rotation":
        return {"query": _images(rng, batch), "rotation": tf.constant([1, 3, 0, 2][:batch])}
    return {"query": _images(rng, batch), "key": _images(rng, batch), "index": tf.constant([4, 1, 0, 5][:batch])}


def joint(ssl, steps=1, batch=BATCH):
    """``steps`` copies of one joint element ((images, depth), ssl_batch)."""
    element = (supervised_batch(batch=batch), ssl_batch(ssl, batch=batch))
    return tf.data.Dataset.from_tensors(element).repeat(steps)
