"""Readers for the on-disk layouts of OTB-100, LaSOT and GOT-10k.

Every reader returns :class:`Sequence` objects with 0-based (x, y, w, h) float64 boxes and NaN rows where the
target is absent (LaSOT: full occlusion or out of view; GOT-10k: ``absence.label``; any format: a box with
non-positive width or height). The evaluation skips NaN frames, as the toolkits do.
"""

import dataclasses
import os
import re

import cv2
import numpy as np

from zippy_tf.errors import UserError

FORMATS = ("otb", "lasot", "got10k")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

# OTB-100 sequences whose ground truth covers only a range of the frames on disk (1-based, inclusive), from the
# benchmark's own sequence table.
OTB_FRAME_RANGES = {"David": (300, 770), "BlurCar1": (247, 988), "BlurCar3": (3, 359), "BlurCar4": (18, 397)}

# Not part of any benchmark's layout: the generated sequences (zippy_tf.tracking.generate) write the rectangles of
# their look-alike distractors here, one line per frame, K boxes of x, y, w, h each, 1-based like OTB's.
DISTRACTOR_FILE = "distractors_rect.txt"


@dataclasses.dataclass
class Sequence:
    """One video: frame paths and one (x, y, w, h) box per frame (0-based, NaN where the target is absent).

    ``distractors``, (frames, K, 4) 0-based boxes of K objects that look like the target, or None: only sequences
    that annotate them (``DISTRACTOR_FILE``) have them; training samples distractor-aware pairs from them.
    """

    name: str
    frames: list
    boxes: np.ndarray
    distractors: np.ndarray = None

    def __len__(self):
        return len(self.frames)

    def read(self, index):
        """Frame ``index`` as uint8 BGR (grayscale files are read as 3 channels)."""
        return read_image(self.frames[index])


def read_image(path):
    """An image file as uint8 BGR (grayscale files are read as 3 channels)."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot read frame {path!r}; the file is missing or not an image")
    return image


def _image_files(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))


def _read_rows(path, width):
    """Rows of ``width`` numbers separated by commas, tabs or spaces (OTB mixes them between sequences)."""
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = [v for v in re.split(r"[,\s]+", line.strip()) if v]
            try:
                values = [float(v) for v in fields]
            except ValueError:
                values = []
            if len(values) != width:
                raise UserError(f"{path}:{number}: cannot parse {line.strip()!r} as {width} numbers; fix the line")
            rows.append(values)
    return np.asarray(rows, np.float64).reshape(-1, width)


def _sequence(name, frames, boxes, gt_path):
    if not frames:
        raise UserError(f"sequence {name!r} has no frames next to {gt_path!r}; add the images or remove the folder")
    if len(boxes) < len(frames):
        raise UserError(
            f"{gt_path} has {len(boxes)} boxes for {len(frames)} frames; every frame needs a ground-truth line"
        )
    if len(boxes) > len(frames):
        raise UserError(f"{gt_path} has {len(boxes)} boxes but only {len(frames)} frames; restore the missing frames")
    boxes = boxes.copy()
    boxes[~np.all(boxes[:, 2:] > 0, axis=1)] = np.nan
    return Sequence(name, frames, boxes)


def _otb(root):
    sequences = []
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if not os.path.isdir(os.path.join(folder, "img")):
            continue
        gt_files = sorted(f for f in os.listdir(folder) if re.fullmatch(r"groundtruth_rect(\.\d+)?\.txt", f))
        if not gt_files:
            raise UserError(f"OTB sequence {folder!r} has no groundtruth_rect.txt; add it or remove the folder")
        frames = _image_files(os.path.join(folder, "img"))
        first, last = OTB_FRAME_RANGES.get(name, (1, len(frames)))
        if len(frames) >= last:  # the full download; a copy already cut to the range is taken as it is
            frames = frames[first - 1 : last]
        for gt in gt_files:
            boxes = _read_rows(os.path.join(folder, gt), 4)
            boxes[:, :2] -= 1  # OTB boxes are 1-based (MATLAB)
            # Two-target sequences (Jogging, Skating2) have groundtruth_rect.1.txt and .2.txt.
            suffix = f"_{gt.split('.')[1]}" if len(gt_files) > 1 else ""
            sequences.append(_sequence(name + suffix, frames, boxes, os.path.join(folder, gt)))
        if len(gt_files) == 1 and os.path.isfile(os.path.join(folder, DISTRACTOR_FILE)):
            sequences[-1].distractors = _read_distractors(os.path.join(folder, DISTRACTOR_FILE), len(frames))
    return sequences


def _read_distractors(path, count):
    """``DISTRACTOR_FILE`` as (count, K, 4) 0-based boxes."""
    with open(path) as f:
        first = next((line for line in f if line.strip()), "")
    width = len([v for v in re.split(r"[,\s]+", first.strip()) if v])
    if not width or width % 4:
        raise UserError(f"{path}: a line must hold x, y, w, h of each distractor (a multiple of 4 numbers), got "
                        f"{width}; fix or delete the file")
    rows = _read_rows(path, width)
    if len(rows) != count:
        raise UserError(f"{path} has {len(rows)} lines for {count} frames; fix or delete the file")
    boxes = rows.reshape(count, -1, 4)
    boxes[..., :2] -= 1  # 1-based, as the ground truth beside it
    return boxes


def _flags(path, count):
    """A LaSOT/GOT-10k 0/1 flag file as a boolean array; a missing file means "always visible"."""
    if not os.path.isfile(path):
        return np.zeros(count, bool)
    with open(path) as f:
        text = f.read()
    try:
        flags = np.array([int(v) for v in re.split(r"[,\s]+", text.strip()) if v], dtype=np.int64)
    except ValueError:
        raise UserError(f"{path} is not a list of 0/1 flags; fix or delete the file")
    if len(flags) < count:
        raise UserError(f"{path} has {len(flags)} flags for {count} frames; every frame needs a flag")
    return flags[:count] != 0


def _lasot(root):
    sequences = []
    # <class>/<class>-<n>/img, or the sequences directly under root (one class folder passed in).
    candidates = [os.path.join(root, d) for d in sorted(os.listdir(root))]
    folders = [c for c in candidates if os.path.isdir(os.path.join(c, "img"))]
    for c in candidates:
        if os.path.isdir(c) and c not in folders:
            folders += [os.path.join(c, d) for d in sorted(os.listdir(c)) if os.path.isdir(os.path.join(c, d, "img"))]
    for folder in folders:
        gt = os.path.join(folder, "groundtruth.txt")
        if not os.path.isfile(gt):
            raise UserError(f"LaSOT sequence {folder!r} has no groundtruth.txt; add it or remove the folder")
        frames = _image_files(os.path.join(folder, "img"))
        boxes = _read_rows(gt, 4)
        # Read as-is: PyTracking and pysot do not shift LaSOT boxes (only OTB's are documented as 1-based).
        sequence = _sequence(os.path.basename(folder), frames, boxes, gt)
        absent = _flags(os.path.join(folder, "full_occlusion.txt"), len(frames))
        absent |= _flags(os.path.join(folder, "out_of_view.txt"), len(frames))
        sequence.boxes[absent] = np.nan
        sequences.append(sequence)
    return sequences


def _got10k(root):
    listing = os.path.join(root, "list.txt")
    if os.path.isfile(listing):
        with open(listing) as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    sequences = []
    for name in names:
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            raise UserError(f"{listing} lists {name!r} but {folder!r} does not exist; restore it or fix list.txt")
        gt = os.path.join(folder, "groundtruth.txt")
        if not os.path.isfile(gt):
            raise UserError(f"GOT-10k sequence {folder!r} has no groundtruth.txt; add it or remove the folder")
        frames = _image_files(folder)
        boxes = _read_rows(gt, 4)  # GOT-10k boxes are already 0-based
        if len(boxes) == 1 < len(frames):
            raise UserError(
                f"{gt} has only the first box (a GOT-10k test sequence); evaluate on train or val, whose ground "
                "truth is public"
            )
        sequence = _sequence(name, frames, boxes, gt)
        sequence.boxes[_flags(os.path.join(folder, "absence.label"), len(frames))] = np.nan
        sequences.append(sequence)
    return sequences


READERS = {"otb": _otb, "lasot": _lasot, "got10k": _got10k}


def load_sequences(root, fmt):
    """All sequences under ``root`` in layout ``fmt`` (``otb``, ``lasot`` or ``got10k``; for GOT-10k, a split
    folder such as ``GOT-10k/val``)."""
    if fmt not in READERS:
        raise UserError(f"unknown tracking data format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if not os.path.isdir(root):
        raise UserError(f"tracking data folder {root!r} does not exist; check data=")
    sequences = READERS[fmt](root)
    if not sequences:
        raise UserError(f"no {fmt} sequences found in {root!r}; check data= and format=")
    return sequences


__all__ = ["FORMATS", "Sequence", "load_sequences", "read_image"]
