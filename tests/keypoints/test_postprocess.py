import numpy as np
import pytest

from zippy_tf._compat import tf
from zippy_tf.errors import UserError
from zippy_tf.keypoints.detector import KeypointDetector
from zippy_tf.keypoints.model import kp2d_baseline, zippypoint
from zippy_tf.keypoints.postprocess import pack_bits, pad_image, sample_descriptors, select_keypoints


def test_bilinear_sampling_is_exact_on_a_linear_map_with_corner_alignment():
    h, w, hd, wd = 64, 96, 16, 24
    yy, xx = np.meshgrid(np.arange(hd), np.arange(wd), indexing="ij")
    dmap = np.stack([xx, yy, 2 * xx + 3 * yy + 1], -1)[None].astype(np.float32)
    points = np.array([[[0, 0], [w - 1, h - 1], [10.3, 20.7], [47.5, 31.5]]], np.float32)
    out = sample_descriptors(dmap, points, (h, w)).numpy()[0]
    u = points[0, :, 0] * (wd - 1) / (w - 1)
    v = points[0, :, 1] * (hd - 1) / (h - 1)
    np.testing.assert_allclose(out, np.stack([u, v, 2 * u + 3 * v + 1], -1), atol=1e-4)


def test_sampling_is_differentiable_in_the_map():
    dmap = tf.Variable(tf.ones((1, 4, 4, 8)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(sample_descriptors(dmap, tf.constant([[[5.0, 7.0]]]), (16, 16)))
    assert float(tf.reduce_sum(tape.gradient(loss, dmap))) == pytest.approx(8.0)


def test_pack_bits_matches_numpy():
    bits = np.random.default_rng(0).integers(0, 2, (3, 5, 256)).astype(np.float32)
    np.testing.assert_array_equal(pack_bits(bits).numpy(), np.packbits(bits.astype(np.uint8), axis=-1))


def test_select_keypoints_sorts_by_score():
    score = np.random.default_rng(1).random((2, 4, 5, 1)).astype(np.float32)
    location = np.random.default_rng(2).random((2, 4, 5, 2)).astype(np.float32)
    kp, sc = select_keypoints(score, location, top_k=7)
    assert kp.shape == (2, 7, 2) and np.all(np.diff(sc.numpy(), axis=1) <= 0)
    best = np.argmax(score[0].ravel())
    np.testing.assert_array_equal(kp[0, 0], location[0].reshape(-1, 2)[best])


def test_pad_image_to_multiple_of_8():
    padded, (top, left) = pad_image(np.zeros((61, 90, 3), np.uint8))
    assert padded.shape == (64, 96, 3) and (top, left) == (1, 3)
    assert padded[0, 0, 0] == 127.5 and padded[top, left, 0] == 0
    with pytest.raises(UserError, match="convert grey images"):
        pad_image(np.zeros((61, 90)))


def test_zippypoint_detect_binary_descriptors_with_exactly_k_ones(photos):
    detector = KeypointDetector(zippypoint(input_shape=(None, None, 3)), top_k=50)
    out = detector.detect(photos[0, :61, :90])
    assert out["descriptors"].dtype == np.uint8 and out["descriptors"].shape[1] == 32
    np.testing.assert_array_equal(np.unpackbits(out["descriptors"], axis=1).sum(1), 64)
    assert np.all(out["keypoints"] >= -3) and np.all(out["keypoints"][:, 0] < 90)
    assert np.all(out["scores"] > 0)


def test_kp2d_detector_gives_unit_float_descriptors(photos):
    out = KeypointDetector(kp2d_baseline(input_shape=(64, 96, 3)), top_k=20, binary=False)(photos[:2])
    assert out["descriptors"].shape == (2, 20, 256)
    np.testing.assert_allclose(np.linalg.norm(out["descriptors"], axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("binary", [True, False])
def test_describe_points_at_the_networks_own_keypoints_gives_its_descriptors(photos, binary):
    detector = KeypointDetector(kp2d_baseline(input_shape=(None, None, 3)), top_k=30, binary=binary)
    out = detector.detect(photos[0, :61, :90])  # padded: the keypoints are shifted back to the image's pixels
    described = detector.describe_points(photos[0, :61, :90], out["keypoints"])
    if binary:
        np.testing.assert_array_equal(described, out["descriptors"])
    else:
        np.testing.assert_allclose(described, out["descriptors"], atol=1e-5)


@pytest.mark.parametrize("shape,message", [((61, 96, 3), "use .detect"), ((1, 60, 96, 3), "multiple of 8"),
                                           ((1, 64, 96, 1), "use .detect")])
def test_detector_rejects_bad_image_shapes(shape, message):
    detector = KeypointDetector(zippypoint(input_shape=(None, None, 3)), top_k=5)
    with pytest.raises(UserError, match=message):
        detector(np.zeros(shape, np.float32))
