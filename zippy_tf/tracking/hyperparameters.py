"""The online tracker's hyper-parameters (penalty_k, window_influence, lr) as files: tracker.json beside the weights
they were tuned for (``models/<preset>/tracker.json``), read by the evaluation, the benchmarks and
:meth:`zippy_tf.tracking.Tracker.from_preset`; written by the tuning (:mod:`zippy_tf.tracking.tuning`).

The int8 network's boxes differ from the float one's, so a file can also hold settings tuned on another runtime
(``by_runtime``, :func:`add_runtime_settings`); they apply when the tracker runs on that runtime.
"""

import math

from zippy_tf.errors import UserError
from zippy_tf.io import read_json, write_json

# The Tracker's arguments that tuning sets.
NAMES = ("penalty_k", "window_influence", "lr")
FILE_NAME = "tracker.json"
# How the tracker's network runs: an exported fp32 or int8 TFLite flatbuffer (the deployed path) or the Keras model.
RUNTIMES = ("fp32", "int8", "keras")
# The runtime a preset's tracker runs by default: int8 where the whole tracker (crop, network, decoding; 1 thread)
# ran faster in int8 than in fp32 on this project's CPU in benchmarks/results/tracking_fps.json, else fp32. All do:
# ettrack 63.4 vs 38.8 FPS (at 0.027 less AUC), ettrack-s (search 224) 95.1 vs 87.4, lighttrack 107.0 vs 91.5,
# attention 40.7 vs 27.7. The Keras model stays available as runtime "keras" (for debugging).
DEFAULT_RUNTIMES = {"ettrack": "int8", "ettrack-s": "int8", "lighttrack": "int8", "attention": "int8"}


def default_runtime(preset):
    """The runtime ``preset``'s tracker runs by default (see ``DEFAULT_RUNTIMES``; fp32 for others)."""
    return DEFAULT_RUNTIMES.get(preset, "fp32")


def check_runtime(runtime):
    """``runtime`` if it is one of ``RUNTIMES``, else a one-line error."""
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
    return runtime


def check_hyperparameters(values, source):
    """``values`` as a {name: float} dict of known, finite, non-negative hyper-parameters, or a one-line error."""
    if not isinstance(values, dict):
        raise UserError(f"{source} does not hold a JSON object of tracker hyper-parameters; "
                        f"write e.g. {{\"lr\": 0.3}} with keys among {', '.join(NAMES)}")
    unknown = sorted(set(values) - set(NAMES))
    if unknown:
        raise UserError(f"{source} has unknown tracker hyper-parameters {unknown}; use {', '.join(NAMES)}")
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
                        "rewrite it with add_runtime_settings (zippy-tf tune --add_to)")
    return sections


def write_hyperparameters(path, hyperparameters, **provenance):
    """Writes ``{"hyperparameters": ..., **provenance}`` atomically (provenance: what they were tuned on, scores)."""
    write_json(path, {"hyperparameters": check_hyperparameters(hyperparameters, "hyper-parameters"), **provenance})


def read_tuning_result(path):
    """A tracker.json written by ``zippy-tf tune`` (its main settings checked), or a one-line error."""
    data = read_json(path, "tracker hyper-parameter file")
    if not isinstance(data, dict) or "hyperparameters" not in data:
        raise UserError(f"{path!r} is not a tracker.json written by zippy-tf tune; tune into an output= folder first")
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


__all__ = ["DEFAULT_RUNTIMES", "FILE_NAME", "NAMES", "RUNTIMES", "add_runtime_settings", "check_hyperparameters",
           "check_runtime", "default_runtime", "read_hyperparameters", "read_tuning_result", "shipped_hyperparameters",
           "write_hyperparameters"]
