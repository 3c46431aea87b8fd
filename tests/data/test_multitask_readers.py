"""NYUD-MT and PASCAL-MT readers on tiny hand-made copies of each layout, and the bad-input table."""

import os

import numpy as np
import pytest
from multitask_layouts import H, W, nyud_truth, write, write_tiny_nyud, write_tiny_pascal

from zippy_tf.data.multitask import (
    IGNORE_LABEL, check_tasks, load_multitask, output_channels, read_example, split_ids,
)
from zippy_tf.errors import UserError


@pytest.fixture
def nyud(tmp_path):
    return write_tiny_nyud(str(tmp_path / "NYUD_MT"))


def test_nyud_reader_conventions(nyud):
    semseg, depth, edge = nyud_truth()
    assert split_ids(nyud, "nyud", "val") == ["0002"]
    examples = list(load_multitask(nyud, "nyud", "train", ["semseg", "depth", "normals", "edge"]))
    assert [e["id"] for e in examples] == ["0001", "0002"]
    example = examples[0]
    assert example["image"].dtype == np.uint8 and example["image"].shape == (H, W, 3)
    assert abs(int(example["image"][0, 0, 0]) - 250) <= 2  # RGB: the BGR file's last channel first
    np.testing.assert_array_equal(example["semseg"], semseg)
    assert example["semseg"].dtype == np.uint8
    np.testing.assert_array_equal(example["depth"], depth)
    assert example["depth"].dtype == np.float32
    np.testing.assert_allclose(example["normals"][0, 0], [-1.0, 127 / 127.5 - 1, 1.0], atol=3 / 255)  # JPEG
    np.testing.assert_array_equal(example["edge"], edge / 255.0)
    assert example["edge"].dtype == example["normals"].dtype == np.float32


def test_task_table():
    assert output_channels("nyud", "semseg") == 41
    assert output_channels("pascal", "human_parts") == 7
    assert output_channels("pascal", "normals") == 3
    assert output_channels("nyud", "depth") == 1
    assert check_tasks("nyud", ["sal"]) == ("sal",)  # the generated sets' extension


@pytest.mark.parametrize("dataset, tasks, match", [
    ("kitti", ["depth"], "unknown dataset 'kitti'"),
    ("nyud", ["human_parts"], "unknown task 'human_parts' for dataset 'nyud'"),
    ("pascal", ["depth"], "unknown task 'depth' for dataset 'pascal'"),
    ("nyud", ["depth", "depth"], "without repeats"),
    ("nyud", [], "non-empty"),
])
def test_unknown_dataset_or_task(dataset, tasks, match):
    with pytest.raises(UserError, match=match):
        check_tasks(dataset, tasks)


def _break(root, how):
    if how == "missing_root":
        return root + "_none", "does not exist"
    if how == "missing_split":
        os.remove(f"{root}/gt_sets/train.txt")
        return root, "split file .*train.txt.* is missing"
    if how == "class_out_of_range":
        semseg = np.zeros((H, W), np.uint8)
        semseg[2, 2] = 41
        write(f"{root}/segmentation/0002.mat", {"segmentation": semseg})
        return root, "class id 41 outside 0..40"
    if how == "size_mismatch":
        write(f"{root}/depth/0002.mat", {"depth": np.ones((H - 1, W), np.float32)})
        return root, "depth label of '0002' is 5x8 but its image is 6x8"
    if how == "unreadable_mat":
        with open(f"{root}/segmentation/0002.mat", "wb") as f:
            f.write(b"not a mat file")
        return root, "0002.mat' is not a readable .mat file"
    if how == "unreadable_image":
        with open(f"{root}/normals/0002.jpg", "wb") as f:
            f.write(b"\xff\xd8 broken")
        return root, "0002.jpg' is not a readable image"
    if how == "missing_label":
        os.remove(f"{root}/edge/0002.png")
        return root, "file .*0002.png. is missing"
    if how == "missing_field":
        write(f"{root}/depth/0002.mat", {"Depth": np.ones((H, W), np.float32)})
        return root, "has no field 'depth'"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["missing_root", "missing_split", "class_out_of_range", "size_mismatch",
                                 "unreadable_mat", "unreadable_image", "missing_label", "missing_field"])
def test_nyud_bad_input(nyud, how):
    root, match = _break(nyud, how)
    with pytest.raises(UserError, match=match) as error:
        list(load_multitask(root, "nyud", "train", ["semseg", "depth", "normals", "edge"]))
    assert "\n" not in str(error.value)


def test_unknown_split(nyud):
    with pytest.raises(UserError, match="unknown split 'test'"):
        split_ids(nyud, "nyud", "test")


@pytest.fixture
def pascal(tmp_path):
    return write_tiny_pascal(str(tmp_path / "PASCAL_MT"))


def test_pascal_reader(pascal):
    root, label_map, semseg = pascal
    tasks = ["edge", "semseg", "human_parts", "normals", "sal"]
    first, second = load_multitask(root, "pascal", "train", tasks)
    np.testing.assert_array_equal(first["semseg"], semseg)
    parts = np.zeros((H, W), np.uint8)
    parts[0, :4] = 1  # head
    parts[1:4, :4] = 2  # torso, painted after the head
    parts[4:, :2] = 6  # lower leg
    parts[:3, 6:] = 3  # the second person's upper arm; the cat's "parts" are ignored
    np.testing.assert_array_equal(first["human_parts"], parts)
    np.testing.assert_array_equal(second["human_parts"], np.full((H, W), IGNORE_LABEL))  # no person
    # Normals survive on the NYU classes (wall 5) and tvmonitor (9) only; RGB (1, 1, -1) from BGR (0, 255, 255).
    keep = np.isin(label_map, [5, 9])
    np.testing.assert_allclose(first["normals"][keep], np.tile([1.0, 1.0, -1.0], (keep.sum(), 1)))
    np.testing.assert_array_equal(first["normals"][~keep], 0.0)
    expected_sal = np.zeros((H, W), np.float32)
    expected_sal[:, :3] = 1.0
    np.testing.assert_array_equal(first["sal"], expected_sal)
    # Edge: |Laplacian(LabelMap)| > 0 thinned to one-pixel lines along the context boundaries.
    assert first["edge"].dtype == np.float32 and set(np.unique(first["edge"])) <= {0.0, 1.0}
    boundary = np.zeros((H, W), bool)
    for a, b in ((np.s_[:, :-1], np.s_[:, 1:]), (np.s_[:-1, :], np.s_[1:, :])):
        step = label_map[a] != label_map[b]
        boundary[a] |= step
        boundary[b] |= step
    assert first["edge"].sum() > 0 and np.all(boundary[first["edge"] > 0])


def test_pascal_edge_is_thinned():
    from zippy_tf.data.multitask import pascal_edge

    label_map = np.zeros((8, 10), np.uint16)
    label_map[:, 5:] = 5
    expected = np.zeros((8, 10), np.float32)
    expected[1:, 4] = 1.0  # the two-pixel-wide Laplacian response thinned to one column
    np.testing.assert_array_equal(pascal_edge(label_map), expected)


def test_pascal_bad_input(pascal):
    root, _, _ = pascal
    semseg = np.full((H, W), 21, np.uint8)
    write(f"{root}/SemanticSegmentation/Context/2008_000002.png", semseg)
    with pytest.raises(UserError, match="class id 21 outside 0..20"):
        list(load_multitask(root, "pascal", "train", ["semseg"]))
    os.remove(f"{root}/json/nyu_classes.json")
    with pytest.raises(UserError, match="nyu_classes.json' is missing"):
        read_example(root, "pascal", "2008_000001", ["normals"])
    os.remove(f"{root}/ImageSets/Context/val.txt")
    with pytest.raises(UserError, match="split file .*ImageSets/Context/val.txt"):
        split_ids(root, "pascal", "val")
