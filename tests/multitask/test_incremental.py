"""Incremental learning through the public API: adding and training a task leaves every other task bit-identical."""

import numpy as np
import pytest
from rcm_testing import SHAPE, config, encoder, images, relative_error

from zippy_tf._compat import tf
from zippy_tf.errors import UserError
from zippy_tf.multitask import add_task, build_multitask, resnet, train_task


def _dataset(x, seed=0):
    rng = np.random.default_rng(seed)
    labels = {"semseg": rng.integers(0, 41, x.shape[:3]).astype(np.int32),
              "depth": rng.uniform(0.5, 3.0, (*x.shape[:3], 1)).astype(np.float32),
              "edge": (rng.uniform(size=(*x.shape[:3], 1)) > 0.8).astype(np.float32)}
    return tf.data.Dataset.from_tensor_slices((x, labels)).batch(2)


@pytest.mark.parametrize("variant", ["rcm", "series_ra"])
def test_adding_and_training_a_task_leaves_the_others_bit_identical(variant):
    enc, x = encoder(), images(4)
    network = build_multitask(config(variant, tasks=("semseg", "edge")), encoder=enc, ri_images=x)
    train_task(network, "semseg", _dataset(x), steps=2)
    before = {task: network[task](x).numpy() for task in network.tasks}
    model = add_task(network, "depth", encoder=enc)
    start = model(x).numpy()
    train_task(network, "depth", _dataset(x, seed=1), steps=2)
    assert network.tasks == ("semseg", "edge", "depth") and network.config.tasks == network.tasks
    assert np.abs(network["depth"](x).numpy() - start).max() > 0  # the new task did train
    for task, expected in before.items():
        np.testing.assert_array_equal(network[task](x).numpy(), expected)


def test_an_added_task_starts_from_the_encoder_like_a_task_built_with_it():
    """add_task's W_t (least squares to the encoder's W over the existing RI filter bank) gives the same network as
    building the task with Response Initialization in the first place."""
    enc, x = encoder(), images(4)
    grown = build_multitask(config("rcm", tasks=("semseg",)), encoder=enc, ri_images=x)
    added = add_task(grown, "depth", encoder=enc)
    built = build_multitask(config("rcm", tasks=("semseg", "depth")), encoder=enc, ri_images=x)["depth"]
    for layer in built.layers:
        if layer.name.startswith(("depth_aspp", "depth_decoder", "depth_head")):
            layer.set_weights(added.get_layer(layer.name).get_weights())
    assert relative_error(added(x), built(x)) <= 1e-4


def test_bad_task_additions():
    network = build_multitask(config("rcm", tasks=("semseg",)))
    with pytest.raises(UserError, match="already in the network"):
        add_task(network, "semseg")
    with pytest.raises(UserError, match="encoder layer 'conv1' has weights of shapes"):
        add_task(network, "depth", encoder=resnet((*SHAPE, 3), width=0.25))
    assert network.tasks == network.config.tasks == ("semseg",)  # nothing half-added
    with pytest.raises(UserError, match="unknown task 'human_parts' for dataset 'nyud'"):
        add_task(network, "human_parts")
    joint = build_multitask(config("multi_task", tasks=("semseg",)))
    with pytest.raises(UserError, match="trains one shared encoder"):
        add_task(joint, "depth")
    with pytest.raises(UserError, match="train it with train_joint"):
        train_task(joint, "semseg", _dataset(images(2)), steps=1)
    with pytest.raises(UserError, match="unknown task 'sal'"):
        train_task(network, "sal", _dataset(images(2)), steps=1)
