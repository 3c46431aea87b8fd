"""Losses on hand-made cases, the poly schedule, one SGD step with coupled weight decay, task/joint training and
resuming. (Named test_rcm_training.py: tests/ has no packages, so a second test_training.py would clash.)"""

import dataclasses
import math

import numpy as np
import pytest
from rcm_testing import config, images, randomize

from zippy_tf._compat import keras, tf
from zippy_tf.errors import UserError
from zippy_tf.multitask import (
    LOSS_WEIGHTS, MultiTaskTrainer, PolyDecay, build_multitask, sgd, task_loss, train_joint, train_task,
)


def _bce(label, logit):
    p = 1 / (1 + math.exp(-logit))
    return -(label * math.log(p) + (1 - label) * math.log(1 - p))


def test_edge_loss_balances_classes_and_ignores_255():
    labels = np.array([[1.0, 0.0, 255.0, 0.0]]).reshape(1, 1, 4, 1)
    logits = np.array([[0.5, -1.0, 3.0, 2.0]]).reshape(1, 1, 4, 1).astype(np.float32)
    expected = (0.95 * _bce(1, 0.5) + 0.05 * _bce(0, -1.0) + 0.05 * _bce(0, 2.0)) / 3
    assert float(task_loss("edge")(labels, logits)) == pytest.approx(expected, rel=1e-6)


def test_saliency_loss_is_masked_bce():
    labels = np.array([1.0, 0.0, 255.0]).reshape(1, 1, 3)
    logits = np.array([2.0, 1.0, -5.0], np.float32).reshape(1, 1, 3, 1)
    assert float(task_loss("sal")(labels, logits)) == pytest.approx((_bce(1, 2.0) + _bce(0, 1.0)) / 2, rel=1e-6)


@pytest.mark.parametrize("task", ["semseg", "human_parts"])
def test_cross_entropy_ignores_255(task):
    logits = np.log(np.array([[[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]]], np.float32))
    labels = np.array([[[0, 2, 255]]])
    assert float(task_loss(task)(labels, logits)) == pytest.approx(-(math.log(0.7) + math.log(0.8)) / 2, rel=1e-5)


def test_normals_loss_is_l1_over_valid_pixels_channels():
    predictions = np.array([[[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]]], np.float32)
    labels = np.array([[[[0.0, 0.6, 0.8], [0.0, 0.0, 0.0]]]], np.float32)  # the second pixel has no label
    assert float(task_loss("normals")(labels, predictions)) == pytest.approx((0.0 + 0.6 + 0.2) / 3, rel=1e-6)


def test_depth_loss_is_l1_where_depth_is_known():
    predictions = np.array([1.0, 2.0, 5.0], np.float32).reshape(1, 1, 3, 1)
    labels = np.array([1.5, 0.0, 4.0], np.float32).reshape(1, 1, 3)
    assert float(task_loss("depth")(labels, predictions)) == pytest.approx((0.5 + 1.0) / 2)
    assert float(task_loss("depth")(np.zeros((1, 1, 3)), predictions)) == 0.0  # nothing valid: 0, not NaN


def test_poly_schedule_and_round_trip():
    schedule = PolyDecay(0.01, 100)
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(50)) == pytest.approx(0.01 * 0.5 ** 0.9)
    assert float(schedule(100)) == 0.0 and float(schedule(150)) == 0.0
    assert PolyDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()
    with pytest.raises(UserError, match="total_steps"):
        PolyDecay(0.01, 0)


def test_one_step_is_sgd_on_the_weighted_loss_with_coupled_weight_decay():
    inputs = keras.Input((4, 5, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, name="depth_head")(inputs))
    randomize(model, seed=3)
    x = images(2, (4, 5), seed=4)
    labels = np.random.default_rng(5).uniform(0.5, 2.0, (2, 4, 5, 1)).astype(np.float32)
    start = [w.numpy() for w in model.trainable_weights]
    with tf.GradientTape() as tape:
        loss = LOSS_WEIGHTS["depth"] * task_loss("depth")(labels, model(x))
    gradients = tape.gradient(loss, model.trainable_weights)
    trainer = MultiTaskTrainer(model, ["depth"], weight_decay=0.1)
    trainer.compile(optimizer=sgd(0.05, 10))
    trainer.fit(tf.data.Dataset.from_tensors((x, {"depth": labels})), epochs=1, verbose=0)
    for after, before, gradient in zip(model.trainable_weights, start, gradients):
        np.testing.assert_allclose(after.numpy(), before - 0.05 * (gradient.numpy() + 0.1 * before), rtol=1e-5,
                                   atol=1e-7)


def _dataset(x, tasks, seed=0):
    rng = np.random.default_rng(seed)
    labels = {"semseg": rng.integers(0, 41, x.shape[:3]).astype(np.int32),
              "normals": rng.normal(size=(*x.shape[:3], 3)).astype(np.float32)}
    return tf.data.Dataset.from_tensor_slices((x, {task: labels[task] for task in tasks})).batch(2)


def test_train_task_takes_a_label_tensor_too_and_resumes_from_its_checkpoint(tmp_path):
    network = build_multitask(config("rc", tasks=("semseg",)))
    x = images(4)
    labels = np.random.default_rng(0).integers(0, 41, x.shape[:3]).astype(np.int32)
    history = train_task(network, "semseg", tf.data.Dataset.from_tensor_slices((x, labels)).batch(2), steps=2,
                         steps_per_epoch=1, checkpoint_dir=str(tmp_path))
    assert len(history["semseg"]) == 2 and all(np.isfinite(history["loss"]))
    trained = [w.numpy() for w in network["semseg"].weights]
    with pytest.raises(UserError, match="already holds checkpoints"):
        train_task(network, "semseg", _dataset(x, ["semseg"]), steps=2, steps_per_epoch=1,
                   checkpoint_dir=str(tmp_path))
    randomize(network["semseg"], seed=9)
    train_task(network, "semseg", _dataset(x, ["semseg"]), steps=2, steps_per_epoch=1, checkpoint_dir=str(tmp_path),
               resume=True)  # the run had finished: restoring is all there is to do
    for variable, expected in zip(network["semseg"].weights, trained):
        np.testing.assert_array_equal(variable.numpy(), expected)
    other = build_multitask(dataclasses.replace(config("rc", tasks=("semseg",), shape=(32, 40)), width=0.25))
    with pytest.raises(UserError, match="does not fit this task model"):
        train_task(other, "semseg", _dataset(images(4, (32, 40)), ["semseg"]), steps=2, steps_per_epoch=1,
                   checkpoint_dir=str(tmp_path), resume=True)
    with pytest.raises(UserError, match="no checkpoint"):
        train_task(network, "semseg", _dataset(x, ["semseg"]), steps=2, checkpoint_dir=str(tmp_path / "new"),
                   resume=True)
    with pytest.raises(UserError, match="do not fit the network's input"):
        train_task(network, "semseg", _dataset(images(2, (32, 41)), ["semseg"]), steps=1)
    with pytest.raises(UserError, match="multiple of steps_per_epoch"):
        train_task(network, "semseg", _dataset(x, ["semseg"]), steps=3, steps_per_epoch=2)


def test_train_joint_trains_the_shared_encoder_on_every_task():
    network = build_multitask(config("multi_task"))
    x = images(4)
    encoder_kernel = network.shared_layers["layer1_0_conv1"].kernel.numpy()
    history = train_joint(network, _dataset(x, network.tasks), steps=1)
    assert set(history) == {"loss", "semseg", "normals"}
    assert np.abs(network.shared_layers["layer1_0_conv1"].kernel.numpy() - encoder_kernel).max() > 0
    with pytest.raises(UserError, match="no 'normals' entry"):
        train_joint(network, _dataset(x, ["semseg"]), steps=1)
