"""`zippy-tf train zippypoint|zippypoint-int8|kp2d`: self-supervised KP2D training on a folder of images."""

from absl import flags

from zippy_tf.cli.common import define_distribution_flags

HELP = "Train ZippyPoint or KP2D self-supervised on image pairs from a folder of JPEG/PNG images."


def define_flags(fv):
    flags.DEFINE_string("data", None, "folder of .jpg/.png training images (the COCO layout)", flag_values=fv)
    flags.DEFINE_string("output", None, "run folder: checkpoints/, logs/, weights.h5, history.json", flag_values=fv)
    flags.DEFINE_integer("epochs", None, "total epochs (a resumed run continues up to this number)", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("batch_size", 8, "pairs per step, the global batch over all replicas and workers",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("steps_per_epoch", None, "steps per epoch (default: one pass over the images)",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_string("resolution", "320x240", "training WIDTHxHEIGHT, multiples of 8", flag_values=fv)
    flags.DEFINE_boolean("resume", False, "continue from the last checkpoint in --output", flag_values=fv)
    flags.DEFINE_string("config", None, "JSON list of macro-blocks (zippypoint family only)", flag_values=fv)
    flags.DEFINE_string("weights", None, "initial weights (.h5) of the same architecture", flag_values=fv)
    flags.DEFINE_string("init_from", None, "weights (.h5) of another config of the same family: every layer whose "
                        "name and shape match starts from them (e.g. binarise a trained all-Int8 network)",
                        flag_values=fv)
    flags.DEFINE_float("learning_rate", 1e-3, "initial Adam learning rate, halved every 10 epochs", lower_bound=0.0,
                       flag_values=fv)
    flags.DEFINE_integer("seed", 0, "seeds the data order, augmentation and initial weights", flag_values=fv)
    flags.DEFINE_boolean("io_net", True, "train with the IO-Net outlier loss (dropped from the saved weights)",
                         flag_values=fv)
    flags.DEFINE_enum("negatives", "hardest", ["hardest", "semi_hard"], "negative of the descriptor triplet loss: "
                      "hardest (KP2D) or semi_hard (the closest one farther than the positive; keeps the descriptors "
                      "from collapsing, learns faster in short runs)", flag_values=fv)
    flags.DEFINE_float("teacher_weight", 0.0, "weight of a Shi-Tomasi corner teacher for the score and location heads "
                       "(not KP2D's; see zippy_tf.keypoints.teacher): 0 = off", lower_bound=0.0, flag_values=fv)
    define_distribution_flags(fv)


def main(fv, args, name):
    import os

    from zippy_tf._compat import keras
    from zippy_tf.runtime import parse_resolution, progress
    from zippy_tf.data.image_folder import pair_dataset
    from zippy_tf.errors import UserError
    from zippy_tf.cli.common import resume_checkpoints, start_distribution, synchronized_batch_norm
    from zippy_tf.distribute import shard_by_data, worker_folder
    from zippy_tf.io import check_output_folder, write_json
    from zippy_tf.keypoints.model import load_matching_layers
    from zippy_tf.keypoints.training import KeypointTrainer, fit_keypoints
    from zippy_tf.presets import build_model

    if args:
        raise UserError(f"unexpected arguments {args}; pass options as --flags")
    for flag in ("data", "output", "epochs"):
        if fv[flag].value is None:
            raise UserError(f"--{flag} is required (see `zippy-tf train {name} --help`)")
    if fv.init_from is not None and fv.weights is not None:
        raise UserError("pass --weights (same architecture) or --init_from (matching layers), not both")
    if fv.mixed_precision and name != "kp2d":
        raise UserError(f"--mixed_precision does not fit {name}: its int8 fake quantisation computes in float32 only; "
                        "drop --mixed_precision (or train kp2d)")
    height, width = parse_resolution(fv.resolution, multiple_of=8)  # the networks work on 8x8 cells
    output = check_output_folder(fv.output)
    strategy = start_distribution(fv, fv.batch_size)
    with worker_folder(strategy, output) as folder, strategy.scope():
        dataset = pair_dataset(fv.data, height=height, width=width, batch_size=fv.batch_size, seed=fv.seed)
        dataset = shard_by_data(dataset.repeat() if fv.steps_per_epoch is not None else dataset)
        keras.utils.set_random_seed(fv.seed)
        network = build_model(name, config=fv.config, weights=fv.weights, input_shape=(height, width, 3),
                              use_shipped_weights=False)
        if fv.init_from is not None:
            load_matching_layers(network, fv.init_from)
        trainer = KeypointTrainer(network, binary_descriptors=name != "kp2d", with_io=fv.io_net,
                                  negatives=fv.negatives, teacher_weight=fv.teacher_weight,
                                  sync_batch_norm=synchronized_batch_norm(fv, strategy))
        trainer.compile(optimizer=keras.optimizers.Adam(fv.learning_rate))
        resume = resume_checkpoints(folder, fv.resume)
        os.makedirs(folder, exist_ok=True)
        progress(f"training {name} on {fv.data} at {width}x{height}, global batch {fv.batch_size} over "
                 f"{strategy.num_replicas_in_sync} replica(s), into {output}")
        run = fit_keypoints(trainer, dataset, output=folder, epochs=fv.epochs, steps_per_epoch=fv.steps_per_epoch,
                            resume=resume, learning_rate=fv.learning_rate)
        history, pairs, seconds = run["history"], run["steps"] * fv.batch_size, run["seconds"]
        trainer.save_deployable(os.path.join(folder, "weights.h5"))
        write_json(os.path.join(folder, "history.json"), history)
    return {
        "model": name,
        "epochs": len(history.get("loss", [])),
        "final": {key: values[-1] for key, values in history.items() if values and key != "lr"},
        "seconds": round(seconds, 2),
        "pairs_per_second": round(pairs / seconds, 3) if pairs else 0.0,
        "weights": os.path.join(output, "weights.h5"),
        "history": os.path.join(output, "history.json"),
    }


__all__ = ["HELP", "define_flags", "main"]
