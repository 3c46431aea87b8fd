"""CompL label-fraction sweep (thesis Tables 3.2 / 3.4 form): a target task trained alone and jointly with rotation,
MoCo v2 and DenseCL, at several fractions of labelled training images, on a NYUD-layout set; plus a robustness
check under distribution shift.

For each label fraction (a nested, seeded subset: ``zippy_tf.multitask.compl.label_subset``) and each method, a
DeepLabv3+ trunk (GroupNorm, as B2) with the target head is trained from the same initialisation for the same number
of steps: target-only on the labelled images, or jointly (supervised batch + independently drawn SSL batch through
the trunk once, ``L_target + λ·L_ssl``, λ = 0.05 rotation, 0.2 MoCo / DenseCL) with the SSL stream on every
training image. The deployed network (trunk + target head) is scored on the validation split with the A4 meter of
the target (depth: RMSE, mean of per-image RMSEs), then on the same images under three corruptions (Gaussian
noise, Gaussian blur, reduced contrast); the drop is the corrupted score minus the clean one.

    python benchmarks/compl_sweep.py --preset small            # this project's CPU budget, generated data
    python benchmarks/compl_sweep.py [--data NYUD_MT_FOLDER]   # the reference schedule (a GPU user's)

Defaults are the reference's NYUD depth settings (B2): 425×560, batch 8 + 8, SGD lr 0.005 poly, 20,000 steps,
ResNet-26 GN, DenseCL grid 8, memory bank = training-set size, τ 0.4. ``--preset small`` sets the CPU budget.
Writes ``results/compl_sweep.json`` (rewritten after every model, ``complete`` false until the end) and
``compl_sweep.png`` (metric vs label fraction; robustness in a second panel).
"""

import os
import tempfile
import time

from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf.errors import UserError
from zippy_tf.io import save_figure, write_json
from zippy_tf.multitask.metrics import TASK_METRIC, delta_m
from zippy_tf.multitask.ssl import SSL_TASKS, SSL_WEIGHTS
from zippy_tf.runtime import parse_resolution, progress

import _common
import _dense

FLAGS = flags.FLAGS
SCRIPT = _common._script()
REFERENCE = {"train_scenes": 795, "val_scenes": 654, "resolution": "560x425"}
PRESETS = {
    "reference": {},
    "small": {"train_scenes": 120, "val_scenes": 40, "resolution": "80x64", "batch_size": 4, "steps": 60,
              "backbone": "resnet18", "width": 0.5, "view_offset": 2, "threads": 1},
}
METHOD_NAMES = {"none": "target only", "rotation": "+Rot", "moco": "+MoCo", "densecl": "+DenseCL"}
CORRUPTIONS = ("noise", "blur", "contrast")
_dense.define_common_flags(SCRIPT, PRESETS, REFERENCE)
flags.DEFINE_enum("target", "depth", ["depth", "semseg", "normals", "edge"], "the target task")
flags.DEFINE_list("methods", list(SSL_TASKS), "SSL auxiliaries (none: target only)")
flags.DEFINE_list("fractions", ["0.05", "0.25", "1.0"], "label fractions in (0, 1]")
flags.DEFINE_integer("batch_size", 8, "supervised batch (the SSL batch has the same size)")
flags.DEFINE_integer("steps", 20000, "optimizer steps per model (every fraction and method alike)")
flags.DEFINE_float("learning_rate", 0.005, "SGD base learning rate (poly schedule, momentum 0.9)")
flags.DEFINE_enum("backbone", "resnet26", ["resnet18", "resnet26"], "trunk encoder (GroupNorm)")
flags.DEFINE_float("width", 1.0, "channel multiplier of the trunk")
flags.DEFINE_integer("grid", 8, "DenseCL grid side S")
flags.DEFINE_integer("view_offset", 8, "pixels between the two SSL crops (in the 1.5× upscaled image)")
flags.DEFINE_float("noise_std", 25.0, "Gaussian noise σ of the shift, on [0, 255] pixels")
flags.DEFINE_float("blur_sigma", 1.5, "Gaussian blur σ of the shift, in pixels")
flags.DEFINE_float("contrast", 0.4, "contrast factor of the shift (1 = unchanged)")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")
flags.DEFINE_string("plot", _common.default_output(__file__, ".png"), "PNG of metric vs label fraction")


def parse_fractions(values):
    try:
        fractions = sorted({float(v) for v in values})
    except ValueError:
        raise UserError(f"--fractions {','.join(values)} must be numbers in (0, 1], e.g. 0.05,0.25,1.0") from None
    if not fractions or fractions[0] <= 0 or fractions[-1] > 1:
        raise UserError(f"--fractions {','.join(values)} must lie in (0, 1], e.g. 0.05,0.25,1.0")
    return fractions


def corruption(name):
    """A function on ImageNet-normalised image batches applying the named shift in [0, 255] pixel space; its noise
    is seeded afresh for each function, so every model sees the same corrupted images."""
    import cv2
    import numpy as np

    from zippy_tf.data.multitask_pipeline import IMAGENET_MEAN, IMAGENET_STD

    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    rng = np.random.default_rng(0)

    def apply(images):
        pixels = (images * std + mean) * 255.0
        if name == "noise":
            pixels = pixels + rng.normal(0.0, FLAGS.noise_std, pixels.shape)
        elif name == "blur":
            pixels = np.stack([cv2.GaussianBlur(p, (0, 0), FLAGS.blur_sigma) for p in pixels])
        else:
            centre = pixels.mean(axis=(1, 2, 3), keepdims=True)
            pixels = centre + FLAGS.contrast * (pixels - centre)
        return ((np.clip(pixels, 0, 255) / 255.0 - mean) / std).astype(np.float32)

    return apply


def build_model(method, size, ssl_size):
    from zippy_tf import keras
    from zippy_tf.data.multitask import output_channels
    from zippy_tf.multitask.compl import CompLModel, supervised_head, task_target_loss
    from zippy_tf.multitask.deeplab import deeplab_trunk
    from zippy_tf.multitask.losses import sgd

    keras.utils.set_random_seed(FLAGS.seed)  # every method starts from the same trunk and target head
    trunk = deeplab_trunk(FLAGS.backbone, "group", (*size, 3), FLAGS.width)
    head = supervised_head(trunk.output_shape[1:], output_channels("nyud", FLAGS.target), size,
                           unit=FLAGS.target == "normals")
    model = CompLModel(trunk, head, task_target_loss(FLAGS.target), ssl=method, grid=FLAGS.grid,
                       ssl_size=ssl_size if method in ("moco", "densecl") else None, seed=FLAGS.seed)
    model.compile(sgd(FLAGS.learning_rate, FLAGS.steps))
    return model


def train_and_score(method, fraction, root, train_ids, size, tmp):
    """Trains one model; returns its row (clean and corrupted scores, drop, wall time, final losses)."""
    from zippy_tf.data.multitask_pipeline import multitask_dataset
    from zippy_tf.multitask.compl import compl_splits, deployable
    from zippy_tf.multitask.views import ViewConfig, folder_images, joint_dataset, ssl_dataset

    start = time.time()
    labelled, ssl_ids = compl_splits(train_ids, fraction, seed=FLAGS.seed)
    folder = os.path.join(tmp, f"labels_{fraction:g}")
    if not os.path.isdir(folder):
        _dense.subset_folder(root, labelled, folder)
    supervised = multitask_dataset(folder, "nyud", "train", (FLAGS.target,), crop_size=size, augment=True,
                                   batch_size=FLAGS.batch_size, shuffle=True, seed=FLAGS.seed).repeat()
    model = build_model(method, size, len(ssl_ids))
    if method == "none":
        data = supervised
    else:
        views = ViewConfig(offset=FLAGS.view_offset)
        stream = ssl_dataset(folder_images(root, "nyud", ssl_ids, size), method, batch_size=FLAGS.batch_size,
                             views=views, seed=FLAGS.seed)
        data = joint_dataset(supervised, stream)
    history = model.fit(data, epochs=1, steps_per_epoch=FLAGS.steps, verbose=0).history
    train_seconds = time.time() - start
    network = deployable(model)
    val = multitask_dataset(root, "nyud", "val", (FLAGS.target,), crop_size=size, batch_size=8)
    metric = TASK_METRIC[FLAGS.target][0]
    clean = _dense.score(FLAGS.target, *_dense.predict(network, val))
    shifted = {name: _dense.score(FLAGS.target, *_dense.predict(network, val, corruption(name)))
               for name in CORRUPTIONS}
    shifted_mean = sum(s[metric] for s in shifted.values()) / len(shifted)
    return {
        "method": method, "name": METHOD_NAMES[method], "label_fraction": fraction, "labelled_images": len(labelled),
        "ssl_images": len(ssl_ids) if method != "none" else 0,
        "ssl_weight": SSL_WEIGHTS[method], "clean": clean, "shifted": shifted,
        "score": clean[metric], "shifted_score": shifted_mean, "drop": shifted_mean - clean[metric],
        "relative_drop_percent": 100.0 * (shifted_mean - clean[metric]) / clean[metric],
        "final_losses": {name: values[-1] for name, values in history.items()},
        "train_seconds": train_seconds, "wall_seconds": time.time() - start,
    }


def plot(rows, fractions, methods, path):
    plt = _common.pyplot()
    metric, higher = TASK_METRIC[FLAGS.target]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in methods:
        done = [r for r in rows if r["method"] == method]
        x = [r["label_fraction"] for r in done]
        axes[0].plot(x, [r["score"] for r in done], "o-", label=METHOD_NAMES[method])
        axes[1].plot(x, [r["shifted_score"] for r in done], "o-", label=METHOD_NAMES[method])
    arrow = "higher" if higher else "lower"
    titles = (f"{FLAGS.target} {metric}, clean validation", f"{FLAGS.target} {metric} under shift "
              f"(mean of {', '.join(CORRUPTIONS)})")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_xticks(fractions, [f"{100 * f:g}%" for f in fractions])
        ax.minorticks_off()
        ax.set_xlabel("labelled fraction of the training images")
        ax.set_ylabel(f"{metric} ({arrow} is better)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"CompL on the generated NYUD-layout set, {FLAGS.steps} steps per model", fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)


def markdown(rows):
    metric = TASK_METRIC[FLAGS.target][0]
    lines = [f"| method | fraction | labelled | {metric} | {metric} under shift | drop | wall s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {100 * r['label_fraction']:g}% | {r['labelled_images']} | {r['score']:.4f} "
                     f"| {r['shifted_score']:.4f} | {r['drop']:+.4f} | {r['wall_seconds']:.0f} |")
    return "\n".join(lines)


def add_delta_m(rows):
    """Each row's Δm (Eq. 2.5, %, lower is better) against target-only at the same fraction, clean and shifted."""
    for row in rows:
        base = next((r for r in rows if r["method"] == "none" and r["label_fraction"] == row["label_fraction"]), None)
        if base is not None:
            for key, score in (("delta_m", "score"), ("delta_m_shifted", "shifted_score")):
                row[key] = round(delta_m({FLAGS.target: row[score]}, {FLAGS.target: base[score]}), 3)


def findings(rows, fractions):
    """The thesis's ordering on this run: CompL ≥ target-only at the lowest fraction, DenseCL best of the three."""
    metric, higher = TASK_METRIC[FLAGS.target]
    better = (lambda a, b: a >= b) if higher else (lambda a, b: a <= b)
    result = {}
    for fraction in fractions:
        by = {r["method"]: r["score"] for r in rows if r["label_fraction"] == fraction}
        if "none" not in by:
            continue
        ssl = {m: s for m, s in by.items() if m != "none"}
        best = (max if higher else min)(ssl, key=ssl.get) if ssl else None
        result[f"{fraction:g}"] = {"compl_at_least_target_only": {m: better(s, by["none"]) for m, s in ssl.items()},
                                   "best_auxiliary": best}
    return result


def main(argv):
    del argv
    preset, applied = _dense.apply_preset(PRESETS)
    _dense.setup_threads()
    fractions = parse_fractions(FLAGS.fractions)
    for method in FLAGS.methods:
        if method not in SSL_TASKS:
            raise UserError(f"unknown method {method!r} in --methods; choose from {', '.join(SSL_TASKS)}")
    size = parse_resolution(FLAGS.resolution)
    from zippy_tf.data.multitask import split_ids

    started = time.time()
    report = {**_common.provenance(), "preset": preset, "preset_flags": applied, "complete": False,
              "settings": {name: FLAGS[name].value for name in (
                  "target", "methods", "batch_size", "steps", "learning_rate", "backbone", "width", "grid",
                  "view_offset", "resolution", "seed", "threads", "noise_std", "blur_sigma", "contrast")},
              "label_fractions": fractions, "trunk": f"DeepLabv3+ {FLAGS.backbone} GroupNorm, width {FLAGS.width}, "
              "random initialisation (no GroupNorm encoder is pretrained here)",
              "metric": {"name": TASK_METRIC[FLAGS.target][0], "higher_is_better": TASK_METRIC[FLAGS.target][1]},
              "corruptions": list(CORRUPTIONS), "rows": []}
    with _dense.nyud_folder(size) as (root, data), tempfile.TemporaryDirectory(prefix="zippy_tf-compl-") as tmp:
        report["data"] = data
        train_ids = split_ids(root, "nyud", "train")
        for fraction in fractions:
            for method in FLAGS.methods:
                progress(f"fraction {fraction:g}, {METHOD_NAMES[method]}: training {FLAGS.steps} steps ...")
                row = train_and_score(method, fraction, root, train_ids, size, tmp)
                report["rows"].append(_dense.rounded(row, 5))
                progress(f"  {report['metric']['name']} {row['score']:.4f}, under shift {row['shifted_score']:.4f}"
                         f" ({row['wall_seconds']:.0f} s)")
                report["wall_seconds"] = round(time.time() - started, 1)
                write_json(FLAGS.output, report)
    add_delta_m(report["rows"])
    report["findings"] = findings(report["rows"], fractions)
    report["complete"] = True
    report["wall_seconds"] = round(time.time() - started, 1)
    write_json(FLAGS.output, report)
    plot(report["rows"], fractions, FLAGS.methods, FLAGS.plot)
    print(markdown(report["rows"]))


if __name__ == "__main__":
    _common.run(main)
