"""The multi-task tf.data pipeline: each augmentation step exactly, pad values, shapes, dtypes, sharding, seeds."""

import os
import shutil

import numpy as np
import pytest

from zippy_tf import tf
from zippy_tf.data import multitask_pipeline as mp
from zippy_tf.data.multitask import read_example
from zippy_tf.data.multitask_generate import write_nyud_like
from zippy_tf.errors import UserError

TASKS = ["semseg", "depth", "normals", "edge", "sal"]


def _example(height=4, width=6):
    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(0, 255, (height, width, 3)), tf.float32)
    labels = {
        "semseg": tf.constant(rng.integers(0, 41, (height, width, 1)), tf.float32),
        "depth": tf.constant(rng.uniform(0.5, 5, (height, width, 1)), tf.float32),
        "normals": tf.constant(rng.normal(size=(height, width, 3)), tf.float32),
        "edge": tf.constant(rng.integers(0, 2, (height, width, 1)), tf.float32),
        "sal": tf.constant(rng.integers(0, 2, (height, width, 1)), tf.float32),
    }
    return image, labels


def test_flip_negates_the_normals_x_exactly():
    image, labels = _example()
    flipped_image, flipped = mp.hflip(image, labels)
    np.testing.assert_array_equal(flipped_image, image.numpy()[:, ::-1])
    normals = labels["normals"].numpy()[:, ::-1]
    np.testing.assert_array_equal(flipped["normals"], normals * [-1, 1, 1])
    for task in ("semseg", "depth", "edge", "sal"):
        np.testing.assert_array_equal(flipped[task], labels[task].numpy()[:, ::-1])


@pytest.mark.parametrize("scale", [0.5, 1.25, 2.0])
def test_rescale_divides_depth_by_the_scale(scale):
    image, labels = _example(8, 12)
    labels["depth"] = tf.fill((8, 12, 1), 3.0)
    resized_image, resized = mp.rescale(image, labels, scale)
    size = (round(8 * scale), round(12 * scale))
    assert resized_image.shape[:2] == size and resized["semseg"].shape[:2] == size
    np.testing.assert_array_equal(resized["depth"], np.full(size + (1,), np.float32(3.0) / np.float32(scale)))
    # Nearest for class maps: only values that were there; bilinear for the image.
    assert set(np.unique(resized["semseg"])) <= set(np.unique(labels["semseg"]))
    np.testing.assert_array_equal(resized_image, tf.image.resize(image, size, method="bilinear"))


def test_pad_values():
    image, labels = _example(4, 6)
    padded_image, padded = mp.pad_to(image, labels, (7, 9))
    assert padded_image.shape == (7, 9, 3)
    np.testing.assert_array_equal(padded_image[:4, :6], image)
    np.testing.assert_array_equal(padded_image[4:].numpy().reshape(-1, 3), np.tile(mp.PAD_COLOUR, (3 * 9, 1)))
    np.testing.assert_array_equal(padded_image[:, 6:].numpy().reshape(-1, 3), np.tile(mp.PAD_COLOUR, (7 * 3, 1)))
    expected = {"semseg": 255, "edge": 255, "sal": 255, "depth": 0, "normals": 0}
    for task, value in expected.items():
        assert mp.PAD_VALUES[task] == value
        np.testing.assert_array_equal(padded[task][4:], value)
        np.testing.assert_array_equal(padded[task][:, 6:], value)
        np.testing.assert_array_equal(padded[task][:4, :6], labels[task])


def test_augmentation_is_a_seeded_crop_of_a_scaled_view():
    image, labels = _example(8, 12)
    labels["depth"] = tf.fill((8, 12, 1), 2.0)
    seen_scales = set()
    for draw in range(12):
        seed = tf.constant([draw, 0], tf.int64)
        out_image, out = mp.augment_example(image, labels, (6, 10), seed)
        again_image, _ = mp.augment_example(image, labels, (6, 10), seed)
        np.testing.assert_array_equal(out_image, again_image)
        assert out_image.shape == (6, 10, 3)
        depth = out["depth"].numpy()
        scale = 2.0 / depth.max()  # some pixel of the crop is not padding
        seen_scales.add(round(float(scale), 3))
        assert set(np.unique(depth)) <= {0.0, np.float32(2.0) / np.float32(scale)}
    assert len(seen_scales) > 2 and seen_scales <= set(mp.SCALES)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_nyud_like(str(tmp_path_factory.mktemp("mt") / "nyud"), 5, 3, size=(24, 32), seed=1)


def test_training_batches(root):
    data = mp.multitask_dataset(root, "nyud", "train", TASKS, crop_size=(16, 20), augment=True, batch_size=2,
                                shuffle=True, seed=3)
    batches = list(data)
    assert len(batches) == 2  # 5 examples, the incomplete batch dropped
    image, labels = batches[0]
    assert image.shape == (2, 16, 20, 3) and image.dtype == tf.float32
    assert labels["semseg"].shape == (2, 16, 20) and labels["semseg"].dtype == tf.int32
    for task in ("depth", "edge", "sal"):
        assert labels[task].shape == (2, 16, 20, 1) and labels[task].dtype == tf.float32
    assert labels["normals"].shape == (2, 16, 20, 3)
    assert float(tf.reduce_max(tf.abs(image))) < 3.0  # ImageNet-normalised
    again = list(mp.multitask_dataset(root, "nyud", "train", TASKS, crop_size=(16, 20), augment=True,
                                      batch_size=2, shuffle=True, seed=3))
    np.testing.assert_array_equal(again[0][0], image)


def test_evaluation_pads_and_reports_sizes(root):
    data = mp.multitask_dataset(root, "nyud", "val", TASKS, crop_size=(28, 36), batch_size=2, with_info=True)
    (image, labels, info), (last_image, _, last_info) = list(data)
    assert image.shape == (2, 28, 36, 3) and last_image.shape == (1, 28, 36, 3)  # evaluation keeps every example
    np.testing.assert_array_equal(info["size"], [[24, 32], [24, 32]])
    example = read_example(root, "nyud", info["id"][0].numpy().decode(), TASKS)
    np.testing.assert_allclose(image[0, :24, :32], mp.normalize_image(example["image"]), atol=1e-6)
    np.testing.assert_array_equal(labels["semseg"][0, :24, :32], example["semseg"])
    np.testing.assert_array_equal(labels["depth"][0, :24, :32, 0], example["depth"])
    np.testing.assert_array_equal(labels["semseg"][0, 24:], 255)
    np.testing.assert_array_equal(labels["depth"][0, :, 32:], 0.0)
    np.testing.assert_array_equal(labels["normals"][0, 24:], 0.0)
    np.testing.assert_array_equal(labels["edge"][0, 24:], 255.0)


def test_shards_split_the_examples(root):
    ids = []
    for index in range(2):
        data = mp.multitask_dataset(root, "nyud", "train", ["depth"], batch_size=1, num_shards=2,
                                    shard_index=index, with_info=True)
        ids.append([info["id"][0].numpy().decode() for _, _, info in data])
    assert not set(ids[0]) & set(ids[1]) and sorted(ids[0] + ids[1]) == [f"{i:06d}" for i in range(5)]


def test_ids_select_a_subset_in_split_order(root):
    data = mp.multitask_dataset(root, "nyud", "train", ["depth"], batch_size=1, with_info=True,
                                ids=["000003", "000001"])
    assert [info["id"][0].numpy().decode() for _, _, info in data] == ["000001", "000003"]


@pytest.mark.parametrize("kwargs, match", [
    ({"augment": True}, "needs crop_size"),
    ({"ids": ["000001", "999999"]}, "not in split 'train', e.g. '999999'"),
    ({"ids": []}, "ids is empty"),
    ({"num_shards": 2, "shard_index": 2}, "shard_index=2"),
    ({"augment": True, "crop_size": (8, 8), "batch_size": 6}, "too few"),
    ({"crop_size": (8,)}, "crop_size"),
])
def test_bad_arguments(root, kwargs, match):
    with pytest.raises(UserError, match=match):
        mp.multitask_dataset(root, "nyud", "train", ["depth"], **kwargs)


def test_missing_files_fail_before_the_first_batch(root, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(root, copy)
    os.remove(os.path.join(copy, "normals", "000004.jpg"))
    with pytest.raises(UserError, match="000004.jpg' is missing"):
        mp.multitask_dataset(copy, "nyud", "train", ["normals"])
    mp.multitask_dataset(copy, "nyud", "train", ["depth"])  # tasks that do not need the file still load


def test_parts_only_training_skips_images_without_a_person(tmp_path):
    from multitask_layouts import write_tiny_pascal

    root, _, _ = write_tiny_pascal(str(tmp_path / "pascal"))
    kwargs = {"crop_size": (4, 4), "batch_size": 1, "with_info": True}
    trained = [info["id"][0].numpy().decode()
               for _, _, info in mp.multitask_dataset(root, "pascal", "train", ["human_parts"], augment=True, **kwargs)]
    evaluated = [info["id"][0].numpy().decode()
                 for _, _, info in mp.multitask_dataset(root, "pascal", "train", ["human_parts"], **kwargs)]
    assert trained == ["2008_000001"] and evaluated == ["2008_000001", "2008_000002"]
