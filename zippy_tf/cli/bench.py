"""`zippy-tf bench MODEL.tflite --baseline BASE.tflite`: latency against a baseline, in one run."""

from absl import flags

HELP = "Time an exported flatbuffer against a baseline flatbuffer (interleaved runs, same process)."


def define_flags(fv):
    flags.DEFINE_string("baseline", None, "baseline .tflite timed in the same run", flag_values=fv)
    flags.DEFINE_integer("threads", 1, "interpreter threads", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("runs", 50, "timed runs per model", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("warmup", 5, "untimed warm-up runs per model", lower_bound=0, flag_values=fv)
    flags.DEFINE_string("output", None, "also write the JSON result here", flag_values=fv)


def main(fv, args, name):
    from zippy_tf.errors import UserError
    from zippy_tf.export import read_flatbuffer
    from zippy_tf.export.latency import compare
    from zippy_tf.io import check_output_path, write_json

    if len(args) != 1:
        raise UserError("give exactly one MODEL.tflite to benchmark, e.g. `zippy-tf bench zp.tflite --baseline kp2d.tflite`")
    if not fv.baseline:
        raise UserError("--baseline is required: latency is only reported against a baseline timed in the same run")
    if fv.output:
        check_output_path(fv.output)
    model, baseline = read_flatbuffer(args[0]), read_flatbuffer(fv.baseline)
    result = compare(model, baseline, threads=fv.threads, warmup=fv.warmup, runs=fv.runs,
                     model_name=args[0], baseline_name=fv.baseline)
    if fv.output:
        write_json(fv.output, result)
    return result


__all__ = ["HELP", "define_flags", "main"]
