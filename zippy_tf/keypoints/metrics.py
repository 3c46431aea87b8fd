"""HPatches metrics exactly as KP2D's evaluation defines them: repeatability, localization error, homography
correctness at 1/3/5 px and matching score.

Every function takes the features of the two images of a pair as dicts {"keypoints": (N, 2) pixel x, y,
"scores": (N,), "descriptors": (N, D) float or (N, D/8) packed uint8}, the ground-truth homography from image-1
pixels to image-2 pixels, and the image shapes (height, width). The protocol's quirks are kept on purpose, so that
numbers compare with published ones: repeatability counts distances ≤ 3 px while the matching score counts < 3 px;
top-k is taken after in-view filtering for repeatability and homography, before it for the matching score.

References:
    Tang et al., "Neural Outlier Rejection for Self-Supervised Keypoint Learning" (KP2D), ICLR 2020,
    https://arxiv.org/abs/1912.10615 (``kp2d/evaluation/detector_evaluation.py``, ``descriptor_evaluation.py``);
    DeTone et al., "SuperPoint", CVPRW 2018, https://arxiv.org/abs/1712.07629
"""

import cv2
import numpy as np

from zippy_tf.data.homography import warp_points
from zippy_tf.keypoints.matching import match_descriptors

TOP_K = 300
DISTANCE_THRESHOLD = 3.0
CORRECTNESS_THRESHOLDS = (1, 3, 5)
RANSAC_THRESHOLD, RANSAC_ITERATIONS = 3.0, 5000
MMA_THRESHOLDS = tuple(range(1, 11))  # px, as D2-Net's HPatches plots
METRICS = ("repeatability", "localization_error", "correctness_1", "correctness_3", "correctness_5",
           "matching_score")


def in_image(points, shape, *, up_to_last_pixel=False):
    """Which (N, 2) points (x, y) lie in an image of ``shape`` (height, width).

    KP2D uses two tests and so do we: [0, W) x [0, H) for the in-view filters of repeatability and homography
    correctness, and [0, W-1] x [0, H-1] (``up_to_last_pixel``) for the visibility of matching-score matches.
    """
    height, width = shape[:2]
    x, y = points[:, 0], points[:, 1]
    if up_to_last_pixel:
        return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return (x >= 0) & (x < width) & (y >= 0) & (y < height)


def top_k(features, k, keep=None):
    """The ``k`` highest-scoring features (stable on ties), optionally among the boolean mask ``keep`` first."""
    index = np.arange(len(features["scores"])) if keep is None else np.flatnonzero(keep)
    best = index[np.argsort(-np.asarray(features["scores"])[index], kind="stable")[:k]]
    return {name: np.asarray(value)[best] for name, value in features.items()}


def repeatability(features1, features2, homography, shape1, shape2, *, k=TOP_K, threshold=DISTANCE_THRESHOLD):
    """Repeatability and localization error of a detector on one pair.

    Keypoints of image 2 are kept if they project (by H⁻¹) into image 1, keypoints of image 1 are projected by H
    and kept if they land in image 2; then the top ``k`` of each. A point is repeated when its nearest
    counterpart is within ``threshold`` px.

    Returns:
        (repeatability, localization error in px); NaN where undefined (no keypoints, or none repeated).
    """
    homography = np.asarray(homography, np.float64)
    warped2 = warp_points(features2["keypoints"], np.linalg.inv(homography))
    points2 = top_k(features2, k, in_image(warped2, shape1))["keypoints"]
    projected1 = warp_points(features1["keypoints"], homography)
    kept1 = top_k({"keypoints": projected1, "scores": features1["scores"]}, k, in_image(projected1, shape2))
    points1 = kept1["keypoints"]
    if len(points1) + len(points2) == 0:
        return float("nan"), float("nan")
    if len(points1) == 0 or len(points2) == 0:
        return 0.0, float("nan")
    distances = np.linalg.norm(points1[:, None] - points2[None], axis=-1)
    nearest1, nearest2 = distances.min(1), distances.min(0)
    repeated = np.concatenate([nearest1[nearest1 <= threshold], nearest2[nearest2 <= threshold]])
    rep = len(repeated) / (len(points1) + len(points2))
    return float(rep), float(repeated.mean()) if len(repeated) else float("nan")


def homography_correctness(features1, features2, homography, shape1, shape2, *, binary, k=TOP_K,
                           thresholds=CORRECTNESS_THRESHOLDS):
    """Whether the homography estimated from mutual nearest-neighbour matches is within ε px, for each ε.

    Keypoints are kept when they project into the other image (shared view), top ``k`` each, matched by mutual
    nearest neighbour (Hamming for ``binary`` descriptors, else L2), then ``cv2.findHomography`` with RANSAC (3 px,
    5000 iterations). The error is the mean distance of image 1's four corners under the two homographies.

    Returns:
        A dict {ε: 0.0 or 1.0}; all zero with fewer than four matches or when RANSAC fails.
    """
    homography = np.asarray(homography, np.float64)
    shared1 = top_k(features1, k, in_image(warp_points(features1["keypoints"], homography), shape2))
    shared2 = top_k(features2, k, in_image(warp_points(features2["keypoints"], np.linalg.inv(homography)), shape1))
    failed = {eps: 0.0 for eps in thresholds}
    matches, _ = match_descriptors(shared1["descriptors"], shared2["descriptors"], binary=binary, mutual=True)
    if len(matches) < 4:
        return failed
    estimate, _ = cv2.findHomography(shared1["keypoints"][matches[:, 0]].astype(np.float64),
                                     shared2["keypoints"][matches[:, 1]].astype(np.float64), cv2.RANSAC,
                                     RANSAC_THRESHOLD, maxIters=RANSAC_ITERATIONS)
    if estimate is None:
        return failed
    height, width = shape1[:2]
    corners = np.array([[0, 0], [0, height - 1], [width - 1, 0], [width - 1, height - 1]], np.float64)
    error = np.linalg.norm(warp_points(corners, homography) - warp_points(corners, estimate), axis=1).mean()
    return {eps: float(error <= eps) for eps in thresholds}


def _directed_matching_score(query, train, train_to_query, query_shape, binary, threshold):
    """Fraction of nearest-neighbour matches query → train whose train point, projected into the query image,
    lands within ``threshold`` px of the query point, among the matches whose projection is visible there."""
    matches, _ = match_descriptors(query["descriptors"], train["descriptors"], binary=binary, mutual=False)
    projected = warp_points(train["keypoints"][matches[:, 1]], train_to_query)
    visible = in_image(projected, query_shape, up_to_last_pixel=True)
    correct = np.linalg.norm(projected - query["keypoints"][matches[:, 0]], axis=1) < threshold
    return np.sum(correct & visible) / max(np.sum(visible), 1.0)


def matching_score(features1, features2, homography, shape1, shape2, *, binary, k=TOP_K,
                   threshold=DISTANCE_THRESHOLD):
    """The matching score: top ``k`` per image (no in-view filtering), nearest neighbour in each direction,
    correct when the reprojection error is < ``threshold`` px; the mean of the two directions. As in KP2D, each
    direction projects the matched point into the querying image, so a query point without a visible counterpart
    counts as a wrong match."""
    homography = np.asarray(homography, np.float64)
    best1, best2 = top_k(features1, k), top_k(features2, k)
    forward = _directed_matching_score(best1, best2, np.linalg.inv(homography), shape1, binary, threshold)
    backward = _directed_matching_score(best2, best1, homography, shape2, binary, threshold)
    return float((forward + backward) / 2.0)


def mean_matching_accuracy(features1, features2, homography, shape1, shape2, *, binary, k=TOP_K,
                           thresholds=MMA_THRESHOLDS):
    """Mean matching accuracy (D2-Net, R2D2): the fraction of mutual nearest-neighbour matches whose image-1 point,
    projected by H, lands within ε px of its match, for each ε. Unlike the matching score it counts only the
    matches made, and the sweep over ε tells coarse-but-right matches (a descriptor that works with imprecise
    keypoints) from wrong ones. Keypoints are the shared-view top ``k``, as for homography correctness.

    Returns:
        {ε: fraction}, NaN for every ε when there is no match.
    """
    homography = np.asarray(homography, np.float64)
    shared1 = top_k(features1, k, in_image(warp_points(features1["keypoints"], homography), shape2))
    shared2 = top_k(features2, k, in_image(warp_points(features2["keypoints"], np.linalg.inv(homography)), shape1))
    matches, _ = match_descriptors(shared1["descriptors"], shared2["descriptors"], binary=binary, mutual=True)
    if len(matches) == 0:
        return {eps: float("nan") for eps in thresholds}
    error = np.linalg.norm(warp_points(shared1["keypoints"][matches[:, 0]], homography)
                           - shared2["keypoints"][matches[:, 1]], axis=1)
    return {eps: float(np.mean(error <= eps)) for eps in thresholds}


def evaluate_pair(features1, features2, homography, shape1, shape2, *, binary, k=TOP_K):
    """All HPatches metrics of one pair, as a dict keyed by :data:`METRICS`."""
    rep, loc = repeatability(features1, features2, homography, shape1, shape2, k=k)
    correct = homography_correctness(features1, features2, homography, shape1, shape2, binary=binary, k=k)
    return {
        "repeatability": rep, "localization_error": loc,
        **{f"correctness_{eps}": value for eps, value in correct.items()},
        "matching_score": matching_score(features1, features2, homography, shape1, shape2, binary=binary, k=k),
    }


def average(per_pair):
    """Mean of each metric over pairs, as KP2D's ``np.mean``, except that a pair where a metric is undefined (no
    keypoints in view, or none repeated) is skipped rather than averaged in as KP2D's -1 or NaN."""
    return {name: float(np.nanmean([p[name] for p in per_pair])) if per_pair else float("nan")
            for name in METRICS}


__all__ = ["METRICS", "MMA_THRESHOLDS", "TOP_K", "average", "evaluate_pair", "homography_correctness", "in_image",
           "matching_score", "mean_matching_accuracy", "repeatability", "top_k"]
