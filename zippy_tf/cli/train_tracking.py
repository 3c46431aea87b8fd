"""`zippy-tf train ettrack|lighttrack|attention`: train a Siamese tracker on template/search pairs from sequences."""

from absl import flags

from zippy_tf.cli.common import define_distribution_flags

HELP = "Train E.T.Track or a baseline tracker on template/search pairs from OTB / LaSOT / GOT-10k-layout sequences."


def define_flags(fv):
    flags.DEFINE_string("data", None, "folder of training sequences", flag_values=fv)
    flags.DEFINE_enum("format", "otb", ["otb", "lasot", "got10k"], "layout of --data", flag_values=fv)
    flags.DEFINE_string("output", None, "run folder: checkpoints/, logs/, weights.h5, history.json", flag_values=fv)
    flags.DEFINE_integer("epochs", 50, "total epochs (a resumed run continues up to this number)", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("steps_per_epoch", 100, "steps per epoch (pairs are sampled endlessly)", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("batch_size", 32, "pairs per step, the global batch over all replicas and workers",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_float("learning_rate", 0.1, "peak SGD learning rate of the reference schedule (warm-up from a "
                       "fifth of it over a tenth of the epochs, then log-decay to 1/500 of it)", lower_bound=0.0,
                       flag_values=fv)
    flags.DEFINE_boolean("resume", False, "continue from the last checkpoint in --output", flag_values=fv)
    flags.DEFINE_string("weights", None, "initial weights (.h5) of the same tracker", flag_values=fv)
    flags.DEFINE_integer("template_size", None, "template crop side; default: the preset's (127)", lower_bound=32,
                         flag_values=fv)
    flags.DEFINE_integer("search_size", None, "search crop side; default: the preset's (256; ettrack-s 224)",
                         lower_bound=32, flag_values=fv)
    flags.DEFINE_integer("seed", 0, "seeds the pair sampling and the initial weights", flag_values=fv)
    flags.DEFINE_float("search_scale", 0.18, "per-axis scale jitter of the search crop, 1 ± U(s) (reference 0.18); "
                       "larger values vary the target's size in the crop more, so the box regression must measure "
                       "it instead of predicting the usual size", lower_bound=0.0, upper_bound=0.9, flag_values=fv)
    flags.DEFINE_float("negative_fraction", 0.0, "fraction of negative pairs (not the reference's; SiamRPN++'s): the "
                       "search crop from another sequence, every cell a negative, so the network must match the "
                       "template instead of scoring any object near the centre", lower_bound=0.0, upper_bound=0.9,
                       flag_values=fv)
    flags.DEFINE_float("distractor_fraction", 0.0, "fraction of distractor pairs (not the reference's; DaSiamRPN's): "
                       "the search crop cut around a look-alike of the target in the same frame, the labels where the "
                       "target is; needs sequences that annotate distractors (the generated ones do)",
                       lower_bound=0.0, upper_bound=0.9, flag_values=fv)
    flags.DEFINE_enum("batch_norm", "batch", ["batch", "frozen"], "BatchNorm while training: 'batch' statistics "
                      "(from scratch), or 'frozen': re-estimate the statistics of --weights on --statistics_steps "
                      "batches, then train with BatchNorm in inference mode, as the deployed tracker runs "
                      "(fine-tuning)",
                      flag_values=fv)
    flags.DEFINE_integer("statistics_steps", 25, "batches to estimate BatchNorm statistics from (--batch_norm frozen); "
                         "0 keeps those in --weights (to continue a frozen fine-tuning)", lower_bound=0,
                         flag_values=fv)
    flags.DEFINE_integer("threads", 0, "CPU threads for TensorFlow and OpenCV (0 = all cores)", lower_bound=0,
                         flag_values=fv)
    define_distribution_flags(fv)


def main(fv, args, name):
    import importlib
    import os

    from zippy_tf._compat import keras
    from zippy_tf.runtime import progress
    from zippy_tf.errors import UserError
    from zippy_tf.cli.common import resume_checkpoints, start_distribution
    from zippy_tf.distribute import shard_by_data, worker_folder
    from zippy_tf.io import check_output_folder, write_json
    from zippy_tf.presets import get_preset
    from zippy_tf.tracking.datasets import load_sequences
    from zippy_tf.tracking.pairs import pair_dataset
    from zippy_tf.tracking.training import (
        TrackerTrainer, estimate_batch_norm_statistics, fit_tracker, freeze_batch_norm, reference_learning_rate,
    )

    if args:
        raise UserError(f"unexpected arguments {args}; pass options as --flags")
    if fv.threads:
        from zippy_tf.runtime import set_threads

        set_threads(fv.threads)
    for flag in ("data", "output"):
        if fv[flag].value is None:
            raise UserError(f"--{flag} is required (see `zippy-tf train {name} --help`)")
    output = check_output_folder(fv.output)
    if fv.weights is not None and not os.path.isfile(fv.weights):
        raise UserError(f"weights file {fv.weights!r} does not exist; check --weights")
    strategy = start_distribution(fv, fv.batch_size)
    with worker_folder(strategy, output) as folder, strategy.scope():
        resume = resume_checkpoints(folder, fv.resume)
        if fv.batch_norm == "frozen" and fv.weights is None and not resume:
            raise UserError("--batch_norm frozen fine-tunes trained weights; pass --weights (or train with "
                            "--batch_norm batch first)")
        preset = get_preset(name)
        # the preset's network (ettrack-s: its FFN width and search size), crop sides as flagged
        sizes = {"template_size": fv.template_size or preset.kwargs.get("template_size", 127),
                 "search_size": fv.search_size or preset.kwargs.get("search_size", 256)}
        sequences = load_sequences(fv.data, fv.format)
        dataset = shard_by_data(pair_dataset(sequences, **sizes,
                                             search_scale=fv.search_scale, negative_fraction=fv.negative_fraction,
                                             distractor_fraction=fv.distractor_fraction, batch_size=fv.batch_size,
                                             seed=fv.seed))
        keras.utils.set_random_seed(fv.seed)
        module, function = preset.builder.split(":")
        network = getattr(importlib.import_module(module), function)(
            **{**preset.kwargs, **sizes}, weights=fv.weights)
        if fv.batch_norm == "frozen":
            # a resumed run restores its statistics from the checkpoint
            if not resume and fv.statistics_steps > 0:
                progress(f"estimating BatchNorm statistics on {fv.statistics_steps} batches")
                estimate_batch_norm_statistics(network, dataset, steps=fv.statistics_steps)
            freeze_batch_norm(network)
        trainer = TrackerTrainer(network)
        trainer.compile(keras.optimizers.SGD(fv.learning_rate, momentum=0.9, weight_decay=1e-4))
        os.makedirs(folder, exist_ok=True)
        progress(f"training {name} on {len(sequences)} {fv.format} sequences from {fv.data}, global batch "
                 f"{fv.batch_size} over {strategy.num_replicas_in_sync} replica(s), into {output}")
        run = fit_tracker(trainer, dataset, output=folder, epochs=fv.epochs, steps_per_epoch=fv.steps_per_epoch,
                          resume=resume,
                          learning_rate=lambda e: reference_learning_rate(e, epochs=fv.epochs, peak=fv.learning_rate))
        history = run["history"]
        write_json(os.path.join(folder, "history.json"), history)
    return {
        "model": name,
        "epochs_done": run["epochs_done"],
        "final": {key: values[-1] for key, values in history.items() if values and key != "lr"},
        "weights": os.path.join(output, "weights.h5"),
        "checkpoint": run["checkpoint"] and os.path.join(output, os.path.relpath(run["checkpoint"], folder)),
        "history": os.path.join(output, "history.json"),
    }


__all__ = ["HELP", "define_flags", "main"]
