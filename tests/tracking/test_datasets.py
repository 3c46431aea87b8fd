"""Readers for the OTB-100, LaSOT and GOT-10k layouts, on tiny hand-made examples of each."""

import os

import cv2
import numpy as np
import pytest

from zippy_tf.errors import UserError
from zippy_tf.tracking.datasets import load_sequences


def write_frames(folder, count, digits, ext=".jpg"):
    os.makedirs(folder, exist_ok=True)
    for i in range(1, count + 1):
        cv2.imwrite(os.path.join(folder, f"{i:0{digits}d}{ext}"), np.full((24, 32), 100 + i, np.uint8))


def write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


def make_otb(root):
    write_frames(root / "Car" / "img", 3, 4)
    write_text(root / "Car" / "groundtruth_rect.txt", "1,2,10,12\n2,3,10,12\n3,4,11,13\n")
    write_frames(root / "Dog" / "img", 2, 4)  # tab- and space-separated sequences exist in OTB-100
    write_text(root / "Dog" / "groundtruth_rect.txt", "5\t6\t7\t8\n6  7 7 8\n")
    write_frames(root / "Jogging" / "img", 2, 4)  # two targets, one file each
    write_text(root / "Jogging" / "groundtruth_rect.1.txt", "1,1,4,4\n2,2,4,4\n")
    write_text(root / "Jogging" / "groundtruth_rect.2.txt", "9,9,5,5\n9,9,5,5\n")
    write_frames(root / "Board" / "img", 2, 5)  # Board uses five digits
    write_text(root / "Board" / "groundtruth_rect.txt", "1,1,3,3\n1,1,3,3\n")
    write_frames(root / "BlurCar3" / "img", 360, 4)  # ground truth for frames 3..359 only
    write_text(root / "BlurCar3" / "groundtruth_rect.txt", "1,1,3,3\n" * 357)
    return root


def make_lasot(root):
    seq = root / "cat" / "cat-1"
    write_frames(seq / "img", 4, 8)
    write_text(seq / "groundtruth.txt", "1,2,10,12\n2,3,10,12\n0,0,0,0\n4,5,10,12\n")
    write_text(seq / "full_occlusion.txt", "0,0,1,0")
    write_text(seq / "out_of_view.txt", "0,1,0,0")
    write_text(seq / "nlp.txt", "a cat")
    return root


def make_got10k(root):
    for name in ("GOT-10k_Val_000001", "GOT-10k_Val_000002"):
        write_frames(root / name, 3, 8)
        write_text(root / name / "groundtruth.txt", "1.5,2,10,12\n2,3,10,12\n3,4,10,12\n")
    write_text(root / "GOT-10k_Val_000002" / "absence.label", "0\n1\n0\n")
    write_text(root / "list.txt", "GOT-10k_Val_000001\nGOT-10k_Val_000002\n")
    return root


def by_name(sequences):
    return {s.name: s for s in sequences}


def test_otb(tmp_path):
    sequences = by_name(load_sequences(str(make_otb(tmp_path)), "otb"))
    assert sorted(sequences) == ["BlurCar3", "Board", "Car", "Dog", "Jogging_1", "Jogging_2"]
    blur = sequences["BlurCar3"]
    assert len(blur) == 357 and blur.frames[0].endswith("0003.jpg") and blur.frames[-1].endswith("0359.jpg")
    np.testing.assert_array_equal(sequences["Car"].boxes[0], [0, 1, 10, 12])  # 1-based → 0-based
    np.testing.assert_array_equal(sequences["Dog"].boxes[1], [5, 6, 7, 8])
    np.testing.assert_array_equal(sequences["Jogging_2"].boxes[0], [8, 8, 5, 5])
    assert sequences["Jogging_1"].frames == sequences["Jogging_2"].frames
    assert sequences["Car"].frames[2].endswith(os.path.join("img", "0003.jpg"))
    assert sequences["Car"].boxes.dtype == np.float64 and len(sequences["Car"]) == 3
    assert sequences["Car"].read(0).shape == (24, 32, 3)  # grayscale files come back as BGR


def test_lasot_marks_absent_frames_nan(tmp_path):
    (sequence,) = load_sequences(str(make_lasot(tmp_path)), "lasot")
    assert sequence.name == "cat-1" and len(sequence) == 4
    np.testing.assert_array_equal(sequence.boxes[0], [1, 2, 10, 12])
    assert np.isnan(sequence.boxes[1:3]).all()  # out of view, then fully occluded (and a 0,0,0,0 box)
    np.testing.assert_array_equal(sequence.boxes[3], [4, 5, 10, 12])


def test_got10k_uses_list_and_absence(tmp_path):
    sequences = load_sequences(str(make_got10k(tmp_path)), "got10k")
    assert [s.name for s in sequences] == ["GOT-10k_Val_000001", "GOT-10k_Val_000002"]
    np.testing.assert_array_equal(sequences[0].boxes[0], [1.5, 2, 10, 12])  # already 0-based
    assert np.isnan(sequences[1].boxes[1]).all() and np.isfinite(sequences[1].boxes[[0, 2]]).all()


def remove(path):
    os.remove(path)


# (layout, change to a valid example, words the one-line error must contain)
BAD_INPUTS = [
    ("otb", lambda r: remove(r / "Car" / "groundtruth_rect.txt"), "no groundtruth_rect.txt"),
    ("otb", lambda r: write_text(r / "Car" / "groundtruth_rect.txt", "1,2,10,12\n2,3,10,12\n"), "2 boxes for 3"),
    ("otb", lambda r: write_text(r / "Car" / "groundtruth_rect.txt", "1,2,10,12\n2,3,x,12\n1,1,1,1\n"),
     "groundtruth_rect.txt:2: cannot parse"),
    ("otb", lambda r: write_text(r / "Car" / "groundtruth_rect.txt", "1,2,10\n2,3,10,12\n1,1,1,1\n"), "4 numbers"),
    ("otb", lambda r: write_text(r / "Car" / "groundtruth_rect.txt", "1,1,1,1\n" * 4), "only 3 frames"),
    ("lasot", lambda r: remove(r / "cat" / "cat-1" / "groundtruth.txt"), "no groundtruth.txt"),
    ("lasot", lambda r: write_text(r / "cat" / "cat-1" / "out_of_view.txt", "0,1"), "2 flags for 4 frames"),
    ("lasot", lambda r: write_text(r / "cat" / "cat-1" / "full_occlusion.txt", "0,yes,0,0"), "0/1 flags"),
    ("got10k", lambda r: remove(r / "GOT-10k_Val_000002" / "groundtruth.txt"), "no groundtruth.txt"),
    ("got10k", lambda r: write_text(r / "list.txt", "GOT-10k_Val_000003\n"), "does not exist"),
    ("got10k", lambda r: write_text(r / "GOT-10k_Val_000001" / "groundtruth.txt", "1,1,4,4\n"), "only the first box"),
]
MAKERS = {"otb": make_otb, "lasot": make_lasot, "got10k": make_got10k}


@pytest.mark.parametrize("fmt, change, message", BAD_INPUTS)
def test_bad_input(tmp_path, fmt, change, message):
    root = MAKERS[fmt](tmp_path)
    change(root)
    with pytest.raises(UserError, match=message) as error:
        load_sequences(str(root), fmt)
    assert "\n" not in str(error.value)


def test_missing_folder_empty_folder_and_unknown_format(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_sequences(str(tmp_path / "nope"), "otb")
    with pytest.raises(UserError, match="no otb sequences"):
        load_sequences(str(tmp_path), "otb")
    with pytest.raises(UserError, match="unknown tracking data format"):
        load_sequences(str(tmp_path), "vot")
