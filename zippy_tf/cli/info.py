"""`zippy-tf info`: the model names, or one model's parameters, MACs per precision and analytic cost."""

from absl import flags

from zippy_tf.cli.common import build_from_flags, define_model_flags

HELP = "List the models (--list), or report a model's parameters, MACs per precision and BOP-weighted cost."


def define_flags(fv):
    define_model_flags(fv)
    flags.DEFINE_bool("list", False, "list the model names", flag_values=fv)
    flags.DEFINE_enum("format", "lce", ["fp32", "int8", "lce"], "deployment format the cost assumes",
                      flag_values=fv)


def main(fv, args, name):
    from zippy_tf.presets import PRESETS
    from zippy_tf.quantization.cost import analytic_cost

    if fv.list:
        return {"models": {n: p.description for n, p in PRESETS.items()}}
    if fv.model in PRESETS and PRESETS[fv.model].task == "tracking":
        from zippy_tf.tracking.model import complexity

        return {"model": fv.model, **complexity(build_from_flags(fv))}
    return {"model": fv.model, "resolution": fv.resolution, **analytic_cost(build_from_flags(fv), fv.format)}


__all__ = ["HELP", "define_flags", "main"]
