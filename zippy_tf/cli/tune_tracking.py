"""`zippy-tf tune ettrack|ettrack-s|lighttrack|attention`: tune the online tracker's hyper-parameters on validation
sequences."""

HELP = ("Tune a tracker's penalty_k, window_influence and size lr for its weights by OPE success AUC on validation "
        "sequences (random search, resumable); writes tracker.json")
# tune() and confirm() arguments whose flag has another name (see zippy_tf.cli.main.to_flags)
ARGUMENT_FLAGS = {"top": "confirm_top"}


def define_flags(fv):
    from absl import flags

    from zippy_tf.tracking.datasets import FORMATS
    from zippy_tf.tracking.hyperparameters import RUNTIMES

    flags.DEFINE_string("data", None, "folder of validation sequences (not the ones you report on)", flag_values=fv)
    flags.DEFINE_enum("format", "otb", FORMATS, "layout of --data", flag_values=fv)
    flags.DEFINE_string("weights", None, "weights (.h5) to tune for; default: the shipped ones in models/",
                        flag_values=fv)
    flags.DEFINE_enum("runtime", None, RUNTIMES, "run the network as exported int8 or fp32 TFLite flatbuffers (the "
                      "deployed path, and faster; exported once per weights and cached) or as the Keras model; "
                      "default: the tracker's default runtime (zippy_tf.tracking.hyperparameters.DEFAULT_RUNTIMES)",
                      flag_values=fv)
    flags.DEFINE_integer("trials", 30, "settings to evaluate; trial 0 is the reference's (the baseline)",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("seed", 0, "seed of the sampled settings", flag_values=fv)
    flags.DEFINE_string("output", None, "folder (created if missing) for trials.jsonl (the resumable log) and "
                        "tracker.json (the best)", flag_values=fv)
    flags.DEFINE_string("add_to", None, "also record the best settings in this tracker.json (e.g. the shipped "
                        "models/ettrack/tracker.json) as its settings for --runtime", flag_values=fv)
    flags.DEFINE_integer("threads", 1, "CPU threads for the tracker", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("max_sequences", None, "use only the first N sequences", lower_bound=1, flag_values=fv)
    flags.DEFINE_string("confirm_data", None, "optional second validation split (same --format, sequences the search "
                        "did not see, best more of them): the --confirm_top best settings and the baseline are "
                        "scored again on it, and the best there is written; guards against picking one split's luck",
                        flag_values=fv)
    flags.DEFINE_integer("confirm_top", 5, "how many of the search's best settings --confirm_data re-scores",
                         lower_bound=1, flag_values=fv)


def _fingerprint(path):
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def main(fv, args, name):
    import os

    from zippy_tf.runtime import progress, set_threads
    from zippy_tf.errors import UserError
    from zippy_tf.presets import get_preset
    from zippy_tf.tracking.datasets import load_sequences
    from zippy_tf.tracking.evaluate import runtime_network
    from zippy_tf.tracking.tracker import Tracker
    from zippy_tf.tracking.hyperparameters import (
        FILE_NAME, add_runtime_settings, read_tuning_result, write_hyperparameters,
    )
    from zippy_tf.tracking.tuning import DEFAULTS, confirm, tune

    if args:
        raise UserError(f"unexpected arguments {' '.join(args)}; all options are --flags")
    for flag in ("data", "output"):
        if fv[flag].value is None:
            raise UserError(f"--{flag} is required (see `zippy-tf tune {name} --help`)")
    if os.path.exists(fv.output) and not os.path.isdir(fv.output):
        raise UserError(f"--output {fv.output!r} is a file; name a folder (it is created if missing)")
    if fv.add_to:
        if os.path.abspath(fv.add_to) == os.path.abspath(os.path.join(fv.output, FILE_NAME)):
            raise UserError(f"--add_to {fv.add_to!r} is this run's own result; name another tracker.json")
        read_tuning_result(fv.add_to)  # a bad target fails now, not after the search
    sequences = load_sequences(fv.data, fv.format)[: fv.max_sequences]
    confirm_sequences = load_sequences(fv.confirm_data, fv.format) if fv.confirm_data else None
    set_threads(fv.threads)
    # checks --weights and that shipped weights exist; exports (or reads the cached export) for a TFLite runtime
    network, runtime = runtime_network(name, fv.weights, fv.runtime, num_threads=fv.threads)
    weights = fv.weights or get_preset(name).shipped_weights
    # the data paths as the user gave them: tracker.json files get shipped, machine paths must not
    setup = {"tracker": name, "weights_sha256": _fingerprint(weights), "runtime": runtime,
             "data": fv.data, "format": fv.format, "sequences": len(sequences)}
    os.makedirs(fv.output, exist_ok=True)  # a run folder, like `zippy-tf train`'s; created once the inputs check out

    def make_tracker(**hyperparameters):
        return Tracker.for_network(network, **hyperparameters)

    search = result = tune(sequences, make_tracker, trials=fv.trials, seed=fv.seed,
                           log_path=os.path.join(fv.output, "trials.jsonl"), setup=setup, progress=progress)
    confirmation, confirm_log = {}, os.path.join(fv.output, "confirm.jsonl")
    if confirm_sequences is not None:
        confirmation = {"confirmed_on": {**setup, "data": fv.confirm_data, "sequences": len(confirm_sequences)},
                        "confirm_top": fv.confirm_top}
        result = confirm(search, confirm_sequences, make_tracker, top=fv.confirm_top,
                         log_path=confirm_log, setup=confirmation["confirmed_on"], progress=progress)
    # the scores of the split the choice was made on: the confirmation split's if there is one
    best, baseline = result["best"], result["baseline"]
    path = os.path.join(fv.output, FILE_NAME)
    write_hyperparameters(
        path, best["hyperparameters"], success_auc=best["success_auc"], precision_20=best["precision_20"],
        baseline={"hyperparameters": DEFAULTS, "success_auc": baseline["success_auc"],
                  "precision_20": baseline["precision_20"]},
        trials=len(search["trials"]), seed=fv.seed, tuned_on=setup, **confirmation,
    )
    if fv.add_to:
        add_runtime_settings(fv.add_to, path)
    return {"tracker": name, "best": best["hyperparameters"], "success_auc": best["success_auc"],
            "precision_20": best["precision_20"], "baseline_success_auc": baseline["success_auc"],
            "baseline_precision_20": baseline["precision_20"], "trials": len(search["trials"]),
            "hyperparameters_file": path, "log": os.path.join(fv.output, "trials.jsonl"),
            **({"confirmed_on": confirmation["confirmed_on"]["data"], "confirm_log": confirm_log,
                "search_best": search["best"]["hyperparameters"]} if confirmation else {}),
            **({"added_to": fv.add_to} if fv.add_to else {})}


__all__ = ["ARGUMENT_FLAGS", "HELP", "define_flags", "main"]
