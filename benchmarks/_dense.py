"""What the dense multi-task scripts (``rcm_table.py``, ``compl_sweep.py``) share: named presets over their flags,
the generated NYUD-layout set, a labelled subset of it, and scoring a task model on a split with the A4 meters.

Importing it does not import TensorFlow.
"""

import contextlib
import os
import tempfile

from absl import flags

from zippy_tf.errors import UserError

FLAGS = flags.FLAGS
TASK_ACTIVATIONS = {"edge": "sigmoid", "sal": "sigmoid", "semseg": "argmax", "human_parts": "argmax"}


def define_common_flags(script, presets, defaults):
    """--preset, --data, --train_scenes, --val_scenes, --data_seed, --resolution, --threads and --seed; a preset
    overrides every flag in it that is not given on the command line (the defaults are the reference's)."""
    flags.DEFINE_enum("preset", "reference", list(presets), "named settings: reference (a GPU user's, the "
                      "defaults) or small (this project's CPU budget); explicit flags win", module_name=script)
    flags.DEFINE_string("data", None, "a NYUD-MT-layout folder (default: a generated set written to a temporary "
                        "folder)", module_name=script)
    flags.DEFINE_integer("train_scenes", defaults["train_scenes"], "generated training scenes", module_name=script)
    flags.DEFINE_integer("val_scenes", defaults["val_scenes"], "generated validation scenes", module_name=script)
    flags.DEFINE_integer("data_seed", 0, "seed of the generated set", module_name=script)
    flags.DEFINE_string("resolution", defaults["resolution"], "WIDTHxHEIGHT of the generated scenes and the "
                        "training crops", module_name=script)
    flags.DEFINE_integer("threads", 0, "TensorFlow threads (0: TensorFlow's default)", module_name=script)
    flags.DEFINE_integer("seed", 0, "seed of the networks' initialisation and the data order", module_name=script)


def apply_preset(presets):
    """Sets the flags of ``presets[FLAGS.preset]`` that the command line did not give; returns the preset's name
    and the flags it set."""
    chosen = presets[FLAGS.preset]
    applied = {name: value for name, value in chosen.items() if not FLAGS[name].present}
    for name, value in applied.items():
        setattr(FLAGS, name, value)
    return FLAGS.preset, applied


def setup_threads():
    if FLAGS.threads:
        from zippy_tf.runtime import set_threads

        set_threads(FLAGS.threads)


@contextlib.contextmanager
def nyud_folder(size):
    """Yields (root, description): --data, or a generated NYUD-layout set of --train_scenes + --val_scenes scenes
    of ``size`` (height, width) written to a temporary folder for the block."""
    if FLAGS.data is not None:
        if not os.path.isdir(FLAGS.data):
            raise UserError(f"--data {FLAGS.data!r} is not a folder; pass a NYUD-MT-layout folder")
        yield FLAGS.data, {"source": FLAGS.data}
        return
    from zippy_tf.data.multitask_generate import write_nyud_like
    from zippy_tf.runtime import progress

    with tempfile.TemporaryDirectory(prefix="zippy_tf-nyud-") as tmp:
        progress(f"writing {FLAGS.train_scenes} + {FLAGS.val_scenes} generated scenes of {size[0]}x{size[1]} ...")
        root = write_nyud_like(os.path.join(tmp, "nyud"), FLAGS.train_scenes, FLAGS.val_scenes, size,
                               seed=FLAGS.data_seed)
        yield root, {"source": "generated (zippy_tf.data.multitask_generate.write_nyud_like)",
                     "train_scenes": FLAGS.train_scenes, "val_scenes": FLAGS.val_scenes,
                     "size_hw": list(size), "seed": FLAGS.data_seed}


def subset_folder(root, train_ids, folder):
    """A NYUD-layout folder under ``folder`` whose training split is ``train_ids`` (the labelled subset); the data
    folders are links into ``root``, the validation split is ``root``'s."""
    from zippy_tf.data.multitask_generate import NYUD_FOLDERS

    os.makedirs(os.path.join(folder, "gt_sets"))
    for name in NYUD_FOLDERS:
        source = os.path.join(os.path.abspath(root), name)
        if name != "gt_sets" and os.path.isdir(source):
            os.symlink(source, os.path.join(folder, name))
    with open(os.path.join(folder, "gt_sets", "train.txt"), "w") as f:
        f.write("".join(f"{example_id}\n" for example_id in train_ids))
    with open(os.path.join(root, "gt_sets", "val.txt")) as src, \
            open(os.path.join(folder, "gt_sets", "val.txt"), "w") as dst:
        dst.write(src.read())
    return folder


def postprocess(task, outputs):
    """Network outputs → what the A4 meters score: probabilities (edge, sal), class ids (semseg), else as is."""
    import numpy as np

    outputs = np.asarray(outputs)
    activation = TASK_ACTIVATIONS.get(task)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-outputs))
    if activation == "argmax":
        return outputs.argmax(-1)
    return outputs


def predict(model, data, transform=None):
    """(outputs, labels): ``model``'s raw outputs on every batch of ``data`` ((images, labels) batches) and the
    label dicts, in order; ``transform`` maps each image batch (numpy) first."""
    outputs, labels = [], []
    for images, batch_labels in data:
        images = images.numpy() if transform is None else transform(images.numpy())
        outputs.append(model(images, training=False).numpy())
        labels.append({task: value.numpy() for task, value in batch_labels.items()})
    return outputs, labels


def score(task, outputs, labels):
    """The A4 meter result of ``task`` over batches of outputs and label dicts (from :func:`predict`)."""
    from zippy_tf.multitask.metrics import make_meter

    meter = make_meter("nyud", task)
    for output, label in zip(outputs, labels):
        meter.update(postprocess(task, output), label[task])
    return meter.result()


def rounded(value, digits=4):
    """Floats of a nested result rounded for the report."""
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item, digits) for item in value]
    return round(value, digits) if isinstance(value, float) else value


__all__ = ["apply_preset", "define_common_flags", "nyud_folder", "postprocess", "predict", "rounded", "score",
           "setup_threads", "subset_folder"]
