"""``zippy-tf eval track``: one-pass evaluation (success AUC, precision at 20 px, FPS) of a tracker on a data set.

The FPS counts each frame's reading from disk, the crop, the network and the decoding (everything after the
tracker is built and the first frame initialised). A neural tracker runs its exported flatbuffers by default
(int8 or fp32, whichever is faster on a CPU: ``DEFAULT_RUNTIMES``), exported once per weights and cached.
"""

import os

HELP = "one-pass evaluation of a tracker on OTB / LaSOT / GOT-10k-layout sequences (success AUC, precision, FPS)"


def define_flags(fv):
    from absl import flags

    from zippy_tf.tracking.datasets import FORMATS
    from zippy_tf.tracking.evaluate import TRACKERS
    from zippy_tf.tracking.hyperparameters import DEFAULT_RUNTIMES, RUNTIMES

    flags.DEFINE_string("data", None, "folder of sequences", flag_values=fv)
    flags.DEFINE_enum("format", "otb", FORMATS, "layout of --data", flag_values=fv)
    flags.DEFINE_enum("tracker", None, TRACKERS, "tracker to evaluate", flag_values=fv)
    flags.DEFINE_string("weights", None, "weights (.h5) of a neural tracker; default: the shipped ones in models/",
                        flag_values=fv)
    flags.DEFINE_string("hyperparameters", None, "tracker.json of tuned tracker hyper-parameters (`zippy-tf tune`); "
                        "default: the shipped weights' own for --runtime, else the reference's", flag_values=fv)
    defaults = ", ".join(f"{name} {runtime}" for name, runtime in DEFAULT_RUNTIMES.items())
    flags.DEFINE_enum("runtime", None, RUNTIMES, "how a neural tracker's network runs: exported to int8 or fp32 TFLite "
                      "flatbuffers (the deployed path; exported once per weights, cached in $ZIPPY_TF_CACHE or "
                      f"~/.cache/zippy_tf), or the Keras model (for debugging); default: the faster ({defaults})",
                      flag_values=fv)
    flags.DEFINE_string("output", None, "also write the JSON result to this file", flag_values=fv)
    flags.DEFINE_string("plots", None, "folder for success.png and precision.png", flag_values=fv)
    flags.DEFINE_integer("threads", 1, "CPU threads for the tracker (1 = the benchmark setting)", flag_values=fv)
    flags.DEFINE_integer("max_sequences", None, "evaluate only the first N sequences (N >= 1)", lower_bound=1,
                         flag_values=fv)


def main(fv, args, name):
    from zippy_tf.errors import UserError
    from zippy_tf.io import check_output_path, write_json
    from zippy_tf.runtime import progress, set_threads
    from zippy_tf.tracking.datasets import load_sequences
    from zippy_tf.tracking.evaluate import NEURAL_TRACKERS, evaluate, plot_curves, tracker_factory
    from zippy_tf.tracking.hyperparameters import default_runtime, read_hyperparameters

    if args:
        raise UserError(f"unexpected arguments {' '.join(args)}; all options are --flags")
    if not fv.data or not fv.tracker:
        raise UserError("--data and --tracker are required (see `zippy-tf eval track --help`)")
    if fv.threads < 1:
        raise UserError(f"--threads {fv.threads} must be at least 1")
    # Fail before any work when an output cannot be written.
    if fv.output:
        check_output_path(fv.output)
    if fv.plots and not os.path.isdir(fv.plots):
        raise UserError(f"--plots folder {fv.plots!r} does not exist; create it first")
    neural = fv.tracker in NEURAL_TRACKERS
    runtime = (fv.runtime or default_runtime(fv.tracker)) if neural else fv.runtime
    hyperparameters = read_hyperparameters(fv.hyperparameters, runtime) if fv.hyperparameters else None
    sequences = load_sequences(fv.data, fv.format)[: fv.max_sequences]
    set_threads(fv.threads)
    make_tracker = tracker_factory(fv.tracker, fv.weights, hyperparameters, runtime, num_threads=fv.threads)
    scores, curves = evaluate(sequences, make_tracker, progress=progress, time_reading=True)
    result = {"tracker": fv.tracker, "runtime": runtime if neural else "opencv", **scores,
              "fps_counts": "reading each frame, crop, network and decoding"}
    if fv.plots:
        result["plots"] = plot_curves({fv.tracker: {**scores, **curves}}, fv.plots)
    if fv.output:
        write_json(fv.output, result)
    return result


__all__ = ["HELP", "define_flags", "main"]
