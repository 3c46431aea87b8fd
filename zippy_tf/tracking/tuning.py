"""Tuning the online tracker's hyper-parameters (penalty_k, window_influence, lr) on validation sequences.

Ocean, LightTrack and E.T.Track tune these per network and per benchmark (their tune scripts search them on the
benchmark's success AUC); values that suit one set of weights need not suit another. Weights whose box regression
is biased, for example, do better with a small size learning rate, since every biased box is blended into the
state and the next crop grows or shrinks with it. Here: a seeded random search over ranges that contain the
reference values, trial 0 being the reference defaults (the baseline, measured in the same run), each trial a
full OPE on the given sequences. Trials go to a JSON-lines log as they finish; a rerun with the same log skips
them. Tune on a validation split and report on another.

The best of many settings scored on a small split is optimistic: part of its lead is that split's luck (E.T.Track's
card: the best of 40 on 10 sequences scored 0.44, and 0.37 on 20 more of the same generator). :func:`confirm`
re-runs the search's few best settings and the baseline on a second, larger split and picks the best there.

Tuned values live next to the weights they were tuned for (``models/<preset>/tracker.json``); the evaluation CLI
and benchmarks use them with the shipped weights. The int8 network's boxes differ from the float one's, so a file can
also hold settings tuned on another runtime (``by_runtime``, :func:`add_runtime_settings`); they apply when the
tracker runs on that runtime. Worth it only where the validation split is large enough for the runtime's own best
settings to carry over (E.T.Track's card: on 10 sequences they did not).
"""

import inspect
import math
import os

import numpy as np

from zippy_tf.errors import UserError
from zippy_tf.io import read_json, write_json
from zippy_tf.search.log import SearchLog
from zippy_tf.tracking.tracker import Tracker

# The ranges searched; each contains the reference's value, the Tracker's default (DEFAULTS).
SEARCH_SPACE = {"penalty_k": (0.0, 0.2), "window_influence": (0.0, 0.7), "lr": (0.0, 0.8)}
FILE_NAME = "tracker.json"
# How the tracker's network runs: an exported fp32 or int8 TFLite flatbuffer (the deployed path) or the Keras model.
RUNTIMES = ("fp32", "int8", "keras")
DEFAULTS = {name: inspect.signature(Tracker).parameters[name].default for name in SEARCH_SPACE}


def candidates(trials, seed):
    """The first ``trials`` settings of the search: the defaults, then uniform samples (trial i depends only on
    (seed, i), so a larger ``trials`` extends a search instead of changing it)."""
    rng = np.random.default_rng(seed)
    settings = [dict(DEFAULTS)]
    while len(settings) < trials:
        settings.append({k: round(float(rng.uniform(lo, hi)), 4) for k, (lo, hi) in SEARCH_SPACE.items()})
    return settings[:trials]


def trial_key(hyperparameters):
    return "|".join(f"{k}={hyperparameters[k]}" for k in sorted(hyperparameters))


def check_hyperparameters(values, source):
    """``values`` as a {name: float} dict of known, finite, non-negative hyper-parameters, or a one-line error."""
    if not isinstance(values, dict):
        raise UserError(f"{source} does not hold a JSON object of tracker hyper-parameters; "
                        f"write e.g. {{\"lr\": 0.3}} with keys among {', '.join(DEFAULTS)}")
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise UserError(f"{source} has unknown tracker hyper-parameters {unknown}; use {', '.join(DEFAULTS)}")
    checked = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UserError(f"{source}: {name} = {value!r} is not a finite number ≥ 0; fix the file")
        checked[name] = float(value)
    return checked


def read_hyperparameters(path, runtime=None):
    """The ``hyperparameters`` of a tracker.json file written by :func:`write_hyperparameters` (or a bare object).

    With ``runtime`` ("fp32", "int8", "keras"), the settings the file holds for that runtime (its ``by_runtime``
    section, see :func:`add_runtime_settings`) if it has them, else its main ones.
    """
    data = read_json(path, "tracker hyper-parameter file")
    source = f"tracker hyper-parameter file {path!r}"
    sections = _runtime_sections(data, source)
    if runtime in sections:
        data, source = sections[runtime], f"{source}, {runtime} section"
    values = data.get("hyperparameters", data) if isinstance(data, dict) else data
    return check_hyperparameters(values, source)


def _runtime_sections(data, source):
    sections = data.get("by_runtime", {}) if isinstance(data, dict) and "hyperparameters" in data else {}
    if not isinstance(sections, dict) or not all(isinstance(v, dict) and k in RUNTIMES for k, v in sections.items()):
        raise UserError(f"{source}: 'by_runtime' must map runtimes ({', '.join(RUNTIMES)}) to tuning results; "
                        "rewrite it with zippy-tf tune --add_to")
    return sections


def write_hyperparameters(path, hyperparameters, **provenance):
    """Writes ``{"hyperparameters": ..., **provenance}`` atomically (provenance: what they were tuned on, scores)."""
    write_json(path, {"hyperparameters": check_hyperparameters(hyperparameters, "hyper-parameters"), **provenance})


def read_tuning_result(path):
    """A tracker.json written by ``zippy-tf tune`` (its main settings checked), or a one-line error."""
    data = read_json(path, "tracker hyper-parameter file")
    if not isinstance(data, dict) or "hyperparameters" not in data:
        raise UserError(f"{path!r} is not a tracker.json written by zippy-tf tune; tune into an --output folder first")
    source = f"tracker hyper-parameter file {path!r}"
    _runtime_sections(data, source)
    check_hyperparameters(data["hyperparameters"], source)  # the file as read, not read again
    return data


def add_runtime_settings(path, tuned_path):
    """Records the tuning result ``tuned_path`` (the tracker.json of ``zippy-tf tune --runtime R``) in the tracker.json
    ``path`` as its settings for runtime R, keeping everything else; written atomically."""
    tuned = read_tuning_result(tuned_path)
    tuned_on = tuned.get("tuned_on")
    runtime = tuned_on.get("runtime") if isinstance(tuned_on, dict) else None
    if runtime not in RUNTIMES:
        raise UserError(f"{tuned_path!r} does not say which runtime it was tuned on (tuned_on.runtime); "
                        "pass the tracker.json that zippy-tf tune wrote")
    data = read_tuning_result(path)
    section = {k: v for k, v in tuned.items() if k != "by_runtime"}  # one level: a section holds no sections
    write_json(path, {**data, "by_runtime": {**data.get("by_runtime", {}), runtime: section}})


def shipped_hyperparameters(preset, runtime=None):
    """The hyper-parameters tuned for ``preset``'s shipped weights, those for ``runtime`` if the file has them
    ({} if there are none: the defaults apply)."""
    from zippy_tf.presets import MODELS_DIR

    path = MODELS_DIR / preset / FILE_NAME
    return read_hyperparameters(str(path), runtime) if path.is_file() else {}


def tune(sequences, make_tracker, *, trials, seed, log_path, setup, progress=None):
    """Random search of the tracker's hyper-parameters by OPE success AUC on ``sequences``.

    Args:
        sequences: validation sequences.
        make_tracker: ``make_tracker(**hyperparameters)`` → a fresh tracker.
        trials: settings to evaluate, trial 0 being :data:`DEFAULTS`.
        seed: seed of the sampled settings.
        log_path: JSON-lines log; trials already in it are not run again.
        setup: what the scores depend on besides the settings (weights, runtime, data), stored in every record;
            a log written for another setup is refused rather than mixed in.
        progress: optional callable for one line per trial.

    Returns:
        {"best": record, "baseline": record of the defaults, "trials": [records in trial order]}, where a record
        is {"key", "trial", "hyperparameters", "success_auc", "precision_20", "setup"}. Ties go to the earlier trial.
    """
    if trials < 1:
        raise UserError(f"--trials {trials} must be at least 1 (trial 0 is the reference defaults)")
    log = _open_log(log_path, setup)
    records = []
    for trial, hyperparameters in enumerate(candidates(trials, seed)):
        records.append(_logged_trial(log, trial, hyperparameters, sequences, make_tracker, setup))
        if progress:
            progress(f"[{trial + 1}/{trials}] {_describe(records[-1])}")
    return _result(records)


def confirm(search, sequences, make_tracker, *, top, log_path, setup, progress=None):
    """Re-scores the ``top`` best settings of a :func:`tune` result, and its baseline, on other ``sequences``.

    Args:
        search: what :func:`tune` returned.
        sequences: the confirmation split: validation sequences the search did not score (best more of them).
        top: how many of the search's best settings to re-score.
        log_path, setup, progress: as for :func:`tune`, for this stage's own log.

    Returns:
        As :func:`tune`, the records scored on ``sequences``: "best" is the best there, "trials" the re-scored
        settings in trial order (the baseline first).
    """
    if top < 1:
        raise UserError(f"--confirm_top {top} must be at least 1")
    ranked = sorted(search["trials"], key=lambda r: (-r["success_auc"], r["trial"]))[:top]
    chosen = sorted({r["trial"]: r for r in [search["baseline"], *ranked]}.values(), key=lambda r: r["trial"])
    log = _open_log(log_path, setup)
    records = []
    for k, record in enumerate(chosen):
        records.append(_logged_trial(log, record["trial"], record["hyperparameters"], sequences, make_tracker, setup))
        if progress:
            progress(f"[confirm {k + 1}/{len(chosen)}] search trial {record['trial'] + 1}: {_describe(records[-1])}")
    return _result(records)


def _open_log(log_path, setup):
    if not os.path.isdir(os.path.dirname(os.path.abspath(log_path))):
        raise UserError(f"output folder for {log_path!r} does not exist; create it first")
    log = SearchLog(log_path)
    for record in log.records.values():
        if record.get("setup") != setup:
            raise UserError(f"{log_path} holds trials of another setup ({record.get('setup')}); "
                            "tune into a new --output folder")
    return log


def _logged_trial(log, trial, hyperparameters, sequences, make_tracker, setup):
    """The log's record of these settings, evaluated (OPE) and appended first if it has none."""
    from zippy_tf.tracking.evaluate import evaluate

    key = trial_key(hyperparameters)
    if key not in log:
        scores, _ = evaluate(sequences, lambda: make_tracker(**hyperparameters))
        log.append({"key": key, "trial": trial, "hyperparameters": hyperparameters, "setup": setup,
                    "success_auc": scores["success_auc"], "precision_20": scores["precision_20"]})
    return log[key]


def _describe(record):
    return (f"{record['hyperparameters']}: success AUC {record['success_auc']:.4f}, "
            f"precision@20 {record['precision_20']:.4f}")


def _result(records):
    """{"best", "baseline", "trials"} of records in trial order, the first being the baseline; ties go to the earlier."""
    _, best = max(enumerate(records), key=lambda item: (item[1]["success_auc"], -item[0]))
    return {"best": best, "baseline": records[0], "trials": records}


__all__ = ["DEFAULTS", "FILE_NAME", "RUNTIMES", "SEARCH_SPACE", "add_runtime_settings", "candidates",
           "check_hyperparameters", "confirm", "read_hyperparameters", "read_tuning_result", "shipped_hyperparameters", "tune",
           "write_hyperparameters"]
