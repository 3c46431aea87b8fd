"""Encoder pretraining: crops carry their photo and region, the classifier learns, the saved file is the plain
encoder by its documented layer names, and its images are not the multi-task set's."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from zippy_tf._compat import keras, tf
from zippy_tf.data.multitask_generate import PRETRAIN_PHOTOS, TEXTURE_PHOTOS
from zippy_tf.errors import UserError
from zippy_tf.multitask import pretrain, resnet
from zippy_tf.multitask.pretrain import classifier, crop_batch, pretrain_encoder, pretrain_photos


def test_pretraining_images_are_not_the_multitask_textures():
    assert not set(PRETRAIN_PHOTOS) & set(TEXTURE_PHOTOS)
    pretraining, textures = pretrain_photos(side=32), pretrain_photos(TEXTURE_PHOTOS, side=32)
    assert len(pretraining) == len(PRETRAIN_PHOTOS)
    assert min(np.abs(a - b).mean() for a in pretraining for b in textures) > 1.0


def _crops(photos, batch_size=64, regions=3, seed=(0, 0)):
    images, labels = crop_batch(tf.constant(photos), tf.constant(seed, tf.int64), batch_size, 24, regions)
    return images.numpy(), labels.numpy()


def test_crops_come_from_the_labelled_photo_and_region():
    photos = np.zeros((3, 60, 60, 3), np.float32)
    photos[1] = 255.0  # photo 1 white, others black
    photos[2, :, :20] = 255.0  # photo 2: its left third white
    images, labels = _crops(photos, 256)
    assert images.shape == (256, 24, 24, 3) and labels.min() >= 0 and labels.max() < 3 * 9
    brightness = images.mean(axis=(1, 2, 3))  # normalised: black ~ -1.8, white ~ +2.3 (±40 brightness jitter)
    plain = labels // 9 < 2  # photos 0 and 1
    np.testing.assert_array_equal(brightness[plain] > 0.5, labels[plain] // 9 == 1)
    column = (labels % 9) % 3
    right, left = brightness[(labels // 9 == 2) & (column == 2)], brightness[(labels // 9 == 2) & (column == 0)]
    assert right.max() < -1.0 and left.mean() > right.mean() + 1.0  # right-column crops never reach the left third
    np.testing.assert_array_equal(_crops(photos, 8)[0], _crops(photos, 8)[0])  # stateless: same seed, same crops
    assert not np.array_equal(_crops(photos, 8)[0], _crops(photos, 8, seed=(1, 0))[0])


def test_classifier_loss_decreases_on_a_fixed_batch():
    images, labels = _crops(pretrain_photos(side=64), 16)
    model = classifier(resnet((24, 24, 3), width=0.125), 81)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = model.fit(images, labels, batch_size=16, epochs=8, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]


def test_pretrain_resumes_and_writes_the_plain_encoder_by_layer_name(tmp_path, monkeypatch):
    output = str(tmp_path / "encoder.h5")
    arguments = {"steps": 4, "steps_per_epoch": 2, "size": 32, "batch_size": 4, "width": 0.125, "heldout": 8}

    def stop(self, epoch, logs=None):
        raise InterruptedError  # after the backup of epoch 1 (the backup callback runs first)

    with monkeypatch.context() as patch:
        patch.setattr(pretrain._Progress, "on_epoch_end", stop)
        with pytest.raises(InterruptedError):
            pretrain_encoder(output, **arguments)
    assert not os.path.exists(output) and os.listdir(tmp_path / "encoder.ckpt")
    summary = pretrain_encoder(output, **arguments)  # the same call again continues with epoch 2
    assert summary["resumed"] and len(summary["history"]["loss"]) == 1
    assert np.all(np.isfinite(summary["history"]["loss"])) and 0.0 <= summary["heldout_accuracy"] <= 1.0
    assert json.loads((tmp_path / "encoder.json").read_text())["steps"] == 4
    assert not os.listdir(tmp_path / "encoder.ckpt")  # the backup is removed once training finished

    encoder = resnet((32, 32, 3), width=0.125)
    with h5py.File(output, "r") as f:
        names = [str(n, "utf-8") if isinstance(n, bytes) else str(n) for n in f.attrs["layer_names"]]
        names = [n for n in names if len(f[n].attrs["weight_names"])]
        kernel = f["conv1"]["conv1"]["kernel:0"][()]
    assert names == [layer.name for layer in encoder.layers if layer.weights]  # the documented names, no head
    assert kernel.dtype == np.float16
    encoder.load_weights(output, by_name=True)
    np.testing.assert_array_equal(encoder.get_layer("conv1").kernel.numpy(), kernel.astype(np.float32))


@pytest.mark.parametrize("kwargs, word", [
    ({"output": "encoder.weights.h5"}, "not *.weights.h5"),
    ({"steps": 5, "steps_per_epoch": 2}, "multiple of steps_per_epoch"),
    ({"size": 16}, "too small"),
])
def test_bad_arguments_are_one_line(kwargs, word, tmp_path):
    arguments = {"output": "encoder.h5", "steps": 2, "steps_per_epoch": 2, **kwargs}
    arguments["output"] = str(tmp_path / arguments["output"])
    with pytest.raises(UserError, match=word.replace("*", r"\*")):
        pretrain_encoder(arguments.pop("output"), **arguments)


def test_command_line_bad_input_is_one_line_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "zippy_tf.multitask.pretrain", f"--output={tmp_path}/e.h5",
                           "--steps=5", "--steps_per_epoch=2"], capture_output=True, text=True)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "multiple of steps_per_epoch" in lines[0], done.stderr[-2000:]
