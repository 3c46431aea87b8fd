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

Tuned values live next to the weights they were tuned for (``models/<preset>/tracker.json``, read and written by
:mod:`zippy_tf.tracking.hyperparameters`), with settings tuned on another runtime (int8) beside them. Worth those
only where the validation split is large enough for the runtime's own best settings to carry over (E.T.Track's card:
on 10 sequences they did not).
"""

import inspect
import os

import numpy as np

from zippy_tf.errors import UserError
from zippy_tf.io import RecordLog
from zippy_tf.tracking.hyperparameters import NAMES
from zippy_tf.tracking.tracker import Tracker

# The ranges searched; each contains the reference's value, the Tracker's default (DEFAULTS).
SEARCH_SPACE = {"penalty_k": (0.0, 0.2), "window_influence": (0.0, 0.7), "lr": (0.0, 0.8)}
DEFAULTS = {name: inspect.signature(Tracker).parameters[name].default for name in NAMES}


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
        raise UserError(f"trials={trials} must be at least 1 (trial 0 is the reference defaults)")
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
        raise UserError(f"top={top} must be at least 1")
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
    log = RecordLog(log_path)
    for record in log.records.values():
        if record.get("setup") != setup:
            raise UserError(f"{log_path} holds trials of another setup ({record.get('setup')}); "
                            "tune into a new output= folder")
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


__all__ = ["DEFAULTS", "SEARCH_SPACE", "candidates", "confirm", "trial_key", "tune"]
