"""Dense multi-task metrics as the RCM / ASTMT evaluation computes them, as streaming numpy accumulators.

Every meter has ``update(prediction, label)`` (one map or a batch; labels in the conventions of
:mod:`zippy_tf.data.multitask`, so the padding the evaluation pipeline adds is ignored) and ``result()``, a dict of
floats. Predictions are post-processed network outputs: class ids (argmax) for semseg / human_parts, probabilities
(sigmoid) for edge and sal, metres for depth, 3-vectors for normals (normalised here). Unlike the reference, the
predictions are not written to 8-bit PNG files and read back before scoring.

===========  ===================  =========================================================================
task         meter                result keys (percent unless stated)
===========  ===================  =========================================================================
semseg       SegmentationMeter    mIoU, IoU (per class)
human_parts  SegmentationMeter    the same, skipping images whose labels are all 0 or 255
normals      NormalsMeter         mean, median, rmse (degrees), 11.25, 22.5, 30 (% of pixels below)
sal          SaliencyMeter        mIoU, maxF, and the thresholds that give them
depth        DepthMeter           rmse, log_rmse (metres, log metres)
edge         EdgeMeter            odsF, precision, recall, threshold
===========  ===================  =========================================================================

:data:`TASK_METRIC` names the number of each task that enters Δm (:func:`delta_m`).

References:
    Kanakis et al., "Reparameterizing Convolutions for Incremental Multi-Task Learning without Task
    Interference", ECCV 2020, https://arxiv.org/abs/2007.12540 (thesis Eq. 2.5); the ASTMT evaluation code,
    https://github.com/facebookresearch/astmt; Martin et al., "Learning to Detect Natural Image Boundaries Using
    Local Brightness, Color, and Texture Cues", TPAMI 2004 (the BSDS boundary benchmark); Pont-Tuset and
    Marques, "Supervised Evaluation of Image Segmentation and Object Proposal Techniques", TPAMI 2016 (seism).
"""

import numpy as np

from zippy_tf.data.multitask import IGNORE_LABEL, NUM_CLASSES, TASKS, check_tasks
from zippy_tf.errors import UserError

# The scalar of each task that enters Δm, and whether higher is better.
TASK_METRIC = {
    "edge": ("odsF", True),
    "semseg": ("mIoU", True),
    "human_parts": ("mIoU", True),
    "sal": ("mIoU", True),
    "normals": ("mean", False),
    "depth": ("rmse", False),
}
# The edge benchmark's maximum mislocalisation, a fraction of the image diagonal (thesis §2.4.3).
EDGE_MAX_DIST = {"nyud": 0.011, "pascal": 0.0075}
SALIENCY_THRESHOLDS = np.linspace(0.2, 0.9, 15)
NORMALS_THRESHOLDS = (11.25, 22.5, 30.0)
MEDIAN_BIN = 1e-3  # degrees: the normals median is exact to half of this


def _maps(array, channels, name):
    """(B, H, W) (channels 1) or (B, H, W, 3) from one map or a batch; a trailing channel of 1 is dropped."""
    array = np.asarray(array)
    if channels == 1:
        if array.ndim == 4 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise UserError(f"{name} has shape {array.shape}; pass (H, W), (B, H, W) or (B, H, W, 1)")
    else:
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4 or array.shape[-1] != 3:
            raise UserError(f"{name} has shape {array.shape}; pass (H, W, 3) or (B, H, W, 3)")
    return array


def _pair(prediction, label, channels):
    prediction, label = _maps(prediction, channels, "prediction"), _maps(label, channels, "label")
    if prediction.shape != label.shape:
        raise UserError(f"prediction shape {prediction.shape} differs from label shape {label.shape}; crop the "
                        "prediction to the label (prediction[:height, :width]) first")
    return prediction, label


class SegmentationMeter:
    """mIoU over a data set's confusion matrix: IoU_c = TP / (TP + FP + FN) over all non-ignored pixels, averaged
    over all classes, background included; a class absent from both labels and predictions counts as IoU 0 (as
    the reference). With ``skip_unlabelled`` (human parts) images whose labels are all 0 or 255 are skipped."""

    def __init__(self, num_classes, skip_unlabelled=False):
        self.num_classes = int(num_classes)
        self.skip_unlabelled = skip_unlabelled
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)  # rows: label, columns: prediction

    def update(self, prediction, label):
        prediction, label = _pair(prediction, label, 1)
        for pred, gt in zip(prediction, label):
            valid = gt != IGNORE_LABEL
            if self.skip_unlabelled and not np.any(gt[valid] != 0):
                continue
            gt, pred = gt[valid].astype(np.int64), pred[valid].astype(np.int64)
            for name, values in (("label", gt), ("prediction", pred)):
                if values.size and (values.min() < 0 or values.max() >= self.num_classes):
                    raise UserError(f"{name} holds class ids outside 0..{self.num_classes - 1}; pass argmax class "
                                    "ids of the right dataset")
            self.confusion += np.bincount(gt * self.num_classes + pred,
                                          minlength=self.num_classes ** 2).reshape(self.confusion.shape)

    def result(self):
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        iou = tp / np.maximum(union, 1e-8)
        return {"mIoU": 100.0 * float(iou.mean()), "IoU": (100.0 * iou).tolist()}


class NormalsMeter:
    """Angular error in degrees between unit-normalised predictions and labels over the valid pixels of the whole
    data set (labels of norm 0 are invalid): mean, median (the middle angle, the upper one of an even count, read
    from a histogram of 0.001° bins so memory stays bounded: exact to 0.0005°), RMSE and the
    percentage of pixels below 11.25°, 22.5° and 30°."""

    def __init__(self):
        self.count = 0
        self.sum = 0.0
        self.sum_squares = 0.0
        self.below = np.zeros(len(NORMALS_THRESHOLDS), np.int64)
        self.histogram = np.zeros(int(round(180.0 / MEDIAN_BIN)) + 1, np.int64)

    def update(self, prediction, label):
        prediction, label = _pair(prediction, label, 3)
        norm = np.linalg.norm(label, axis=-1)
        valid = norm != 0
        gt = label[valid] / norm[valid][:, None]
        pred = prediction[valid]
        pred = pred / np.maximum(np.linalg.norm(pred, axis=-1, keepdims=True), 1e-12)
        angles = np.degrees(np.arccos(np.clip(np.sum(pred * gt, axis=-1), -1.0, 1.0)))
        self.count += angles.size
        self.sum += float(angles.sum())
        self.sum_squares += float(np.square(angles).sum())
        self.below += np.array([np.count_nonzero(angles < t) for t in NORMALS_THRESHOLDS])
        bins = np.minimum((angles / MEDIAN_BIN).astype(np.int64), len(self.histogram) - 1)
        self.histogram += np.bincount(bins, minlength=len(self.histogram))

    def result(self):
        if not self.count:
            raise UserError("no valid normals were seen; pass labels with non-zero normals")
        median_bin = int(np.searchsorted(np.cumsum(self.histogram), (self.count + 1) / 2.0))
        out = {"mean": self.sum / self.count, "median": (median_bin + 0.5) * MEDIAN_BIN,
               "rmse": float(np.sqrt(self.sum_squares / self.count))}
        out.update({f"{t:g}": 100.0 * b / self.count for t, b in zip(NORMALS_THRESHOLDS, self.below)})
        return out


class SaliencyMeter:
    """Saliency over thresholds (default ``np.linspace(0.2, 0.9, 15)``): per image and threshold the Jaccard
    index, precision and recall of ``probability > t`` against the label (255 ignored; two empty masks have
    Jaccard 1), averaged over images; F = 2·P̄·R̄ / (P̄ + R̄); mIoU and maxF are the maxima over thresholds."""

    def __init__(self, thresholds=SALIENCY_THRESHOLDS):
        self.thresholds = np.asarray(thresholds, np.float64)
        self.images = 0
        self.jaccard = np.zeros(len(self.thresholds))
        self.precision = np.zeros(len(self.thresholds))
        self.recall = np.zeros(len(self.thresholds))

    def update(self, prediction, label):
        prediction, label = _pair(prediction, label, 1)
        for prob, gt in zip(prediction, label):
            valid = gt != IGNORE_LABEL
            truth = gt[valid] > 0.5
            pred = prob[valid][None, :] > self.thresholds[:, None]
            tp = np.count_nonzero(pred & truth, axis=1)
            fp = np.count_nonzero(pred & ~truth, axis=1)
            fn = np.count_nonzero(~pred & truth, axis=1)
            union = tp + fp + fn
            self.jaccard += np.where(union == 0, 1.0, tp / np.maximum(union, 1))
            self.precision += tp / (tp + fp + 1e-12)
            self.recall += tp / (tp + fn + 1e-12)
            self.images += 1

    def result(self):
        if not self.images:
            raise UserError("no saliency maps were seen; call update() first")
        jaccard, precision, recall = (x / self.images for x in (self.jaccard, self.precision, self.recall))
        f = 2 * precision * recall / (precision + recall + 1e-12)
        best_j, best_f = int(np.argmax(jaccard)), int(np.argmax(f))
        return {"mIoU": 100.0 * float(jaccard[best_j]), "maxF": 100.0 * float(f[best_f]),
                "threshold_mIoU": float(self.thresholds[best_j]), "threshold_maxF": float(self.thresholds[best_f])}


DEPTH_DEFINITIONS = ("per_image", "global")


class DepthMeter:
    """Depth RMSE and log-RMSE over pixels whose label is not 0.

    ``definition="per_image"`` (default, the RCM and CompL evaluation): the mean over images of each image's RMSE;
    ``"global"`` (the MTL-PyTorch evaluation): one RMSE over all valid pixels of the data set. Predictions <= 0
    are set to 1e-9 before the logarithm, as the reference. Images without valid pixels are skipped.
    """

    def __init__(self, definition="per_image"):
        if definition not in DEPTH_DEFINITIONS:
            raise UserError(f"unknown depth RMSE definition {definition!r}; choose from {', '.join(DEPTH_DEFINITIONS)}")
        self.definition = definition
        self.per_image = []  # (rmse, log_rmse) per image
        self.sums = np.zeros(2)
        self.count = 0

    def update(self, prediction, label):
        prediction, label = _pair(prediction, label, 1)
        for pred, gt in zip(prediction.astype(np.float64), label.astype(np.float64)):
            valid = gt != 0
            if not valid.any():
                continue
            pred, gt = pred[valid], gt[valid]
            squares = np.array([np.square(gt - pred).sum(),
                                np.square(np.log(gt) - np.log(np.maximum(pred, 1e-9))).sum()])
            self.per_image.append(np.sqrt(squares / gt.size))
            self.sums += squares
            self.count += gt.size

    def result(self):
        if not self.count:
            raise UserError("no valid depth labels were seen; pass labels with depths > 0")
        rmse, log_rmse = (np.mean(self.per_image, axis=0) if self.definition == "per_image"
                          else np.sqrt(self.sums / self.count))
        return {"rmse": float(rmse), "log_rmse": float(log_rmse)}


def _disc_offsets(radius):
    """Integer offsets (dy, dx) of length at most ``radius``, shortest first."""
    r = int(np.floor(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = dy ** 2 + dx ** 2 <= radius ** 2
    dy, dx = dy[keep], dx[keep]
    order = np.argsort(dy ** 2 + dx ** 2, kind="stable")
    return dy[order], dx[order]


def _near(mask, radius):
    """Pixels at most ``radius`` from a pixel of ``mask``."""
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(~mask) <= radius


def match_edges(predicted, truth, radius, near_truth=None):
    """The number of pairs of a one-to-one matching between predicted and true edge pixels at most ``radius``
    pixels apart, built greedily nearest first: offsets are visited by increasing length, and at each offset every
    still unmatched predicted pixel whose shifted position is a still unmatched true pixel is matched to it (for
    one offset no two predicted pixels reach the same true pixel, so each step is conflict-free and vectorised).
    ``near_truth`` (the pixels within ``radius`` of ``truth``) can be passed when reused across thresholds."""
    if not predicted.any() or not truth.any():
        return 0
    near_truth = _near(truth, radius) if near_truth is None else near_truth
    py, px = np.nonzero(predicted & near_truth)  # the others have no partner in reach
    free_truth = truth.copy()
    free = np.ones(py.size, bool)
    height, width = truth.shape
    matched = 0
    for dy, dx in zip(*_disc_offsets(radius)):
        y, x = py + dy, px + dx
        candidates = np.nonzero(free & (y >= 0) & (y < height) & (x >= 0) & (x < width))[0]
        hit = candidates[free_truth[y[candidates], x[candidates]]]
        free_truth[y[hit], x[hit]] = False
        free[hit] = False
        matched += hit.size
    return matched


def _best_f(recall, precision, thresholds):
    """The BSDS ``maxF``: the best F over thresholds, interpolating R and P linearly between neighbours."""
    d = np.linspace(0, 1, 100)[None, :]
    r = recall[:-1, None] * (1 - d) + recall[1:, None] * d
    p = precision[:-1, None] * (1 - d) + precision[1:, None] * d
    t = thresholds[:-1, None] * (1 - d) + thresholds[1:, None] * d
    f = 2 * p * r / np.where(p + r > 0, p + r, 1)
    k = np.unravel_index(np.argmax(f), f.shape)
    return float(f[k]), float(p[k]), float(r[k]), float(t[k])


class EdgeMeter:
    """Optimal-dataset-scale F-measure (odsF) of edge probabilities, an approximation of the seism ``fb`` boundary
    measure the reference evaluates with (BSDS protocol).

    Per threshold t (``thresholds``: a count of thresholds evenly spaced in (0, 1), 99 by default giving
    ``linspace(1/100, 99/100, 99)`` as the BSDS benchmark, or the thresholds themselves), the predicted map
    ``probability >= t`` is thinned to one-pixel lines and matched one to one to the label's edge pixels within
    ``max_dist`` × the image diagonal (0.011 NYUD, 0.0075 PASCAL); the matched and total pixel counts are summed
    over the data set; R = matched / label pixels, P = matched / predicted pixels, and odsF is the best F over
    thresholds, interpolated between neighbouring thresholds as the BSDS ``collect_eval_bdry`` does. Pixels
    labelled 255 (padding) are left out, and the diagonal is that of the unpadded label.

    Differences from seism: (1) the correspondence is a greedy nearest-first one-to-one matching
    (:func:`match_edges`), where seism's ``correspondPixels`` solves a minimum-cost assignment (CSA) with outlier
    costs; both match each pixel at most once and prefer near pairs, but the greedy count can be lower where a
    pixel takes a partner another pixel needed (so odsF can be slightly lower); (2) thinning is scikit-image's
    ``thin``, not MATLAB's ``bwmorph(..., 'thin', inf)``, so lines can differ by a pixel at junctions; (3) the
    threshold count and spacing follow the BSDS defaults, not a value read from seism's HED parameter file,
    which we did not verify; (4) one ground-truth map per image
    (as NYUD-MT / PASCAL-MT), no per-image OIS or AP. Numbers are close to, not identical with, published odsF.
    """

    def __init__(self, max_dist=EDGE_MAX_DIST["nyud"], thresholds=99, thin=True):
        self.max_dist = float(max_dist)
        if np.ndim(thresholds) == 0:
            thresholds = np.linspace(1.0 / (thresholds + 1), 1 - 1.0 / (thresholds + 1), int(thresholds))
        self.thresholds = np.asarray(thresholds, np.float64)
        self.thin = thin
        self.counts = np.zeros((3, len(self.thresholds)), np.int64)  # per threshold: matched, label, predicted pixels

    def update(self, prediction, label):
        from skimage.morphology import thin

        prediction, label = _pair(prediction, label, 1)
        for prob, gt in zip(prediction, label):
            valid = gt != IGNORE_LABEL
            truth = valid & (gt > 0.5)
            rows, cols = np.count_nonzero(valid.any(1)), np.count_nonzero(valid.any(0))
            radius = self.max_dist * np.hypot(rows, cols)
            near_truth = _near(truth, radius)
            for k, t in enumerate(self.thresholds):
                predicted = (prob >= t) & valid
                if self.thin and predicted.any():
                    predicted = thin(predicted)
                matched = match_edges(predicted, truth, radius, near_truth)
                self.counts[:, k] += [matched, np.count_nonzero(truth), np.count_nonzero(predicted)]

    def result(self):
        recall = self.counts[0] / np.maximum(self.counts[1], 1)
        precision = self.counts[0] / np.maximum(self.counts[2], 1)
        f, p, r, t = _best_f(recall, precision, self.thresholds)
        return {"odsF": 100.0 * f, "precision": 100.0 * p, "recall": 100.0 * r, "threshold": t}


def make_meter(dataset, task, **kwargs):
    """The meter of a task of a data set, with its class count or edge distance; ``kwargs`` go to the meter
    (e.g. ``definition="global"`` for depth)."""
    check_tasks(dataset, [task])
    if task in ("semseg", "human_parts"):
        return SegmentationMeter(NUM_CLASSES[dataset][task], skip_unlabelled=task == "human_parts", **kwargs)
    if task == "edge":
        return EdgeMeter(kwargs.pop("max_dist", EDGE_MAX_DIST[dataset]), **kwargs)
    return {"normals": NormalsMeter, "sal": SaliencyMeter, "depth": DepthMeter}[task](**kwargs)


def _score(task, value):
    if isinstance(value, dict):
        return float(value[TASK_METRIC[task][0]])
    return float(value)


def delta_m(results, baselines, tasks=None):
    """Δm in percent (thesis Eq. 2.5): the mean over tasks of the relative performance drop against the
    single-task baselines, signed so that lower is better:

        Δm = 100 / P · Σ_i (−1)^{l_i} (M_b,i − M_m,i) / M_b,i,   l_i = 1 when lower M is better (normals, depth).

    The thesis prints the difference as M_m − M_b; its tables (e.g. Table 2.2: RCM 0.99, multi-task 3.32) follow
    the drop M_b − M_m, as here: a task that got worse adds a positive term, e.g. a larger normals error.

    Args:
        results, baselines: {task: the TASK_METRIC scalar, or a meter's result dict}.
        tasks: the tasks to average over (default: every task of ``results``), e.g. only the added tasks of an
            incremental experiment.
    """
    tasks = list(results) if tasks is None else list(tasks)
    if not tasks:
        raise UserError("delta_m needs at least one task")
    terms = []
    for task in tasks:
        if task not in TASK_METRIC:
            raise UserError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
        if task not in results or task not in baselines:
            raise UserError(f"task {task!r} lacks a result or a baseline; pass both for every task")
        model, base = _score(task, results[task]), _score(task, baselines[task])
        if base == 0:
            raise UserError(f"the {task} baseline is 0, so the relative change is undefined; check the baseline")
        drop = (base - model) / base
        terms.append(drop if TASK_METRIC[task][1] else -drop)
    return 100.0 * float(np.mean(terms))


__all__ = [
    "DEPTH_DEFINITIONS", "DepthMeter", "EDGE_MAX_DIST", "EdgeMeter", "NORMALS_THRESHOLDS", "NormalsMeter",
    "SALIENCY_THRESHOLDS", "SaliencyMeter", "SegmentationMeter", "TASK_METRIC", "delta_m", "make_meter",
    "match_edges",
]
