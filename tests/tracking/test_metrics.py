"""OPE metrics: hand-computed cases, and agreement with the got10k toolkit on the same results."""

import numpy as np
import pytest

from zippy_tf.tracking.metrics import (
    PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS, center_error, iou, sequence_curves, summarize,
)


def test_iou_by_hand():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 2, 2]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]], float)
    np.testing.assert_allclose(iou(a, b), [1.0, 50 / 150, 0.0, 4 / 100])


def test_center_error_by_hand():
    a = np.array([[0, 0, 10, 10], [0, 0, 4, 4]], float)
    b = np.array([[3, 4, 10, 10], [0, 0, 2, 2]], float)
    np.testing.assert_allclose(center_error(a, b), [5.0, np.sqrt(2)])


def test_curves_by_hand():
    gt = np.array([[0, 0, 10, 10]] * 4, float)
    # IoU 1, 0.5 (half the height), 0, and 0 with the centre 30 px away.
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [50, 50, 10, 10], [30, 0, 10, 10]], float)
    success, precision = sequence_curves(pred, gt)
    assert SUCCESS_THRESHOLDS.shape == (21,) and PRECISION_THRESHOLDS.shape == (51,)
    # IoU > τ (strict): τ = 0 counts IoU 1 and 0.5; τ = 0.5 only IoU 1 (0.5 is not > 0.5); τ = 1 none.
    assert success[0] == 0.5 and success[9] == 0.5 and success[10] == 0.25 and success[20] == 0.0
    # centre errors 0, 2.5, 70.7, 30: ≤ 20 px for the first two.
    assert precision[20] == 0.5 and precision[0] == 0.25 and precision[3] == 0.5
    # AUC: IoU 1 beats 20 of the 21 thresholds, IoU 0.5 beats 10, over 4 frames.
    np.testing.assert_allclose(success.mean(), (20 + 10) / (4 * 21))


def test_nan_ground_truth_is_skipped_and_nan_predictions_fail():
    gt = np.array([[0, 0, 10, 10], [np.nan] * 4, [0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10], [90, 90, 1, 1], [np.nan] * 4], float)
    success, precision = sequence_curves(pred, gt)
    assert success[0] == 0.5 and precision[50] == 0.5  # 2 scored frames: one perfect, one lost


def test_summary_averages_sequences_equally():
    result = summarize([np.ones(21), np.zeros(21)], [np.ones(51), np.zeros(51)])
    assert result["success_auc"] == 0.5 and result["precision_20"] == 0.5


def noisy_results(rng, sequences=5, frames=60):
    """Random ground truth and predictions with every kind of error: jitter, drift, scale, lost frames."""
    results = []
    for _ in range(sequences):
        gt = np.column_stack([rng.uniform(0, 200, (frames, 2)), rng.uniform(10, 80, (frames, 2))])
        pred = gt + rng.normal(0, rng.uniform(1, 25), gt.shape)
        pred[:, 2:] = np.abs(pred[:, 2:]) + 1
        pred[0] = gt[0]
        results.append((pred, gt))
    return results


def test_matches_got10k_toolkit():
    got10k = pytest.importorskip("got10k.experiments.otb")
    from got10k.utils.metrics import center_error as got_center_error
    from got10k.utils.metrics import rect_iou

    # got10k's OTB experiment without its dataset: only its curve code is needed.
    experiment = got10k.ExperimentOTB.__new__(got10k.ExperimentOTB)
    experiment.nbins_iou, experiment.nbins_ce = 21, 51
    ours_s, ours_p, theirs_s, theirs_p = [], [], [], []
    for pred, gt in noisy_results(np.random.default_rng(0)):
        s, p = sequence_curves(pred, gt)
        ours_s.append(s)
        ours_p.append(p)
        s, p = experiment._calc_curves(rect_iou(pred.copy(), gt.copy()), got_center_error(pred, gt))
        theirs_s.append(s)
        theirs_p.append(p)
    ours = summarize(ours_s, ours_p)
    theirs_success, theirs_precision = np.mean(theirs_s, axis=0), np.mean(theirs_p, axis=0)
    assert abs(ours["success_auc"] - theirs_success.mean()) <= 0.005
    assert abs(ours["precision_20"] - theirs_precision[20]) <= 0.005
    assert 0.2 < ours["success_auc"] < 0.9  # the case is not degenerate
