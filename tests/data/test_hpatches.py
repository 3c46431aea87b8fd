"""HPatches: the generated set has the real layout, the loader rescales homographies, bad folders fail clearly."""

import os
import shutil

import cv2
import numpy as np
import pytest

from zippy_tf.data.homography import warp_image
from zippy_tf.data.hpatches import load_hpatches, read_homography, write_hpatches_like
from zippy_tf.errors import UserError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_hpatches_like(str(tmp_path_factory.mktemp("hp") / "hpatches"), num_sequences=2, seed=0,
                               height=96, width=128)


def test_layout(root):
    names = sorted(os.listdir(root))
    assert [n[:2] for n in names] == ["i_", "v_"]
    for name in names:
        files = sorted(os.listdir(os.path.join(root, name)))
        assert files == [f"{k}.ppm" for k in range(1, 7)] + [f"H_1_{k}" for k in range(2, 7)]
        with open(os.path.join(root, name, "1.ppm"), "rb") as f:
            assert f.read(2) == b"P6"
        assert read_homography(os.path.join(root, name, "H_1_2")).shape == (3, 3)
    identity = read_homography(os.path.join(root, names[0], "H_1_4"))
    np.testing.assert_array_equal(identity, np.eye(3))


def test_loader_pairs_and_rescaled_homography(root):
    pairs = list(load_hpatches(root, resolution=(64, 48)))
    assert len(pairs) == 10
    for pair in pairs:
        assert pair["image1"].shape == pair["image2"].shape == (48, 64, 3)
        assert pair["image1"].dtype == np.uint8
    viewpoint = [p for p in pairs if p["sequence"].startswith("v_")][-1]
    # The rescaled homography still relates the resized images: image 1 warped by it matches image k.
    moved = warp_image(viewpoint["image1"].astype(np.float32), viewpoint["homography"])
    seen = warp_image(np.ones((48, 64), np.float32), viewpoint["homography"]) > 0.999
    seen = cv2.erode(seen.astype(np.uint8), np.ones((5, 5))).astype(bool)
    error = np.abs(moved - viewpoint["image2"].astype(np.float32))[seen].mean()
    assert error < 12.0


def test_native_resolution(root):
    pair = next(load_hpatches(root, resolution=None))
    assert pair["image1"].shape == (96, 128, 3)


def _copy(root, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(root, copy)
    return copy, sorted(os.listdir(copy))


def test_missing_homography_file(root, tmp_path):
    copy, names = _copy(root, tmp_path)
    os.remove(os.path.join(copy, names[1], "H_1_3"))
    with pytest.raises(UserError, match="H_1_3"):
        next(load_hpatches(copy))


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        next(load_hpatches(str(tmp_path / "none")))


def test_illumination_sizes_must_match(root, tmp_path):
    copy, names = _copy(root, tmp_path)
    path = os.path.join(copy, names[0], "3.ppm")
    cv2.imwrite(path, cv2.imread(path)[:50])
    with pytest.raises(UserError, match="different sizes"):
        list(load_hpatches(copy))


def test_unreadable_image(root, tmp_path):
    copy, names = _copy(root, tmp_path)
    with open(os.path.join(copy, names[1], "5.ppm"), "wb") as f:
        f.write(b"P6 garbage")
    with pytest.raises(UserError, match="5.ppm"):
        list(load_hpatches(copy))


def test_tfds_builder(root, tmp_path):
    import tensorflow_datasets as tfds

    from zippy_tf.data.tfds_hpatches import HpatchesSequences

    builder = HpatchesSequences(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=root))
    examples = list(tfds.as_numpy(builder.as_dataset(split="test")))
    assert len(examples) == 10
    by_key = {(e["sequence"].decode(), int(e["index"])): e for e in examples}
    pair = next(load_hpatches(root, resolution=None))
    stored = by_key[(pair["sequence"], pair["index"])]
    np.testing.assert_array_equal(stored["image1"][..., ::-1], pair["image1"])
    np.testing.assert_allclose(stored["homography"], pair["homography"])


def test_heldout_set_uses_only_the_heldout_photos(tmp_path):
    from zippy_tf.data.photos import HELDOUT_PHOTOS, PHOTOS, load_heldout_photo

    root = write_hpatches_like(str(tmp_path / "heldout"), num_sequences=6, seed=0, height=96, width=128,
                               heldout=True)
    names = sorted(os.listdir(root))
    assert {n[2:].rsplit("_", 1)[0] for n in names} == set(HELDOUT_PHOTOS)
    assert not set(HELDOUT_PHOTOS) & set(PHOTOS)
    for name in HELDOUT_PHOTOS:
        photo = load_heldout_photo(name)
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3 and min(photo.shape[:2]) >= 400


def test_the_validation_split_is_written_on_first_use_and_differs_from_the_test_set(tmp_path, monkeypatch):
    from zippy_tf.data import hpatches

    small = {"height": 48, "width": 64}  # the standard sets' layout and seeds, at a test's size
    monkeypatch.setattr(hpatches, "VALIDATION_SET", {**hpatches.VALIDATION_SET, **small})
    monkeypatch.setitem(hpatches.STANDARD_TEST_SETS, "generated", {**hpatches.STANDARD_TEST_SETS["generated"], **small})
    validation = hpatches.standard_test_set("validation", str(tmp_path))
    test = hpatches.standard_test_set("generated", str(tmp_path))
    assert len(os.listdir(validation)) == len(os.listdir(test)) == 16
    first = [cv2.imread(os.path.join(root, sorted(os.listdir(root))[0], "1.ppm")) for root in (validation, test)]
    assert first[0].shape == (48, 64, 3) and not np.array_equal(*first)
    with pytest.raises(UserError, match="generated, heldout, validation"):
        hpatches.standard_test_set("train", str(tmp_path))
