"""Shared file helpers: float16 weight files load back into the float32 model."""

import os

import h5py
import numpy as np

from zippy_tf._compat import keras
from zippy_tf.io import save_float16_weights


def _model():
    inputs = keras.Input((8,))
    x = keras.layers.Dense(512, name="dense")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(64, name="out")(x))


def test_float16_weights_halve_the_file_and_load_back(tmp_path):
    model = _model()
    bn = model.get_layer("bn")
    bn.set_weights([w + np.float32(1e-4) * np.arange(w.size, dtype=np.float32) for w in bn.get_weights()])
    model.save_weights(tmp_path / "w.h5")
    save_float16_weights(str(tmp_path / "w.h5"), str(tmp_path / "w16.h5"))
    assert os.path.getsize(tmp_path / "w16.h5") < 0.6 * os.path.getsize(tmp_path / "w.h5")
    with h5py.File(tmp_path / "w16.h5", "r") as f:
        assert f["dense/dense/kernel:0"].dtype == np.float16
        assert f["bn/bn/moving_variance:0"].dtype == np.float32  # statistics keep their precision

    again = _model()
    again.load_weights(str(tmp_path / "w16.h5"))
    for got, want in zip(again.weights, model.weights):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-3, atol=1e-4)
    x = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), rtol=1e-2, atol=1e-2)


def test_float16_in_place(tmp_path):
    path = str(tmp_path / "w.h5")
    _model().save_weights(path)
    save_float16_weights(path, path)
    with h5py.File(path, "r") as f:
        assert f["out/out/kernel:0"].dtype == np.float16
    assert [p for p in os.listdir(tmp_path) if p != "w.h5"] == []  # no temporary file left


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    from zippy_tf.io import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(str(tmp_path / "a.json"), "{}")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a.json").st_mode & 0o777 == 0o644
