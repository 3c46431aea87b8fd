"""Named models the CLI, converters and benchmarks accept, and where their shipped weights live.

Presets are data: a name maps to a builder ("module:function"), its keyword arguments, and a description. Builders
are imported on use, so listing presets does not import every method. :func:`load` builds a preset with its shipped
weights; :func:`build_model` also builds one without (a random initialisation, for training).

Multi-task presets (``task="multitask"``: RCM and CompL) hold the network's settings in ``kwargs`` (RCM: the fields
of ``zippy_tf.multitask.MultiTaskConfig``; CompL: the trunk, its input size and the target) and the training
schedule in ``training``; ``zippy-tf train rcm|compl --preset NAME`` trains them. The full presets ("rcm",
"compl") are the reference's settings, for GPUs; the "-small" ones a CPU-sized variant of them.

Example:
    >>> network = zippy_tf.presets.load("zippypoint")  # network.weights_path: the shipped weights file
"""

import dataclasses
import importlib
import logging
import os
from pathlib import Path

from zippy_tf.errors import UserError


def _models_dir():
    """The shipped weights: $ZIPPY_TF_MODELS, else the copy a wheel installs inside the package, else the
    repository's models/ (source checkouts and editable installs)."""
    if "ZIPPY_TF_MODELS" in os.environ:
        return Path(os.environ["ZIPPY_TF_MODELS"])
    packaged = Path(__file__).resolve().parent / "models"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "models"


# Shipped weights: <models dir>/<preset>/weights.h5, trained by this project (see each folder's card.md).
MODELS_DIR = _models_dir()


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    builder: str
    description: str
    kwargs: dict = dataclasses.field(default_factory=dict)
    accepts_config: bool = False  # whether --config (a JSON list of macro-blocks) applies
    task: str = "keypoints"  # "tracking" presets build a TrackerNetwork (template + search branches)
    descriptors: str = "binary"  # keypoint presets: "binary" (Bin.Norm, Hamming) or "float" (L2) descriptors
    training: dict = dataclasses.field(default_factory=dict)  # multi-task presets: steps, batch_size, learning_rate

    @property
    def shipped_weights(self):
        path = MODELS_DIR / self.name / "weights.h5"
        return str(path) if path.is_file() else None

    @property
    def method(self):
        """Multi-task presets: "rcm" or "compl", the ``zippy-tf train`` sub-verb that trains them."""
        return "compl" if self.builder.startswith("zippy_tf.multitask.compl:") else "rcm"


PRESETS = {
    p.name: p
    for p in (
        Preset("zippypoint", "zippy_tf.keypoints.model:zippypoint",
               "ZippyPoint (thesis ch. 5): Int8 stem, learned pooling, Bin-R encoder, Int8 decoder",
               accepts_config=True),
        Preset("zippypoint-int8", "zippy_tf.keypoints.model:zippypoint",
               "ZippyPoint with every encoder/decoder macro-block Int8 (the search's starting point)",
               kwargs={"config": "int8", "name": "zippypoint_int8"}, accepts_config=True),
        Preset("kp2d", "zippy_tf.keypoints.model:kp2d_baseline", "KP2D, the full-precision baseline",
               descriptors="float"),
        Preset("ettrack", "zippy_tf.tracking.model:ettrack",
               "E.T.Track (thesis ch. 4): LT-Mobile backbone, Exemplar Transformer heads; template 127, search 256",
               task="tracking"),
        Preset("ettrack-s", "zippy_tf.tracking.model:ettrack",
               "E.T.Track with 128-wide FFNs (1024 in ettrack), fine-tuned from ettrack's weights; template 127, "
               "search 224", kwargs={"ffn_dim": 128, "search_size": 224, "name": "ettrack_s"}, task="tracking"),
        Preset("lighttrack", "zippy_tf.tracking.model:lighttrack",
               "LightTrack-Mobile: the same tracker with convolutional heads (E.T.Track's baseline)",
               task="tracking"),
        Preset("attention", "zippy_tf.tracking.model:attention_tracker",
               "The same tracker with standard multi-head self-attention transformer heads (baseline)",
               task="tracking"),
        Preset("rcm", "zippy_tf.multitask:build_multitask",
               "RCM (thesis ch. 2): task-conditional DeepLabv3+ ResNet-18, NYUD edge/semseg/normals/depth at 425x560, "
               "the reference schedule (19,875 steps per task, batch 8)",
               kwargs={"variant": "rcm", "dataset": "nyud", "tasks": ("edge", "semseg", "normals", "depth"),
                       "input_shape": (425, 560), "backbone": "resnet18", "width": 1.0},
               task="multitask", training={"steps": 19875, "batch_size": 8, "learning_rate": 0.005}),
        Preset("rcm-small", "zippy_tf.multitask:build_multitask",
               "RCM sized for a CPU: width 0.25 at 120x160 (the generated set's size), 400 steps per task, batch 8",
               kwargs={"variant": "rcm", "dataset": "nyud", "tasks": ("edge", "semseg", "normals", "depth"),
                       "input_shape": (120, 160), "backbone": "resnet18", "width": 0.25},
               task="multitask", training={"steps": 400, "batch_size": 8, "learning_rate": 0.005}),
        Preset("compl", "zippy_tf.multitask.compl:CompLModel",
               "CompL (thesis ch. 3): NYUD depth on DeepLabv3+ ResNet-26 with GroupNorm at 425x560, "
               "the reference schedule (20,000 steps, batch 8 + 8 SSL)",
               kwargs={"dataset": "nyud", "target": "depth", "input_shape": (425, 560), "backbone": "resnet26",
                       "norm": "group", "width": 1.0},
               task="multitask", training={"steps": 20000, "batch_size": 8, "learning_rate": 0.005}),
        Preset("compl-small", "zippy_tf.multitask.compl:CompLModel",
               "CompL sized for a CPU: ResNet-26 GroupNorm, width 0.25 at 120x160, 400 steps, batch 8 + 8 SSL",
               kwargs={"dataset": "nyud", "target": "depth", "input_shape": (120, 160), "backbone": "resnet26",
                       "norm": "group", "width": 0.25},
               task="multitask", training={"steps": 400, "batch_size": 8, "learning_rate": 0.005}),
    )
}


def get_preset(name):
    if name not in PRESETS:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def build_model(name, *, config=None, weights=None, input_shape=None, use_shipped_weights=True):
    """Builds preset ``name``; ``weights`` falls back to the shipped weights (if any) unless disabled.

    Args:
        name: a key of :data:`PRESETS`.
        config: another macro-block configuration (list, JSON path) for the zippypoint family.
        weights: a weights file; input_shape: (height, width, 3) of a keypoint network (None sides: any size).
    """
    preset = get_preset(name)
    if preset.task == "multitask":
        raise UserError(f"model {name!r} is a multi-task network: train it with `zippy-tf train {preset.method} "
                        f"--preset {name}` and use the run folder it writes")
    kwargs = dict(preset.kwargs)
    if config is not None:
        if not preset.accepts_config:
            raise UserError(f"model {name!r} does not take config=; use zippypoint or zippypoint-int8")
        kwargs["config"] = config
    if input_shape is not None and preset.task != "tracking":  # trackers have fixed template/search sizes
        kwargs["input_shape"] = tuple(input_shape)
    if weights is None and use_shipped_weights and config is None:
        weights = preset.shipped_weights
    module, function = preset.builder.split(":")
    return getattr(importlib.import_module(module), function)(weights=weights, **kwargs)


def load(name, *, weights=None, config=None, input_shape=None):
    """Preset ``name`` with trained weights: its shipped ones (``models/<name>/weights.h5``) unless ``weights`` names
    others. The model's ``weights_path`` says which file it runs; a preset without shipped weights is an error
    (build an untrained one with :func:`build_model`). Arguments as :func:`build_model`."""
    if weights is None and config is None:
        weights = get_preset(name).shipped_weights
    if weights is None:
        what = "a config= of its own" if config is not None else "no shipped weights"
        raise UserError(f"model {name!r} with {what} has no trained weights to load; pass weights=PATH, or "
                        "zippy_tf.presets.build_model for an untrained network")
    model = build_model(name, config=config, weights=weights, input_shape=input_shape)
    logging.getLogger(__name__).info("%s: loaded weights %s", name, weights)
    return model


__all__ = ["MODELS_DIR", "PRESETS", "Preset", "build_model", "get_preset", "load"]
