"""NYUD-MT and PASCAL-MT readers on tiny hand-made copies of each layout, and the bad-input table."""

import json
import os

import cv2
import numpy as np
import pytest
import scipy.io

from zippy_tf.data.multitask import (
    IGNORE_LABEL, check_tasks, load_multitask, output_channels, read_example, split_ids,
)
from zippy_tf.errors import UserError

H, W = 6, 8


def _write(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith(".mat"):
        scipy.io.savemat(path, array)
    elif path.endswith(".txt"):
        with open(path, "w") as f:
            f.write("".join(f"{line}\n" for line in array))
    elif path.endswith(".json"):
        with open(path, "w") as f:
            json.dump(array, f)
    else:
        params = [cv2.IMWRITE_JPEG_QUALITY, 100] if path.endswith(".jpg") else []
        assert cv2.imwrite(path, array, params)


def _nyud_truth():
    semseg = np.zeros((H, W), np.uint8)
    semseg[:, 4:] = 40
    semseg[0, 0] = 255
    depth = np.linspace(0.5, 3.0, H * W, dtype=np.float32).reshape(H, W)
    depth[1, 1] = 0.0
    edge = np.zeros((H, W), np.uint8)
    edge[:, 3] = 255
    return semseg, depth, edge


@pytest.fixture
def nyud(tmp_path):
    root = str(tmp_path / "NYUD_MT")
    semseg, depth, edge = _nyud_truth()
    for example_id in ("0001", "0002"):
        _write(f"{root}/images/{example_id}.jpg", np.full((H, W, 3), (10, 120, 250), np.uint8))
        _write(f"{root}/segmentation/{example_id}.mat", {"segmentation": semseg})
        _write(f"{root}/depth/{example_id}.mat", {"depth": depth})
        _write(f"{root}/normals/{example_id}.jpg", np.full((H, W, 3), (255, 127, 0), np.uint8))  # BGR on disk
        _write(f"{root}/edge/{example_id}.png", edge)
    _write(f"{root}/gt_sets/train.txt", ["0001", "0002"])
    _write(f"{root}/gt_sets/val.txt", ["0002"])
    return root


def test_nyud_reader_conventions(nyud):
    semseg, depth, edge = _nyud_truth()
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
        _write(f"{root}/segmentation/0002.mat", {"segmentation": semseg})
        return root, "class id 41 outside 0..40"
    if how == "size_mismatch":
        _write(f"{root}/depth/0002.mat", {"depth": np.ones((H - 1, W), np.float32)})
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
        _write(f"{root}/depth/0002.mat", {"Depth": np.ones((H, W), np.float32)})
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


def _parts_anno(objects):
    """A PASCAL-Part ``anno`` struct: objects = [(class_ind, mask, [(part_name, mask), ...]), ...]."""
    table = np.zeros((1, len(objects)), dtype=[("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")])
    for i, (class_ind, mask, parts) in enumerate(objects):
        part_table = np.zeros((1, len(parts)), dtype=[("part_name", "O"), ("mask", "O")])
        for j, (name, part_mask) in enumerate(parts):
            part_table[0, j] = (name, part_mask.astype(np.uint8))
        table[0, i] = ("x", class_ind, mask.astype(np.uint8), part_table if parts else np.zeros((0, 0)))
    return {"anno": {"imname": "x", "objects": table}}


def _box(rows, cols):
    mask = np.zeros((H, W), bool)
    mask[rows, cols] = True
    return mask


@pytest.fixture
def pascal(tmp_path):
    root = str(tmp_path / "PASCAL_MT")
    label_map = np.zeros((H, W), np.uint16)  # context classes: 0 unknown, 3 cat, 5 wall, 9 tvmonitor
    label_map[:, 4:] = 5
    label_map[:2, :2] = 3
    label_map[4:, 6:] = 9
    semseg = np.where(label_map == 3, 8, 0).astype(np.uint8)
    semseg[5, 0] = 255
    person = [(15, _box(slice(0, 6), slice(0, 4)), [("head", _box(slice(0, 2), slice(0, 4))),
                                                     ("torso", _box(slice(1, 4), slice(0, 4))),
                                                     ("llleg", _box(slice(4, 6), slice(0, 2)))]),
              (8, _box(slice(0, 6), slice(4, 8)), [("lfoot", _box(slice(0, 6), slice(4, 8)))]),  # a cat: ignored
              (15, _box(slice(0, 6), slice(6, 8)), [("ruarm", _box(slice(0, 3), slice(6, 8)))])]
    for example_id, objects in (("2008_000001", person), ("2008_000002", person[1:2])):
        _write(f"{root}/JPEGImages/{example_id}.jpg", np.full((H, W, 3), 90, np.uint8))
        _write(f"{root}/Context/trainval/{example_id}.mat", {"LabelMap": label_map})
        _write(f"{root}/SemanticSegmentation/Context/{example_id}.png", semseg)
        _write(f"{root}/PascalParts/{example_id}.mat", _parts_anno(objects))
        _write(f"{root}/NormalsDistill/{example_id}.png", np.full((H, W, 3), (0, 255, 255), np.uint8))
        sal = np.zeros((H, W), np.uint8)
        sal[:, :3] = 200
        sal[:, 3] = 100
        _write(f"{root}/SaliencyDistill/{example_id}.png", sal)
    _write(f"{root}/ImageSets/Context/train.txt", ["2008_000001", "2008_000002"])
    _write(f"{root}/json/context_classes.json", {"unknown": 0, "cat": 3, "wall": 5, "tvmonitor": 9})
    _write(f"{root}/json/nyu_classes.json", ["unknown", "wall", "floor"])
    return root, label_map, semseg


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
    _write(f"{root}/SemanticSegmentation/Context/2008_000002.png", semseg)
    with pytest.raises(UserError, match="class id 21 outside 0..20"):
        list(load_multitask(root, "pascal", "train", ["semseg"]))
    os.remove(f"{root}/json/nyu_classes.json")
    with pytest.raises(UserError, match="nyu_classes.json' is missing"):
        read_example(root, "pascal", "2008_000001", ["normals"])
    with pytest.raises(UserError, match="split file .*ImageSets/Context/val.txt"):
        split_ids(root, "pascal", "val")
