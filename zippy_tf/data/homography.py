"""Random homographies for self-supervised keypoint training, and warping of points and images.

Convention used everywhere in zippy-tf: a homography ``H`` maps SOURCE pixel coordinates (x, y) to TARGET pixel
coordinates, ``[x_t, y_t, 1]^T ~ H [x_s, y_s, 1]^T``, with pixel centres at integer coordinates (so the image
corners are (0, 0) and (W - 1, H - 1), the align-corners convention of KP2D).
"""

import math

import cv2
import numpy as np

# Unit-square corners (x, y): top-left, bottom-left, top-right, bottom-right.
UNIT_CORNERS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
# Keystone pattern of the perspective perturbation: left corners move by one draw, right corners by another, and
# the y displacement opens one side while closing the other.
_KEYSTONE_Y = np.array([1.0, -1.0, -1.0, 1.0])
MAX_DRAWS = 100


def _inside(points, width, height):
    """Whether every point of (..., 4, 2) lies in the image [0, W-1] x [0, H-1]; reduced over the last two axes."""
    x, y = points[..., 0], points[..., 1]
    return np.all((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1), axis=-1)


def _perspective_patch(rng, patch_ratio, perspective_amplitude, height, width):
    """The centred patch (unit coordinates) with a keystone perturbation, redrawn until it fits the unit square."""
    margin = (1.0 - patch_ratio) / 2.0
    patch = margin + patch_ratio * UNIT_CORNERS
    half_x = perspective_amplitude / 2.0
    half_y = half_x * height / width  # the same physical displacement on both axes
    for _ in range(MAX_DRAWS):
        left, right = np.clip(rng.normal(0.0, half_x, 2), -half_x, half_x)
        dy = np.clip(rng.normal(0.0, half_y), -half_y, half_y)
        moved = patch + np.stack([np.array([left, left, right, right]), dy * _KEYSTONE_Y], axis=1)
        if np.all((moved >= 0.0) & (moved <= 1.0)):
            return moved
    return patch


def sample_homography(rng, height, width, patch_ratio=0.7, perspective_amplitude=0.4, scaling_amplitude=0.2,
                      max_angle=math.pi / 4, num_scales=100, num_angles=100):
    """Samples a homography that maps the whole source image onto a random quadrilateral inside the target image.

    The quadrilateral is built as in KP2D / SuperPoint: a centred patch of ``patch_ratio`` of the image, perturbed
    by a keystone perspective (per-side displacement ~N(0, a/2) in x and ~N(0, a/2 · h/w) in y, clipped to ±a/2),
    scaled about its centre by one of ``num_scales`` draws ~N(1, s/2) clipped to [1 - s/2, 1 + s/2] (or 1),
    translated uniformly within the margin left, and rotated by one of ``num_angles`` angles in
    [-max_angle, max_angle] (or 0). Only scales and rotations that keep the patch inside the image are drawn
    from. Rotation is done in pixels, so it is a true rotation on non-square images.

    Args:
        rng: a ``np.random.Generator``: the only source of randomness, so a seed fixes the result.
        height, width: image size in pixels (source and target have the same size).
        patch_ratio, perspective_amplitude, scaling_amplitude, max_angle: the reference's parameters.
        num_scales, num_angles: candidate counts of the scale and rotation draws.

    Returns:
        A (3, 3) float64 matrix mapping SOURCE pixel (x, y) to TARGET pixel (x, y); ``H[2, 2] == 1``.

    References:
        KP2D, Tang et al., "Neural Outlier Rejection for Self-Supervised Keypoint Learning", ICLR 2020,
        https://arxiv.org/abs/1912.10615 ; SuperPoint, DeTone et al., https://arxiv.org/abs/1712.07629
    """
    size = np.array([width - 1.0, height - 1.0])
    patch = _perspective_patch(rng, patch_ratio, perspective_amplitude, height, width) * size

    half_s = scaling_amplitude / 2.0
    scales = np.concatenate([[1.0], np.clip(rng.normal(1.0, half_s, num_scales), 1.0 - half_s, 1.0 + half_s)])
    centre = patch.mean(axis=0)
    scaled = centre + (patch - centre)[None] * scales[:, None, None]
    valid = np.flatnonzero(_inside(scaled, width, height))
    patch = scaled[valid[rng.integers(len(valid))]]  # scale 1 is always valid

    low, high = -patch.min(axis=0), (size - patch).min(axis=0)
    patch = patch + rng.uniform(low, np.maximum(low, high))

    angles = np.concatenate([[0.0], np.linspace(-max_angle, max_angle, num_angles)])
    cos, sin = np.cos(angles), np.sin(angles)
    rotations = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (A, 2, 2)
    centre = patch.mean(axis=0)
    rotated = centre + np.einsum("aij,nj->ani", rotations, patch - centre)
    valid = np.flatnonzero(_inside(rotated, width, height))
    patch = rotated[valid[rng.integers(len(valid))]]  # angle 0 is always valid

    source_corners = (UNIT_CORNERS * size).astype(np.float32)
    return cv2.getPerspectiveTransform(source_corners, patch.astype(np.float32)).astype(np.float64)


def warp_points(points, homography):
    """Maps (N, 2) pixel points (x, y) by a 3x3 homography; returns (N, 2) float64."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    projected = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ np.asarray(homography).T
    return projected[:, :2] / projected[:, 2:3]


def warp_image(image, homography, size=None, border_value=0):
    """Moves ``image`` forward by ``homography``: ``out(H p) = image(p)`` (bilinear, ``cv2.warpPerspective``).

    Args:
        image: (H, W[, C]) array.
        homography: 3x3 matrix from ``image`` pixels to output pixels.
        size: output (width, height); defaults to the input size.
        border_value: fill for output pixels that see outside ``image``.
    """
    height, width = image.shape[:2]
    return cv2.warpPerspective(image, np.asarray(homography, np.float64), size or (width, height),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def scale_matrix(sx, sy):
    """The homography of a resize by (sx, sy), as KP2D rescales the HPatches homographies."""
    return np.diag([sx, sy, 1.0])


__all__ = ["sample_homography", "scale_matrix", "warp_image", "warp_points"]
