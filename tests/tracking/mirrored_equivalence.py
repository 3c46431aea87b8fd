"""Run as a script (``python mirrored_equivalence.py HEAD``): trains a tracker two steps on one device and under a
two-replica MirroredStrategy from the same initial weights, and prints both losses and the weight difference as JSON.

A separate process because logical CPU devices must be configured before TensorFlow initialises its devices.
"""

import json
import sys

import numpy as np

import zippy_tf  # noqa: F401  (Keras 2 before TensorFlow)
from zippy_tf._compat import keras, tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

from zippy_tf.tracking.model import build_tracker_network  # noqa: E402
from zippy_tf.tracking.training import TrackerTrainer  # noqa: E402

TEMPLATE, SEARCH, PAIRS, BATCH = 63, 128, 8, 4


def dataset():
    rng = np.random.default_rng(0)
    images = {"template": rng.uniform(0, 255, (PAIRS, TEMPLATE, TEMPLATE, 3)).astype(np.float32),
              "search": rng.uniform(0, 255, (PAIRS, SEARCH, SEARCH, 3)).astype(np.float32)}
    corner = rng.uniform(20, 60, (PAIRS, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(20, 50, (PAIRS, 2))], axis=1).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((images, {"box": boxes})).batch(BATCH)


def train(strategy, head, initial):
    with strategy.scope():
        network = build_tracker_network(head=head, template_size=TEMPLATE, search_size=SEARCH, ffn_dim=32,
                                        dropout=0.0)
        trainer = TrackerTrainer(network)
        trainer.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    if initial is not None:
        trainer.pair.set_weights(initial)
    start = trainer.pair.get_weights()
    history = trainer.fit(dataset(), epochs=1, verbose=0)
    return start, history.history["loss"][0], trainer.pair.get_weights()


def main(head):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    start, single_loss, single = train(tf.distribute.get_strategy(), head, None)
    mirrored = tf.distribute.MirroredStrategy(devices)
    _, mirrored_loss, distributed = train(mirrored, head, start)
    change = max(float(np.abs(a - b).max()) for a, b in zip(single, start))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(single, distributed))
    print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "single_loss": single_loss,
                      "mirrored_loss": mirrored_loss, "weight_change": change, "weight_diff": diff}))


if __name__ == "__main__":
    main(sys.argv[1])
