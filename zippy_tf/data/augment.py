"""Augmentations of KP2D's self-supervised training, on numpy BGR images (float32 in [0, 255]).

The spatial augmentation makes the target image; the photometric one is applied to both images of a pair with
the draws the reference shares (channel order, greyscale, colour jitter) drawn once, and noise and blur drawn per
image.
"""

import cv2
import numpy as np

NOISE_STD = 0.05 * 255.0
BLUR_KERNELS = (0, 1, 3, 5)  # 0: no blur
JITTER = {"brightness": 0.5, "contrast": 0.5, "saturation": 0.2, "hue": 0.05}


def spatial_augment(rng, image, max_angle=15.0, max_translation=0.1, scale_range=(0.9, 1.1)):
    """Random vertical / horizontal flips (p = 0.5 each) then a random affine map (rotation, translation, scale).

    Args:
        rng: ``np.random.Generator``.
        image: (H, W, 3) array.
        max_angle: rotation bound in degrees; max_translation: bound as a fraction of the image size.

    References:
        KP2D training augmentations (torchvision RandomAffine(15, translate=0.1, scale=(0.9, 1.1))),
        https://arxiv.org/abs/1912.10615
    """
    if rng.random() < 0.5:
        image = image[::-1]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    height, width = image.shape[:2]
    angle = rng.uniform(-max_angle, max_angle)
    scale = rng.uniform(*scale_range)
    shift = rng.uniform(-max_translation, max_translation, 2) * np.array([width, height])
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), angle, scale)
    matrix[:, 2] += shift
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def sample_shared_photometric(rng):
    """The photometric draws shared by both images of a pair: channel order, greyscale and colour jitter."""
    return {
        "channels": rng.permutation(3) if rng.random() < 0.5 else np.arange(3),
        "grey": rng.random() < 0.5,
        "brightness": rng.uniform(1 - JITTER["brightness"], 1 + JITTER["brightness"]),
        "contrast": rng.uniform(1 - JITTER["contrast"], 1 + JITTER["contrast"]),
        "saturation": rng.uniform(1 - JITTER["saturation"], 1 + JITTER["saturation"]),
        "hue": rng.uniform(-JITTER["hue"], JITTER["hue"]),
        "jitter_order": rng.permutation(4),  # torchvision's ColorJitter applies its four changes in random order
    }


def _grey(image):
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def _blend(image, other, factor):
    """``factor · image + (1 - factor) · other``, clipped: the form of brightness, contrast and saturation."""
    return np.clip(factor * image + (1.0 - factor) * other, 0.0, 255.0)


def _shift_hue(image, shift):
    """Rotates the hue by ``shift`` of a full turn (cv2's float HSV has hue in degrees)."""
    hsv = cv2.cvtColor(image / 255.0, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + 360.0 * shift, 360.0)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR) * 255.0


def colour_jitter(image, draw):
    """Brightness, contrast, saturation and hue changes of one draw, in the draw's order."""
    changes = (
        lambda x: _blend(x, 0.0, draw["brightness"]),
        lambda x: _blend(x, float(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY).mean()), draw["contrast"]),
        lambda x: _blend(x, _grey(x), draw["saturation"]),
        lambda x: _shift_hue(x, draw["hue"]),
    )
    for index in draw["jitter_order"]:
        image = changes[index](image)
    return image


def photometric_augment(rng, image, draw):
    """Channel shuffle, Gaussian noise (p = 0.5), Gaussian blur (kernel from {none, 1, 3, 5}), greyscale and colour
    jitter of one (H, W, 3) float32 image in [0, 255]; ``draw`` comes from :func:`sample_shared_photometric`.

    References:
        KP2D ``kp2d/datasets/augmentations.py`` (to_tensor_sample → non-spatial augmentation),
        https://arxiv.org/abs/1912.10615
    """
    image = np.asarray(image, np.float32)[..., draw["channels"]]
    if rng.random() < 0.5:
        image = np.clip(image + rng.normal(0.0, NOISE_STD, image.shape).astype(np.float32), 0.0, 255.0)
    kernel = BLUR_KERNELS[rng.integers(len(BLUR_KERNELS))]
    if kernel > 1:
        image = cv2.GaussianBlur(image, (kernel, kernel), 0)
    if draw["grey"]:
        image = _grey(image)
    return colour_jitter(image, draw).astype(np.float32)


def augment_pair(rng, source, target):
    """Photometric augmentation of a (source, target) pair with the shared draws drawn once."""
    draw = sample_shared_photometric(rng)
    return photometric_augment(rng, source, draw), photometric_augment(rng, target, draw)


__all__ = ["augment_pair", "colour_jitter", "photometric_augment", "sample_shared_photometric", "spatial_augment"]
