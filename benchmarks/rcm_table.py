"""The RCM table (thesis Tables 2.2 / 2.5 rows) and the incremental experiment (Tables 2.6 / 2.7 form) on a
NYUD-layout set.

Rows (``--variants``, any of ``zippy_tf.multitask.VARIANTS``; default single_task, multi_task, series_ra,
parallel_ra, rc, rcm) are task-conditional DeepLabv3+ networks on ResNet-18 built from the same encoder
(``--encoder``, else random initialisation, recorded). Every task of every row is trained for ``--steps`` SGD
steps (poly schedule); multi_task trains all tasks jointly for ``--steps`` steps (one loss sum per step). Every
task is scored with the A4 meters (edge odsF, semseg mIoU over 41 classes, normals mean angular error, depth RMSE
as the mean of per-image RMSEs; sal mIoU if asked), and Δm (Eq. 2.5, lower is better) is taken against the
single_task row. Parameters: total, shared, and task-specific per task (BatchNorm statistics excluded).

Incremental experiment: the incremental variants (everything but multi_task) are trained in that order anyway:
built with the base tasks (``--base_tasks``, default edge, normals), those trained, their validation predictions
kept, then each added task added (``add_task``) and trained. So their incremental numbers ARE the table's numbers
(by construction, as in the thesis), and ``old_tasks_bit_identical`` records whether the base tasks' predictions
after adding and training the new tasks equal the ones before, bit for bit. The non-incremental baseline (as
ASTMT in Tables 2.6/2.7) is multi_task trained jointly on the base tasks, then the added tasks trained on its
frozen shared encoder (the frozen_encoder variant); its Δm over the added tasks is reported beside the others.

    python benchmarks/rcm_table.py --preset small [--encoder models/resnet18-pretrain/weights.h5]
    python benchmarks/rcm_table.py --data NYUD_MT_FOLDER --encoder resnet18.npz   # the reference schedule

Defaults are the reference's NYUD schedule (A3): 425×560 crops, batch 8, SGD lr 0.005 momentum 0.9, weight decay
1e-4, poly, 19,875 steps per task, width 1.0. ``--preset small`` is this project's CPU budget. ``--encoder``: a
Keras weights file of ``zippy_tf.multitask.resnet(width=--width)`` (plain or compact) or a torchvision-layout
``.npz``. Writes ``results/rcm_table.json`` (rewritten after each row, ``complete`` false until the end) and with
``--save_dir`` the trained rcm network (``save_network``, weights stored float16).
"""

import os
import time

from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf.errors import UserError
from zippy_tf.io import write_json
from zippy_tf.multitask.deeplab import VARIANTS
from zippy_tf.multitask.metrics import TASK_METRIC, delta_m
from zippy_tf.runtime import parse_resolution, progress

import _common
import _dense

FLAGS = flags.FLAGS
SCRIPT = _common._script()
REFERENCE = {"train_scenes": 795, "val_scenes": 654, "resolution": "560x425"}
PRESETS = {
    "reference": {},
    "small": {"train_scenes": 96, "val_scenes": 24, "resolution": "80x64", "steps": 50, "width": 0.5,
              "threads": 1},
}
DEFAULT_VARIANTS = ["single_task", "multi_task", "series_ra", "parallel_ra", "rc", "rcm"]
BASELINE = "single_task"
_dense.define_common_flags(SCRIPT, PRESETS, REFERENCE)
flags.DEFINE_list("variants", DEFAULT_VARIANTS, f"rows, from: {', '.join(VARIANTS)}")
flags.DEFINE_list("base_tasks", ["edge", "normals"], "the tasks learned first (incremental experiment)")
flags.DEFINE_list("added_tasks", ["semseg", "depth"], "the tasks added afterwards (add sal here or to the base)")
flags.DEFINE_string("encoder", None, "pretrained encoder weights (Keras .h5 of multitask.resnet, or torchvision "
                    ".npz); default: random initialisation")
flags.DEFINE_integer("steps", 19875, "SGD steps per task (multi_task: joint steps)")
flags.DEFINE_integer("batch_size", 8, "training batch")
flags.DEFINE_float("learning_rate", 0.005, "SGD base learning rate (poly schedule, momentum 0.9)")
flags.DEFINE_float("width", 1.0, "channel multiplier of encoder, ASPP and decoder (must match --encoder)")
flags.DEFINE_integer("ri_images", 16, "training images whose responses Response Initialization uses")
flags.DEFINE_bool("incremental_baseline", True, "also run the non-incremental baseline of the incremental table "
                  "(multi_task on the base tasks, added tasks on its frozen encoder)")
flags.DEFINE_string("save_dir", None, "write the trained rcm network here (save_network, float16 weights)")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")


def encoder_summary(path):
    """The encoder's record: its path, and the pretraining summary written beside it (``.json``) if any."""
    if path is None:
        return {"path": None, "init": "random"}
    from zippy_tf.io import read_json

    summary = os.path.splitext(path)[0] + ".json"
    record = {"path": path, "init": "pretrained"}
    if os.path.isfile(summary):
        record["pretraining"] = {k: v for k, v in read_json(summary).items() if k != "history"}
    return record


def load_encoder(path, size, width):
    """The plain ResNet-18 of ``path`` (None: None, i.e. random initialisation)."""
    if path is None:
        return None
    from zippy_tf.io import readable_weights
    from zippy_tf.multitask.resnet import load_torchvision_weights, resnet

    if not os.path.isfile(path):
        raise UserError(f"--encoder {path!r} does not exist; pass a weights file or leave it out (random init)")
    encoder = resnet((*size, 3), "resnet18", width=width)
    if path.endswith(".npz"):
        import numpy as np

        return load_torchvision_weights(encoder, dict(np.load(path)))
    try:
        with readable_weights(path) as plain:
            encoder.load_weights(plain)
    except (ValueError, OSError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"--encoder {path!r} does not fit a ResNet-18 of width {width} ({first}); pass the "
                        "encoder's --width") from None
    return encoder


class Bench:
    """The data, encoder and settings every row uses."""

    def __init__(self, root, size, encoder):
        from zippy_tf.data.multitask_pipeline import multitask_dataset

        self.root, self.size, self.encoder = root, size, encoder
        self.tasks = tuple(FLAGS.base_tasks) + tuple(FLAGS.added_tasks)
        self.val = multitask_dataset(root, "nyud", "val", self.tasks, crop_size=size, batch_size=8)
        self.ri_images = None
        if encoder is not None:
            ri = multitask_dataset(root, "nyud", "train", self.tasks[:1], crop_size=size, batch_size=FLAGS.ri_images)
            self.ri_images = next(iter(ri))[0].numpy()

    def train_data(self, tasks):
        from zippy_tf.data.multitask_pipeline import multitask_dataset

        return multitask_dataset(self.root, "nyud", "train", tuple(tasks), crop_size=self.size, augment=True,
                                 batch_size=FLAGS.batch_size, shuffle=True, seed=FLAGS.seed)

    def build(self, variant, tasks, encoder=None):
        from zippy_tf import keras
        from zippy_tf.multitask import MultiTaskConfig, build_multitask

        keras.utils.set_random_seed(FLAGS.seed)
        encoder = self.encoder if encoder is None else encoder
        config = MultiTaskConfig(variant, "nyud", tasks=tuple(tasks), input_shape=self.size, width=FLAGS.width)
        ri = self.ri_images if VARIANTS[variant].ri and encoder is not None else None
        return build_multitask(config, encoder=encoder, ri_images=ri)

    def train(self, network, task, losses):
        from zippy_tf.multitask import train_task

        history = train_task(network, task, self.train_data([task]), steps=FLAGS.steps,
                             learning_rate=FLAGS.learning_rate)
        losses[task] = history[task][-1]

    def train_joint(self, network, losses):
        from zippy_tf.multitask import train_joint

        history = train_joint(network, self.train_data(network.tasks), steps=FLAGS.steps,
                              learning_rate=FLAGS.learning_rate)
        losses.update({task: history[task][-1] for task in network.tasks})

    def outputs(self, network, tasks):
        """{task: (outputs, labels)} on the validation split."""
        return {task: _dense.predict(network[task], self.val) for task in tasks}


def scores(results):
    return {task: result[TASK_METRIC[task][0]] for task, result in results.items()}


def identical(before, after):
    import numpy as np

    return all(np.array_equal(a, b) for task in before for a, b in zip(before[task][0], after[task][0]))


def incremental_row(bench, variant):
    """Builds ``variant`` with the base tasks, trains them, adds and trains the added tasks; checks the base
    tasks' predictions are unchanged; returns (network, metrics, losses, bit-identical)."""
    from zippy_tf.multitask import add_task

    losses = {}
    network = bench.build(variant, FLAGS.base_tasks)
    for task in FLAGS.base_tasks:
        bench.train(network, task, losses)
    before = bench.outputs(network, FLAGS.base_tasks)
    for task in FLAGS.added_tasks:
        add_task(network, task, encoder=bench.encoder)
        bench.train(network, task, losses)
    outputs = bench.outputs(network, bench.tasks)
    same = identical(before, {task: outputs[task] for task in FLAGS.base_tasks})
    return network, {task: _dense.score(task, *outputs[task]) for task in bench.tasks}, losses, same


def joint_row(bench):
    losses = {}
    network = bench.build("multi_task", bench.tasks)
    bench.train_joint(network, losses)
    outputs = bench.outputs(network, bench.tasks)
    return network, {task: _dense.score(task, *outputs[task]) for task in bench.tasks}, losses


def shared_encoder(network):
    """A plain ResNet holding the shared encoder weights of a multi_task network."""
    from zippy_tf.multitask.resnet import resnet

    encoder = resnet((*network.config.input_shape, 3), network.config.backbone, width=network.config.width)
    for layer in encoder.layers:
        if layer.weights:
            layer.set_weights(network.shared_layers[layer.name].get_weights())
    return encoder


def non_incremental_baseline(bench):
    """multi_task trained jointly on the base tasks, then the added tasks on its frozen encoder: (added-task
    metrics, losses, wall seconds)."""
    start, losses = time.time(), {}
    base = bench.build("multi_task", FLAGS.base_tasks)
    bench.train_joint(base, losses)
    added = bench.build("frozen_encoder", FLAGS.added_tasks, encoder=shared_encoder(base))
    for task in FLAGS.added_tasks:
        bench.train(added, task, losses)
    outputs = bench.outputs(added, FLAGS.added_tasks)
    return {task: _dense.score(task, *outputs[task]) for task in FLAGS.added_tasks}, losses, time.time() - start


def save_rcm(network, directory):
    from zippy_tf.io import save_float16_weights
    from zippy_tf.multitask import save_network

    save_network(network, directory)
    for task in network.tasks:
        path = os.path.join(directory, f"{task}.weights.h5")
        save_float16_weights(path, path)


def add_delta_m(report):
    """Δm of every row (all tasks) and of every incremental row (added tasks) against the single_task row."""
    rows = {row["variant"]: row for row in report["rows"]}
    if BASELINE not in rows:
        return
    baseline = rows[BASELINE]["scores"]
    for row in report["rows"]:
        row["delta_m"] = round(delta_m(row["scores"], baseline), 3)
    for row in report["incremental"]["rows"]:
        row["delta_m_added"] = round(delta_m(row["scores"], baseline, FLAGS.added_tasks), 3)


def ordering(report):
    """The thesis's claim on this run: RCM's Δm at most the Residual Adapters', at about equal task-specific
    parameters, with the old tasks bit-identical."""
    rows = {row["variant"]: row for row in report["rows"]}
    if "rcm" not in rows or "delta_m" not in rows["rcm"]:
        return None
    rcm = rows["rcm"]
    out = {"rcm_delta_m": rcm["delta_m"], "rcm_old_tasks_bit_identical": rcm["old_tasks_bit_identical"]}
    for ra in ("series_ra", "parallel_ra"):
        if ra in rows:
            out[f"rcm_delta_m_at_most_{ra}"] = rcm["delta_m"] <= rows[ra]["delta_m"]
            out[f"task_specific_parameters_rcm_over_{ra}"] = round(
                rcm["parameters"]["task_specific_mean"] / rows[ra]["parameters"]["task_specific_mean"], 3)
    return out


def markdown(report):
    tasks = report["tasks"]
    head = " | ".join(f"{t} {TASK_METRIC[t][0]} {'↑' if TASK_METRIC[t][1] else '↓'}" for t in tasks)
    lines = [f"| variant | {head} | Δm % ↓ | params total | task-specific per task | wall s |",
             "|---" * (len(tasks) + 5) + "|"]
    for row in report["rows"]:
        values = " | ".join(f"{row['scores'][t]:.3f}" for t in tasks)
        lines.append(f"| {row['variant']} | {values} | {row.get('delta_m', float('nan')):.2f} | "
                     f"{row['parameters']['total'] / 1e6:.2f} M | "
                     f"{row['parameters']['task_specific_mean'] / 1e6:.2f} M | {row['wall_seconds']:.0f} |")
    lines += ["", "| incremental | " + " | ".join(FLAGS.added_tasks) + " | Δm added % ↓ | old tasks bit-identical |",
              "|---" * (len(FLAGS.added_tasks) + 3) + "|"]
    for row in report["incremental"]["rows"]:
        values = " | ".join(f"{row['scores'][t]:.3f}" for t in FLAGS.added_tasks)
        lines.append(f"| {row['variant']} | {values} | {row.get('delta_m_added', float('nan')):.2f} | "
                     f"{row['old_tasks_bit_identical']} |")
    return "\n".join(lines)


def parameters(network):
    from zippy_tf.multitask import parameter_counts

    counts = parameter_counts(network)
    counts["task_specific_mean"] = sum(counts["per_task"].values()) / len(counts["per_task"])
    return counts


def check_flags():
    for variant in FLAGS.variants:
        if variant not in VARIANTS:
            raise UserError(f"unknown variant {variant!r} in --variants; choose from {', '.join(VARIANTS)}")
    tasks = list(FLAGS.base_tasks) + list(FLAGS.added_tasks)
    if not FLAGS.base_tasks or not FLAGS.added_tasks or len(set(tasks)) != len(tasks):
        raise UserError("--base_tasks and --added_tasks must be non-empty and share no task")
    from zippy_tf.data.multitask import check_tasks

    check_tasks("nyud", tasks)


def main(argv):
    del argv
    preset, applied = _dense.apply_preset(PRESETS)
    _dense.setup_threads()
    check_flags()
    size = parse_resolution(FLAGS.resolution)
    started = time.time()
    encoder = load_encoder(FLAGS.encoder, size, FLAGS.width)
    report = {**_common.provenance(), "preset": preset, "preset_flags": applied, "complete": False,
              "settings": {name: FLAGS[name].value for name in (
                  "variants", "steps", "batch_size", "learning_rate", "width", "resolution", "ri_images", "seed",
                  "threads")},
              "encoder": encoder_summary(FLAGS.encoder),
              "tasks": list(FLAGS.base_tasks) + list(FLAGS.added_tasks),
              "metrics": {task: {"name": TASK_METRIC[task][0], "higher_is_better": TASK_METRIC[task][1]}
                          for task in list(FLAGS.base_tasks) + list(FLAGS.added_tasks)},
              "depth_rmse": "mean of per-image RMSEs (the RCM evaluation)",
              "rows": [],
              "incremental": {"base_tasks": FLAGS.base_tasks, "added_tasks": FLAGS.added_tasks, "rows": [],
                              "note": "incremental variants are trained base tasks first, then the added tasks, "
                                      "so their numbers equal the table's by construction; multi_task (+ frozen "
                                      "encoder) is the non-incremental baseline"}}
    with _dense.nyud_folder(size) as (root, data):
        report["data"] = data
        bench = Bench(root, size, encoder)
        for variant in FLAGS.variants:
            progress(f"{variant}: training {len(bench.tasks)} tasks x {FLAGS.steps} steps ...")
            start = time.time()
            if VARIANTS[variant].joint:
                network, results, losses = joint_row(bench)
                same = None
            else:
                network, results, losses, same = incremental_row(bench, variant)
            row = {"variant": variant, "metrics": _dense.rounded(results), "scores": _dense.rounded(scores(results)),
                   "parameters": parameters(network), "old_tasks_bit_identical": same,
                   "final_losses": _dense.rounded(losses), "wall_seconds": round(time.time() - start, 1)}
            report["rows"].append(row)
            if same is not None:
                report["incremental"]["rows"].append({
                    "variant": variant, "scores": {t: row["scores"][t] for t in FLAGS.added_tasks},
                    "old_tasks_bit_identical": same, "same_as_table": True})
            if variant == "rcm" and FLAGS.save_dir:
                save_rcm(network, FLAGS.save_dir)
            progress(f"  {row['scores']} ({row['wall_seconds']:.0f} s)")
            add_delta_m(report)
            report["wall_seconds"] = round(time.time() - started, 1)
            write_json(FLAGS.output, report)
        if FLAGS.incremental_baseline:
            progress(f"non-incremental baseline: multi_task on {FLAGS.base_tasks}, then frozen encoder ...")
            results, losses, seconds = non_incremental_baseline(bench)
            report["incremental"]["rows"].append({
                "variant": "multi_task + frozen encoder", "scores": _dense.rounded(scores(results)),
                "metrics": _dense.rounded(results), "old_tasks_bit_identical": None, "same_as_table": False,
                "final_losses": _dense.rounded(losses), "wall_seconds": round(seconds, 1)})
    add_delta_m(report)
    report["ordering"] = ordering(report)
    report["complete"] = True
    report["wall_seconds"] = round(time.time() - started, 1)
    write_json(FLAGS.output, report)
    print(markdown(report))


if __name__ == "__main__":
    _common.run(main)
