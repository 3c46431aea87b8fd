"""Shared file helpers: float16 and compact (int8 kernel) weight files load back into the float32 model."""

import os

import h5py
import numpy as np
import pytest

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


def _compact_model():
    """Binary conv first (its input signs then do not depend on other layers' weights), then each kernel kind."""
    import larq as lq

    inputs = keras.Input((8, 8, 4))
    x = lq.layers.QuantConv2D(32, 3, padding="same", input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip", use_bias=False, name="binary")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", name="conv")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=4, padding="same", name="depthwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(32, name="dense")(x))


def _trained_like(model, rng):
    """Weights that catch a wrong quantiser: channels whose sizes differ by 10^3 (a scale per tensor, or per the
    wrong axis, misses the small ones), binary latent weights that are tiny negatives or exactly 0 (rounding to
    the nearest of ..., -1, 0, 1, ... flips the sign of the former), non-default BatchNorm statistics."""
    for layer in model.layers:
        weights = [rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()]
        if layer.name in ("conv", "dense"):
            weights[0] *= np.logspace(-3, 0, weights[0].shape[-1], dtype=np.float32)
        elif layer.name == "depthwise":  # (kh, kw, in, multiplier): the channel is (in, multiplier)
            weights[0] *= np.logspace(-3, 0, weights[0].shape[2], dtype=np.float32)[:, None]
            weights[0] *= np.logspace(-2, 0, weights[0].shape[3], dtype=np.float32)
        elif layer.name == "binary":
            weights[0].flat[::7] = -1e-5
            weights[0].flat[3::7] = 0.0
        elif layer.name == "bn":
            weights[3] = np.abs(weights[3]) + 0.5  # moving variance
        layer.set_weights(weights)
    return model


def _larq_sign(w):
    return np.where(w >= 0, 1.0, -1.0)  # larq.math.sign: sign(0) = +1


def test_compact_weights_round_trip(tmp_path):
    from zippy_tf.io import readable_weights, save_compact_weights

    rng = np.random.default_rng(0)
    model = _trained_like(_compact_model(), rng)
    model.save_weights(tmp_path / "w.h5")
    save_compact_weights(str(tmp_path / "w.h5"), str(tmp_path / "c.h5"))
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f.attrs["zippy_tf_format"] == "compact-int8-v1"
        assert f["depthwise/depthwise/depthwise_kernel:0"].dtype == np.int8
        assert f["bn/bn/moving_mean:0"].dtype == np.float32

    again = _compact_model()
    with readable_weights(str(tmp_path / "c.h5")) as readable:
        assert readable != str(tmp_path / "c.h5")
        again.load_weights(readable)
    assert not os.path.exists(readable)  # the temporary copy is gone

    np.testing.assert_array_equal(_larq_sign(again.get_layer("binary").weights[0].numpy()),
                                  _larq_sign(model.get_layer("binary").weights[0].numpy()))
    for name, channel_axes in (("conv", 1), ("dense", 1), ("depthwise", 2), ("binary", 1)):
        want, got = model.get_layer(name).weights[0].numpy(), again.get_layer(name).weights[0].numpy()
        step = np.abs(want).max(axis=tuple(range(want.ndim - channel_axes)), keepdims=True) / 127.5
        assert np.all(np.abs(got - want) <= step / 2 * (1 + 1e-5)), name
    for got, want in zip(again.get_layer("bn").weights[2:], model.get_layer("bn").weights[2:]):
        np.testing.assert_array_equal(got.numpy(), want.numpy())  # moving statistics: exact

    x = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)
    binary = [keras.Model(m.input, m.get_layer("binary").output) for m in (model, again)]
    np.testing.assert_array_equal(binary[1](x).numpy(), binary[0](x).numpy())
    # Quantisation error is uniform in ±step/2 with step = max|w| / 127.5 ≈ 3.5σ / 127.5 for Gaussian weights: an RMS
    # error of ≈ 0.8 % of the weights' σ per float layer, ≈ 1.4 % over the three (float16 adds ≈ 0.03 %). Seeds 0-4
    # measure 0.4-1.9 %; 5 % allows for that spread and still catches a missing or misplaced scale.
    want, got = model(x).numpy(), again(x).numpy()
    assert np.linalg.norm(got - want) < 0.05 * np.linalg.norm(want)


def test_keras_alone_refuses_a_compact_file(tmp_path):
    from zippy_tf.io import save_compact_weights

    _compact_model().save_weights(tmp_path / "w.h5")
    save_compact_weights(str(tmp_path / "w.h5"), str(tmp_path / "c.h5"))
    with pytest.raises(ValueError):  # the flat int8 kernels do not fit, rather than loading as unscaled values
        _compact_model().load_weights(str(tmp_path / "c.h5"))


def test_keypoint_loaders_read_compact_files(tmp_path):
    from zippy_tf.io import save_compact_weights
    from zippy_tf.keypoints.model import load_matching_layers, load_weights

    model = _trained_like(_compact_model(), np.random.default_rng(1))
    model.save_weights(tmp_path / "w.h5")
    save_compact_weights(str(tmp_path / "w.h5"), str(tmp_path / "c.h5"))
    want = model.get_layer("conv").weights[0].numpy()
    for load in (load_weights, load_matching_layers):
        again = _compact_model()
        load(again, str(tmp_path / "c.h5"))
        np.testing.assert_allclose(again.get_layer("conv").weights[0].numpy(), want, atol=np.abs(want).max() / 255)


def test_compact_weights_are_smaller_than_float16(tmp_path):
    from zippy_tf.io import save_compact_weights

    inputs = keras.Input((256,))
    model = keras.Model(inputs, keras.layers.Dense(256)(keras.layers.Dense(256)(inputs)))
    model.save_weights(tmp_path / "w.h5")
    save_float16_weights(str(tmp_path / "w.h5"), str(tmp_path / "w16.h5"))
    save_compact_weights(str(tmp_path / "w.h5"), str(tmp_path / "c.h5"))
    assert os.path.getsize(tmp_path / "c.h5") < 0.6 * os.path.getsize(tmp_path / "w16.h5")


def test_compact_of_a_compact_file_keeps_the_int8_values(tmp_path):
    from zippy_tf.io import save_compact_weights

    _trained_like(_compact_model(), np.random.default_rng(2)).save_weights(tmp_path / "w.h5")
    save_compact_weights(str(tmp_path / "w.h5"), str(tmp_path / "c.h5"))
    save_compact_weights(str(tmp_path / "c.h5"), str(tmp_path / "c2.h5"))
    key = "conv/conv/kernel:0"
    with h5py.File(tmp_path / "c.h5", "r") as once, h5py.File(tmp_path / "c2.h5", "r") as twice:
        np.testing.assert_array_equal(twice[key][()], once[key][()])
        np.testing.assert_allclose(twice[key].attrs["zippy_tf_scale"], once[key].attrs["zippy_tf_scale"], rtol=1e-6)


def test_readable_weights_passes_other_files_through(tmp_path):
    from zippy_tf.io import readable_weights

    path = str(tmp_path / "w.h5")
    _model().save_weights(path)
    save_float16_weights(path, path)
    before = open(path, "rb").read()
    with readable_weights(path) as readable:
        assert readable == path
    assert open(path, "rb").read() == before
    with readable_weights(str(tmp_path / "checkpoint")) as readable:  # TF checkpoint prefixes, missing files
        assert readable == str(tmp_path / "checkpoint")


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated"])
def test_a_bad_source_leaves_the_target_alone(tmp_path, damage):
    from zippy_tf.errors import UserError
    from zippy_tf.io import save_compact_weights

    source, target = str(tmp_path / "w.h5"), str(tmp_path / "c.h5")
    if damage == "garbage":
        open(source, "wb").write(b"not an HDF5 file\n" * 100)
    elif damage == "truncated":
        _model().save_weights(source)
        data = open(source, "rb").read()
        open(source, "wb").write(data[:len(data) // 2])
    open(target, "w").write("the previous file")
    with pytest.raises(UserError, match="w.h5") as error:
        save_compact_weights(source, target)
    assert "\n" not in str(error.value)
    assert open(target).read() == "the previous file"
    assert sorted(os.listdir(tmp_path)) == sorted({"c.h5", "w.h5"} if damage != "missing" else {"c.h5"})
