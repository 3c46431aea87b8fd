"""Run as a script (``python compl_mirrored.py moco|densecl``): one joint CompL step on one device and under a
two-replica MirroredStrategy from the same weights; prints both losses and the largest differences of the trained
weights, the momentum encoder and the memory banks as JSON.

A separate process because logical CPU devices must be configured before TensorFlow initialises its devices.
"""

import json
import sys

import numpy as np

import zippy_tf  # noqa: F401  (Keras 2 before TensorFlow)
from zippy_tf._compat import keras, tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

from compl_testing import build, joint  # noqa: E402

BATCH = 4  # two samples per replica


def state(model):
    """Trained weights, momentum encoder and memory banks."""
    banks = [model.global_bank] + ([model.dense_bank] if model.ssl == "densecl" else [])
    return [v.numpy() for v in model.trainable_variables + model.momentum_encoder_variables + banks]


def train(strategy, ssl, initial):
    with strategy.scope():
        model = build(ssl, momentum=0.9)
        model.compile(keras.optimizers.SGD(0.1))
        if initial is not None:
            model.set_weights(initial)
        for variable in model.momentum_encoder_variables if initial is None else []:
            variable.assign(variable * 1.1)  # a momentum encoder that differs from the online one
    start = model.get_weights()
    before = state(model)
    loss = model.fit(joint(ssl, batch=BATCH), epochs=1, verbose=0).history["loss"][0]
    return start, before, loss, state(model)


def main(ssl):
    keras.utils.set_random_seed(0)
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    start, before, single_loss, single = train(tf.distribute.get_strategy(), ssl, None)
    mirrored = tf.distribute.MirroredStrategy(devices)
    _, _, mirrored_loss, distributed = train(mirrored, ssl, start)
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync, "single_loss": single_loss, "mirrored_loss": mirrored_loss,
        "weight_change": max(float(np.abs(a - b).max()) for a, b in zip(single, before)),
        "weight_diff": max(float(np.abs(a - b).max()) for a, b in zip(single, distributed)),
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
