"""Run folders of the multi-task verbs (``train rcm``, ``train compl``, ``eval multitask``, ``export``, ``info``).

A run folder holds ``run.json`` (what was trained: the settings, the flags, the data, the steps and wall time per
task) and the weights:

- RCM: ``config.json`` and ``{task}.weights.h5`` (:func:`zippy_tf.multitask.save_network`'s layout, so
  ``load_network(RUN)`` reads it), ``encoder.h5`` (the plain ResNet every task's encoder path starts from;
  ``--add_task`` initialises the new task from it);
- CompL: ``compl.json`` (trunk, target and CompL options), ``trunk.h5``, ``target_head.h5`` and, with an SSL task,
  ``ssl_head.h5``.

Weights the user passes (``--encoder``, ``--init_from``) are checked by layer name when the file keeps the names
(Keras's ``.h5`` layout); files in the ``.weights.h5`` layout keep none, and are only checked for their shapes.

Checkpoints (``checkpoints/``) exist while a task trains and are removed when its weights are written; ``--resume``
continues from them. Nothing here imports TensorFlow at import time (``--help`` must stay light).
"""

import contextlib
import json
import os
import sys

from absl import flags

from zippy_tf.cli.common import starting_fresh
from zippy_tf.errors import UserError
from zippy_tf.runtime import parse_resolution, progress

RUN_FILE = "run.json"
COMPL_FILE = "compl.json"
RCM_CONFIG = "config.json"  # zippy_tf.multitask.deeplab.CONFIG_FILE
ENCODER_FILE = "encoder.h5"  # Keras's .h5 layout, which keeps layer names (".weights.h5" does not)
CHECKPOINTS = "checkpoints"


def define_training_flags(fv, method):
    """The flags ``train rcm`` and ``train compl`` share; None defaults come from ``--preset``."""
    flags.DEFINE_string("preset", method, f"settings to start from: {method} (the reference's, for GPUs) or "
                        f"{method}-small (CPU-sized); the flags below override them", flag_values=fv)
    flags.DEFINE_string("data", None, "data folder in the NYUD-MT or PASCAL-MT layout (a generated one: "
                        "zippy_tf.data.multitask_generate.write_nyud_like)", flag_values=fv)
    flags.DEFINE_string("dataset", None, "layout of --data: nyud or pascal (default: the preset's)", flag_values=fv)
    flags.DEFINE_string("output", None, "run folder to write (run.json, weights, checkpoints/)", flag_values=fv)
    flags.DEFINE_integer("steps", None, "optimizer steps (RCM: per task); default: the preset's", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("batch_size", None, "images per step over all replicas and workers (the global batch); "
                         "default: the preset's", lower_bound=1, flag_values=fv)
    flags.DEFINE_string("crop", None, "training crop WIDTHxHEIGHT, also the network's input size; default: the "
                        "preset's (560x425 for NYUD)", flag_values=fv)
    flags.DEFINE_float("learning_rate", None, "base learning rate of SGD's poly schedule; default: the preset's",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("width", None, "channel multiplier of encoder and decoder; default: the preset's",
                       lower_bound=0.01, flag_values=fv)
    flags.DEFINE_integer("steps_per_epoch", 0, "steps between checkpoints and progress lines; 0: the largest "
                         "divisor of --steps up to 200", lower_bound=0, flag_values=fv)
    flags.DEFINE_boolean("resume", False, "continue the run in --output from its last checkpoint (without a "
                         "previous run, start fresh)", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "seeds the initial weights, the data order and the augmentation",
                         flag_values=fv)
    flags.DEFINE_integer("threads", 0, "CPU threads for TensorFlow and OpenCV (0 = all cores)", lower_bound=0,
                         flag_values=fv)


def preset_settings(fv, method):
    """(network settings, schedule) from ``--preset`` with the flags' overrides, checked before any work."""
    from zippy_tf.presets import PRESETS, get_preset

    preset = get_preset(fv.preset)
    if preset.task != "multitask" or preset.method != method:
        names = [name for name, p in PRESETS.items() if p.task == "multitask" and p.method == method]
        raise UserError(f"preset {fv.preset!r} is not a {method} preset; pass --preset {' or '.join(names)}")
    network = dict(preset.kwargs)
    if fv.dataset is not None:
        network["dataset"] = fv.dataset
    if fv.crop is not None:
        network["input_shape"] = parse_resolution(fv.crop)
    if fv.width is not None:
        network["width"] = fv.width
    network["input_shape"] = list(network["input_shape"])
    schedule = {key: getattr(fv, key) if getattr(fv, key) is not None else value
                for key, value in preset.training.items()}
    schedule["seed"] = fv.seed
    return network, schedule


def epoch_length(steps, requested=0, limit=200):
    """Steps per epoch (checkpoint interval): ``requested``, or the largest divisor of ``steps`` up to ``limit``."""
    if requested:
        if steps % requested:
            raise UserError(f"steps ({steps}) must be a multiple of steps_per_epoch ({requested})")
        return requested
    return max(d for d in range(1, min(steps, limit) + 1) if steps % d == 0)


def _plain(value):
    return json.loads(json.dumps(value))


def open_run(output, resume, settings):
    """Checks ``--output`` before any work: returns (absolute path, the previous run.json record when resuming,
    else None). A run is continued only with ``--resume`` and the same settings."""
    from zippy_tf.io import check_output_folder, read_json

    if not output:
        raise UserError("--output is required (the run folder to write)")
    output = check_output_folder(output)
    record_path = os.path.join(output, RUN_FILE)
    if os.path.isfile(record_path):
        if not resume:
            raise UserError(f"{output!r} already holds a run; pass --resume to continue it or pick a new --output")
        previous = read_json(record_path, "run record")
        changed = sorted(key for key, value in _plain(settings).items() if previous["settings"].get(key) != value)
        if changed:
            raise UserError(f"--resume with other settings than the run in {output!r} ({', '.join(changed)} "
                            "differ); repeat the run's own flags or pick a new --output")
        return output, previous
    if os.path.isdir(output) and os.listdir(output):
        raise UserError(f"{output!r} holds files but no {RUN_FILE}; pick a new --output")
    if resume:
        starting_fresh(output)
    return output, None


def write_record(output, record):
    from zippy_tf.io import write_json

    write_json(os.path.join(output, RUN_FILE), _plain(record))


@contextlib.contextmanager
def progress_on_stderr():
    """Keras's progress bars write to stdout, which carries the verb's JSON result: send them to stderr."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _h5_layer_names(path):
    """The layers with weights in a Keras .h5 weights file, in the file's order; None for the ``.weights.h5`` layout,
    which stores no layer names."""
    import h5py

    def names(group, key):
        if key in group.attrs:
            values = list(group.attrs[key])
        else:  # long lists are chunked: key0, key1, ...
            values, chunk = [], 0
            while f"{key}{chunk}" in group.attrs:
                values += list(group.attrs[f"{key}{chunk}"])
                chunk += 1
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    with h5py.File(path, "r") as f:
        if not any(key.startswith("layer_names") for key in f.attrs):
            return None
        return [name for name in names(f, "layer_names") if name in f and names(f[name], "weight_names")]


def load_checked_weights(model, path, what, fix):
    """Loads the .h5 weights file ``path`` into ``model`` after checking that its layer names are the model's
    (Keras's own loader matches layers by position and would load foreign weights without a word)."""
    from zippy_tf.io import check_hdf5, is_hdf5

    if not os.path.isfile(path):
        raise UserError(f"{what} {path!r} does not exist; {fix}")
    if not is_hdf5(path, what):
        raise UserError(f"{what} {path!r} is not an .h5 weights file; {fix}")
    check_hdf5(path, what)  # truncated
    found, expected = _h5_layer_names(path), [layer.name for layer in model.layers if layer.weights]
    if found is not None and found != expected:
        missing = [name for name in expected if name not in found]
        foreign = [name for name in found if name not in expected]
        detail = (f"it has no layer {missing[0]!r}" if missing else f"it has a layer {foreign[0]!r} the network has "
                  "not" if foreign else "its layers are in another order")
        raise UserError(f"{what} {path!r} does not match the network's layer names ({detail}); {fix}")
    try:
        model.load_weights(path)
    except (ValueError, OSError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"{what} {path!r} does not fit the network ({first}); {fix}") from None
    return model


def save_weights(model, path):
    """``model.save_weights`` to ``path`` atomically."""
    from zippy_tf.io import atomic_path

    with atomic_path(path) as tmp:
        model.save_weights(tmp)
    return path


def count_parameters(variables):
    """Parameters, BatchNorm moving statistics excluded (as ``zippy_tf.multitask.parameter_counts``)."""
    return sum(int(v.shape.num_elements()) for v in variables if not v.name.split("/")[-1].startswith("moving_"))


def compl_parameters(trunk, head, target):
    """{"total", "shared", "per_task"} of a CompL deployable network: the trunk shared, the head the task's."""
    trunk, head = count_parameters(trunk.weights), count_parameters(head.weights)
    return {"total": trunk + head, "shared": trunk, "per_task": {target: head}}


def compl_parts(spec):
    """(trunk, target head) of a CompL run's ``compl.json`` spec: DeepLabv3+ trunk and a 1×1 head."""
    from zippy_tf.data.multitask import output_channels
    from zippy_tf.multitask import deeplab_trunk
    from zippy_tf.multitask.compl import supervised_head

    shape = tuple(spec["input_shape"])
    trunk = deeplab_trunk(spec["backbone"], spec["norm"], (*shape, 3), spec["width"])
    head = supervised_head(trunk.output_shape[1:], output_channels(spec["dataset"], spec["target"]), shape,
                           unit=spec["target"] == "normals")
    return trunk, head


def load_run(path):
    """A finished run folder as ``{"kind": "rcm"|"compl", "record": run.json, "dataset", "models": {task: model}}``
    plus ``"network"`` (RCM) or the deployable target network under ``models`` (CompL)."""
    from zippy_tf.io import read_json

    if not path or not os.path.isdir(path):
        raise UserError(f"run folder {path!r} does not exist; pass a folder written by zippy-tf train rcm|compl")
    record = read_json(os.path.join(path, RUN_FILE), "run record") if os.path.isfile(
        os.path.join(path, RUN_FILE)) else {}
    if os.path.isfile(os.path.join(path, RCM_CONFIG)):
        from zippy_tf.multitask import load_network

        network = load_network(path)
        return {"kind": "rcm", "record": record, "dataset": network.config.dataset, "network": network,
                "models": dict(network.models)}
    if os.path.isfile(os.path.join(path, COMPL_FILE)):
        from zippy_tf.multitask.compl import target_model

        spec = read_json(os.path.join(path, COMPL_FILE), "CompL spec")
        head_path = os.path.join(path, "target_head.h5")
        if not os.path.isfile(head_path):
            raise UserError(f"run {path!r} was trained in mode {spec.get('mode')!r}, without a target head; "
                            "fine-tune it first: zippy-tf train compl --mode target --init_from RUN")
        trunk, head = compl_parts(spec)
        fix = "keep the run folder's files together"
        load_checked_weights(trunk, os.path.join(path, "trunk.h5"), "trunk weights", fix)
        load_checked_weights(head, head_path, "target head weights", fix)
        model = target_model(trunk, head, name=spec["target"])
        return {"kind": "compl", "record": record, "dataset": spec["dataset"], "spec": spec,
                "models": {spec["target"]: model}, "trunk": trunk, "head": head}
    raise UserError(f"{path!r} is not a finished run (no {RCM_CONFIG} or {COMPL_FILE}); finish it with "
                    "--resume, or pass a folder written by zippy-tf train rcm|compl")


__all__ = ["CHECKPOINTS", "COMPL_FILE", "ENCODER_FILE", "RCM_CONFIG", "RUN_FILE", "compl_parameters",
           "compl_parts", "count_parameters", "define_training_flags", "epoch_length", "load_checked_weights",
           "load_run", "open_run", "preset_settings", "progress_on_stderr", "save_weights", "write_record"]
