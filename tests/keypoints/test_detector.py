"""KeypointDetector on images of any size, its presets with the shipped weights, and what it says it runs."""

import logging

import cv2
import numpy as np
import pytest

from zippy_tf import presets
from zippy_tf.data.photos import load_photo
from zippy_tf.errors import UserError
from zippy_tf.keypoints import KeypointDetector, kp2d_baseline, zippypoint
from zippy_tf.keypoints.detector import MIN_SIDE
from zippy_tf.keypoints.postprocess import pad_image


@pytest.fixture(scope="module")
def photo():
    return load_photo("astronaut")  # 512 x 512 BGR uint8


def _check(out, shape, binary=True):
    n = len(out["scores"])
    assert out["keypoints"].shape == (n, 2) and out["descriptors"].shape[0] == n
    assert out["descriptors"].dtype == (np.uint8 if binary else np.float32)
    assert np.all(out["scores"] > 0)
    # CellToPixel keeps each keypoint inside its cell, and a cell straddles the padding by less than a cell
    assert np.all(out["keypoints"] > -8) and np.all(out["keypoints"] < np.array(shape[1::-1]) + 8)


@pytest.mark.parametrize("input_shape", [None, (None, None, 3), (48, 64, 3)])
def test_a_network_of_any_input_shape_serves_a_512x512_photo(photo, input_shape):
    network = zippypoint(input_shape=input_shape)
    out = KeypointDetector(network, top_k=100).detect(photo)
    _check(out, photo.shape)
    assert len(out["scores"]) == 100
    assert out["keypoints"].max() > 400  # keypoints all over the photo, not only a 48x64 corner of it


def test_the_resized_network_has_the_same_weights_and_outputs(photo):
    fixed = kp2d_baseline(input_shape=(64, 96, 3))
    image = cv2.resize(photo, (96, 64)).astype(np.float32)[None]
    detector = KeypointDetector(fixed, binary=False)
    assert tuple(detector.network.input_shape[1:3]) == (None, None)
    for key, value in fixed(image).items():
        np.testing.assert_allclose(detector.network(image)[key], value, atol=1e-5)


@pytest.mark.parametrize("height,width", [(8, 8), (1, 1), (23, 40), (37, 101), (61, 90)])
def test_odd_and_tiny_images_give_a_valid_result(photo, height, width):
    """Images under 24 px a side are padded to 24, the smallest with a cell inside the masked border."""
    out = KeypointDetector(kp2d_baseline(input_shape=None), top_k=50).detect(photo[:height, :width])
    _check(out, (height, width))


def test_pad_image_reaches_the_minimum_side():
    padded, (top, left) = pad_image(np.zeros((8, 30, 3), np.uint8), 8, min_side=MIN_SIDE)
    assert padded.shape == (24, 32, 3) and (top, left) == (8, 1)


@pytest.mark.parametrize("image,message", [(np.zeros((0, 5, 3)), "non-empty"), (np.zeros((16, 16)), "3 channels"),
                                           (np.zeros((16, 16, 4)), "3 channels")])
def test_bad_images_are_one_line_errors(image, message):
    with pytest.raises(UserError, match=message):
        KeypointDetector(kp2d_baseline(input_shape=None)).detect(image)


def test_max_side_shrinks_large_images_and_returns_keypoints_in_their_pixels(photo):
    network = kp2d_baseline(input_shape=None)
    wide = np.concatenate([photo, photo], axis=1)  # 512 x 1024
    small = KeypointDetector(network, top_k=None, max_side=256)
    out = small.detect(wide)
    _check(out, wide.shape)
    # the same keypoints as detecting on the resized image, scaled back by 4
    direct = KeypointDetector(network, top_k=None).detect(cv2.resize(wide, (256, 128), interpolation=cv2.INTER_AREA))
    np.testing.assert_allclose(out["keypoints"], direct["keypoints"] * 4, atol=1e-3)
    np.testing.assert_array_equal(out["descriptors"], direct["descriptors"])
    np.testing.assert_array_equal(small.describe_points(wide, out["keypoints"]), out["descriptors"])
    with pytest.raises(UserError, match="max_side=4"):
        KeypointDetector(network, max_side=4)


def test_input_shape_not_a_multiple_of_8_names_height_and_width():
    with pytest.raises(UserError, match=r"height 44, width 60\) is not a multiple of 8"):
        zippypoint(input_shape=(44, 60, 3))


@pytest.mark.parametrize("name,binary", [("zippypoint", True), ("kp2d", False)])
def test_from_preset_runs_the_shipped_weights_and_says_so(photo, caplog, name, binary):
    with caplog.at_level(logging.INFO):
        detector = KeypointDetector.from_preset(name, top_k=50)
    shipped = presets.get_preset(name).shipped_weights
    assert detector.weights_path == shipped and shipped in repr(detector) and shipped in caplog.text
    assert detector.binary is binary
    _check(detector.detect(photo[:100, :130]), (100, 130), binary)
    # the shipped weights, not a random initialisation: the same outputs as a network loaded by hand
    by_hand = KeypointDetector(zippypoint(weights=shipped) if binary else kp2d_baseline(weights=shipped), top_k=50,
                               binary=binary)
    np.testing.assert_array_equal(by_hand.detect(photo[:64, :64])["keypoints"],
                                  detector.detect(photo[:64, :64])["keypoints"])


def test_random_weights_are_announced(caplog):
    with caplog.at_level(logging.WARNING):
        detector = KeypointDetector(kp2d_baseline(input_shape=None))
    assert detector.weights_path is None and "randomly initialised" in caplog.text


@pytest.mark.parametrize("call,message", [
    (lambda: KeypointDetector.from_preset("nope"), "unknown model 'nope'"),
    (lambda: KeypointDetector.from_preset("ettrack"), "Tracker.from_preset"),
    (lambda: presets.load("zippypoint", config="int8"), "pass weights=PATH"),
    (lambda: presets.load("zippypoint", weights="missing.h5"), "weights='missing.h5' does not exist"),
])
def test_preset_errors_name_the_fix(call, message):
    with pytest.raises(UserError, match=message):
        call()


def test_user_error_is_a_value_error():
    assert issubclass(UserError, ValueError)


def test_an_unknown_photo_is_a_user_error():
    with pytest.raises(UserError, match="unknown photo 'nope'; choose one of astronaut"):
        load_photo("nope")
