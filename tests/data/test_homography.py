"""Homography sampling keeps the warped source inside the target image, and warps are invertible."""

import numpy as np
import pytest

from zippy_tf.data.homography import sample_homography, warp_image, warp_points

SIZES = [(240, 320), (120, 160), (64, 64)]


@pytest.mark.parametrize("height,width", SIZES)
@pytest.mark.parametrize("seed", range(20))
def test_sampled_points_stay_inside_target(seed, height, width):
    rng = np.random.default_rng(seed)
    homography = sample_homography(rng, height, width)
    assert homography.shape == (3, 3) and homography.dtype == np.float64
    points = np.stack(np.meshgrid(np.linspace(0, width - 1, 9), np.linspace(0, height - 1, 7)), -1).reshape(-1, 2)
    warped = warp_points(points, homography)
    assert np.all(warped >= -1e-6)
    assert np.all(warped <= np.array([width - 1, height - 1]) + 1e-6)


def test_sampling_is_deterministic_and_varied():
    first = sample_homography(np.random.default_rng(3), 120, 160)
    assert np.array_equal(first, sample_homography(np.random.default_rng(3), 120, 160))
    assert not np.allclose(first, sample_homography(np.random.default_rng(4), 120, 160))


@pytest.mark.parametrize("seed", range(5))
def test_warp_points_invertible(seed):
    homography = sample_homography(np.random.default_rng(seed), 120, 160)
    points = np.random.default_rng(seed).uniform(0, 120, (50, 2))
    back = warp_points(warp_points(points, homography), np.linalg.inv(homography))
    np.testing.assert_allclose(back, points, atol=1e-8)


def test_warp_image_follows_points():
    """A bright dot moved by warp_image lands where warp_points sends it; warping back restores the image."""
    image = np.zeros((120, 160), np.float32)
    image[60:63, 80:83] = 1.0
    homography = sample_homography(np.random.default_rng(1), 120, 160)
    warped = warp_image(image, homography)
    ys, xs = np.nonzero(warped > 0.5)
    expected = warp_points([[81.0, 61.0]], homography)[0]
    assert abs(xs.mean() - expected[0]) < 1.5 and abs(ys.mean() - expected[1]) < 1.5
    smooth = np.tile(np.linspace(0, 1, 160, dtype=np.float32), (120, 1))
    back = warp_image(warp_image(smooth, np.linalg.inv(homography)), homography)
    inside = warp_image(np.ones_like(smooth), homography) > 0.999
    assert np.abs(back - smooth)[inside].max() < 0.05
