"""Tracker hyper-parameter tuning: the candidates, the search and its resumable log, tracker.json, and the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from zippy_tf.errors import UserError
from zippy_tf.tracking.datasets import load_sequences
from zippy_tf.tracking.generate import write_otb_sequences
from zippy_tf.tracking.tracker import Tracker
from zippy_tf.tracking.hyperparameters import (
    add_runtime_settings, read_hyperparameters, shipped_hyperparameters, write_hyperparameters,
)
from zippy_tf.tracking.tuning import DEFAULTS, SEARCH_SPACE, candidates, confirm, tune

SETUP = {"weights_sha256": "test", "runtime": "fake"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("otb")
    write_otb_sequences(str(root), 1, 6, seed=100, size=(120, 160))
    return str(root)


class ShiftedTruth:
    """A stand-in tracker that reports the true box shifted right by 40·|lr − best_lr| px: the closer lr is to
    ``best_lr``, the higher the AUC."""

    def __init__(self, boxes, calls, best_lr=0.0, **hyperparameters):
        self.boxes, self.shift = boxes, 40 * abs(hyperparameters["lr"] - best_lr)
        calls.append(hyperparameters)

    def init(self, frame, box):
        self.frame = 0

    def update(self, frame):
        self.frame += 1
        x, y, w, h = self.boxes[self.frame]
        return True, (x + self.shift, y, w, h)


def run_tune(data, log, trials, calls, setup=SETUP):
    sequences = load_sequences(data, "otb")
    return tune(sequences, lambda **hp: ShiftedTruth(sequences[0].boxes, calls, **hp), trials=trials, seed=3,
                log_path=str(log), setup=setup)


def test_candidates_start_from_the_tracker_defaults_and_extend_stably():
    assert DEFAULTS == {"penalty_k": 0.007, "window_influence": 0.225, "lr": 0.616}
    assert {k: getattr(Tracker(None), k) for k in DEFAULTS} == DEFAULTS
    five = candidates(5, seed=1)
    assert five[0] == DEFAULTS and five[:3] == candidates(3, seed=1) and five != candidates(5, seed=2)
    for setting in five:
        assert all(SEARCH_SPACE[k][0] <= v <= SEARCH_SPACE[k][1] for k, v in setting.items())
    for name, (low, high) in SEARCH_SPACE.items():
        assert low <= DEFAULTS[name] <= high


def test_tune_picks_the_best_trial_and_keeps_the_baseline(data, tmp_path):
    calls = []
    result = run_tune(data, tmp_path / "trials.jsonl", 6, calls)
    settings = candidates(6, seed=3)
    assert calls == settings  # one tracker per trial and sequence, in trial order
    assert result["baseline"]["hyperparameters"] == DEFAULTS
    assert [r["trial"] for r in result["trials"]] == list(range(6))
    aucs = [r["success_auc"] for r in result["trials"]]
    smallest_lr = min(range(6), key=lambda i: settings[i]["lr"])
    assert aucs[smallest_lr] == max(aucs) > aucs[0]  # the stand-in's best setting wins over the defaults
    assert result["best"]["trial"] == aucs.index(max(aucs))  # ties go to the earlier trial


def test_tune_resumes_from_its_log_and_skips_a_torn_line(data, tmp_path):
    log = tmp_path / "trials.jsonl"
    first_calls, more_calls = [], []
    first = run_tune(data, log, 3, first_calls)
    with open(log, "a") as f:
        f.write('{"key": "lr=0.1|penalty_k')  # a writer killed mid-line
    with pytest.warns(UserWarning, match="corrupt log line"):
        more = run_tune(data, log, 5, more_calls)
    assert len(first_calls) == 3 and more_calls == candidates(5, seed=3)[3:]
    assert more["trials"][:3] == first["trials"]
    complete = [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]
    assert [r["trial"] for r in complete] == [0, 1, 2, 3, 4]


def test_tune_refuses_a_log_of_another_setup(data, tmp_path):
    log = tmp_path / "trials.jsonl"
    run_tune(data, log, 1, [])
    with pytest.raises(UserError, match="another setup"):
        run_tune(data, log, 2, [], setup={**SETUP, "runtime": "other"})
    with pytest.raises(UserError, match="at least 1"):
        run_tune(data, tmp_path / "other.jsonl", 0, [])


def test_confirm_rescores_the_best_settings_and_the_baseline(data, tmp_path):
    search = run_tune(data, tmp_path / "trials.jsonl", 8, [])
    ranked = sorted(search["trials"], key=lambda r: (-r["success_auc"], r["trial"]))[:3]
    assert 0 not in [r["trial"] for r in ranked]
    # on the confirmation split the third-best setting of the search is the best one
    best_lr = ranked[2]["hyperparameters"]["lr"]
    sequences = load_sequences(data, "otb")

    def run_confirm(calls, top=3):
        return confirm(search, sequences, lambda **hp: ShiftedTruth(sequences[0].boxes, calls, best_lr, **hp),
                       top=top, log_path=str(tmp_path / "confirm.jsonl"), setup={**SETUP, "data": "confirm"})

    calls = []
    result = run_confirm(calls)
    chosen = sorted([0] + [r["trial"] for r in ranked])
    assert calls == [search["trials"][t]["hyperparameters"] for t in chosen]  # the baseline and the top 3 only
    assert [r["trial"] for r in result["trials"]] == chosen and result["baseline"]["hyperparameters"] == DEFAULTS
    assert result["best"]["trial"] == ranked[2]["trial"] != search["best"]["trial"]
    scores = {r["trial"]: r["success_auc"] for r in result["trials"]}
    assert scores[ranked[2]["trial"]] > scores[ranked[0]["trial"]]  # a real change of mind, not a tie
    again = []
    assert run_confirm(again) == result and again == []  # resumed from its own log
    with pytest.raises(UserError, match="at least 1"):
        run_confirm([], top=0)


def test_hyperparameter_file_round_trip(tmp_path):
    path = tmp_path / "tracker.json"
    write_hyperparameters(str(path), {"lr": 0.1, "penalty_k": 0.05}, success_auc=0.5)
    assert read_hyperparameters(str(path)) == {"lr": 0.1, "penalty_k": 0.05}
    assert json.loads(path.read_text())["success_auc"] == 0.5
    path.write_text('{"window_influence": 0.3}')  # a bare object is accepted too
    assert read_hyperparameters(str(path)) == {"window_influence": 0.3}


@pytest.mark.parametrize("text, message", [
    ('{"hyperparameters": {"momentum": 0.1}}', "unknown tracker hyper-parameters"),
    ('{"lr": -0.1}', "not a finite number"),
    ('{"lr": "fast"}', "not a finite number"),
    ('{"lr": true}', "not a finite number"),
    ("[0.1, 0.2]", "JSON object"),
    ("{lr: 0.1", "not valid JSON"),
    (None, "does not exist"),
])
def test_bad_hyperparameter_files(tmp_path, text, message):
    path = tmp_path / "tracker.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_hyperparameters(str(path))


def test_shipped_hyperparameters_come_from_the_model_folder(tmp_path, monkeypatch):
    from zippy_tf import presets

    monkeypatch.setattr(presets, "MODELS_DIR", tmp_path)
    assert shipped_hyperparameters("ettrack") == {}
    (tmp_path / "ettrack").mkdir()
    write_hyperparameters(str(tmp_path / "ettrack" / "tracker.json"), {"lr": 0.2})
    assert shipped_hyperparameters("ettrack") == {"lr": 0.2}


def _tuned(path, runtime, **hyperparameters):
    write_hyperparameters(str(path), hyperparameters, success_auc=0.4, tuned_on={"runtime": runtime})
    return str(path)


def test_settings_per_runtime(tmp_path):
    main = _tuned(tmp_path / "tracker.json", "fp32", lr=0.2)
    int8 = _tuned(tmp_path / "int8.json", "int8", lr=0.05, penalty_k=0.1)
    add_runtime_settings(main, int8)
    saved = json.loads((tmp_path / "tracker.json").read_text())
    assert saved["hyperparameters"] == {"lr": 0.2} and saved["success_auc"] == 0.4  # the rest is kept
    assert saved["by_runtime"]["int8"] == json.loads((tmp_path / "int8.json").read_text())
    assert read_hyperparameters(main, "int8") == {"lr": 0.05, "penalty_k": 0.1}
    for runtime in (None, "fp32", "keras"):  # no section of their own: the main settings
        assert read_hyperparameters(main, runtime) == {"lr": 0.2}
    add_runtime_settings(main, _tuned(tmp_path / "int8b.json", "int8", lr=0.07))  # a retune replaces the section
    add_runtime_settings(str(tmp_path / "int8b.json"), main)  # sections do not nest
    assert "by_runtime" not in json.loads((tmp_path / "int8b.json").read_text())["by_runtime"]["fp32"]
    add_runtime_settings(main, _tuned(tmp_path / "keras.json", "keras", window_influence=0.4))
    assert read_hyperparameters(main, "int8") == {"lr": 0.07}
    assert read_hyperparameters(main, "keras") == {"window_influence": 0.4}
    assert read_hyperparameters(main, "fp32") == {"lr": 0.2}


@pytest.mark.parametrize("target, tuned, message", [
    ('{"lr": 0.1}', None, "not a tracker.json written by zippy-tf tune"),
    (None, '{"hyperparameters": {"lr": 0.1}}', "which runtime"),
    (None, '{"hyperparameters": {"lr": 0.1}, "tuned_on": "int8"}', "which runtime"),
    (None, '{"hyperparameters": {"lr": 0.1}, "tuned_on": {"runtime": "lce"}}', "which runtime"),
    (None, '{"hyperparameters": {"lr": -1}, "tuned_on": {"runtime": "int8"}}', "not a finite number"),
    ('{"hyperparameters": {"lr": 0.1}, "by_runtime": {"lce": {}}}', None, "'by_runtime' must map runtimes"),
    ('{"hyperparameters": {"lr": 0.1}, "by_runtime": []}', None, "'by_runtime' must map runtimes"),
])
def test_add_runtime_settings_bad_input(tmp_path, target, tuned, message):
    target_path, tuned_path = tmp_path / "tracker.json", tmp_path / "tuned.json"
    _tuned(target_path, "fp32", lr=0.2)
    _tuned(tuned_path, "int8", lr=0.05)
    for path, text in ((target_path, target), (tuned_path, tuned)):
        if text is not None:
            path.write_text(text)
    before = target_path.read_text()
    with pytest.raises(UserError, match=message):
        add_runtime_settings(str(target_path), str(tuned_path))
    assert target_path.read_text() == before


def test_a_bad_runtime_section_is_refused_on_reading(tmp_path):
    path = tmp_path / "tracker.json"
    path.write_text('{"hyperparameters": {"lr": 0.1}, "by_runtime": {"int8": {"hyperparameters": {"lr": "x"}}}}')
    assert read_hyperparameters(str(path), "fp32") == {"lr": 0.1}
    with pytest.raises(UserError, match="int8 section.*not a finite number"):
        read_hyperparameters(str(path), "int8")


def test_tracker_factory_runs_the_exported_network_with_its_runtime_settings(data, tmp_path, monkeypatch):
    from zippy_tf import presets
    from zippy_tf.tracking import export
    from zippy_tf.tracking.evaluate import tracker_factory

    from .test_tracker import MatchingNetwork

    monkeypatch.setattr(presets, "MODELS_DIR", tmp_path)
    keras_network, exported = MatchingNetwork(), []
    monkeypatch.setattr(presets, "build_model", lambda name, weights: keras_network)
    monkeypatch.setattr(export, "cached_network",
                        lambda network, fmt, num_threads: exported.append((network, fmt)) or MatchingNetwork())
    (tmp_path / "ettrack").mkdir()
    (tmp_path / "ettrack" / "weights.h5").write_bytes(b"")
    main = _tuned(tmp_path / "ettrack" / "tracker.json", "fp32", lr=0.2)
    add_runtime_settings(main, _tuned(tmp_path / "int8.json", "int8", lr=0.05))
    for runtime, lr in (("int8", 0.05), ("fp32", 0.2), ("keras", 0.2), (None, 0.05)):  # None: ettrack's, int8
        tracker = tracker_factory("ettrack", runtime=runtime)()
        assert tracker.lr == lr
        assert (tracker.network is keras_network) == (runtime == "keras")
    assert exported == [(keras_network, "int8"), (keras_network, "fp32"), (keras_network, "int8")]
    with pytest.raises(UserError, match="unknown runtime 'lce'"):
        tracker_factory("ettrack", runtime="lce")
    with pytest.raises(UserError, match="do not apply"):
        tracker_factory("kcf", runtime="int8")


@pytest.mark.parametrize("preset", ["ettrack", "lighttrack", "attention"])
def test_shipped_settings_were_tuned_on_the_shipped_weights(preset):
    """A tracker.json describes one weights file; shipping new weights without retuning would mismatch them."""
    import hashlib

    from zippy_tf.presets import MODELS_DIR

    folder = MODELS_DIR / preset
    saved = json.loads((folder / "tracker.json").read_text())
    digest = hashlib.sha256((folder / "weights.h5").read_bytes()).hexdigest()[:16]
    assert saved["tuned_on"]["weights_sha256"] == digest
    assert read_hyperparameters(str(folder / "tracker.json")) == saved["hyperparameters"]


def test_tracker_factory_applies_hyperparameters(data, tmp_path, monkeypatch):
    from zippy_tf import presets
    from zippy_tf.tracking.evaluate import tracker_factory

    from .test_tracker import MatchingNetwork

    monkeypatch.setattr(presets, "MODELS_DIR", tmp_path)
    monkeypatch.setattr(presets, "build_model", lambda name, weights: MatchingNetwork())
    (tmp_path / "ettrack").mkdir()
    (tmp_path / "ettrack" / "weights.h5").write_bytes(b"")
    write_hyperparameters(str(tmp_path / "ettrack" / "tracker.json"), {"lr": 0.2, "penalty_k": 0.1})
    shipped = tracker_factory("ettrack", runtime="keras")()  # shipped weights: their tuned values
    assert (shipped.lr, shipped.penalty_k, shipped.window_influence) == (0.2, 0.1, DEFAULTS["window_influence"])
    other = tracker_factory("ettrack", str(tmp_path / "ettrack" / "weights.h5"), runtime="keras")()
    assert other.lr == DEFAULTS["lr"]  # other weights: the reference's
    explicit = tracker_factory("ettrack", None, {"window_influence": 0.5}, "keras")()
    assert (explicit.lr, explicit.window_influence) == (DEFAULTS["lr"], 0.5)
    with pytest.raises(UserError, match="do not apply"):
        tracker_factory("kcf", None, {"lr": 0.1})


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "zippy_tf.cli.main", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def test_tune_cli_writes_the_best_and_resumes(data, tmp_path):
    run = tmp_path / "run"  # created by the CLI
    args = ["tune", "ettrack", "--data", data, "--runtime", "keras", "--output", str(run)]
    done = cli(*args, "--trials", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    saved = json.loads((run / "tracker.json").read_text())
    assert result["best"] == saved["hyperparameters"] and result["trials"] == saved["trials"] == 2
    assert saved["baseline"]["hyperparameters"] == DEFAULTS and saved["tuned_on"]["runtime"] == "keras"
    assert result["success_auc"] >= result["baseline_success_auc"]
    assert len((run / "trials.jsonl").read_text().splitlines()) == 2
    shipped = _tuned(tmp_path / "shipped_tracker.json", "fp32", lr=0.8)
    again = cli(*args, "--trials", "3", "--add_to", shipped)
    assert again.returncode == 0, again.stderr[-2000:]
    trials = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    assert [t["trial"] for t in trials] == [0, 1, 2]  # the first two were not run again
    assert "[1/3]" in again.stderr and again.stderr.count("success AUC") == 3
    best = max(trials, key=lambda t: t["success_auc"])
    assert read_hyperparameters(shipped, "keras") == best["hyperparameters"]
    assert read_hyperparameters(shipped, "fp32") == {"lr": 0.8}
    for hyperparameters in (str(run / "tracker.json"), shipped):  # the keras section of the shipped file
        evaluated = cli("eval", "track", "--data", data, "--tracker", "ettrack", "--runtime", "keras",
                        "--hyperparameters", hyperparameters)
        assert evaluated.returncode == 0, evaluated.stderr[-2000:]
        assert np.isclose(json.loads(evaluated.stdout)["success_auc"], best["success_auc"])


def test_tune_cli_confirms_on_a_second_split(data, tmp_path):
    run = tmp_path / "run"
    relative = os.path.relpath(data, tmp_path)  # stored as given: tracker.json files get shipped
    done = cli("tune", "ettrack", "--data", relative, "--runtime", "keras", "--output", "run", "--trials", "3",
               "--confirm_data", relative, "--confirm_top", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    saved = json.loads((run / "tracker.json").read_text())
    trials = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    confirmed = [json.loads(line) for line in (run / "confirm.jsonl").read_text().splitlines()]
    search_best = max(trials, key=lambda t: (t["success_auc"], -t["trial"]))
    assert sorted(c["trial"] for c in confirmed) == sorted({0, search_best["trial"]})
    assert saved["confirmed_on"]["data"] == saved["tuned_on"]["data"] == relative
    assert saved["confirm_top"] == 1 and saved["trials"] == 3
    # the same sequences score the same, so the confirmation keeps the search's choice and its scores
    assert result["best"] == result["search_best"] == saved["hyperparameters"] == search_best["hyperparameters"]
    assert saved["success_auc"] == search_best["success_auc"] and "[confirm 1/" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--output", "{out}"], "--data is required"),
    (["--data", "{data}", "--output", "{out}", "--confirm_data", "{missing}"], "does not exist"),
    (["--data", "{missing}", "--output", "{out}"], "does not exist"),
    (["--data", "{data}", "--output", "{file}"], "is a file"),
    (["--data", "{data}", "--output", "{out}", "--weights", "{missing}/w.h5"], "does not exist"),
    (["--data", "{data}", "--output", "{out}", "--runtime", "lce"], "runtime"),
    (["--data", "{data}", "--output", "{out}", "--add_to", "{missing}/tracker.json"], "does not exist"),
    (["--data", "{data}", "--output", "{out}", "--add_to", "{out}/tracker.json"], "this run's own result"),
])
def test_tune_cli_bad_input(data, tmp_path, args, message):
    out = tmp_path / "out"
    out.mkdir()
    a_file = tmp_path / "a_file"
    a_file.write_text("{}")
    args = [a.format(data=data, out=out, missing=tmp_path / "missing", file=a_file) for a in args]
    done = cli("tune", "ettrack", *args)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not list(out.iterdir())
    assert a_file.read_text() == "{}"


def test_eval_track_rejects_a_bad_hyperparameter_file(data, tmp_path):
    path = tmp_path / "tracker.json"
    path.write_text('{"momentum": 1}')
    done = cli("eval", "track", "--data", data, "--tracker", "ettrack", "--hyperparameters", str(path))
    assert done.returncode == 2 and "unknown tracker hyper-parameters" in done.stderr
