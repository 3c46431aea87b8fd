"""Training pairs for self-supervised keypoint learning from any flat folder of JPEG / PNG images (the COCO layout).

Each image becomes a (source, target, homography) triple: the target is the resized image after the spatial
augmentation, the source is the target seen through a random homography, and both get the photometric
augmentation. The bundled default training set is written by :func:`write_training_folder` from the photographs
scikit-image ships.
"""

import contextlib
import os
import shutil
import tempfile

import cv2
import numpy as np

from zippy_tf._compat import tf
from zippy_tf.data.augment import augment_pair, spatial_augment
from zippy_tf.data.homography import sample_homography, warp_image
from zippy_tf.data.photos import PHOTOS, load_photo
from zippy_tf.errors import UserError
from zippy_tf.io import check_output_folder

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def list_images(folder):
    """The sorted image files of a flat folder; fails with a one-line error on a missing or empty folder or a
    file OpenCV cannot decode (checked from its header, so that a long training run does not fail mid-epoch)."""
    if not os.path.isdir(folder):
        raise UserError(f"image folder {folder!r} does not exist; pass a folder of JPEG/PNG images")
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise UserError(f"image folder {folder!r} holds no .jpg/.jpeg/.png files; add images or pick another folder")
    for path in paths:
        if os.path.getsize(path) == 0 or not cv2.haveImageReader(path):
            raise UserError(f"image {path!r} is not a readable image; delete or replace it")
    return paths


def read_image(path, height=None, width=None):
    """A BGR uint8 image read by OpenCV, resized to (height, width) with area interpolation when both are given."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"image {str(path)!r} is not a readable image; delete or replace it")
    if height is not None and width is not None and image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image


def make_pair(rng, image):
    """One training sample from a resized BGR image: (source, target, homography source → target pixels).

    References:
        KP2D ``ha_augment_sample``: source = target sampled at H(p), https://arxiv.org/abs/1912.10615
    """
    height, width = image.shape[:2]
    target = spatial_augment(rng, image).astype(np.float32)
    homography = sample_homography(rng, height, width)
    source = warp_image(target, np.linalg.inv(homography))  # source(p) = target(H p)
    source, target = augment_pair(rng, source, target)
    return source, target, homography.astype(np.float32)


def pair_dataset(folder, *, height=240, width=320, batch_size=8, seed=0, shuffle=True):
    """A ``tf.data.Dataset`` of batched training pairs from a folder of images.

    Elements are dicts {"source": (B, H, W, 3) float32 BGR in [0, 255], "target": the same, "homography":
    (B, 3, 3) float32 mapping source pixels to target pixels}. The dataset is one epoch; iterating it again
    gives a new, still seed-determined, order and augmentation. Incomplete last batches are dropped so that
    every batch has the static size distribution strategies need.

    Args:
        folder: a flat folder of .jpg / .jpeg / .png files.
        height, width: training resolution (images are resized, as KP2D resizes COCO).
        batch_size: pairs per batch.
        seed: fixes file order and every augmentation draw.
        shuffle: shuffle the files each epoch.
    """
    paths = list_images(folder)
    if len(paths) < batch_size:
        raise UserError(f"image folder {folder!r} has {len(paths)} images, fewer than the batch size {batch_size}; "
                        "add images or lower the batch size")

    def load(path, draw_seed):
        rng = np.random.default_rng([seed, int(draw_seed) & 0x7FFFFFFF])
        return make_pair(rng, read_image(path.decode(), height, width))

    def to_dict(path, draw_seed):
        source, target, homography = tf.numpy_function(load, [path, draw_seed], [tf.float32] * 3)
        source.set_shape((height, width, 3))
        target.set_shape((height, width, 3))
        homography.set_shape((3, 3))
        return {"source": source, "target": target, "homography": homography}

    files = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return (tf.data.Dataset.zip((files, draws))
            .map(to_dict, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))


def random_crop(rng, image, height, width, min_fraction=0.4):
    """A crop of the image's aspect-(width/height) window at a random scale and place, resized to (height, width)."""
    rows, cols = image.shape[:2]
    full = min(rows / height, cols / width)
    fraction = rng.uniform(min_fraction, 1.0)
    crop_h, crop_w = max(8, int(height * full * fraction)), max(8, int(width * full * fraction))
    top, left = rng.integers(rows - crop_h + 1), rng.integers(cols - crop_w + 1)
    crop = image[top:top + crop_h, left:left + crop_w]
    interpolation = cv2.INTER_AREA if crop_h > height else cv2.INTER_LINEAR
    return cv2.resize(crop, (width, height), interpolation=interpolation)


@contextlib.contextmanager
def new_folder(root):
    """Yields a hidden sibling folder to fill; it becomes ``root`` only when the block succeeds, so an interrupted
    writer never leaves a half-written data set. ``root`` must not exist yet (or be an empty folder)."""
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise UserError(f"{root!r} already exists and is not an empty folder; pick a new folder or delete it")
    check_output_folder(root)
    partial = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(root)), prefix=".partial-")
    try:
        yield partial
        os.replace(partial, root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def write_training_folder(root, count=256, *, height=240, width=320, seed=0):
    """Writes the bundled default training set: ``count`` JPEGs of random crops and rescalings of the
    scikit-image photographs, into a new flat folder ``root``.

    Returns:
        ``root``.
    """
    rng = np.random.default_rng(seed)
    with new_folder(root) as partial:
        for index in range(count):
            name = PHOTOS[index % len(PHOTOS)]
            crop = random_crop(rng, load_photo(name), height, width)
            cv2.imwrite(os.path.join(partial, f"{name}_{index:05d}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return root


__all__ = [
    "IMAGE_EXTENSIONS", "list_images", "make_pair", "new_folder", "pair_dataset", "random_crop", "read_image",
    "write_training_folder",
]
