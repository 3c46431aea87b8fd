"""Tiny hand-made copies of the NYUD-MT and PASCAL-MT layouts, written file by file as the archives hold them."""

import json
import os

import cv2
import numpy as np
import scipy.io

H, W = 6, 8


def write(path, array):
    """Writes ``array`` as the file type the path's extension names (.mat dict, .txt lines, .json, image)."""
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


def nyud_truth():
    """The semseg, depth and edge maps (as stored) of both tiny NYUD examples."""
    semseg = np.zeros((H, W), np.uint8)
    semseg[:, 4:] = 40
    semseg[0, 0] = 255
    depth = np.linspace(0.5, 3.0, H * W, dtype=np.float32).reshape(H, W)
    depth[1, 1] = 0.0
    edge = np.zeros((H, W), np.uint8)
    edge[:, 3] = 255
    return semseg, depth, edge


def write_tiny_nyud(root):
    """Two 6x8 examples in the NYUD-MT layout (train: both, val: the second); returns ``root``."""
    semseg, depth, edge = nyud_truth()
    for example_id in ("0001", "0002"):
        write(f"{root}/images/{example_id}.jpg", np.full((H, W, 3), (10, 120, 250), np.uint8))
        write(f"{root}/segmentation/{example_id}.mat", {"segmentation": semseg})
        write(f"{root}/depth/{example_id}.mat", {"depth": depth})
        write(f"{root}/normals/{example_id}.jpg", np.full((H, W, 3), (255, 127, 0), np.uint8))  # BGR on disk
        write(f"{root}/edge/{example_id}.png", edge)
    write(f"{root}/gt_sets/train.txt", ["0001", "0002"])
    write(f"{root}/gt_sets/val.txt", ["0002"])
    return root


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


def write_tiny_pascal(root):
    """Two 6x8 examples in the PASCAL-MT layout, the first with two people, the second with none (train: both,
    val: the second); returns (root, the context LabelMap, the semseg map)."""
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
        write(f"{root}/JPEGImages/{example_id}.jpg", np.full((H, W, 3), 90, np.uint8))
        write(f"{root}/Context/trainval/{example_id}.mat", {"LabelMap": label_map})
        write(f"{root}/SemanticSegmentation/Context/{example_id}.png", semseg)
        write(f"{root}/PascalParts/{example_id}.mat", _parts_anno(objects))
        write(f"{root}/NormalsDistill/{example_id}.png", np.full((H, W, 3), (0, 255, 255), np.uint8))
        sal = np.zeros((H, W), np.uint8)
        sal[:, :3] = 200
        sal[:, 3] = 100
        write(f"{root}/SaliencyDistill/{example_id}.png", sal)
    write(f"{root}/ImageSets/Context/train.txt", ["2008_000001", "2008_000002"])
    write(f"{root}/ImageSets/Context/val.txt", ["2008_000002"])
    write(f"{root}/json/context_classes.json", {"unknown": 0, "cat": 3, "wall": 5, "tvmonitor": 9})
    write(f"{root}/json/nyu_classes.json", ["unknown", "wall", "floor"])
    return root, label_map, semseg
