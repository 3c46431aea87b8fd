"""The training pair pipeline: shapes, determinism, geometry of the pairs, and bad folders."""

import os

import cv2
import numpy as np
import pytest

from zippy_tf.data.augment import photometric_augment, sample_shared_photometric
from zippy_tf.data.homography import warp_image
from zippy_tf.data.image_folder import list_images, make_pair, pair_dataset, write_training_folder
from zippy_tf.data.photos import load_photo
from zippy_tf.errors import UserError

H, W = 48, 64


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_training_folder(str(tmp_path_factory.mktemp("train") / "images"), count=6, height=H, width=W)


def test_training_folder_is_flat_jpegs(folder):
    names = sorted(os.listdir(folder))
    assert len(names) == 6 and all(n.endswith(".jpg") for n in names)
    assert len(list_images(folder)) == 6


def test_pipeline_shapes(folder):
    batch = next(iter(pair_dataset(folder, height=H, width=W, batch_size=2)))
    assert batch["source"].shape == (2, H, W, 3) and batch["target"].shape == (2, H, W, 3)
    assert batch["homography"].shape == (2, 3, 3) and batch["homography"].dtype.name == "float32"
    assert 0.0 <= float(np.min(batch["source"])) and float(np.max(batch["target"])) <= 255.0


def _epoch(folder, seed):
    return [b["source"].numpy() for b in pair_dataset(folder, height=H, width=W, batch_size=3, seed=seed)]


def test_pipeline_deterministic_given_seed(folder):
    first = _epoch(folder, 5)
    assert len(first) == 2
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(_epoch(folder, 5)))
    assert not np.array_equal(np.concatenate(first), np.concatenate(_epoch(folder, 6)))


def test_source_is_target_seen_through_homography():
    """Without photometric changes, warping the source forward by H reproduces the target where it is seen."""
    image = np.tile(np.linspace(0, 255, W, dtype=np.float32), (H, 1))[..., None].repeat(3, -1)
    source, target, homography = make_pair(np.random.default_rng(0), image)
    assert source.shape == target.shape == (H, W, 3)
    seen = warp_image(np.ones((H, W), np.float32), homography) > 0.999
    moved = warp_image(source, homography)
    # Photometric jitter is affine per pair except noise and blur, so compare the structure: correlation.
    corr = np.corrcoef(moved[..., 0][seen], target[..., 0][seen])[0, 1]
    assert corr > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_homography_is_pixel_exact_on_a_photo(seed):
    """SIFT matches between an augmented pair of a real photo agree with the pair's homography to well under a
    pixel: the location loss's targets are right (a half-pixel convention slip would show here)."""
    image = cv2.resize(load_photo("astronaut"), (320, 240), interpolation=cv2.INTER_AREA)
    source, target, homography = make_pair(np.random.default_rng(seed), image)
    sift = cv2.SIFT_create()
    grey = [cv2.cvtColor(np.clip(im, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY) for im in (source, target)]
    (k1, d1), (k2, d2) = (sift.detectAndCompute(g, None) for g in grey)
    matches = cv2.BFMatcher(crossCheck=True).match(d1, d2)
    p1 = np.float64([k1[m.queryIdx].pt for m in matches])
    p2 = np.float64([k2[m.trainIdx].pt for m in matches])
    error = np.linalg.norm(cv2.perspectiveTransform(p1[None], homography.astype(np.float64))[0] - p2, axis=1)
    close = error[error < 10]  # drop wrong matches
    assert len(close) >= 30 and np.median(close) < 0.5  # measured 0.23-0.35; 0.66-0.71 with H off by (0.5, 0.5) px


def test_empty_folder(tmp_path):
    with pytest.raises(UserError, match="no .jpg"):
        pair_dataset(str(tmp_path))


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        pair_dataset(str(tmp_path / "nope"))


def test_unreadable_image(tmp_path, folder):
    for name in os.listdir(folder)[:2]:
        with open(os.path.join(folder, name), "rb") as src, open(tmp_path / name, "wb") as dst:
            dst.write(src.read())
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(UserError, match="broken.png"):
        pair_dataset(str(tmp_path), batch_size=1)


def test_fewer_images_than_batch(folder):
    with pytest.raises(UserError, match="batch size"):
        pair_dataset(folder, batch_size=64)


def test_training_folder_refuses_non_empty(folder):
    with pytest.raises(UserError, match="already exists"):
        write_training_folder(folder, count=1)


def test_each_epoch_draws_new_augmentations(folder):
    """Iterating the same dataset again gives new homographies; a fresh dataset with the seed replays epoch one."""
    def homographies(dataset):
        return np.concatenate([b["homography"].numpy() for b in dataset])

    dataset = pair_dataset(folder, height=H, width=W, batch_size=3, seed=2, shuffle=False)
    first, second = homographies(dataset), homographies(dataset)
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(first, homographies(pair_dataset(folder, height=H, width=W, batch_size=3, seed=2,
                                                                   shuffle=False)))


def test_photometric_draws_are_shared_within_a_pair():
    """Both images of a pair get the same channel order, greyscale and jitter; only noise and blur differ."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    waves = np.sin(2 * np.pi * xs / 16) * np.sin(2 * np.pi * ys / 16)
    image = np.stack([xs / W * 200, ys / H * 150 + 50, waves * 60 + 120], -1)
    for seed in range(12):
        draw = sample_shared_photometric(np.random.default_rng(seed))
        first = photometric_augment(np.random.default_rng(100 + seed), image, draw)
        second = photometric_augment(np.random.default_rng(200 + seed), image, draw)
        assert first.dtype == np.float32 and first.min() >= 0.0 and first.max() <= 255.0
        if draw["grey"]:
            assert np.allclose(first[..., 0], first[..., 2], atol=1.0)
            continue
        # The channels are uncorrelated patterns: with a shared order, channel c of one image is most like channel c
        # of the other.
        for channel in range(3):
            similarity = [np.corrcoef(first[..., channel].ravel(), second[..., other].ravel())[0, 1]
                          for other in range(3)]
            assert int(np.argmax(similarity)) == channel
