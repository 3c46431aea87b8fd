"""`zippy-tf eval track` end to end on two generated sequences, and its bad-input exits."""

import json
import os
import subprocess
import sys

import pytest

from zippy_tf.tracking.generate import write_otb_sequences

KEYS = {"success_auc", "precision_20", "fps", "num_sequences", "per_sequence"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("otb")
    write_otb_sequences(str(root), 2, 12, seed=100, size=(120, 160))
    return str(root)


def run(*args):
    return subprocess.run([sys.executable, "-m", "zippy_tf.cli.main", "eval", "track", *args],
                          capture_output=True, text=True, timeout=300)


def test_kcf_end_to_end(data, tmp_path):
    output, plots = tmp_path / "result.json", tmp_path / "plots"
    plots.mkdir()
    done = run("--data", data, "--format", "otb", "--tracker", "kcf", "--output", str(output), "--plots", str(plots))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert KEYS <= set(result) and result["num_sequences"] == 2
    assert 0 <= result["success_auc"] <= 1 and 0 <= result["precision_20"] <= 1 and result["fps"] > 0
    assert sorted(result["per_sequence"]) == ["gen100_0000", "gen100_0001"]
    assert json.loads(output.read_text()) == result
    assert sorted(os.listdir(plots)) == ["precision.png", "success.png"]
    assert (plots / "success.png").read_bytes()[:4] == b"\x89PNG"


BAD_INPUTS = [
    (["--tracker", "kcf"], "--data and --tracker are required"),
    (["--data", "{missing}", "--tracker", "kcf"], "does not exist"),
    (["--data", "{data}", "--tracker", "kcf", "--output", "{missing}/r.json"], "output folder"),
    (["--data", "{data}", "--tracker", "kcf", "--plots", "{missing}"], "--plots folder"),
    (["--data", "{data}", "--tracker", "kcf", "--format", "lasot"], "LaSOT sequence"),
    (["--data", "{data}", "--tracker", "kcf", "--weights", "w.h5"], "do not apply"),
    (["--data", "{data}", "--tracker", "kcf", "--runtime", "int8"], "do not apply"),
    (["--data", "{data}", "--tracker", "kcf", "--runtime", "lce"], "runtime"),
    (["--data", "{data}", "--tracker", "tld"], "tld"),
    (["--data", "{data}", "--tracker", "kcf", "--max_sequences", "0"], "max_sequences"),
    (["--data", "{data}", "--tracker", "kcf", "--max_sequences", "-1"], "max_sequences"),
    (["--data", "{data}", "--tracker", "kcf", "--max_sequences", "-2"], "max_sequences"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS)
def test_bad_input_exits_2_without_output(data, tmp_path, args, message):
    output = tmp_path / "result.json"
    missing = str(tmp_path / "missing")
    args = [a.format(data=data, missing=missing) for a in args]
    if "--output" not in args:
        args += ["--output", str(output)]
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not output.exists() and done.stdout == ""


def test_neural_tracker_through_its_preset(data, tmp_path, monkeypatch):
    from zippy_tf import presets
    from zippy_tf.errors import UserError
    from zippy_tf.tracking.datasets import load_sequences
    from zippy_tf.tracking.evaluate import evaluate, tracker_factory

    from .test_tracker import MatchingNetwork

    monkeypatch.delitem(presets.PRESETS, "ettrack", raising=False)
    with pytest.raises(UserError, match="needs the 'ettrack' model preset"):
        tracker_factory("ettrack")
    monkeypatch.setitem(presets.PRESETS, "ettrack", presets.Preset("ettrack", "unused:unused", "a stand-in"))
    monkeypatch.setattr(presets, "MODELS_DIR", tmp_path)
    with pytest.raises(UserError, match="no shipped weights"):
        tracker_factory("ettrack")
    with pytest.raises(UserError, match="does not exist"):
        tracker_factory("ettrack", str(tmp_path / "missing.h5"))
    built = []
    monkeypatch.setattr(presets, "build_model", lambda name, weights: built.append((name, weights)) or MatchingNetwork())
    weights = tmp_path / "weights.h5"
    weights.write_bytes(b"")
    make_tracker = tracker_factory("ettrack", str(weights), runtime="keras")
    scores, curves = evaluate(load_sequences(data, "otb"), make_tracker)
    assert built == [("ettrack", str(weights))]  # one network for all sequences
    assert scores["num_sequences"] == 2 and scores["fps"] > 0 and len(curves["success_curve"]) == 21
