"""Square crops around a target, shared by training-pair sampling and the online tracker.

Both must cut the template and the search region the same way, or the network learns a geometry the tracker
does not use. Boxes are (x, y, w, h) in continuous pixel coordinates: the box covers [x, x + w) × [y, y + h) and
pixel i covers [i, i + 1).
"""

import cv2
import numpy as np

from zippy_tf.errors import UserError


def context_size(w, h, context_amount=0.5):
    r"""Side of the template region with context (SiamFC / Ocean): :math:`\sqrt{(w+p)(h+p)}`, :math:`p=c(w+h)`."""
    p = context_amount * (w + h)
    return np.sqrt((w + p) * (h + p))


def crop_and_resize(image, center, size_in_image, out_size, pad_colour):
    """The region of ``image`` centred at ``center`` resized to ``out_size`` × ``out_size``.

    One bilinear affine warp instead of Ocean's "cut integer window, pad, resize": the same pixels up to
    interpolation at the border, but the crop is exactly centred (no ±1 px rounding bias), so boxes map between
    image and crop with :func:`image_to_crop` / :func:`crop_to_image` and nothing else.

    Args:
        image: (H, W, C) array.
        center: (cx, cy) in image pixels.
        size_in_image: side of the region in image pixels, or (width, height) for a non-square region
            (per-axis scale jitter in training).
        out_size: side of the output in pixels.
        pad_colour: per-channel colour for the parts of the region outside the image (the image's mean colour,
            as Ocean / LightTrack do, so padding does not look like an edge).

    Returns:
        (out_size, out_size, C) array of ``image``'s dtype.
    """
    sw, sh = np.broadcast_to(np.asarray(size_in_image, np.float64), (2,))
    ax, ay = sw / out_size, sh / out_size  # image pixels per crop pixel
    x0, y0 = center[0] - sw / 2, center[1] - sh / 2
    # Crop pixel centre u + 0.5 sits at image coordinate x0 + (u + 0.5)·ax, i.e. at pixel index that − 0.5.
    crop_to_src = np.array([[ax, 0, x0 + 0.5 * ax - 0.5], [0, ay, y0 + 0.5 * ay - 0.5]], np.float64)
    pad = tuple(float(c) for c in np.broadcast_to(pad_colour, (image.shape[2],)))
    return cv2.warpAffine(
        image, crop_to_src, (out_size, out_size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=pad,
    ).reshape(out_size, out_size, image.shape[2])


def image_to_crop(xy, center, size_in_image, out_size):
    """Maps image points (..., 2) into the pixel coordinates of the crop made with the same arguments."""
    size = np.broadcast_to(np.asarray(size_in_image, np.float64), (2,))
    return (np.asarray(xy, np.float64) - np.asarray(center, np.float64) + size / 2) * (out_size / size)


def crop_to_image(xy, center, size_in_image, out_size):
    """Inverse of :func:`image_to_crop`."""
    size = np.broadcast_to(np.asarray(size_in_image, np.float64), (2,))
    return np.asarray(xy, np.float64) * (size / out_size) + np.asarray(center, np.float64) - size / 2


def as_bgr(frame):
    """A frame as (H, W, 3) uint8 BGR: grayscale frames are expanded, as trackers and models expect 3 channels."""
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or min(frame.shape[:2]) == 0:
        raise UserError(f"frame of shape {frame.shape} is not an image; pass an (H, W, 3) BGR or (H, W) gray array")
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frame[..., :3])


def check_initial_box(box, frame_shape):
    """The initial (x, y, w, h) as floats, or a one-line error for a box no tracker can start from."""
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise UserError(f"initial box {box!r} is not four numbers; pass (x, y, w, h) in pixels")
    if not np.all(np.isfinite([x, y, w, h])) or w <= 0 or h <= 0:
        raise UserError(f"initial box {(x, y, w, h)} has zero or invalid size; pass a box with width and height > 0")
    height, width = frame_shape[:2]
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise UserError(
            f"initial box {(x, y, w, h)} lies outside the {width}x{height} frame; pass a box that overlaps the frame"
        )
    return x, y, w, h


__all__ = ["as_bgr", "check_initial_box", "context_size", "crop_and_resize", "crop_to_image", "image_to_crop"]
