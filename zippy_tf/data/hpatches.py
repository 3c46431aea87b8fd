"""HPatches sequences: a loader for the real ``hpatches-sequences-release`` layout and a generator of look-alikes.

Layout: one folder per sequence, ``i_*`` (illumination changes, identity homographies) or ``v_*`` (viewpoint
changes), each holding ``1.ppm`` … ``6.ppm`` and the text files ``H_1_2`` … ``H_1_6`` (three rows of three numbers)
mapping pixels of image 1 to pixels of image k. The evaluation pairs image 1 with each of images 2…6.
"""

import math
import os

import cv2
import numpy as np

from zippy_tf.data.augment import colour_jitter, sample_shared_photometric
from zippy_tf.data.homography import sample_homography, scale_matrix, warp_image
from zippy_tf.data.image_folder import new_folder, random_crop, read_image
from zippy_tf.data.photos import HELDOUT_PHOTOS, PHOTOS, load_heldout_photo, load_photo
from zippy_tf.errors import UserError

NUM_IMAGES = 6
KINDS = ("i_", "v_")


def list_sequences(root):
    """The sorted sequence folders of an HPatches root, each checked for its six images and five homographies."""
    if not os.path.isdir(root):
        raise UserError(f"HPatches folder {root!r} does not exist; pass the hpatches-sequences-release folder")
    names = sorted(n for n in os.listdir(root) if n.startswith(KINDS) and os.path.isdir(os.path.join(root, n)))
    if not names:
        raise UserError(f"HPatches folder {root!r} holds no i_*/v_* sequence folders; pass the folder that does")
    for name in names:
        folder = os.path.join(root, name)
        for k in range(1, NUM_IMAGES + 1):
            if not os.path.isfile(os.path.join(folder, f"{k}.ppm")):
                raise UserError(f"HPatches sequence {folder!r} lacks image {k}.ppm; restore it or remove the sequence")
        for k in range(2, NUM_IMAGES + 1):
            if not os.path.isfile(os.path.join(folder, f"H_1_{k}")):
                raise UserError(f"HPatches sequence {folder!r} lacks the homography file H_1_{k}; restore it or "
                                "remove the sequence")
    return [os.path.join(root, n) for n in names]


def read_homography(path):
    """A 3x3 float64 homography from an HPatches ``H_1_k`` text file."""
    try:
        matrix = np.loadtxt(path, dtype=np.float64)
    except ValueError as e:
        raise UserError(f"homography file {path!r} is not three rows of three numbers ({e}); restore it")
    if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
        raise UserError(f"homography file {path!r} is not three rows of three finite numbers; restore it")
    return matrix


def _resize(image, resolution):
    """Resizes to ``resolution`` (width, height) with cv2's bilinear default, and returns the resize homography."""
    if resolution is None:
        return image, np.eye(3)
    height, width = image.shape[:2]
    scale = scale_matrix(resolution[0] / width, resolution[1] / height)
    return cv2.resize(image, tuple(resolution)), scale


def load_sequence(folder, resolution=(320, 240)):
    """The five evaluation pairs of one sequence folder.

    Args:
        folder: a sequence folder (checked by :func:`list_sequences`).
        resolution: (width, height) to resize every image to, or None for the native sizes.

    Returns:
        A list of dicts {"sequence", "index" (k), "image1", "image2" (image k; BGR uint8), "homography" (3x3
        float64 from image-1 pixels to image-k pixels, rescaled as H' = S_k · H · S_1⁻¹)}.

    References:
        KP2D ``kp2d/datasets/patches_dataset.py``; Balntas et al., "HPatches", CVPR 2017,
        https://arxiv.org/abs/1704.05939
    """
    name = os.path.basename(os.path.normpath(folder))
    images = [read_image(os.path.join(folder, f"{k}.ppm")) for k in range(1, NUM_IMAGES + 1)]
    if name.startswith("i_") and len({image.shape for image in images}) > 1:
        raise UserError(f"illumination sequence {folder!r} has images of different sizes, which its identity "
                        "homographies cannot relate; restore the original images")
    image1, scale1 = _resize(images[0], resolution)
    pairs = []
    for k in range(2, NUM_IMAGES + 1):
        image, scale = _resize(images[k - 1], resolution)
        homography = scale @ read_homography(os.path.join(folder, f"H_1_{k}")) @ np.linalg.inv(scale1)
        pairs.append({"sequence": name, "index": k, "image1": image1, "image2": image,
                      "homography": homography / homography[2, 2]})
    return pairs


def load_hpatches(root, resolution=(320, 240)):
    """Yields every evaluation pair of an HPatches root (see :func:`load_sequence`), sequence by sequence.

    The folder structure is checked before the first pair is yielded, so a missing file fails fast.
    """
    for folder in list_sequences(root):
        yield from load_sequence(folder, resolution)


def _write_homography(path, matrix):
    np.savetxt(path, matrix / matrix[2, 2], fmt="%.10g", delimiter=" ")


def _viewpoint_images(rng, image1):
    """Images 2…6 of a viewpoint sequence: image 1 seen through increasingly strong random homographies."""
    height, width = image1.shape[:2]
    out = []
    for k in range(2, NUM_IMAGES + 1):
        strength = (k - 1) / (NUM_IMAGES - 1)
        sampled = sample_homography(rng, height, width, patch_ratio=0.95 - 0.3 * strength,
                                    perspective_amplitude=0.5 * strength, max_angle=math.pi / 4 * strength)
        homography = np.linalg.inv(sampled)  # image k is the whole frame, image 1's patch magnified onto it
        out.append((warp_image(image1, homography), homography))
    return out


def _illumination_images(rng, image1):
    """Images 2…6 of an illumination sequence: global colour / gamma changes and a lighting gradient, identity H."""
    height, width = image1.shape[:2]
    out = []
    for _ in range(2, NUM_IMAGES + 1):
        image = colour_jitter(image1.astype(np.float32), sample_shared_photometric(rng))
        gamma = rng.uniform(0.5, 2.0)
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width]
        ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height)
        light = 1.0 + rng.uniform(0.2, 0.6) * (ramp - ramp.mean())
        image = 255.0 * (image / 255.0) ** gamma * light[..., None]
        out.append((np.clip(image, 0, 255).astype(np.uint8), np.eye(3)))
    return out


def write_hpatches_like(root, num_sequences=8, seed=0, *, height=480, width=640, heldout=False):
    """Writes an HPatches-layout test set generated from the scikit-image photographs into a new folder ``root``;
    with ``heldout=True``, from the held-out photographs of scikit-learn and matplotlib instead (a final test set
    of photos no training or tuning ever saw).

    Sequences alternate between viewpoint (``v_<photo>``: sampled homographies of growing strength) and
    illumination (``i_<photo>``: photometric changes, identity homographies). Images are binary .ppm files and
    homographies ``H_1_k`` text files, as in ``hpatches-sequences-release``. The folder is written aside and
    renamed when complete.

    Returns:
        ``root``.
    """
    rng = np.random.default_rng(seed)
    photos, load = (HELDOUT_PHOTOS, load_heldout_photo) if heldout else (PHOTOS, load_photo)
    with new_folder(root) as partial:
        for index in range(num_sequences):
            photo = photos[(index // 2) % len(photos)]
            kind, make = (("v_", _viewpoint_images), ("i_", _illumination_images))[index % 2]
            folder = os.path.join(partial, f"{kind}{photo}_{index:03d}")
            os.mkdir(folder)
            image1 = random_crop(rng, load(photo), height, width, min_fraction=0.6)
            cv2.imwrite(os.path.join(folder, "1.ppm"), image1)
            for k, (image, homography) in enumerate(make(rng, image1), start=2):
                cv2.imwrite(os.path.join(folder, f"{k}.ppm"), image)
                _write_homography(os.path.join(folder, f"H_1_{k}"), homography)
    return root


# The project's standard test sets (seeds differ from the search's validation split, 1001): "generated" from the
# scikit-image photos (training's photos, other crops and warps), "heldout" from photos no training or tuning saw.
STANDARD_TEST_SETS = {
    "generated": {"num_sequences": 16, "seed": 0},
    "heldout": {"num_sequences": 12, "seed": 0, "heldout": True},
}
# The validation split for choices made by hand (e.g. --refine_radius): the search's seed, 16 sequences (its first
# four are the search's own validation folder).
VALIDATION_SET = {"num_sequences": 16, "seed": 1001}


def standard_test_set(name, data_dir, progress=None):
    """The folder of standard test set ``name`` (or "validation") under ``data_dir``, written there on first use."""
    sets = {**STANDARD_TEST_SETS, "validation": VALIDATION_SET}
    if name not in sets:
        raise UserError(f"unknown test set {name!r}; choose from {', '.join(sets)}")
    root = os.path.join(data_dir, name)
    if not os.path.isdir(root):
        if progress is not None:
            progress(f"writing the {name} test set to {root}")
        os.makedirs(data_dir, exist_ok=True)
        write_hpatches_like(root, **sets[name])
    return root


__all__ = ["STANDARD_TEST_SETS", "VALIDATION_SET", "list_sequences", "load_hpatches", "load_sequence",
           "read_homography", "standard_test_set", "write_hpatches_like"]
