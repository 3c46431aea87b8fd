"""`zippy-tf info`: the model names, or one model's parameters, MACs per precision and analytic cost."""

from absl import flags

from zippy_tf.cli.common import build_from_flags, define_model_flags

HELP = ("List the models (--list), or report a model's parameters, MACs per precision and BOP-weighted cost "
        "(RCM: parameters per number of tasks 1..P; CompL: the deployable network's).")


def define_flags(fv):
    define_model_flags(fv)
    flags.DEFINE_bool("list", False, "list the model names", flag_values=fv)
    flags.DEFINE_enum("format", "lce", ["fp32", "int8", "lce"], "deployment format the cost assumes",
                      flag_values=fv)
    flags.DEFINE_string("tasks", None, "RCM: comma-separated tasks, in the order they are added (default: the "
                        "preset's)", flag_values=fv)
    flags.DEFINE_string("variant", None, "RCM: the variant to count (default: the preset's, rcm)", flag_values=fv)


def multitask_parameters(preset, tasks=None, variant=None):
    """Parameter counts of a multi-task preset. RCM: shared, per task and the total for the first k tasks,
    k = 1..P (each task adds its own parameters only); CompL: the deployable network's."""
    settings = dict(preset.kwargs)
    if preset.method == "compl":
        from zippy_tf.cli.multitask_runs import compl_parameters, compl_parts

        return compl_parameters(*compl_parts(settings), settings["target"])
    from zippy_tf.multitask import MultiTaskConfig, build_multitask, parameter_counts

    if tasks:
        settings["tasks"] = tuple(task.strip() for task in tasks.split(",") if task.strip())
    if variant:
        settings["variant"] = variant
    network = build_multitask(MultiTaskConfig(**settings))
    counts = parameter_counts(network)
    order = list(network.tasks)
    counts["per_number_of_tasks"] = [
        {"tasks": k, "added": order[k - 1], "total": counts["shared"] + sum(counts["per_task"][t] for t in order[:k])}
        for k in range(1, len(order) + 1)]
    counts["variant"] = network.config.variant
    return counts


def main(fv, args, name):
    from zippy_tf.presets import PRESETS
    from zippy_tf.quantization.cost import analytic_cost

    if fv.list:
        return {"models": {n: p.description for n, p in PRESETS.items()}}
    if fv.model in PRESETS and PRESETS[fv.model].task == "multitask":
        return {"model": fv.model, **multitask_parameters(PRESETS[fv.model], fv.tasks, fv.variant)}
    if fv.model in PRESETS and PRESETS[fv.model].task == "tracking":
        from zippy_tf.tracking.model import complexity

        return {"model": fv.model, **complexity(build_from_flags(fv))}
    return {"model": fv.model, "resolution": fv.resolution, **analytic_cost(build_from_flags(fv), fv.format)}


__all__ = ["HELP", "define_flags", "main"]
