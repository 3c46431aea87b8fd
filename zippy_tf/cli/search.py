"""`zippy-tf search`: layer partitioning and traversal over a keypoint network's macro-blocks."""

from absl import flags

from zippy_tf.cli.common import define_model_flags

HELP = "Choose each macro-block's precision (Int8 / Bin / Bin-R, pooling) by layer partitioning and traversal."
DEFAULT_VALIDATION_SEED = 1001  # the generated validation split; test sets use other seeds


def define_flags(fv):
    define_model_flags(fv, default_model="zippypoint-int8")
    flags.DEFINE_string("data", None, "training image folder (flat folder of .jpg/.png)", flag_values=fv)
    flags.DEFINE_string("validation", None, "HPatches-layout validation folder; default: generated into "
                        "OUTPUT/validation from the bundled photos", flag_values=fv)
    flags.DEFINE_string("output", None, "search folder; an existing one is resumed", flag_values=fv)
    flags.DEFINE_float("budget", 0.02, "allowed relative drop of the metric w.r.t. the start, in (0, 1)",
                       flag_values=fv)
    flags.DEFINE_enum("cost", "analytic", ["analytic", "table", "interpreter"], "cost model", flag_values=fv)
    flags.DEFINE_string("cost_table", None, "JSON latency table (with --cost table), see BUILD.md", flag_values=fv)
    flags.DEFINE_integer("steps", 300, "fine-tuning steps per candidate", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("batch_size", 8, "pairs per fine-tuning step", lower_bound=1, flag_values=fv)
    flags.DEFINE_list("blocks", None, "search only these macro-blocks (default: all), e.g. stage1,stage2",
                      flag_values=fv)
    flags.DEFINE_string("metric", "matching_score", "HPatches metric to keep (higher is better)", flag_values=fv)


def _cost_model(fv, build):
    from zippy_tf.errors import UserError
    from zippy_tf.search import AnalyticCost, InterpreterCost, TableCost

    if fv.cost == "table":
        if not fv.cost_table:
            raise UserError("--cost table needs --cost_table FILE.json (per-block device milliseconds, see BUILD.md)")
        return TableCost(fv.cost_table)
    return AnalyticCost(build) if fv.cost == "analytic" else InterpreterCost(build)


def main(fv, args, name):
    import os
    import sys

    from tqdm import tqdm

    from zippy_tf.runtime import parse_resolution, progress
    from zippy_tf.errors import UserError
    from zippy_tf.data.hpatches import list_sequences
    from zippy_tf.data.image_folder import pair_dataset
    from zippy_tf.io import atomic_write, check_output_folder, write_json
    from zippy_tf.keypoints.finetune import CandidateEvaluator
    from zippy_tf.keypoints.metrics import METRICS
    from zippy_tf.keypoints.model import as_blocks, keypoint_network
    from zippy_tf.presets import get_preset
    from zippy_tf.quantization.macro_block import ROLE_CANDIDATES, blocks_to_json
    from zippy_tf.io import RecordLog
    from zippy_tf.search import plot_search, searchable, traverse

    if args:
        raise UserError(f"unexpected arguments {args}; pass options as --flags")
    for flag in ("data", "output"):
        if not fv[flag].value:
            raise UserError(f"--{flag} is required (see `zippy-tf search --help`)")
    if not 0.0 < fv.budget < 1.0:
        raise UserError(f"--budget must be in (0, 1) (an allowed relative metric drop), got {fv.budget}")
    if fv.model not in ("zippypoint", "zippypoint-int8"):
        raise UserError(f"search starts from zippypoint or zippypoint-int8 (or --config), not {fv.model!r}")
    height, width = parse_resolution(fv.resolution, multiple_of=8)  # the networks work on 8x8 cells
    preset = get_preset(fv.model)
    blocks = as_blocks(fv.config or preset.kwargs.get("config", "zippypoint"))
    # every input is checked before the first write (the run folder, the generated validation set)
    output = check_output_folder(fv.output)
    pair_dataset(fv.data, height=height, width=width, batch_size=fv.batch_size)  # images readable, enough of them
    if fv.validation is not None:
        list_sequences(fv.validation)
    if fv.weights is not None and not os.path.isfile(fv.weights):
        raise UserError(f"--weights {fv.weights!r} does not exist; pass the path of a weights file")
    if fv.metric not in METRICS or fv.metric == "localization_error":  # the search keeps the highest
        raise UserError(f"unknown --metric {fv.metric!r}; choose one of: "
                        f"{', '.join(m for m in METRICS if m != 'localization_error')}")
    only = set(fv.blocks) if fv.blocks else None
    unknown = sorted((only or set()) - {b.name for b in blocks})
    if unknown:
        raise UserError(f"--blocks names unknown macro-blocks {', '.join(unknown)}; choose from: "
                        f"{', '.join(b.name for b in blocks)}")
    # every choice of every step is visited, the kept one again (from the log): 1 + Σ |candidates|
    total = 1 + sum(len(ROLE_CANDIDATES[blocks[i].role]) for i in searchable(blocks, only=only))

    def build(config):
        return keypoint_network(config, input_shape=(height, width, 3))

    cost = _cost_model(fv, build)
    os.makedirs(output, exist_ok=True)
    validation = fv.validation
    if validation is None:
        from zippy_tf.data.hpatches import write_hpatches_like

        validation = os.path.join(output, "validation")
        if not os.path.isdir(validation):
            progress(f"writing a generated validation set to {validation}")
            write_hpatches_like(validation, num_sequences=4, seed=DEFAULT_VALIDATION_SEED)
    log = RecordLog(os.path.join(output, "search_log.jsonl"))
    evaluator = CandidateEvaluator(data=fv.data, validation=validation, output=os.path.join(output, "candidates"),
                                   log=log, resolution=(height, width), steps=fv.steps, batch_size=fv.batch_size,
                                   metric=fv.metric, initial_weights=fv.weights or preset.shipped_weights)
    with tqdm(total=total, desc="candidates (logged ones reused)", file=sys.stderr) as bar:  # closed before an error
        result = traverse(blocks, evaluate=evaluator, cost=cost, log=log, budget=fv.budget,
                          only=only, progress=lambda record: bar.update(1))
    config_path = os.path.join(output, "config.json")
    atomic_write(config_path, blocks_to_json(result.blocks))
    write_json(os.path.join(output, "result.json"), result.to_dict())
    plot = plot_search(result, os.path.join(output, "pareto.png"), metric_name=f"validation {fv.metric}")
    final = result.path[-1]
    return {"config": config_path, "plot": plot, "log": log.path, "cost_model": cost.name,
            "chosen": {p["block"]: p["choice"] for p in result.path}, "evaluated": len(log),
            "start_metric": result.start["metric"], "final_metric": final["metric"],
            "start_cost": result.start["cost"], "final_cost": final["cost"]}


__all__ = ["HELP", "define_flags", "main"]
