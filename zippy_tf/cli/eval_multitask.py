"""`zippy-tf eval multitask`: score a trained RCM or CompL run on a split of a NYUD-MT / PASCAL-MT folder.

Every task of the run is predicted one task per forward pass (CompL: the deployable target network), cropped back
to each image's size and scored with :mod:`zippy_tf.multitask.metrics` over the whole split. With ``--baseline``
(runs or JSON files written by this verb, e.g. the single-task run) Δm (thesis Eq. 2.5) is reported over the tasks
both have.
"""

from absl import flags

from zippy_tf.errors import UserError

HELP = ("Evaluate an RCM or CompL run on a NYUD-MT / PASCAL-MT split: every metric per task, Δm against "
        "--baseline runs, parameter counts; writes --output JSON.")


def define_flags(fv):
    flags.DEFINE_string("run", None, "run folder written by zippy-tf train rcm|compl", flag_values=fv)
    flags.DEFINE_string("data", None, "data folder in the NYUD-MT or PASCAL-MT layout", flag_values=fv)
    flags.DEFINE_string("dataset", None, "nyud or pascal (default: the run's)", flag_values=fv)
    flags.DEFINE_enum("split", "val", ["train", "val"], "split to score", flag_values=fv)
    flags.DEFINE_multi_string("baseline", [], "single-task baseline for Δm: a run folder or a JSON file written by "
                              "this verb (repeat for several)", flag_values=fv)
    flags.DEFINE_string("output", None, "JSON file to write", flag_values=fv)
    flags.DEFINE_integer("batch_size", 4, "images per forward pass", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("threads", 0, "CPU threads for TensorFlow and OpenCV (0 = all cores)", lower_bound=0,
                         flag_values=fv)


def postprocess(task, output):
    """Network output → what the meters score: class ids, probabilities, or the values themselves."""
    import numpy as np

    if task in ("semseg", "human_parts"):
        return np.argmax(output, axis=-1)
    if task in ("edge", "sal"):
        return 1.0 / (1.0 + np.exp(-output[..., 0]))
    return output[..., 0] if task == "depth" else output


def evaluate_models(models, root, dataset, split, batch_size=4):
    """({task: metric dict}, image count) of task models (image → prediction) on a split."""
    from zippy_tf.data.multitask_pipeline import multitask_dataset
    from zippy_tf.multitask.metrics import make_meter

    tasks = list(models)
    shape = tuple(next(iter(models.values())).inputs[0].shape[1:3])
    meters = {task: make_meter(dataset, task) for task in tasks}
    data = multitask_dataset(root, dataset, split, tasks, crop_size=shape, batch_size=batch_size, with_info=True)
    count = 0
    for images, labels, info in data:
        sizes = [(min(h, shape[0]), min(w, shape[1])) for h, w in info["size"].numpy()]
        count += len(sizes)
        for task, model in models.items():
            predictions = postprocess(task, model(images, training=False).numpy())
            truth = labels[task].numpy()
            truth = truth[..., 0] if truth.ndim == 4 and truth.shape[-1] == 1 else truth
            for i, (height, width) in enumerate(sizes):
                meters[task].update(predictions[i, :height, :width], truth[i, :height, :width])
    return {task: meter.result() for task, meter in meters.items()}, count


def run_parameters(loaded):
    """{"total", "shared", "per_task"} of a loaded run; CompL: the deployable network, its trunk shared."""
    if loaded["kind"] == "rcm":
        from zippy_tf.multitask import parameter_counts

        return parameter_counts(loaded["network"])
    from zippy_tf.cli.multitask_runs import compl_parameters

    return compl_parameters(loaded["trunk"], loaded["head"], loaded["spec"]["target"])


def _baseline_results(path, root, dataset, split, batch_size):
    import os

    from zippy_tf.cli.multitask_runs import load_run
    from zippy_tf.io import read_json

    if os.path.isdir(path):
        loaded = load_run(path)
        return evaluate_models(loaded["models"], root, dataset, split, batch_size)[0]
    results = read_json(path, "--baseline")
    if not isinstance(results, dict) or not isinstance(results.get("tasks"), dict):
        raise UserError(f"--baseline {path!r} has no \"tasks\" results; pass a JSON file written by zippy-tf eval "
                        "multitask, or a run folder")
    return results["tasks"]


def main(fv, args, name):
    import os

    from zippy_tf.cli.multitask_runs import load_run
    from zippy_tf.data.multitask import split_ids
    from zippy_tf.io import check_output_path, write_json
    from zippy_tf.runtime import progress, set_threads

    if args:
        raise UserError(f"unexpected arguments {args}; pass options as --flags")
    if fv.threads:
        set_threads(fv.threads)
    for flag in ("run", "data", "output"):
        if not fv[flag].value:
            raise UserError(f"--{flag} is required (see `zippy-tf eval multitask --help`)")
    output = os.path.abspath(fv.output)
    if os.path.isdir(output):
        raise UserError(f"--output {output!r} is a folder; pass the JSON file to write")
    check_output_path(output)
    for path in fv.baseline:
        if not os.path.exists(path):
            raise UserError(f"--baseline {path!r} does not exist; pass a run folder or an eval multitask JSON")
    loaded = load_run(fv.run)
    dataset = fv.dataset or loaded["dataset"]
    if dataset != loaded["dataset"]:
        raise UserError(f"run {fv.run!r} was trained on {loaded['dataset']}, not {dataset}; drop --dataset or "
                        "pass the run's data set")
    root = os.path.abspath(fv.data)
    split_ids(root, dataset, fv.split)
    progress(f"evaluating {', '.join(loaded['models'])} of {fv.run} on {dataset} {fv.split}")
    results, count = evaluate_models(loaded["models"], root, dataset, fv.split, fv.batch_size)
    report = {"run": os.path.abspath(fv.run), "kind": loaded["kind"], "dataset": dataset, "split": fv.split,
              "data": root, "images": count, "tasks": results, "params": run_parameters(loaded)}
    if loaded["kind"] == "rcm":
        report["variant"] = loaded["network"].config.variant
    else:
        report.update({key: loaded["spec"][key] for key in ("ssl", "mode")})
        report["label_fraction"] = loaded["record"].get("settings", {}).get("label_fraction")
    if fv.baseline:
        from zippy_tf.multitask.metrics import delta_m

        baselines = {}
        for path in fv.baseline:
            progress(f"baseline {path}")
            baselines.update(_baseline_results(path, root, dataset, fv.split, fv.batch_size))
        common = [task for task in results if task in baselines]
        if not common:
            raise UserError(f"the baselines have none of the run's tasks ({', '.join(results)}); pass a baseline "
                            "run of the same tasks")
        report.update(delta_m=delta_m(results, baselines, common), delta_m_tasks=common,
                      baselines=[os.path.abspath(path) for path in fv.baseline])
    write_json(output, report)
    return {**report, "output": output}


__all__ = ["HELP", "define_flags", "evaluate_models", "main", "postprocess", "run_parameters"]
