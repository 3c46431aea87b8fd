"""`zippy-tf search` end to end on tiny settings: outputs, resume without re-training, bad input."""

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run(*args):
    proc = subprocess.run([sys.executable, "-m", "zippy_tf.cli.main", "search", *args], capture_output=True,
                          text=True, env=ENV, timeout=1200)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def train_folder(tmp_path_factory):
    from zippy_tf.data.image_folder import write_training_folder

    return write_training_folder(str(tmp_path_factory.mktemp("s") / "train"), count=4, height=48, width=64)


def test_search_writes_config_log_plot_and_resumes(tmp_path, train_folder):
    args = ["--data", train_folder, "--output", str(tmp_path / "out"), "--resolution", "64x48", "--steps", "1",
            "--batch_size", "2", "--blocks", "stage1"]
    code, out, err = run(*args)
    assert code == 0, err
    result = json.loads(out)
    assert result["evaluated"] == 3 and set(result["chosen"]) == {"stage1"}
    assert result["cost_model"] == "analytic"
    with open(result["log"]) as f:
        assert len(f.read().splitlines()) == 3
    assert os.path.getsize(result["plot"]) > 1000
    from zippy_tf.keypoints.model import zippypoint

    assert zippypoint(config=result["config"], input_shape=(48, 64, 3)).count_params() > 0
    code, out, err = run(*args)  # resumed: every candidate is in the log, nothing is trained again
    assert code == 0, err
    assert json.loads(out)["evaluated"] == 3
    with open(result["log"]) as f:
        assert len(f.read().splitlines()) == 3


@pytest.mark.parametrize("extra,message", [
    (["--budget", "1.5"], "--budget must be in (0, 1)"),
    (["--cost", "table"], "needs --cost_table"),
    (["--blocks", "stage9"], "names unknown macro-blocks stage9"),
    (["--model", "kp2d"], "search starts from zippypoint"),
])
def test_bad_input(tmp_path, train_folder, extra, message):
    code, out, err = run("--data", train_folder, "--output", str(tmp_path / "o"), "--resolution", "64x48",
                         "--steps", "1", "--batch_size", "2", *extra)
    assert code == 2 and out == "" and message in err
