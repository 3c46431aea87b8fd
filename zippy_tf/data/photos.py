"""The real photographs scikit-image ships (the project's training, calibration and tuning source) and the
held-out ones.

scikit-learn's and matplotlib's sample photos are an untouched test set: they are never used for training,
calibration or tuning, only by :func:`load_heldout_photo` for final test sets (``write_hpatches_like(...,
heldout=True)``) that report how trained models do on photographs they never saw.
"""

import functools

import cv2
import numpy as np

from zippy_tf.errors import UserError

# Photographs (not synthetic drawings), colour or grey, that load offline from the scikit-image wheel.
PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel", "hubble_deep_field",
    "immunohistochemistry", "moon", "page", "retina", "rocket", "text", "clock", "cell", "stereo_motorcycle",
)


@functools.lru_cache(maxsize=None)
def load_photo(name):
    """A bundled photograph as a uint8 BGR (H, W, 3) array, the channel order of ``cv2.imread``."""
    if name not in PHOTOS:
        raise UserError(f"unknown photo {name!r}; choose one of {', '.join(PHOTOS)}")
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo pairs: take the left view
        image = image[0]
    image = np.asarray(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)


# The held-out test photographs: scikit-learn's two sample images and matplotlib's one photograph.
HELDOUT_PHOTOS = ("china", "flower", "grace_hopper")


@functools.lru_cache(maxsize=None)
def load_heldout_photo(name):
    """A held-out test photograph as uint8 BGR; needs scikit-learn (``pip install zippy-tf[heldout]``) for
    "china" and "flower"."""
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            data = np.frombuffer(f.read(), np.uint8)
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    if name not in HELDOUT_PHOTOS:
        raise UserError(f"unknown held-out photo {name!r}; choose one of {', '.join(HELDOUT_PHOTOS)}")
    try:
        import sklearn.datasets
    except ImportError:
        raise UserError("the held-out photos 'china' and 'flower' come with scikit-learn; install it with "
                        "`pip install -e .[heldout]`") from None
    return cv2.cvtColor(sklearn.datasets.load_sample_image(f"{name}.jpg"), cv2.COLOR_RGB2BGR)


def calibration_images(height, width, count=8):
    """``count`` photos resized to (height, width), float32 in [0, 255]: the int8 converter's representative set."""
    names = [PHOTOS[i % len(PHOTOS)] for i in range(count)]
    return np.stack(
        [cv2.resize(load_photo(n), (width, height), interpolation=cv2.INTER_AREA) for n in names]
    ).astype(np.float32)


__all__ = ["HELDOUT_PHOTOS", "PHOTOS", "calibration_images", "load_heldout_photo", "load_photo"]
