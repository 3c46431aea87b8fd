"""The ettrack-s preset: listed wherever trackers are, its shipped weights load, and weights of another FFN width are
refused in one line that names the width and the fix (library and CLI)."""

import subprocess
import sys

import pytest

from zippy_tf import presets
from zippy_tf.errors import UserError
from zippy_tf.tracking import Tracker
from zippy_tf.tracking.evaluate import NEURAL_TRACKERS, TRACKERS
from zippy_tf.tracking.generate import write_otb_sequences
from zippy_tf.tracking.hyperparameters import DEFAULT_RUNTIMES, RUNTIMES
from zippy_tf.tracking.model import build_tracker_network, saved_ffn_dim

SMALL = dict(template_size=63, search_size=128)
ETTRACK_WEIGHTS = str(presets.MODELS_DIR / "ettrack" / "weights.h5")


def test_listed_with_the_other_trackers():
    preset = presets.get_preset("ettrack-s")
    assert preset.task == "tracking" and preset.kwargs["ffn_dim"] < 1024
    assert "ettrack-s" in NEURAL_TRACKERS and "ettrack-s" in TRACKERS
    assert DEFAULT_RUNTIMES["ettrack-s"] in RUNTIMES


def test_shipped_weights_are_the_narrow_network():
    network = presets.load("ettrack-s")
    assert network.config["ffn_dim"] == presets.get_preset("ettrack-s").kwargs["ffn_dim"]
    assert saved_ffn_dim(network.weights_path) == network.config["ffn_dim"]
    assert saved_ffn_dim(ETTRACK_WEIGHTS) == 1024  # read from a compact file too


@pytest.mark.parametrize("saved, built", [(16, 8), (8, 16)])
def test_weights_of_another_ffn_width_name_it_and_the_fix(tmp_path, saved, built):
    path = str(tmp_path / "w.h5")
    build_tracker_network(ffn_dim=saved, **SMALL).save_weights(path)
    with pytest.raises(UserError) as error:
        build_tracker_network(ffn_dim=built, weights=path, **SMALL)
    message = str(error.value)
    assert f"saved for ffn_dim {saved}, this tracker has ffn_dim {built}" in message
    assert "narrow_ffn" in message and "\n" not in message


def test_from_preset_refuses_ettrack_weights():
    with pytest.raises(UserError, match="saved for ffn_dim 1024.*preset ettrack\\b.*narrow_ffn"):
        Tracker.from_preset("ettrack-s", weights=ETTRACK_WEIGHTS, runtime="keras")


def test_eval_track_refuses_ettrack_weights_with_exit_2(tmp_path):
    write_otb_sequences(str(tmp_path), 1, 3, seed=0, size=(96, 128))
    done = subprocess.run([sys.executable, "-m", "zippy_tf.cli.main", "eval", "track", "--data", str(tmp_path),
                           "--tracker", "ettrack-s", "--weights", ETTRACK_WEIGHTS, "--runtime", "keras"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    lines = [line for line in done.stderr.strip().splitlines() if line.startswith("zippy-tf: error:")]
    assert len(lines) == 1 and "saved for ffn_dim 1024" in lines[0] and "narrow_ffn" in lines[0]


def test_train_builds_the_presets_network(tmp_path, capsys):
    """`train ettrack-s` builds the preset's narrow network: the wide E.T.Track's weights are refused, not loaded."""
    from zippy_tf.cli.main import main

    write_otb_sequences(str(tmp_path / "data"), 1, 3, seed=0, size=(96, 128))
    assert main(["train", "ettrack-s", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "run"),
                 "--weights", ETTRACK_WEIGHTS, "--epochs", "1", "--steps_per_epoch", "1", "--batch_size", "2"]) == 2
    assert "saved for ffn_dim 1024, this tracker has ffn_dim 128" in capsys.readouterr().err
