"""One-pass evaluation (OPE) metrics, with the definitions of the OTB / GOT-10k toolkits.

* IoU of (x, y, w, h) boxes without the MATLAB "+1 pixel" (as got10k and pysot).
* Success curve: fraction of frames with IoU > τ for the 21 thresholds τ = 0, 0.05, …, 1; success AUC = its mean.
* Precision curve: fraction of frames whose centre error is ≤ d pixels, d = 0…50; precision_20 = the value at 20.
* Frames whose ground truth is NaN (target absent) are left out, so a tracker is neither rewarded nor punished
  for what it reports there.
* Over a data set, curves are averaged per sequence (each sequence weighs the same), as the toolkits do.
"""

import numpy as np

SUCCESS_THRESHOLDS = np.linspace(0, 1, 21)
PRECISION_THRESHOLDS = np.arange(51)
PRECISION_PIXELS = 20


def iou(boxes_a, boxes_b):
    """Per-row IoU of two (N, 4) arrays of (x, y, w, h) boxes."""
    a, b = np.asarray(boxes_a, np.float64), np.asarray(boxes_b, np.float64)
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.clip(inter / np.maximum(union, np.finfo(np.float64).eps), 0, 1)


def center_error(boxes_a, boxes_b):
    """Per-row Euclidean distance (pixels) between the centres of two (N, 4) arrays of (x, y, w, h) boxes."""
    a, b = np.asarray(boxes_a, np.float64), np.asarray(boxes_b, np.float64)
    return np.hypot(*((a[:, :2] + a[:, 2:] / 2) - (b[:, :2] + b[:, 2:] / 2)).T)


def sequence_curves(predicted, ground_truth):
    """(success curve (21,), precision curve (51,)) of one sequence; NaN ground-truth rows are skipped."""
    predicted, ground_truth = np.asarray(predicted, np.float64), np.asarray(ground_truth, np.float64)
    if predicted.shape != ground_truth.shape:
        raise ValueError(f"predicted boxes {predicted.shape} and ground truth {ground_truth.shape} differ in shape")
    valid = np.all(np.isfinite(ground_truth), axis=1)
    if not valid.any():
        return np.zeros(len(SUCCESS_THRESHOLDS)), np.zeros(len(PRECISION_THRESHOLDS))
    # A tracker that outputs NaN has lost the target: zero overlap, infinite centre error.
    pred = np.nan_to_num(predicted[valid], nan=0.0)
    lost = ~np.all(np.isfinite(predicted[valid]), axis=1)
    overlaps = np.where(lost, 0.0, iou(pred, ground_truth[valid]))
    errors = np.where(lost, np.inf, center_error(pred, ground_truth[valid]))
    success = (overlaps[:, None] > SUCCESS_THRESHOLDS[None]).mean(axis=0)
    precision = (errors[:, None] <= PRECISION_THRESHOLDS[None]).mean(axis=0)
    return success, precision


def summarize(success_curves, precision_curves):
    """Data-set scores from per-sequence curves: {"success_auc", "precision_20", and the mean curves}."""
    success, precision = np.mean(success_curves, axis=0), np.mean(precision_curves, axis=0)
    return {
        "success_auc": float(success.mean()),
        "precision_20": float(precision[PRECISION_PIXELS]),
        "success_curve": success.tolist(),
        "precision_curve": precision.tolist(),
    }


__all__ = [
    "PRECISION_THRESHOLDS", "SUCCESS_THRESHOLDS", "center_error", "iou", "sequence_curves", "summarize",
]
