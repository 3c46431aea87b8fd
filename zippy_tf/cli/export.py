"""`zippy-tf export`: a model to a fp32 / int8 / LCE flatbuffer."""

from absl import flags

from zippy_tf.cli.common import build_from_flags, define_model_flags
from zippy_tf.runtime import progress

HELP = ("Convert a model to a fp32 / int8 TFLite or LCE flatbuffer and print its op census (trackers: two "
        "flatbuffers, <output>_template.tflite and <output>_search.tflite).")


def define_flags(fv):
    define_model_flags(fv)
    flags.DEFINE_enum("format", "lce", ["fp32", "int8", "lce"], "flatbuffer format", flag_values=fv)
    flags.DEFINE_string("output", None, "output .tflite path (its folder must exist)", flag_values=fv)


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
