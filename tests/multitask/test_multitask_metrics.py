"""Multi-task metrics on hand-made cases with known answers, and Δm against the thesis's own table."""

import numpy as np
import pytest

from zippy_tf.errors import UserError
from zippy_tf.multitask import metrics as mt


def test_miou_uses_the_dataset_confusion_and_every_class():
    label = np.array([[0, 0, 1], [1, 2, 255]])
    prediction = np.array([[0, 1, 1], [1, 2, 0]])  # the 255 pixel's prediction is ignored
    meter = mt.SegmentationMeter(4)
    meter.update(prediction, label)
    # class 0: TP 1, FN 1 → 1/2; class 1: TP 2, FP 1 → 2/3; class 2: 1; class 3 never seen → 0, still averaged.
    result = meter.result()
    np.testing.assert_allclose(result["IoU"], [50.0, 200 / 3, 100.0, 0.0])
    assert result["mIoU"] == pytest.approx((50.0 + 200 / 3 + 100.0) / 4)
    # Dataset-wide, not per image: two updates equal one update of both images side by side.
    split, whole = mt.SegmentationMeter(3), mt.SegmentationMeter(3)
    other_label, other_prediction = np.array([[2, 2, 2], [2, 2, 2]]), np.array([[2, 0, 0], [0, 0, 0]])
    split.update(prediction, label)
    split.update(other_prediction[None], other_label[None])
    whole.update(np.concatenate([prediction, other_prediction], 1), np.concatenate([label, other_label], 1))
    assert split.result() == whole.result()


def test_parts_skip_images_without_a_person():
    meter = mt.make_meter("pascal", "human_parts")
    assert meter.num_classes == 7 and meter.skip_unlabelled
    meter.update(np.full((2, 3, 4), 3), np.stack([np.zeros((3, 4)), np.full((3, 4), 255)]))
    assert not meter.confusion.any()
    label = np.zeros((3, 4))
    label[0, 0] = 2
    meter.update(np.zeros((3, 4), int), label)
    assert meter.confusion.sum() == 12 and meter.confusion[2, 0] == 1


def test_segmentation_rejects_out_of_range_predictions():
    with pytest.raises(UserError, match="outside 0..20"):
        mt.make_meter("pascal", "semseg").update(np.full((2, 2), 21), np.zeros((2, 2)))
    with pytest.raises(UserError, match="differs from label shape"):
        mt.SegmentationMeter(3).update(np.zeros((2, 3)), np.zeros((2, 2)))


def _tilted(degrees, scale=1.0):
    angle = np.radians(degrees)
    return scale * np.array([np.sin(angle), 0.0, np.cos(angle)])


def test_normals_angles():
    label = np.tile([0.0, 0.0, 2.0], (1, 6, 1))  # normalised by the meter
    label[0, 5] = 0.0  # invalid: its 90° prediction must not count
    prediction = np.stack([_tilted(a, 3.0) for a in (0, 10, 20, 29, 45, 90)])[None]
    meter = mt.NormalsMeter()
    meter.update(prediction, label)
    result = meter.result()
    angles = np.array([0, 10, 20, 29, 45])
    assert result["mean"] == pytest.approx(angles.mean())
    assert result["median"] == pytest.approx(20.0, abs=mt.MEDIAN_BIN)
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean(angles ** 2)))
    assert (result["11.25"], result["22.5"], result["30"]) == pytest.approx((40.0, 60.0, 80.0))


def test_saliency_max_f_and_miou_at_their_own_thresholds():
    meter = mt.SaliencyMeter(thresholds=(0.4, 0.8))
    meter.update(np.array([[0.95, 0.5, 0.3, 0.1]]), np.array([[1, 1, 0, 0]]))
    meter.update(np.array([[0.1, 0.5, 0.9, 0.2]]), np.array([[0, 0, 255, 0]]))  # nothing salient, one ignored
    # t=0.4: J (1, 0), P (1, 0), R (1, 0) → J̄ 0.5, F 0.5. t=0.8: J (0.5, 1: both empty), P (1, 0), R (0.5, 0)
    # → J̄ 0.75, F = 2·0.5·0.25 / 0.75 = 1/3.
    result = meter.result()
    assert result["mIoU"] == pytest.approx(75.0) and result["threshold_mIoU"] == 0.8
    assert result["maxF"] == pytest.approx(50.0) and result["threshold_maxF"] == 0.4
    np.testing.assert_allclose(mt.make_meter("pascal", "sal").thresholds, np.linspace(0.2, 0.9, 15))


@pytest.mark.parametrize("definition, rmse, log_rmse", [
    ("per_image", (np.sqrt(0.5) + 1.0) / 2, (np.sqrt(np.log(2) ** 2 / 2) + np.sqrt(np.log(2) ** 2 / 4)) / 2),
    ("global", np.sqrt(5 / 6), np.sqrt(2 * np.log(2) ** 2 / 6)),
])
def test_depth_rmse_definitions(definition, rmse, log_rmse):
    meter = mt.DepthMeter(definition)
    meter.update(np.array([[2.0, 2.0, 5.0]]), np.array([[1.0, 2.0, 0.0]]))  # the 0 label is invalid
    meter.update(np.array([[2.0, 4.0, 4.0, 4.0]])[..., None], np.array([[4.0, 4.0, 4.0, 4.0]])[..., None])
    meter.update(np.ones((1, 2)), np.zeros((1, 2)))  # no valid pixel: skipped
    result = meter.result()
    assert result["rmse"] == pytest.approx(rmse) and result["log_rmse"] == pytest.approx(log_rmse)


def test_depth_default_and_bad_definition():
    assert mt.make_meter("nyud", "depth").definition == "per_image"
    with pytest.raises(UserError, match="unknown depth RMSE definition 'mean'"):
        mt.DepthMeter("mean")


def _line(column, shape=(30, 40)):
    edges = np.zeros(shape)
    edges[5:25, column] = 1.0
    return edges


@pytest.mark.parametrize("shift, expected", [(0, 100.0), (2, 100.0), (3, 0.0)])
def test_edge_matching_distance(shift, expected):
    meter = mt.EdgeMeter(max_dist=0.05, thresholds=9)  # diagonal 50 → 2.5 pixels
    meter.update(_line(10 + shift), _line(10))
    assert meter.result()["odsF"] == pytest.approx(expected)


def test_edge_matching_is_one_to_one():
    thick = _line(9) + _line(10) + _line(11)
    meter = mt.EdgeMeter(max_dist=0.05, thresholds=9, thin=False)
    meter.update(thick, _line(10))
    result = meter.result()  # all 20 label pixels matched, 40 of the 60 predicted ones left over
    assert result["recall"] == pytest.approx(100.0) and result["precision"] == pytest.approx(100 / 3)
    assert result["odsF"] == pytest.approx(50.0)
    thinned = mt.EdgeMeter(max_dist=0.05, thresholds=9)
    thinned.update(thick, _line(10))
    result = thinned.result()  # thinning leaves one line, all matched (its ends shortened a pixel)
    assert result["precision"] == pytest.approx(100.0) and 85.0 <= result["recall"] < 100.0


def test_edge_matching_takes_the_nearest_partner_once():
    truth = np.zeros((1, 8), bool)
    truth[0, [2, 3]] = True
    predicted = np.zeros((1, 8), bool)
    predicted[0, [3, 4]] = True  # 3 takes its own pixel first; 4 then takes 2 (at 2 px), not the used 3
    assert mt.match_edges(predicted, truth, 2.0) == 2
    assert mt.match_edges(predicted, truth, 1.5) == 1  # 4 reaches only the used pixel 3
    single = np.zeros((1, 8), bool)
    single[0, 3] = True
    assert mt.match_edges(single, truth, 2.0) == 1  # one predicted pixel matches once


def test_edge_ods_picks_the_best_threshold_and_ignores_padding():
    label = _line(10)
    label[:, 30:] = 255  # padding: predictions there do not count, and the diagonal is that of 30 x 30
    prediction = 0.9 * _line(10) + 0.3 * _line(20) + _line(35)
    meter = mt.EdgeMeter(max_dist=0.011)
    meter.update(prediction, label)
    result = meter.result()
    assert result["odsF"] == pytest.approx(100.0) and 0.3 < result["threshold"] <= 0.9
    low = mt.EdgeMeter(max_dist=0.011, thresholds=(0.2, 0.25))  # both keep the false line
    low.update(prediction, label)
    assert low.result()["odsF"] == pytest.approx(100 * 2 * 0.5 / 1.5)  # P 1/2, R 1


def test_edge_meter_distances_per_dataset():
    assert mt.make_meter("nyud", "edge").max_dist == 0.011
    assert mt.make_meter("pascal", "edge").max_dist == 0.0075
    assert len(mt.make_meter("pascal", "edge").thresholds) == 99


# Table 2.2 of the thesis (PASCAL-Context): single-task baseline, the jointly trained multi-task model and RCM.
SINGLE = {"edge": 71.88, "semseg": 66.22, "human_parts": 59.69, "normals": 13.64, "sal": 66.62}
MULTI = {"edge": 70.74, "semseg": 62.43, "human_parts": 57.89, "normals": 14.43, "sal": 66.31}
RCM = {"edge": 71.34, "semseg": 65.70, "human_parts": 58.12, "normals": 13.70, "sal": 66.38}


@pytest.mark.parametrize("model, reported", [(MULTI, 3.32), (RCM, 0.99)])
def test_delta_m_reproduces_the_thesis_table(model, reported):
    assert mt.delta_m(model, SINGLE) == pytest.approx(reported, abs=0.005)


def test_delta_m_signs():
    assert mt.delta_m({"normals": 10.0}, {"normals": 20.0}) == pytest.approx(-50.0)  # lower error: better
    assert mt.delta_m({"depth": 0.6}, {"depth": 0.5}) == pytest.approx(20.0)  # higher RMSE: worse
    assert mt.delta_m({"semseg": 60.0}, {"semseg": 50.0}) == pytest.approx(-20.0)  # higher mIoU: better
    assert mt.delta_m({"edge": 40.0}, {"edge": 50.0}) == pytest.approx(20.0)
    results = {"semseg": {"mIoU": 60.0, "IoU": []}, "normals": {"mean": 10.0, "median": 9.0}}
    assert mt.delta_m(results, {"semseg": 50.0, "normals": 20.0}) == pytest.approx(-35.0)
    assert mt.delta_m(results, {"semseg": 50.0, "normals": 20.0}, tasks=["semseg"]) == pytest.approx(-20.0)
    assert {task: higher for task, (_, higher) in mt.TASK_METRIC.items()} == {
        "edge": True, "semseg": True, "human_parts": True, "sal": True, "normals": False, "depth": False}


@pytest.mark.parametrize("results, baselines, match", [
    ({"semseg": 50.0}, {}, "lacks a result or a baseline"),
    ({"flow": 1.0}, {"flow": 1.0}, "unknown task 'flow'"),
    ({"semseg": 50.0}, {"semseg": 0.0}, "baseline is 0"),
    ({}, {}, "at least one task"),
])
def test_delta_m_bad_input(results, baselines, match):
    with pytest.raises(UserError, match=match):
        mt.delta_m(results, baselines)
