"""The real photographs scikit-image ships: the project's only bundled image source.

scikit-learn's and matplotlib's sample photos are deliberately absent: they are kept as an untouched test set
and must never be used for training, calibration or tuning.
"""

import functools

import cv2
import numpy as np

# Photographs (not synthetic drawings), colour or grey, that load offline from the scikit-image wheel.
PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel", "hubble_deep_field",
    "immunohistochemistry", "moon", "page", "retina", "rocket", "text", "clock", "cell", "stereo_motorcycle",
)


@functools.lru_cache(maxsize=None)
def load_photo(name):
    """A bundled photograph as a uint8 BGR (H, W, 3) array, the channel order of ``cv2.imread``."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {', '.join(PHOTOS)}")
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo pairs: take the left view
        image = image[0]
    image = np.asarray(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)


def calibration_images(height, width, count=8):
    """``count`` photos resized to (height, width), float32 in [0, 255]: the int8 converter's representative set."""
    names = [PHOTOS[i % len(PHOTOS)] for i in range(count)]
    return np.stack(
        [cv2.resize(load_photo(n), (width, height), interpolation=cv2.INTER_AREA) for n in names]
    ).astype(np.float32)


__all__ = ["PHOTOS", "calibration_images", "load_photo"]
