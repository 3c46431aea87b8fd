"""`zippy-tf export`: a model to a fp32 / int8 / LCE flatbuffer; a multi-task run's task network to TFLite."""

from absl import flags

from zippy_tf.cli.common import build_from_flags, define_model_flags
from zippy_tf.runtime import progress

HELP = ("Convert a model to a fp32 / int8 TFLite or LCE flatbuffer and print its op census (trackers: two "
        "flatbuffers, <output>_template.tflite and <output>_search.tflite; RCM / CompL: one task of a trained "
        "--run, folded to plain convolutions).")


def define_flags(fv):
    define_model_flags(fv)
    flags.DEFINE_enum("format", "lce", ["fp32", "int8", "lce"], "flatbuffer format", flag_values=fv)
    flags.DEFINE_string("output", None, "output .tflite path (its folder must exist)", flag_values=fv)
    flags.DEFINE_string("run", None, "RCM / CompL: the run folder written by zippy-tf train rcm|compl",
                        flag_values=fv)
    flags.DEFINE_string("task", None, "RCM: the task to export (CompL: its target)", flag_values=fv)
    flags.DEFINE_boolean("fold", None, "RCM: fold each task path into plain Conv2D (+ BatchNorm) before converting "
                         "(default: for reparameterized variants)", flag_values=fv)
    flags.DEFINE_string("data", None, "RCM / CompL int8: calibrate on this data folder's val images (default: "
                        "bundled photos)", flag_values=fv)


def _calibration_images(root, dataset, shape, count=8):
    """(count, H, W, 3) images normalised as the multi-task networks see them."""
    from zippy_tf.data.multitask_pipeline import multitask_dataset, normalize_image

    if root is None:
        from zippy_tf.data.photos import calibration_images

        return normalize_image(calibration_images(shape[0], shape[1], count)[..., ::-1]).numpy()
    data = multitask_dataset(root, dataset, "val", ("semseg",) if dataset else (), crop_size=shape, batch_size=count)
    return next(iter(data))[0].numpy()


def _export_run(fv):
    """One task network of a trained RCM / CompL run, folded when it was reparameterized."""
    from zippy_tf.cli.multitask_runs import load_run
    from zippy_tf.errors import UserError
    from zippy_tf.export import convert, op_census
    from zippy_tf.io import atomic_write
    from zippy_tf.presets import get_preset

    if fv.run is None:
        raise UserError(f"model {fv.model!r} is exported from a trained run: pass --run RUN (written by zippy-tf "
                        f"train {get_preset(fv.model).method})")
    loaded = load_run(fv.run)
    if fv.model is not None and get_preset(fv.model).method != loaded["kind"]:
        raise UserError(f"--run {fv.run!r} is a {loaded['kind']} run, not {fv.model}; pass --model {loaded['kind']}")
    tasks = list(loaded["models"])
    task = fv.task or (tasks[0] if len(tasks) == 1 else None)
    if task not in loaded["models"]:
        raise UserError(f"--task {task!r} is not in run {fv.run!r}; pass one of: {', '.join(tasks)}")
    model = loaded["models"][task]
    fold = False
    if loaded["kind"] == "rcm":
        from zippy_tf.multitask import VARIANTS, fold_model

        variant = loaded["network"].config.variant
        reparameterized = VARIANTS[variant].conv in ("rc", "series_ra", "parallel_ra")
        fold = reparameterized if fv.fold is None else fv.fold
        if fold and not reparameterized:
            raise UserError(f"run {fv.run!r} is a {variant} network, never reparameterized, so there is nothing to "
                            "fold; export it without --fold (its task network is already plain convolutions)")
        model = fold_model(model) if fold else model
    elif fv.fold:
        raise UserError("a CompL run's deployable network has no reparameterized convolutions; export it without "
                        "--fold")
    representative = None
    if fv.format == "int8":
        representative = _calibration_images(fv.data, loaded["dataset"], tuple(model.inputs[0].shape[1:3]))
    progress(f"converting task {task} of {fv.run}{' (folded)' if fold else ''} to {fv.format} ...")
    try:
        data = convert(model, fv.format, representative_data=representative)
    except RuntimeError as e:  # TFLite's int8 calibrator cannot run GroupNorm's dynamic broadcasts
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"TFLite could not convert task {task} to {fv.format} ({first}); export --format fp32, or "
                        "train the run with --norm batch for int8") from None
    atomic_write(fv.output, data)
    return {"path": fv.output, "format": fv.format, "run": fv.run, "kind": loaded["kind"], "task": task,
            "folded": fold, "size_bytes": len(data), "ops": op_census(data)["ops"]}


def main(fv, args, name):
    from zippy_tf.errors import UserError
    from zippy_tf.export import convert, op_census
    from zippy_tf.io import atomic_write, check_output_path
    from zippy_tf.presets import get_preset

    if args:
        raise UserError(f"unexpected arguments {args}; pass options as --flags")
    if not fv.output:
        raise UserError("--output is required (the .tflite file to write)")
    check_output_path(fv.output)
    if fv.run is not None or (fv.model is not None and get_preset(fv.model).task == "multitask"):
        return _export_run(fv)
    model = build_from_flags(fv)
    if get_preset(fv.model).task == "tracking":
        from zippy_tf.tracking.export import export_tracker

        progress(f"converting {fv.model} (template and search branches) to {fv.format} ...")
        return {"model": fv.model, **export_tracker(model, fv.format, fv.output)}
    progress(f"converting {fv.model} to {fv.format} ...")
    data = convert(model, fv.format)
    atomic_write(fv.output, data)
    return {"path": fv.output, "format": fv.format, "model": fv.model, "size_bytes": len(data),
            "ops": op_census(data)["ops"]}


__all__ = ["HELP", "define_flags", "main"]
