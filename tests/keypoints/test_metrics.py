"""HPatches metrics on hand-built pairs whose answers are known."""

import numpy as np
import pytest

from zippy_tf.data.homography import warp_points
from zippy_tf.keypoints.metrics import (MMA_THRESHOLDS, average, evaluate_pair, homography_correctness, in_image,
                                        matching_score, mean_matching_accuracy, repeatability, top_k)

SHAPE = (120, 160)
EYE = np.eye(3)


def _features(keypoints, descriptors, scores=None):
    keypoints = np.asarray(keypoints, np.float64)
    scores = np.linspace(1.0, 0.5, len(keypoints)) if scores is None else np.asarray(scores)
    return {"keypoints": keypoints, "scores": scores, "descriptors": descriptors}


def _grid(n=30, seed=0):
    """Keypoints well inside the image and far apart (> 6 px), with distinct binary descriptors."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(20, 150, 13), np.arange(15, 110, 16))
    points = np.stack([xs.ravel(), ys.ravel()], 1)[:n].astype(np.float64)
    descriptors = np.packbits(rng.integers(0, 2, (len(points), 256)).astype(np.uint8), 1)
    return points, descriptors


def test_identity_is_perfect():
    points, descriptors = _grid()
    features = _features(points, descriptors)
    result = evaluate_pair(features, features, EYE, SHAPE, SHAPE, binary=True)
    assert result == {"repeatability": 1.0, "localization_error": 0.0, "correctness_1": 1.0,
                      "correctness_3": 1.0, "correctness_5": 1.0, "matching_score": 1.0}


@pytest.mark.parametrize("shift,expected_rep,expected_loc", [(1.0, 1.0, 1.0), (2.5, 1.0, 2.5), (4.0, 0.0, None)])
def test_known_shift_gives_known_localization_error(shift, expected_rep, expected_loc):
    points, descriptors = _grid()
    moved = points + np.array([shift, 0.0])
    rep, loc = repeatability(_features(points, descriptors), _features(moved, descriptors), EYE, SHAPE, SHAPE)
    assert rep == pytest.approx(expected_rep)
    if expected_loc is None:
        assert np.isnan(loc)
    else:
        assert loc == pytest.approx(expected_loc)


def test_threshold_is_inclusive_for_repeatability_exclusive_for_matching_score():
    points, descriptors = _grid()
    moved = points + np.array([3.0, 0.0])
    rep, loc = repeatability(_features(points, descriptors), _features(moved, descriptors), EYE, SHAPE, SHAPE)
    assert rep == 1.0 and loc == pytest.approx(3.0)
    score = matching_score(_features(points, descriptors), _features(moved, descriptors), EYE, SHAPE, SHAPE,
                           binary=True)
    assert score == 0.0


def test_out_of_view_points_are_not_counted():
    """A translation by 40 px sends the points with x >= 120 out of image 2: repeatability drops them."""
    points, descriptors = _grid()
    shift = np.array([[1, 0, 40], [0, 1, 0], [0, 0, 1]], np.float64)
    features1 = _features(points, descriptors)
    visible = points[:, 0] + 40 <= SHAPE[1] - 1
    features2 = _features(points[visible] + [40, 0], descriptors[visible])
    result = evaluate_pair(features1, features2, shift, SHAPE, SHAPE, binary=True)
    assert result["repeatability"] == 1.0 and result["localization_error"] == 0.0
    assert result["correctness_1"] == 1.0
    # The matching score keeps out-of-view points: the 6 image-1 points without a counterpart match some visible
    # image-2 point, wrongly (forward 24/30); every image-2 point finds its twin (backward 1).
    assert result["matching_score"] == pytest.approx((24 / 30 + 1.0) / 2)


def test_perfect_matches_under_perspective_give_correctness_one():
    points, descriptors = _grid()
    homography = np.array([[0.9, 0.05, 8.0], [-0.04, 0.95, 5.0], [1e-4, -2e-4, 1.0]])
    features2 = _features(warp_points(points, homography), descriptors)
    correct = homography_correctness(_features(points, descriptors), features2, homography, SHAPE, SHAPE,
                                     binary=True)
    assert correct == {1: 1.0, 3: 1.0, 5: 1.0}


def test_too_few_matches_give_zero_correctness():
    points, descriptors = _grid(3)
    features = _features(points, descriptors)
    assert homography_correctness(features, features, EYE, SHAPE, SHAPE, binary=True) == {1: 0.0, 3: 0.0, 5: 0.0}


def test_scrambled_descriptors_give_known_matching_score():
    """Half of image 2's descriptors rotated among themselves: those matches land on wrong points."""
    points, descriptors = _grid()
    scrambled = descriptors.copy()
    scrambled[:15] = np.roll(descriptors[:15], 1, axis=0)
    score = matching_score(_features(points, descriptors), _features(points, scrambled), EYE, SHAPE, SHAPE,
                           binary=True)
    assert score == pytest.approx(0.5)


@pytest.mark.parametrize("shift", [0.0, 2.0])
def test_mean_matching_accuracy_counts_right_matches_within_each_threshold(shift):
    """Half of image 2's descriptors rotated among themselves (wrong points, > 10 px away), all points moved by
    ``shift`` px: the accuracy is 0 below the shift and 1/2 from it on."""
    points, descriptors = _grid()
    scrambled = descriptors.copy()
    scrambled[:15] = np.roll(descriptors[:15], 1, axis=0)
    accuracy = mean_matching_accuracy(_features(points, descriptors), _features(points + [shift, 0.0], scrambled),
                                      EYE, SHAPE, SHAPE, binary=True)
    assert accuracy == {eps: (0.5 if eps >= shift else 0.0) for eps in MMA_THRESHOLDS}


def test_mean_matching_accuracy_without_matches_is_nan():
    empty = _features(np.zeros((0, 2)), np.zeros((0, 32), np.uint8))
    accuracy = mean_matching_accuracy(empty, empty, EYE, SHAPE, SHAPE, binary=True, thresholds=(3,))
    assert np.isnan(accuracy[3])


def test_float_descriptors_use_l2():
    points, _ = _grid()
    rng = np.random.default_rng(3)
    descriptors = rng.normal(size=(len(points), 128)).astype(np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    noisy = descriptors + 0.01 * rng.normal(size=descriptors.shape).astype(np.float32)
    result = evaluate_pair(_features(points, descriptors), _features(points, noisy), EYE, SHAPE, SHAPE,
                           binary=False)
    assert result["matching_score"] == 1.0 and result["correctness_1"] == 1.0


def test_top_k_keeps_the_best_scores():
    """With k = 10, only the 10 best-scoring points count: far-off high scorers in image 2 ruin repeatability."""
    points, descriptors = _grid()
    features1 = _features(points, descriptors)
    decoys = points[:10] + np.array([6.0, 6.0])
    features2 = _features(np.concatenate([decoys, points]), np.concatenate([descriptors[:10], descriptors]),
                          scores=np.concatenate([np.full(10, 2.0), np.linspace(1.0, 0.5, len(points))]))
    assert top_k(features2, 10)["keypoints"].tolist() == decoys.tolist()
    rep, _ = repeatability(features1, features2, EYE, SHAPE, SHAPE, k=10)
    assert rep == 0.0
    rep, loc = repeatability(features1, features2, EYE, SHAPE, SHAPE, k=100)
    assert rep == pytest.approx(60 / 70) and loc == 0.0  # every true point repeated, the 10 decoys not


def test_empty_features_and_average():
    empty = _features(np.zeros((0, 2)), np.zeros((0, 32), np.uint8))
    points, descriptors = _grid()
    result = evaluate_pair(empty, _features(points, descriptors), EYE, SHAPE, SHAPE, binary=True)
    assert result["repeatability"] == 0.0 and np.isnan(result["localization_error"])
    assert result["matching_score"] == 0.0 and result["correctness_3"] == 0.0
    perfect = evaluate_pair(_features(points, descriptors), _features(points, descriptors), EYE, SHAPE, SHAPE,
                            binary=True)
    mean = average([result, perfect])
    assert mean["repeatability"] == 0.5 and mean["localization_error"] == 0.0 and mean["matching_score"] == 0.5


def test_in_view_and_visible_edges_differ():
    """[0, W) for the in-view filters, [0, W-1] for matching-score visibility, as KP2D."""
    points = np.array([[159.5, 10.0], [159.0, 10.0], [160.0, 10.0], [-0.1, 10.0]])
    assert in_image(points, SHAPE).tolist() == [True, True, False, False]
    assert in_image(points, SHAPE, up_to_last_pixel=True).tolist() == [False, True, False, False]
