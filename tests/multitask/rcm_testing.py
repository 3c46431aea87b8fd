"""Shared helpers of the RCM tests: tiny networks, random weights, relative errors."""

import numpy as np

from zippy_tf._compat import keras
from zippy_tf.multitask import MultiTaskConfig, resnet

SHAPE = (33, 41)  # odd sizes: strided windows and resizes are not aligned by accident
WIDTH = 0.125


def images(count=4, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).normal(size=(count, *shape, 3)).astype(np.float32)


def randomize(model, seed=0, scale=0.1):
    """Random values for every weight of ``model`` (BatchNorm variances positive), so that equivalences are tested
    on weights that are not at their (identity, zero) initialisation."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        name = variable.name.split("/")[-1]
        if name.startswith("moving_variance"):
            variable.assign(rng.uniform(0.5, 2.0, variable.shape))
        elif name.startswith(("gamma", "g:")):
            variable.assign(rng.uniform(0.5, 1.5, variable.shape))
        else:
            variable.assign(rng.normal(size=variable.shape) * scale)
    return model


def encoder(shape=SHAPE, seed=0):
    """A tiny plain ResNet-18 with random weights and BatchNorm statistics (a stand-in for a pretrained one)."""
    return randomize(resnet((*shape, 3), width=WIDTH), seed=seed, scale=0.2)


def config(variant, tasks=("semseg", "normals"), shape=SHAPE):
    return MultiTaskConfig(variant, "nyud", tasks=tasks, input_shape=shape, width=WIDTH)


def relative_error(actual, expected):
    actual, expected = np.asarray(actual), np.asarray(expected)
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def layer_model(layer, shape=(17, 19, 4), pad=0):
    """input -> [ZeroPadding2D(pad)] -> layer -> BatchNormalization, a one-layer task path."""
    inputs = keras.Input(shape)
    x = keras.layers.ZeroPadding2D(pad)(inputs) if pad else inputs
    return keras.Model(inputs, keras.layers.BatchNormalization(name="task_bn")(layer(x)))
