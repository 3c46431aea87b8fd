"""Shi-Tomasi corners: the response map and the keypoint refinement onto its maxima."""

import cv2
import numpy as np
import pytest

from zippy_tf.keypoints.corners import corner_response, refine_to_corners
from zippy_tf.keypoints.detector import KeypointDetector
from zippy_tf.keypoints.model import kp2d_baseline

from synthetic_pairs import grey_photo, photo_pairs


@pytest.mark.parametrize("block_size", [2, 3, 5])
def test_corner_response_is_opencvs_min_eigenvalue_up_to_a_constant(block_size):
    grey, batch = grey_photo()
    ours = corner_response(batch, block_size).numpy()[0, ..., 0]
    theirs = cv2.cornerMinEigenVal(grey.astype(np.float32), block_size, 3)
    # OpenCV scales the Sobel gradients and sums the window; the ratio is one constant over the whole image
    np.testing.assert_allclose(ours / ours.max(), theirs / theirs.max(), atol=1e-5)


def brute_force_refine(response, keypoints, radius):
    """The refinement written out: the window's maximum, ties to the nearest pixel, then row-major."""
    h, w = response.shape
    refined = []
    for x, y in np.clip(np.round(keypoints).astype(int), 0, [w - 1, h - 1]):
        window = [(dx * dx + dy * dy, dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
                  if 0 <= x + dx < w and 0 <= y + dy < h]
        best = max(sorted(window), key=lambda c: response[y + c[1], x + c[2]])  # max keeps the first of equals
        refined.append((x + best[2], y + best[1]))
    return np.array(refined, np.float32)


@pytest.mark.parametrize("radius", [0, 1, 4, 6])
def test_refinement_takes_the_strongest_corner_in_the_window(radius):
    _, batch = grey_photo(seed=3)
    rng = np.random.default_rng(radius)
    keypoints = rng.uniform([-2, -2], [batch.shape[2] + 1, batch.shape[1] + 1], (1, 200, 2)).astype(np.float32)
    refined = refine_to_corners(batch, keypoints, radius).numpy()[0]
    response = corner_response(batch).numpy()[0, ..., 0]
    np.testing.assert_array_equal(refined, brute_force_refine(response, keypoints[0], radius))
    assert np.abs(refined - np.clip(np.round(keypoints[0]), 0, [95, 63])).max() <= radius


def test_refinement_snaps_to_a_known_corner_and_leaves_flat_regions_alone():
    image = np.zeros((1, 32, 48, 3), np.float32)
    image[0, 19:, 29:] = 255.0  # one bright quadrant: the corner response peaks next to (x, y) = (29, 19)
    peak = np.unravel_index(np.argmax(corner_response(image).numpy()[0, ..., 0]), (32, 48))[::-1]
    assert np.abs(np.array(peak) - [29, 19]).max() <= 1
    near, far = [31.4, 16.6], [8.0, 6.0]  # within 4 px of the peak / in a flat region
    refined = refine_to_corners(image, np.array([[near, far]], np.float32), 4).numpy()[0]
    np.testing.assert_array_equal(refined[0], peak)
    np.testing.assert_array_equal(refined[1], far)  # all-zero response: the centre wins the tie


@pytest.mark.parametrize("binary", [True, False])
def test_a_refining_detector_describes_its_refined_keypoints(binary):
    photos = photo_pairs(batch=1, height=48, width=64, seed=4)["source"]
    network = kp2d_baseline(input_shape=(48, 64, 3))
    plain = KeypointDetector(network, top_k=40, binary=binary)(photos)
    refined = KeypointDetector(network, top_k=40, binary=binary, refine_radius=4)(photos)
    expected = refine_to_corners(photos, plain["keypoints"], 4).numpy()
    np.testing.assert_array_equal(refined["keypoints"].numpy(), expected)
    np.testing.assert_array_equal(refined["scores"].numpy(), plain["scores"].numpy())
    described = KeypointDetector(network, binary=binary).describe_points(photos[0], expected[0])
    np.testing.assert_allclose(refined["descriptors"].numpy()[0], described, atol=1e-6)
    assert np.any(expected != plain["keypoints"].numpy())  # the refinement moved something


def test_refine_radius_must_not_be_negative():
    from zippy_tf.errors import UserError

    with pytest.raises(UserError, match="refine_radius"):
        KeypointDetector(kp2d_baseline(input_shape=(48, 64, 3)), refine_radius=-1)
