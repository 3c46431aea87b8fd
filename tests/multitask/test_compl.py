"""CompL's joint model: the single-pass joint step, momentum encoder and banks in fit, modes, label fractions,
deployment."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from zippy_tf import keras, tf
from zippy_tf.errors import UserError
from zippy_tf.export.convert import convert
from zippy_tf.export.flatbuffer import op_census
from zippy_tf.multitask.compl import (
    CompLModel, compl_splits, deployable, label_subset, supervised_head, target_model, task_target_loss,
)
from zippy_tf.multitask.ssl import SSL_WEIGHTS
from zippy_tf.multitask.views import ViewConfig, folder_images, joint_dataset, ssl_dataset

from compl_testing import (
    BATCH, IMAGES, SIZE, SSL_SIZE, build, depth_loss, joint, ssl_batch, supervised_batch, tiny_trunk,
)


def weights(variables):
    return [v.numpy().copy() for v in variables]


# -- label fractions ---------------------------------------------------------------------------------------------

def test_label_subset_is_deterministic_and_nested():
    ids = [f"{i:04d}" for i in range(795)]
    fractions = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    subsets = [label_subset(ids, f, seed=1) for f in fractions]
    assert [len(s) for s in subsets] == [7, 15, 39, 79, 159, 397, 795]
    for small, large in zip(subsets, subsets[1:]):
        assert set(small) < set(large)
    assert label_subset(list(reversed(ids)), 0.05, seed=1) == subsets[2]  # the order of the ids does not matter
    assert label_subset(ids, 0.05, seed=2) != subsets[2]
    assert label_subset(list(range(100)), 0.29) == label_subset(list(range(100)), 0.29)
    assert len(label_subset(list(range(100)), 0.29)) == 29


def test_compl_splits_ssl_uses_every_image_unless_same_subset():
    ids = list(range(40))
    labelled, ssl_ids = compl_splits(ids, 0.1, seed=0)
    assert len(labelled) == 4 and ssl_ids == ids
    assert compl_splits(ids, 0.1, seed=0, same_subset=True) == (labelled, labelled)


@pytest.mark.parametrize("fraction,message", [
    (0.0, "outside"), (-0.1, "outside"), (1.5, "outside"), (0.001, "selects no image"),
])
def test_bad_label_fractions_are_user_errors(fraction, message):
    with pytest.raises(UserError, match=message):
        label_subset(list(range(100)), fraction)


# -- construction errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    ({"ssl": "moco", "ssl_size": 6, "bank_size": 7}, "larger than the 6 SSL images"),
    ({"ssl": "densecl", "ssl_size": None}, "needs ssl_size"),
    ({"ssl": "simclr"}, "unknown ssl"),
    ({"ssl": "none", "mode": "joint"}, "needs an SSL task"),
    ({"ssl": "rotation", "mode": "finetune"}, "unknown mode"),
])
def test_bad_configurations_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        build(**kwargs)


def test_unknown_target_task_is_a_user_error():
    with pytest.raises(UserError, match="unknown task 'height'"):
        task_target_loss("height")


def test_task_target_loss_reads_the_pipeline_label_dict():
    depth = tf.constant(np.random.default_rng(0).uniform(0.5, 2.0, (2, 4, 4, 1)).astype(np.float32))
    loss = task_target_loss("depth")
    assert float(loss({"depth": depth, "semseg": tf.zeros((2, 4, 4))}, depth + 0.25)) == pytest.approx(0.25)
    assert float(loss(depth, depth - 0.5)) == pytest.approx(0.5)


def test_unit_supervised_head_gives_unit_normals():
    head = supervised_head((4, 4, 8), 3, (16, 16), unit=True)
    normals = head(tf.random.stateless_normal((2, 4, 4, 8), (0, 1))).numpy()
    assert normals.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, rtol=1e-5)


def test_target_modes_need_a_target_loss():
    trunk = tiny_trunk()
    with pytest.raises(UserError, match="pass target_loss"):
        CompLModel(trunk, supervised_head(trunk.output_shape[1:], 1, (SIZE, SIZE)), ssl="rotation")


@pytest.mark.parametrize("ssl,kwargs", [("none", {}), ("rotation", {"ssl_weight": 0.1}),
                                        ("densecl", {"mode": "ssl", "bank_size": 4, "temperature": 0.2})])
def test_options_round_trip_as_data(ssl, kwargs):
    model = build(ssl, **kwargs)
    options = json.loads(json.dumps(model.options))
    assert {k: options[k] for k in kwargs} == kwargs
    trunk = tiny_trunk()
    again = CompLModel(trunk, supervised_head(trunk.output_shape[1:], 1, (SIZE, SIZE)), depth_loss, **options)
    assert again.options == options
    assert [v.shape for v in again.weights] == [v.shape for v in model.weights]


def test_default_ssl_weights_are_the_thesis_lambdas():
    assert build("rotation").ssl_weight == 0.05
    assert build("moco").ssl_weight == build("densecl").ssl_weight == 0.2 == SSL_WEIGHTS["densecl"]


# -- the joint step ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ssl", ["rotation", "moco", "densecl"])
def test_joint_step_gradient_is_the_sum_of_the_two_losses_gradients(ssl):
    decay = 0.01
    model = build(ssl, weight_decay=decay)
    learning_rate = 0.5
    model.compile(keras.optimizers.SGD(learning_rate))
    (images, labels), batch = supervised_batch(), ssl_batch(ssl)
    variables = model.trainable_variables
    keys = model.momentum_keys(batch) if ssl != "rotation" else None  # key encoder = online one at the start
    with tf.GradientTape() as tape:  # the target task alone
        target = tf.reduce_mean(depth_loss(labels, model(images, training=True)))
    target_gradients = tape.gradient(target, variables)
    with tf.GradientTape() as tape:  # the SSL task alone
        auxiliary = tf.reduce_mean(model.ssl_loss(model.ssl_head(model.trunk(batch["query"], training=True)), batch,
                                                  keys))
    ssl_gradients = tape.gradient(auxiliary, variables)
    before = weights(variables)
    logs = model.fit(joint(ssl), epochs=1, verbose=0).history
    np.testing.assert_allclose(logs["loss"][0], float(target) + model.ssl_weight * float(auxiliary), rtol=1e-5)
    for variable, start, g_target, g_ssl in zip(variables, before, target_gradients, ssl_gradients):
        expected = sum(g for g in (g_target, None if g_ssl is None else model.ssl_weight * g_ssl) if g is not None)
        np.testing.assert_allclose(start - variable.numpy(), learning_rate * (expected + decay * start), rtol=1e-4,
                                   atol=1e-7, err_msg=variable.name)
    assert all(g is not None for g in ssl_gradients[-len(model.ssl_head.trainable_weights):])


@pytest.mark.parametrize("ssl", ["moco", "densecl"])
def test_momentum_encoder_and_banks_after_a_step(ssl):
    model = build(ssl, momentum=0.9)
    model.compile(keras.optimizers.SGD(0.1))
    rng = np.random.default_rng(9)
    for variable in model.momentum_encoder_variables:  # a momentum encoder that differs from the online one
        variable.assign(variable + rng.normal(0, 0.1, variable.shape).astype(np.float32))
    key_start, online_start = weights(model.momentum_encoder_variables), weights(model.online_encoder_variables)
    banks = [model.global_bank] + ([model.dense_bank] if ssl == "densecl" else [])
    bank_start = weights(banks)
    model.fit(joint(ssl), epochs=1, verbose=0)
    for variable, key, online in zip(model.momentum_encoder_variables, key_start, online_start):
        np.testing.assert_allclose(variable.numpy(), 0.9 * key + 0.1 * online, rtol=1e-6, atol=1e-7)
    # the step wrote its keys (from the moved encoder, which the optimizer does not touch) to the sample's slots
    keys = model.momentum_keys(ssl_batch(ssl))
    index = ssl_batch(ssl)["index"].numpy()
    for bank, start, name in zip(banks, bank_start, ["global", "dense_global"]):
        written = keys[name].numpy() / np.linalg.norm(keys[name].numpy(), axis=-1, keepdims=True)
        np.testing.assert_allclose(bank.numpy()[index], written, rtol=1e-5, atol=1e-6)
        untouched = np.setdiff1d(np.arange(SSL_SIZE), index)
        np.testing.assert_array_equal(bank.numpy()[untouched], start[untouched])


def test_sync_momentum_encoder_copies_weights_loaded_later():
    model = build("moco")
    model.trunk.set_weights([w + 1.0 for w in model.trunk.get_weights()])  # e.g. an ImageNet initialisation
    batch = ssl_batch("moco")
    online = model.ssl_head(model.trunk(batch["key"]))["global"]
    assert not np.allclose(model.momentum_keys(batch)["global"], online)
    model.sync_momentum_encoder()
    np.testing.assert_allclose(model.momentum_keys(batch)["global"], online, rtol=1e-6)


def test_momentum_encoder_is_not_trained():
    model = build("densecl")
    trainable = {id(v) for v in model.trainable_variables}
    assert not any(id(v) in trainable for v in model.momentum_encoder_variables)
    assert id(model.global_bank) not in trainable and id(model.dense_bank) not in trainable


# -- fit, callbacks, checkpoints, tf.distribute ------------------------------------------------------------------

def _dataset(ssl, seed=0):
    """The real pipeline: a supervised stream zipped with ssl_dataset's views."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (IMAGES, SIZE, SIZE, 3)).astype(np.float32)
    depth = rng.uniform(0, 1, (IMAGES, SIZE, SIZE, 1)).astype(np.float32)
    supervised = tf.data.Dataset.from_tensor_slices((images, depth)).repeat().batch(BATCH)
    if ssl == "none":
        return supervised
    views = ssl_dataset(tf.data.Dataset.from_tensor_slices(images), ssl, batch_size=BATCH,
                        views=ViewConfig(offset=2), seed=seed)
    return joint_dataset(supervised, views)


@pytest.mark.parametrize("ssl", ["none", "rotation", "densecl"])  # DenseCL's state includes MoCo's
def test_fit_with_callbacks_and_checkpoint_round_trip(ssl, tmp_path):
    model = build(ssl)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9))
    path = str(tmp_path / "weights")
    saver = keras.callbacks.ModelCheckpoint(path, save_weights_only=True)
    history = model.fit(_dataset(ssl), epochs=2, steps_per_epoch=2, verbose=0, callbacks=[saver]).history
    expected = {"loss", "target_loss"} | ({"ssl_loss"} if ssl != "none" else set())
    assert set(history) == expected and np.all(np.isfinite(history["loss"]))
    restored = build(ssl, seed=1)
    restored.load_weights(path)
    for saved, loaded in zip(model.variables, restored.variables):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy(), err_msg=saved.name)
    images = supervised_batch()[0]
    np.testing.assert_allclose(restored(images), model(images), rtol=1e-6)
    assert set(model.evaluate(_dataset("none"), steps=1, verbose=0, return_dict=True)) == {"target_loss"}


@pytest.mark.parametrize("ssl", ["rotation", "densecl"])
def test_fit_under_a_mirrored_strategy(ssl):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = build(ssl)
        model.compile(keras.optimizers.SGD(0.01))
    start = weights(model.trainable_variables)
    history = model.fit(_dataset(ssl), epochs=1, steps_per_epoch=2, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert any(np.any(a != b.numpy()) for a, b in zip(start, model.trainable_variables))


def test_two_replicas_match_one_device():
    """A joint step under a two-replica MirroredStrategy (two logical CPUs) equals one on one device: the gradients,
    the momentum encoder and the banks (each replica writes every replica's keys)."""
    script = os.path.join(os.path.dirname(__file__), "compl_mirrored.py")
    run = subprocess.run([sys.executable, script, "densecl"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["mirrored_loss"] == pytest.approx(result["single_loss"], rel=1e-5)
    assert result["weight_diff"] < 1e-5 * result["weight_change"]


# -- transfer: SSL pre-training, then target fine-tuning or joint training ---------------------------------------

def _changed(before, variables):
    return [bool(np.any(a != v.numpy())) for a, v in zip(before, variables)]


@pytest.mark.parametrize("ssl,then", [("moco", "target"), ("densecl", "joint")])
def test_pretraining_then_fine_tuning_or_joint_training(ssl, then):
    model = build(ssl, mode="ssl")
    model.compile(keras.optimizers.SGD(0.05))
    head, trunk = weights(model.target_head.weights), weights(model.trunk.weights)
    views = _dataset(ssl).map(lambda supervised, views: views)
    history = model.fit(views, epochs=1, steps_per_epoch=2, verbose=0).history
    assert set(history) == {"loss", "ssl_loss"}
    assert not any(_changed(head, model.target_head.weights)) and all(_changed(trunk, model.trunk.weights))

    model.mode = then
    projection = weights(model.ssl_head.weights)
    banks = weights([model.global_bank])
    data = _dataset(ssl) if then == "joint" else _dataset("none")
    history = model.fit(data, epochs=1, steps_per_epoch=2, verbose=0).history
    assert all(_changed(head, model.target_head.weights))
    if then == "target":
        assert set(history) == {"loss", "target_loss"}
        assert not any(_changed(projection, model.ssl_head.weights))
        assert not any(_changed(banks, [model.global_bank]))
    else:
        assert set(history) == {"loss", "target_loss", "ssl_loss"} and all(_changed(banks, [model.global_bank]))


def test_wrong_batch_structure_and_view_size_are_user_errors():
    model = build("moco")
    model.compile(keras.optimizers.SGD(0.01))
    with pytest.raises(UserError, match="joint_dataset"):
        model.train_step(supervised_batch())
    small = dict(ssl_batch("moco"), query=tf.zeros((BATCH, 8, 8, 3)))
    with pytest.raises(UserError, match="differ in size"):
        model.compute_losses(supervised_batch(), small, model.momentum_keys(ssl_batch("moco")))
    with pytest.raises(UserError, match="missing index"):
        model.train_step((supervised_batch(), {"query": small["query"], "key": small["key"]}))


# -- deployment --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ssl", ["densecl"])
def test_deployable_is_the_single_task_network(ssl):
    model = build(ssl)
    model.compile(keras.optimizers.SGD(0.05))
    model.fit(_dataset(ssl), epochs=1, steps_per_epoch=1, verbose=0)
    deployed = deployable(model)
    trunk = tiny_trunk(seed=3)
    plain = target_model(trunk, supervised_head(trunk.output_shape[1:], 1, (SIZE, SIZE)))
    plain.set_weights(deployed.get_weights())
    images = supervised_batch()[0]
    np.testing.assert_allclose(deployed(images), model(images), rtol=1e-6)
    np.testing.assert_allclose(plain(images), deployed(images), rtol=1e-6)
    assert deployed.count_params() == plain.count_params() == model.trunk.count_params() + \
        model.target_head.count_params()
    assert model.count_params() > deployed.count_params()
    deployed_ops = op_census(convert(deployed, "fp32"))
    assert deployed_ops == op_census(convert(plain, "fp32"))
    assert "FULLY_CONNECTED" not in deployed_ops["ops"]  # no projection or rotation head left


def test_compl_on_the_deeplab_trunk_and_the_multitask_pipeline(tmp_path):
    """End to end on a generated NYUD-layout set: DeepLabv3+ ResNet-18 GroupNorm trunk, the RCM depth loss and
    supervised pipeline, DenseCL on every image; then the deployed single-task network."""
    from zippy_tf.data.multitask import split_ids
    from zippy_tf.data.multitask_generate import write_nyud_like
    from zippy_tf.data.multitask_pipeline import multitask_dataset
    from zippy_tf.multitask.deeplab import deeplab_trunk

    root = write_nyud_like(str(tmp_path / "nyud"), 4, 1, size=(32, 32))
    ssl_ids = split_ids(root, "nyud", "train")
    supervised = multitask_dataset(root, "nyud", "train", ("depth",), crop_size=(32, 32), augment=True, batch_size=2)
    views = ssl_dataset(folder_images(root, "nyud", ssl_ids), "densecl", batch_size=2, views=ViewConfig(offset=2))
    trunk = deeplab_trunk(backbone="resnet18", norm="group", input_shape=(32, 32, 3), width=0.25)
    model = CompLModel(trunk, supervised_head(trunk.output_shape[1:], 1, (32, 32)), task_target_loss("depth"),
                       ssl="densecl", ssl_size=len(ssl_ids), grid=4, embedding=16, hidden=32)
    model.compile(keras.optimizers.SGD(0.001, momentum=0.9), run_eagerly=True)  # tracing takes 10× a step here
    history = model.fit(joint_dataset(supervised.repeat(), views), epochs=1, steps_per_epoch=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and np.isfinite(history["ssl_loss"][0])
    deployed = deployable(model)
    assert deployed.count_params() == trunk.count_params() + model.target_head.count_params()
    images = next(iter(supervised))[0]
    np.testing.assert_allclose(deployed(images), model(images), rtol=1e-6)
