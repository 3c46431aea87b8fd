"""`zippy-tf eval hpatches` and `zippy-tf match` on good and bad input, and the shared detector code path."""

import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from zippy_tf.data.hpatches import write_hpatches_like
from zippy_tf.errors import UserError
from zippy_tf.keypoints.evaluate import OPENCV_DETECTORS, evaluate_hpatches, make_detector, parse_detector_entry
from zippy_tf.keypoints.metrics import METRICS

H, W = 120, 160


@pytest.fixture(scope="module")
def hpatches(tmp_path_factory):
    return write_hpatches_like(str(tmp_path_factory.mktemp("hp") / "hpatches"), num_sequences=2, seed=1,
                               height=H, width=W)


def run_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "zippy_tf.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def _check_result(result, num_pairs=10):
    assert set(METRICS) | {"num_pairs", "seconds"} <= set(result)
    assert result["num_pairs"] == num_pairs
    for name in ("repeatability", "correctness_1", "correctness_3", "correctness_5", "matching_score"):
        assert 0.0 <= result[name] <= 1.0


def test_eval_orb_cli(hpatches, tmp_path):
    output = tmp_path / "orb.json"
    done = run_cli("eval", "hpatches", f"--data={hpatches}", "--model=orb", "--resolution=160x120",
                   f"--output={output}")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    _check_result(result)
    assert result["descriptors"] == "binary" and result["top_k"] == 300
    assert json.loads(output.read_text()) == result
    assert set(result["illumination"]) == set(result["viewpoint"]) == set(METRICS)
    assert result["illumination"]["repeatability"] + result["viewpoint"]["repeatability"] == pytest.approx(
        2 * result["repeatability"])  # one sequence of each kind: five pairs each
    assert result["correctness_5"] > 0.5  # ORB copes with the generated set; a broken pipeline scores ~0


@pytest.mark.parametrize("name", sorted(OPENCV_DETECTORS))
def test_opencv_detectors_share_the_code_path(hpatches, name):
    detector = make_detector(name)
    assert detector.binary == (name != "sift")
    _check_result(evaluate_hpatches(detector, hpatches, resolution=(W, H), top_k=200))


@pytest.mark.parametrize("text,expected", [
    ("zp=zippypoint", ("zp", "zippypoint", {})),
    ("x=kp2d,weights=w.h5", ("x", "kp2d", {"weights": "w.h5"})),
    ("s=zippypoint,config=c.json,weights=w.h5", ("s", "zippypoint", {"config": "c.json", "weights": "w.h5"})),
    ("r=kp2d,refine=4", ("r", "kp2d", {"refine_radius": 4})),
])
def test_parse_detector_entry(text, expected):
    assert parse_detector_entry(text) == expected


@pytest.mark.parametrize("text", ["zippypoint", "=orb", "a=orb,top_k=5", "a=orb,weights=",
                                  "a=kp2d,refine=half"])
def test_parse_detector_entry_refuses_malformed_entries(text):
    with pytest.raises(UserError, match="entry "):
        parse_detector_entry(text)


def test_network_detector(hpatches):
    """A (randomly initialised) ZippyPoint through the same path: binary packed descriptors, valid metrics."""
    detector = make_detector("zippypoint", resolution=(64, 48))
    features = detector(np.zeros((48, 64, 3), np.uint8))
    assert features["descriptors"].dtype == np.uint8 and features["descriptors"].shape[1] == 32
    result = evaluate_hpatches(detector, hpatches, resolution=(64, 48))
    _check_result(result)


def test_network_detector_with_another_config(hpatches, tmp_path):
    """A searched configuration is evaluated from its JSON and its own weights (here: an all-Int8 one)."""
    from zippy_tf.keypoints.configs import ZIPPYPOINT_INT8
    from zippy_tf.keypoints.model import zippypoint
    from zippy_tf.quantization.macro_block import blocks_to_json

    config = tmp_path / "config.json"
    config.write_text(blocks_to_json(ZIPPYPOINT_INT8))
    zippypoint(config=ZIPPYPOINT_INT8, input_shape=(48, 64, 3)).save_weights(tmp_path / "w.h5")
    detector = make_detector("zippypoint", resolution=(64, 48), config=str(config), weights=str(tmp_path / "w.h5"))
    assert not any(layer.name.endswith("_bconv") for layer in detector.network.layers)
    _check_result(evaluate_hpatches(detector, hpatches, resolution=(64, 48)))


def _tiny_flatbuffer(path, height, width):
    """A stand-in dense network with the real output names (score, location, descriptor): quick to convert."""
    from zippy_tf._compat import keras, tf

    image = keras.Input((height, width, 3))
    cells = keras.layers.AveragePooling2D(8)(image)
    score = keras.layers.Conv2D(1, 1, activation="sigmoid", name="score")(cells)
    ys, xs = np.mgrid[0:height // 8, 0:width // 8]
    grid = tf.constant(np.stack([8 * xs + 3.5, 8 * ys + 3.5], -1)[None], tf.float32)
    location = keras.layers.Lambda(lambda t: 0.0 * t[..., :2] + grid, name="location")(cells)
    descriptor = keras.layers.Conv2D(256, 1, name="descriptor")(keras.layers.AveragePooling2D(4)(image))
    model = keras.Model(image, {"score": score, "location": location, "descriptor": descriptor})
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return str(path)


def test_eval_tflite_cli(hpatches, tmp_path):
    flatbuffer = _tiny_flatbuffer(tmp_path / "tiny.tflite", 48, 64)
    done = run_cli("eval", "hpatches", f"--data={hpatches}", f"--model={flatbuffer}", "--resolution=64x48")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    _check_result(result)
    assert result["descriptors"] == "binary"
    wrong = run_cli("eval", "hpatches", f"--data={hpatches}", f"--model={flatbuffer}", "--resolution=160x120")
    assert wrong.returncode == 2 and "takes images of width 64 and height 48" in wrong.stderr
    assert "pass --resolution= of its size" in wrong.stderr


def test_a_flatbuffer_detector_refines_its_keypoints(hpatches, tmp_path):
    """--refine_radius is post-processing on the image, so a flatbuffer's keypoints move as a Keras network's do."""
    from zippy_tf.keypoints.corners import refine_to_corners
    from zippy_tf.keypoints.postprocess import pad_image

    flatbuffer = _tiny_flatbuffer(tmp_path / "tiny.tflite", 48, 64)
    image = cv2_resized(os.path.join(hpatches, sorted(os.listdir(hpatches))[1], "1.ppm"), 64, 48)
    plain = make_detector(flatbuffer, resolution=(64, 48))(image)
    refined = make_detector(flatbuffer, resolution=(64, 48), refine_radius=4)(image)
    expected = refine_to_corners(pad_image(image)[0][None], plain["keypoints"][None], 4).numpy()[0]
    np.testing.assert_array_equal(refined["keypoints"], expected)
    assert np.abs(refined["keypoints"] - plain["keypoints"]).max() > 0  # the cell centres moved onto corners


def cv2_resized(path, width, height):
    return cv2.resize(cv2.imread(path), (width, height), interpolation=cv2.INTER_AREA)


def run_in_process(capsys, *args):
    """The CLI entry point without a new interpreter (bad input fails before any heavy work)."""
    from zippy_tf.cli.main import main

    code = main(list(args))
    return code, capsys.readouterr().err


def _assert_clean_failure(capsys, output, message, *args):
    code, err = run_in_process(capsys, *args)
    assert code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not os.path.exists(output)


def test_eval_bad_input(hpatches, tmp_path, capsys):
    output = tmp_path / "out.json"
    _assert_clean_failure(capsys, output, "does not exist", "eval", "hpatches", f"--data={tmp_path / 'none'}",
                          "--model=orb", f"--output={output}")
    broken = tmp_path / "broken"
    shutil.copytree(hpatches, broken)
    os.remove(broken / sorted(os.listdir(broken))[0] / "H_1_4")
    _assert_clean_failure(capsys, output, "H_1_4", "eval", "hpatches", f"--data={broken}", "--model=orb",
                          f"--output={output}")
    _assert_clean_failure(capsys, output, "unknown model", "eval", "hpatches", f"--data={hpatches}", "--model=surf",
                          f"--output={output}")
    _assert_clean_failure(capsys, output, "WIDTHxHEIGHT", "eval", "hpatches", f"--data={hpatches}", "--model=orb",
                          "--resolution=big", f"--output={output}")
    _assert_clean_failure(capsys, output, "--config= applies", "eval", "hpatches", f"--data={hpatches}",
                          "--model=kp2d", f"--config={tmp_path / 'c.json'}", f"--output={output}")
    _assert_clean_failure(capsys, output, "--refine_radius= applies to networks", "eval", "hpatches",
                          f"--data={hpatches}", "--model=orb", "--refine_radius=4", f"--output={output}")


def test_match_cli(hpatches, tmp_path):
    sequence = os.path.join(hpatches, sorted(os.listdir(hpatches))[1])  # a viewpoint sequence
    output = tmp_path / "matches.png"
    done = run_cli("match", os.path.join(sequence, "1.ppm"), os.path.join(sequence, "2.ppm"), "--model=orb",
                   f"--output={output}", "--top_k=500")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["output"] == str(output) and output.is_file()
    assert len(result["num_keypoints"]) == 2 and max(result["num_keypoints"]) <= 500
    assert 0 <= result["inliers"] <= result["num_matches"] and result["inliers"] >= 8
    picture = cv2.imread(str(output))
    assert picture.shape == (H, 2 * W, 3)


def test_match_bad_input(hpatches, tmp_path, capsys):
    sequence = os.path.join(hpatches, sorted(os.listdir(hpatches))[1])
    good = os.path.join(sequence, "1.ppm")
    unreadable = tmp_path / "broken.png"
    unreadable.write_bytes(b"garbage")
    output = tmp_path / "m.png"
    _assert_clean_failure(capsys, output, "broken.png", "match", good, str(unreadable), "--model=orb",
                          f"--output={output}")
    nowhere = tmp_path / "no_folder" / "m.png"
    _assert_clean_failure(capsys, nowhere, "does not exist", "match", good, good, "--model=orb",
                          f"--output={nowhere}")
    _assert_clean_failure(capsys, output, "two image paths", "match", good, "--model=orb", f"--output={output}")
