"""Post-processing of the dense keypoint maps: keypoint selection, descriptor sampling, binarisation, packing.

It runs outside the exported flatbuffer (gather / top-k on int8 tensors are the ops converters handle worst),
on the outputs of either the Keras network or a :class:`~zippy_tf.export.FlatbufferRunner`.
"""

import cv2
import numpy as np

from zippy_tf._compat import tf
from zippy_tf.errors import UserError
from zippy_tf.quantization.binary_norm import top_k_binarize


def pad_image(image, multiple=8, value=127.5, min_side=0):
    """Pads an (H, W, 3) image to multiples of ``multiple`` (and at least ``min_side``) with mid-grey (zero after
    normalisation), split as floor/ceil around the image like the reference. Returns (padded float32 image,
    (top, left) offset)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise UserError(f"expected an (H, W, 3) image, got shape {image.shape}; convert grey images to 3 channels")
    h, w = image.shape[:2]
    dh, dw = (max(-side % multiple, -(-min_side // multiple) * multiple - side) for side in (h, w))
    top, left = dh // 2, dw // 2
    padded = np.pad(image.astype(np.float32), ((top, dh - top), (left, dw - left), (0, 0)), constant_values=value)
    return padded, (top, left)


def shrink_image(image, max_side):
    """Resizes (area interpolation) an (H, W, 3) image whose longer side exceeds ``max_side`` (None: never) to that
    side. Returns (image, scale (x, y) from the original's pixels to the returned one's): keypoints found in the
    returned image are ``points / scale`` in the original."""
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image, np.ones(2, np.float32)
    factor = max_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))  # (width, height) for OpenCV
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.array([size[0] / width, size[1] / height],
                                                                           np.float32)


def select_keypoints(score, location, top_k=None):
    """Every cell is a keypoint candidate (no NMS, as in KP2D); returns the ``top_k`` best.

    Args:
        score: (B, Hc, Wc, 1); location: (B, Hc, Wc, 2) pixel (x, y).
    Returns:
        keypoints (B, N, 2) and scores (B, N), sorted by decreasing score, N = min(top_k, Hc·Wc).
    """
    score = tf.reshape(score, [tf.shape(score)[0], -1])
    location = tf.reshape(location, [tf.shape(location)[0], -1, 2])
    n = score.shape[1] if top_k is None or score.shape[1] is None else min(top_k, score.shape[1])
    best = tf.math.top_k(score, k=n)
    return tf.gather(location, best.indices, batch_dims=1), best.values


def sample_descriptors(descriptor_map, keypoints, image_size):
    """Bilinear sampling of an (B, Hd, Wd, D) map at pixel keypoints (B, N, 2) of an image of ``image_size``.

    Image corners map to map corners (align_corners=True semantics, as KP2D and ZippyPoint), i.e.
    $u = x (W_d - 1)/(W - 1)$. Differentiable in the map, so the training losses use it too.
    """
    shape = tf.shape(descriptor_map)
    hd, wd = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    h, w = tf.cast(image_size[0], tf.float32), tf.cast(image_size[1], tf.float32)
    u = keypoints[..., 0] * (wd - 1.0) / (w - 1.0)
    v = keypoints[..., 1] * (hd - 1.0) / (h - 1.0)
    u0 = tf.clip_by_value(tf.floor(u), 0.0, wd - 1.0)
    v0 = tf.clip_by_value(tf.floor(v), 0.0, hd - 1.0)
    u1, v1 = tf.minimum(u0 + 1.0, wd - 1.0), tf.minimum(v0 + 1.0, hd - 1.0)
    fu, fv = (u - u0)[..., None], (v - v0)[..., None]

    def at(vv, uu):
        return tf.gather_nd(descriptor_map, tf.stack([tf.cast(vv, tf.int32), tf.cast(uu, tf.int32)], -1),
                            batch_dims=1)

    top = at(v0, u0) * (1.0 - fu) + at(v0, u1) * fu
    bottom = at(v1, u0) * (1.0 - fu) + at(v1, u1) * fu
    return top * (1.0 - fv) + bottom * fv


def pack_bits(bits):
    """{0, 1} float descriptors (..., M) → uint8 (..., M/8), most significant bit first (like ``np.packbits``)."""
    bits = tf.cast(tf.round(bits), tf.int32)
    m = bits.shape[-1]
    grouped = tf.reshape(bits, tf.concat([tf.shape(bits)[:-1], [m // 8, 8]], 0))
    weights = tf.constant([128, 64, 32, 16, 8, 4, 2, 1], tf.int32)
    return tf.cast(tf.reduce_sum(grouped * weights, -1), tf.uint8)


def describe_at(descriptor_map, keypoints, image_size, *, binary=True, k=64):
    """The deployed descriptors at any pixel keypoints (B, N, 2): packed hard Bin.Norm or L2-normalised floats."""
    logits = sample_descriptors(tf.convert_to_tensor(descriptor_map, tf.float32), keypoints, image_size)
    return pack_bits(top_k_binarize(logits, k)) if binary else tf.math.l2_normalize(logits, axis=-1)


__all__ = ["describe_at", "pack_bits", "pad_image", "sample_descriptors", "select_keypoints", "shrink_image"]
