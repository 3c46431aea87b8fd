"""KeypointTrainer under model.fit, the learning-rate schedule, NaN handling and the `train` CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from zippy_tf._compat import keras, tf
from zippy_tf.errors import UserError
from zippy_tf.keypoints.model import kp2d_baseline, zippypoint
from zippy_tf.keypoints.training import KeypointTrainer, fit_keypoints, kp2d_learning_rate

from synthetic_pairs import photo_pairs

SIZE = (64, 64, 3)


def trainer_for(builder, binary):
    trainer = KeypointTrainer(builder(input_shape=SIZE), binary_descriptors=binary)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    return trainer


def pairs_dataset(*batches):
    return tf.data.Dataset.from_tensor_slices({k: np.stack([b[k] for b in batches]) for k in batches[0]})


def test_learning_rate_halves_every_ten_epochs():
    assert [kp2d_learning_rate(e) for e in (0, 9, 10, 25, 49)] == [1e-3, 1e-3, 5e-4, 2.5e-4, 6.25e-5]


@pytest.mark.parametrize("builder, binary", [(zippypoint, True), (kp2d_baseline, False)])
def test_two_step_fit_reports_finite_losses(builder, binary, tmp_path):
    trainer = trainer_for(builder, binary)
    history = trainer.fit(pairs_dataset(photo_pairs(seed=0), photo_pairs(seed=1)), epochs=1, verbose=0).history
    expected = {"loss", "location_loss", "descriptor_loss", "score_loss", "consistency_loss", "io_loss",
                "descriptor_recall"}
    assert expected <= set(history)
    assert all(np.isfinite(values[-1]) for values in history.values())
    assert int(trainer.optimizer.iterations.numpy()) == 2
    if not binary:  # evaluate() of ZippyPoint runs in test_distributed.py
        evaluated = trainer.evaluate(pairs_dataset(photo_pairs(seed=2)), verbose=0, return_dict=True)
        assert np.isfinite(evaluated["loss"])

    path = trainer.save_deployable(str(tmp_path / "weights.h5"))
    reloaded = builder(input_shape=SIZE, weights=path)  # the dense network alone: no IO-Net weights
    image = photo_pairs(seed=3)["source"]
    np.testing.assert_allclose(reloaded(image)["score"], trainer.network(image)["score"], atol=1e-6)
    other = kp2d_baseline if binary else zippypoint
    with pytest.raises(UserError, match="do not fit"):
        other(input_shape=SIZE, weights=path)


def test_trainer_takes_semi_hard_negatives():
    network = kp2d_baseline(input_shape=SIZE)
    pair = next(iter(pairs_dataset(photo_pairs(seed=0))))
    hardest, semi_hard = (KeypointTrainer(network, binary_descriptors=False, negatives=n).pair_losses(pair, False)
                          for n in ("hardest", "semi_hard"))
    # a semi-hard negative is never closer than the hardest one, so its triplet term is never larger
    assert np.all(semi_hard["descriptor"].numpy() <= hardest["descriptor"].numpy() + 1e-6)
    assert np.any(semi_hard["descriptor"].numpy() < hardest["descriptor"].numpy())
    with pytest.raises(UserError, match="negatives"):
        KeypointTrainer(network, binary_descriptors=False, negatives="easiest")


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    good = photo_pairs(seed=0)
    poisoned = dict(good, source=np.full_like(good["source"], np.nan))
    trainer = trainer_for(kp2d_baseline, False)
    with pytest.raises(UserError, match=r"NaN in epoch 2, batch 1.*last good checkpoint \(epoch 1\)"):
        fit_keypoints(trainer, pairs_dataset(good, poisoned), output=str(tmp_path), epochs=3, steps_per_epoch=1,
                      verbose=0)
    assert sorted(f for f in os.listdir(tmp_path / "checkpoints") if f.endswith(".index")) == ["ckpt-1.index"]
    assert all(np.isfinite(v.numpy()).all() for v in trainer.network.weights)  # restored, not the NaN weights
    with open(tmp_path / "checkpoints" / "history.json") as f:
        assert len(json.load(f)["loss"]) == 1


def cli(*args):
    return subprocess.run([sys.executable, "-m", "zippy_tf.cli.main", "train", *args], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from zippy_tf.data.image_folder import write_training_folder

    return write_training_folder(str(tmp_path_factory.mktemp("data") / "images"), count=4, height=64, width=64)


def test_cli_checkpoints_and_resumes(image_folder, tmp_path):
    output = str(tmp_path / "run")
    common = ["--data", image_folder, "--output", output, "--steps_per_epoch", "1", "--batch_size", "2",
              "--resolution", "64x64"]
    first = cli("kp2d", *common, "--epochs", "1")
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout)["epochs"] == 1
    # the run folder as a kill after epoch 1 would leave it: the epoch's checkpoint and deployable weights
    os.remove(os.path.join(output, "history.json"))
    with open(os.path.join(output, "weights.h5"), "rb") as f:
        epoch_one = f.read()

    again = cli("kp2d", *common, "--epochs", "2")
    assert again.returncode == 2 and "--resume" in again.stderr.strip().splitlines()[-1]

    wrong = cli("zippypoint", *common, "--epochs", "2", "--resume")
    assert wrong.returncode == 2 and "fit this model" in wrong.stderr.strip().splitlines()[-1]
    with open(os.path.join(output, "weights.h5"), "rb") as f:
        assert f.read() == epoch_one

    resumed = cli("kp2d", *common, "--epochs", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads(resumed.stdout)
    assert result["epochs"] == 2 and np.isfinite(result["final"]["loss"]) and result["pairs_per_second"] > 0
    with open(os.path.join(output, "history.json")) as f:
        assert len(json.load(f)["loss"]) == 2
    assert os.path.isfile(os.path.join(output, "weights.h5"))
    assert os.listdir(os.path.join(output, "logs"))
    assert "Epoch 2/2" in resumed.stderr and "Epoch 1/2" not in resumed.stderr


@pytest.mark.parametrize("data", ["missing", "empty"])
def test_cli_rejects_a_missing_or_empty_data_folder(data, tmp_path):
    folder = tmp_path / "images"
    if data == "empty":
        folder.mkdir()
    run = cli("zippypoint", "--data", str(folder), "--output", str(tmp_path / "run"), "--epochs", "1")
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and str(folder) in run.stderr
    assert not os.path.exists(tmp_path / "run")
