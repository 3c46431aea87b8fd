"""Generated tracking sequences in the OTB layout, rendered from the photographs scikit-image ships.

The target is a crop of one photo moving smoothly (and changing scale) over a slowly panning crop of another
photo; distractors are other crops, one of them from the target's own photo so that it looks alike. The ground
truth is the exact pasted rectangle. Sequence ``i`` of seed ``s`` depends only on (s, i), so training and test
splits made from different seeds never share a sequence.

Each sequence folder also holds ``distractors_rect.txt`` (not part of the OTB layout; the OTB reader loads it when
present): per frame the pasted rectangles of the distractors, 1-based like the ground truth, around which
distractor-aware training pairs (``zippy_tf.tracking.pairs``) are cut.
"""

import contextlib
import os
import shutil
import tempfile

import cv2
import numpy as np

from zippy_tf.data.photos import PHOTOS, load_photo
from zippy_tf.errors import UserError
from zippy_tf.tracking.datasets import DISTRACTOR_FILE

NUM_DISTRACTORS = 2
MIN_TEXTURE_STD = 20.0


def _random_patch(rng, photo, height, width):
    """A (height, width) BGR patch cut at a random place of ``photo`` (scaled up when the photo is smaller)."""
    image = load_photo(photo)
    scale = max(height / image.shape[0], width / image.shape[1], 1.0)
    if scale > 1:
        image = cv2.resize(image, (int(np.ceil(image.shape[1] * scale)), int(np.ceil(image.shape[0] * scale))))
    best = None
    for _ in range(50):  # avoid flat regions (sky, paper, the dark hubble field): a flat target is untrackable
        y = rng.integers(0, image.shape[0] - height + 1)
        x = rng.integers(0, image.shape[1] - width + 1)
        patch = image[y : y + height, x : x + width]
        if best is None or patch.std() > best.std():
            best = patch
        if best.std() >= MIN_TEXTURE_STD:
            break
    return best


def _paste(frame, patch, x, y):
    """Pastes ``patch`` with its top-left corner at integer (x, y), clipped to the frame."""
    h, w = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, frame.shape[1]), min(y + h, frame.shape[0])
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]


def _smooth(rng, num_frames, low, high):
    """A smooth path from ``low`` to ``high`` (arrays): two sinusoids of random phase and frequency per axis."""
    t = np.linspace(0, 1, num_frames)[:, None]
    low, high = np.asarray(low, float), np.asarray(high, float)
    mix = np.zeros((num_frames, low.size))
    for _ in range(2):
        mix += np.sin(2 * np.pi * (rng.uniform(0.3, 1.5, low.size) * t + rng.uniform(0, 1, low.size)))
    return low + (high - low) * (mix / 4 + 0.5)  # mix ∈ [−2, 2] → [low, high]


def render_sequence(rng, num_frames, size):
    """Frames (list of BGR arrays), their exact 0-based (x, y, w, h) target boxes, shape (num_frames, 4), and the
    distractors' pasted rectangles, shape (num_frames, NUM_DISTRACTORS, 4), the look-alike one first."""
    height, width = size
    photos = rng.choice(len(PHOTOS), 2 + NUM_DISTRACTORS - 1, replace=False)
    background_photo, target_photo, other_photos = PHOTOS[photos[0]], PHOTOS[photos[1]], photos[2:]
    background = _random_patch(rng, background_photo, int(height * 1.25), int(width * 1.25))
    pan = _smooth(rng, num_frames, [0, 0], [background.shape[1] - width, background.shape[0] - height]).round()

    base = min(height, width) * rng.uniform(0.12, 0.3)
    aspect = rng.uniform(0.6, 1.6)
    target_w, target_h = base * np.sqrt(aspect), base / np.sqrt(aspect)
    max_scale = 1.35
    texture = _random_patch(rng, target_photo, int(target_h * max_scale) + 1, int(target_w * max_scale) + 1)
    scale = np.exp(_smooth(rng, num_frames, [np.log(1 / max_scale)], [np.log(max_scale)])[:, 0])
    sizes = np.maximum(np.stack([target_w * scale, target_h * scale], axis=1).round(), 4)
    half = np.array([target_w, target_h]) * max_scale / 2
    centres = _smooth(rng, num_frames, half + 1, np.array([width, height]) - half - 1)

    distractors = [_random_patch(rng, target_photo, int(target_h), int(target_w))]
    distractors += [_random_patch(rng, PHOTOS[p], int(target_h), int(target_w)) for p in other_photos]
    distractor_paths = [_smooth(rng, num_frames, [0, 0], [width - target_w, height - target_h]) for _ in distractors]

    frames, boxes, distractor_boxes = [], [], []
    for i in range(num_frames):
        frame = background[int(pan[i, 1]) : int(pan[i, 1]) + height, int(pan[i, 0]) : int(pan[i, 0]) + width].copy()
        for patch, path in zip(distractors, distractor_paths):
            _paste(frame, patch, int(path[i, 0]), int(path[i, 1]))
        distractor_boxes.append([(int(p[i, 0]), int(p[i, 1]), d.shape[1], d.shape[0])
                                 for d, p in zip(distractors, distractor_paths)])
        w, h = int(sizes[i, 0]), int(sizes[i, 1])
        x, y = int(round(centres[i, 0] - w / 2)), int(round(centres[i, 1] - h / 2))
        _paste(frame, cv2.resize(texture, (w, h), interpolation=cv2.INTER_AREA), x, y)
        frames.append(frame)
        boxes.append((x, y, w, h))
    return frames, np.asarray(boxes, np.float64), np.asarray(distractor_boxes, np.float64)


def write_otb_sequences(root, num_sequences, num_frames, seed, size=(240, 320)):
    """Writes ``num_sequences`` sequences ``gen<seed>_<i>/{img/0001.jpg…, groundtruth_rect.txt, distractors_rect.txt}``
    under ``root``.

    Each sequence is written to a hidden folder and renamed when complete, so an interrupted run leaves no
    half-written sequence. Returns the sequence names.
    """
    if num_sequences < 1 or num_frames < 2:
        raise UserError(f"cannot generate {num_sequences} sequences of {num_frames} frames; ask for ≥1 and ≥2")
    if min(size) < 64:
        raise UserError(f"frame size {tuple(size)} is too small to hold a target and distractors; use ≥ 64 px")
    os.makedirs(root, exist_ok=True)
    names = []
    for i in range(num_sequences):
        name = f"gen{seed}_{i:04d}"
        frames, boxes, distractors = render_sequence(np.random.default_rng([seed, i]), num_frames, size)
        tmp, final = os.path.join(root, f".tmp-{name}"), os.path.join(root, name)
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(os.path.join(tmp, "img"))
        for k, frame in enumerate(frames, 1):
            cv2.imwrite(os.path.join(tmp, "img", f"{k:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        one_based = boxes + [1, 1, 0, 0]  # the OTB layout stores 1-based boxes
        np.savetxt(os.path.join(tmp, "groundtruth_rect.txt"), one_based, fmt="%d", delimiter=",")
        one_based = (distractors + [1, 1, 0, 0]).reshape(len(frames), -1)
        np.savetxt(os.path.join(tmp, DISTRACTOR_FILE), one_based, fmt="%d", delimiter=",")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        names.append(name)
    return names


VALIDATION_SPLIT = "generated seed 2, 10 x 60"


@contextlib.contextmanager
def validation_sequences(folder=None):
    """Yields ``folder``, or if it is None the generated validation split (seed 2, 10 sequences × 60 frames) written
    to a temporary folder for the block. The tracker analyses in ``benchmarks/`` default to it; the test split of
    ``benchmarks/tracking_fps.py`` (seed 1000) is another seed, so nothing tuned or chosen on it is tested on it."""
    if folder is not None:
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="zippy_tf-validation-") as tmp:
        write_otb_sequences(tmp, 10, 60, 2)
        yield tmp


__all__ = ["VALIDATION_SPLIT", "render_sequence", "validation_sequences", "write_otb_sequences"]
