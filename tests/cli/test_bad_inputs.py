"""Inputs a new user gets wrong, verb by verb: each is refused with exit code 2 and one `zippy-tf: error:` line
before anything is written; tiny and huge images are served, a missing previous run is said (docs/bad-inputs.md)."""

import contextlib
import io
import json
import os
import re
import time

import cv2
import numpy as np
import pytest

from zippy_tf.cli.main import main


def run(*argv):
    """(exit code, stdout, stderr) of the command run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny images, an image folder, files of the wrong kind and a valid and a corrupt flatbuffer."""
    from zippy_tf import keras
    from zippy_tf.data.multitask_generate import write_nyud_like
    from zippy_tf.export import convert

    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    paths = {}
    for name, (height, width) in {"small": (48, 64), "one": (1, 1), "eight": (8, 8)}.items():
        paths[name] = str(root / f"{name}.png")
        cv2.imwrite(paths[name], rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    (root / "images").mkdir()
    for k in range(2):
        cv2.imwrite(str(root / "images" / f"{k}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    paths["images"] = str(root / "images")
    (root / "text.h5").write_text("not weights\n")
    paths["text_h5"] = str(root / "text.h5")
    (root / "empty.h5").write_bytes(b"")
    weights = keras.Sequential([keras.layers.Dense(64, input_shape=(64,))])
    weights.save_weights(str(root / "whole.h5"))
    whole = (root / "whole.h5").read_bytes()
    (root / "truncated.h5").write_bytes(whole[:len(whole) // 2])
    paths["truncated_h5"] = str(root / "truncated.h5")
    paths["empty_h5"] = str(root / "empty.h5")
    model = keras.Sequential([keras.layers.Conv2D(2, 3, input_shape=(8, 8, 3))])
    data = convert(model, "fp32")
    (root / "good.tflite").write_bytes(data)
    paths["good"] = str(root / "good.tflite")
    paths["nyud"] = write_nyud_like(str(root / "nyud"), 2, 1, size=(48, 64), seed=0)
    corrupt = {"zeroed": data[:8] + bytes(len(data) - 8), "truncated": data[:len(data) // 2]}  # TFL3 kept
    for name, content in corrupt.items():
        paths[name] = str(root / f"{name}.tflite")
        (root / f"{name}.tflite").write_bytes(content)
    return paths


KP = ["train", "zippypoint", "--data", "IMAGES", "--epochs", "1", "--batch_size", "1", "--resolution", "32x24"]
TRACK = ["train", "lighttrack", "--data", "MISSING", "--template_size", "32", "--search_size", "64"]
SEARCH = ["search", "--data", "IMAGES", "--batch_size", "1", "--resolution", "32x24"]
BAD = [
    # output into a read-only folder
    (["match", "SMALL", "SMALL", "--output", "READONLY/m.png"], "not writable"),
    (["export", "--model", "kp2d", "--resolution", "32x24", "--format", "fp32", "--output", "READONLY/x.tflite"],
     "not writable"),
    (["bench", "GOOD", "--baseline", "GOOD", "--runs", "1", "--output", "READONLY/b.json"], "not writable"),
    (["eval", "hpatches", "--data", "MISSING", "--model", "orb", "--output", "READONLY/e.json"], "not writable"),
    (KP + ["--output", "READONLY/run"], "not writable"),
    (TRACK + ["--output", "READONLY/run"], "not writable"),
    (SEARCH + ["--output", "READONLY/run"], "not writable"),
    # an existing file where a run folder goes, a folder where a file goes
    (KP + ["--output", "FILE"], "is an existing file"),
    (TRACK + ["--output", "FILE"], "is an existing file"),
    (SEARCH + ["--output", "FILE"], "is an existing file"),
    (["match", "SMALL", "SMALL", "--output", "FOLDER"], "is a folder"),
    # search checks every input before it writes its folder or a validation set
    (["search", "--data", "MISSING", "--output", "OUT"], "does not exist"),
    (SEARCH + ["--validation", "MISSING", "--output", "OUT"], "does not exist"),
    (SEARCH + ["--blocks", "stage9", "--output", "OUT"], "unknown macro-blocks stage9"),
    (SEARCH + ["--metric", "localization_error", "--output", "OUT"], "unknown --metric"),
    (SEARCH + ["--weights", "MISSING", "--output", "OUT"], "does not exist"),
    # a resolution the keypoint networks cannot take, named as the flag
    (KP + ["--resolution", "321x241", "--output", "OUT"], "--resolution='321x241' (width 321, height 241)"),
    (SEARCH + ["--resolution", "321x241", "--output", "OUT"], "--resolution='321x241' (width 321, height 241)"),
    # bench names the corrupt flatbuffer of the two
    (["bench", "ZEROED", "--baseline", "GOOD", "--runs", "1"], "flatbuffer 'ZEROED' is corrupt"),
    (["bench", "GOOD", "--baseline", "ZEROED", "--runs", "1"], "flatbuffer 'ZEROED' is corrupt"),
    (["bench", "GOOD", "--baseline", "TRUNCATED", "--runs", "1"], "flatbuffer 'TRUNCATED' is corrupt"),
    # unreadable and wrong-kind files
    (["bench", "UNREADABLE", "--baseline", "GOOD"], "cannot be read"),
    (["export", "--model", "zippypoint", "--config", "UNREADABLE", "--output", "OUT.tflite"], "cannot be read"),
    (SEARCH + ["--cost", "table", "--cost_table", "UNREADABLE", "--output", "OUT"], "cannot be read"),
    (["match", "SMALL", "SMALL", "--weights", "UNREADABLE", "--output", "OUT.png"], "cannot be read"),
    (KP + ["--init_from", "UNREADABLE", "--output", "OUT"], "cannot be read"),
    (["train", "rcm", "--preset", "rcm-small", "--data", "NYUD", "--encoder", "UNREADABLE", "--output", "OUT"],
     "cannot be read"),
    (["match", "SMALL", "SMALL", "--weights", "TEXT_H5", "--output", "OUT.png"], "is not an HDF5 file"),
    (["export", "--model", "kp2d", "--weights", "EMPTY_H5", "--output", "OUT.tflite"], "is not an HDF5 file"),
    (KP + ["--init_from", "TRUNCATED_H5", "--output", "OUT"], "is damaged (Unable to synchronously open file"),
    (["train", "rcm", "--preset", "rcm-small", "--data", "NYUD", "--encoder", "TRUNCATED_H5", "--output", "OUT"],
     "is damaged"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[f"{i}-{' '.join(a[:2])}-{m}" for i, (a, m) in enumerate(BAD)])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(argv, message, files, readonly_folder, unreadable_file,
                                                            tmp_path):
    (tmp_path / "file").write_text("keep")
    (tmp_path / "folder").mkdir()
    names = {"READONLY": readonly_folder, "UNREADABLE": unreadable_file, "MISSING": tmp_path / "missing",
             "OUT": tmp_path / "out", "FILE": tmp_path / "file", "FOLDER": tmp_path / "folder",
             **{key.upper(): value for key, value in files.items()}}
    readonly_outputs = [a.replace("READONLY", readonly_folder) for a in argv if a.startswith("READONLY/")]
    argv = [re.sub(r"^[A-Z][A-Z0-9_]*", lambda m: str(names.get(m.group(0), m.group(0))), a) for a in argv]
    code, out, err = run(*argv)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("zippy-tf: error: ")
    assert re.sub(r"[A-Z]{4,}", lambda m: files.get(m.group(0).lower(), m.group(0)), message) in lines[0], lines[0]
    assert sorted(os.listdir(tmp_path)) == ["file", "folder", "readonly", "unreadable"]
    assert (tmp_path / "file").read_text() == "keep" and not os.listdir(tmp_path / "folder")
    assert not [path for path in readonly_outputs if os.path.exists(path)]


@pytest.mark.parametrize("model", ["zippypoint", "orb"])
def test_match_serves_tiny_images(files, model, tmp_path):
    code, out, err = run("match", files["one"], files["eight"], "--model", model, "--output", tmp_path / "m.png")
    assert code == 0, err
    result = json.loads(out)
    assert cv2.imread(str(tmp_path / "m.png")).shape[:2] == (8, 9)  # both images side by side
    assert result["num_matches"] <= min(result["num_keypoints"]) and result["working_sizes"] == [[1, 1], [8, 8]]


def test_detect_shrunk_reports_keypoints_in_the_original_pixels():
    from zippy_tf.cli.match import detect_shrunk

    def corners(image):  # a detector whose keypoints are the working image's corners
        height, width = image.shape[:2]
        return {"keypoints": np.array([[0, 0], [width, height]], np.float32), "scores": np.ones(2, np.float32)}

    image = np.zeros((2000, 3000, 3), np.uint8)
    found, size = detect_shrunk(corners, image, 1280)
    assert size == (1280, 853) and np.allclose(found["keypoints"], [[0, 0], [3000, 2000]])
    found, size = detect_shrunk(corners, image[:100, :200], 1280)
    assert size == (200, 100) and np.allclose(found["keypoints"], [[0, 0], [200, 100]])


def test_match_shrinks_a_large_photo_and_says_so(files, tmp_path):
    big = tmp_path / "big.png"
    texture = np.random.default_rng(2).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    cv2.imwrite(str(big), cv2.resize(texture, (3000, 2000), interpolation=cv2.INTER_LINEAR))
    start = time.perf_counter()
    code, out, err = run("match", big, files["small"], "--output", tmp_path / "m.png")
    seconds = time.perf_counter() - start
    assert code == 0, err
    assert json.loads(out)["working_sizes"] == [[1280, 853], [64, 48]]
    assert err.strip().splitlines() == [f"{big}: 3000x2000 shrunk to 1280x853 for detection (--max_side 1280); "
                                        "keypoints are in the original's pixels"]
    assert seconds < 120  # at full size: minutes and ~9 GB
    assert cv2.imread(str(tmp_path / "m.png")).shape[:2] == (2000, 3064)  # drawn on the original images


@pytest.fixture
def no_fit(monkeypatch):
    """The train verbs with their fit replaced by a stub: what the verb says before training, without training."""
    from zippy_tf.keypoints import training as keypoint_training
    from zippy_tf.tracking import training as tracking_training

    calls = []

    def fit(trainer, dataset, *, output, resume, **kwargs):
        calls.append(resume)
        return {"history": {}, "steps": 0, "seconds": 1.0, "epochs_done": 0, "weights": None, "checkpoint": None}

    monkeypatch.setattr(keypoint_training, "fit_keypoints", fit)
    monkeypatch.setattr(tracking_training, "fit_tracker", fit)
    return calls


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    from zippy_tf.tracking.generate import write_otb_sequences

    root = str(tmp_path_factory.mktemp("otb"))
    write_otb_sequences(root, 2, 4, seed=0, size=(96, 128))
    return root


@pytest.mark.parametrize("verb", [KP + ["--steps_per_epoch", "1"], TRACK + ["--epochs", "1", "--batch_size", "1"]],
                         ids=["zippypoint", "lighttrack"])
def test_train_resume_without_a_previous_run_says_it_starts_fresh(verb, files, sequences, no_fit, tmp_path):
    argv = [{"IMAGES": files["images"], "MISSING": sequences}.get(a, a) for a in verb]
    output = tmp_path / "run"
    code, out, err = run(*argv, "--output", output, "--resume")
    assert code == 0, err
    assert f"--resume: no previous run in {output}; starting fresh" in err.splitlines()
    assert no_fit == [False]


def test_an_os_error_on_a_named_file_is_one_line_and_others_propagate(monkeypatch):
    """The dispatcher's last guard: a path a verb did not check itself still gives one line naming the file."""
    from zippy_tf.cli import info

    def denied(fv, args, name):
        raise PermissionError(13, "Permission denied", "/somewhere/file.json")

    monkeypatch.setattr(info, "main", denied)
    code, out, err = run("info", "--list")
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == ["zippy-tf: error: '/somewhere/file.json': Permission denied; check the path "
                                        "and its permissions"]
    monkeypatch.setattr(info, "main", lambda fv, args, name: (_ for _ in ()).throw(OSError("no file involved")))
    with pytest.raises(OSError, match="no file involved"):
        run("info", "--list")
