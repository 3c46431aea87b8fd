"""Task-conditional DeepLabv3+ on a dilated ResNet (thesis §2.4.2): the RCM network and its baselines.

One builder, :func:`build_multitask`, makes every variant of the thesis's tables from a :class:`MultiTaskConfig`
(data: it round-trips through JSON). The result, a :class:`MultiTaskNetwork`, holds one Keras model per task
(``network[task]``: image -> that task's prediction; one task per forward pass, as the reference trains and
evaluates). Task models share layer objects where the variant shares weights:

===============  ===========================  ==============  ==============  ========================
variant          encoder convolutions         downsample 1×1  encoder norms   training
===============  ===========================  ==============  ==============  ========================
single_task      per task, trainable          per task        per task        each task alone
multi_task       shared, trainable            shared          shared          all tasks jointly
frozen_encoder   shared, frozen               shared, frozen  shared, frozen  each task alone
task_bn          shared, frozen               shared, frozen  per task        each task alone
series_ra        frozen W_s + Series RA       per task        per task        each task alone
parallel_ra      frozen W_s + Parallel RA     per task        per task        each task alone
rc               frozen W_s + W_t (W_t = I)   per task        per task        each task alone
rc_nff           as rc, with NFF              per task        per task        each task alone
rc_ri            frozen U^T W + W_t (= U)     per task        per task        each task alone
rcm              as rc_ri, with NFF           per task        per task        each task alone
===============  ===========================  ==============  ==============  ========================

ASPP, decoder and head are always per task. "rc" starts from the pretrained encoder (W_s = W, W_t = I), where the
reference starts from an RC network pretrained on ImageNet, which is not available here; with RI (rc_ri, rcm) the
filter bank is rotated into the responses' principal directions (:mod:`zippy_tf.multitask.response_init`).
Both reproduce the pretrained encoder exactly at initialisation.

Layer names: shared layers carry the encoder's names (:mod:`zippy_tf.multitask.resnet`), task-specific ones
``f"{task}_{name}"`` (``semseg_layer1_0_conv1``, ``semseg_aspp_b1``, ``semseg_head``); the last layer of a task
model is named after the task. Heads (``TASK_CHANNELS``, from :mod:`zippy_tf.data.multitask`): NYUD edge 1,
semseg 41, normals 3, depth 1 (and sal 1 on generated sets); PASCAL edge 1, semseg 21, human_parts 7, normals 3,
sal 1. Outputs are logits (edge, sal: apply a sigmoid; semseg, parts: argmax),
unit normals, and depth in the label's units.

For CompL, ``deeplab_trunk(backbone="resnet18"|"resnet26", norm="batch"|"group", input_shape=(None, None, 3),
width=1.0, name="trunk") -> keras.Model`` maps an image to the 256-channel stride-4 decoder feature (ResNet-26:
Bottleneck [2, 2, 2, 2]; GroupNorm: 32 groups, 24 in the 48-channel low-level layer), with no head.
"""

import dataclasses
import json
import os

import numpy as np

from zippy_tf._compat import keras
from zippy_tf.data.multitask import DATASET_TASKS, EXTRA_TASKS, check_tasks, output_channels
from zippy_tf.errors import UserError
from zippy_tf.multitask.layers import (
    FilterBank, L2Normalize, ParallelResidualAdapter, ReparamConv2D, ResizeLike, SeriesResidualAdapter, TaskConv2D,
)
from zippy_tf.multitask.resnet import BACKBONES, channels, conv_layer, norm_layer, plain_layers, resnet_body
from zippy_tf.multitask.response_init import response_bases

# {dataset: {task: head channels}} for every task the data readers give (NYUD "sal": generated sets only)
TASK_CHANNELS = {dataset: {task: output_channels(dataset, task) for task in tasks + EXTRA_TASKS[dataset]}
                 for dataset, tasks in DATASET_TASKS.items()}
DEFAULT_INPUT_SHAPES = {"nyud": (425, 560), "pascal": (512, 512)}


@dataclasses.dataclass(frozen=True)
class Variant:
    """How a variant treats the encoder: ``conv`` in {"task", "shared", "frozen", "rc", "series_ra",
    "parallel_ra"}, ``downsample`` and ``norm`` in {"task", "shared", "frozen"}; NFF and RI for "rc"; ``joint``:
    the tasks are trained together (the encoder is shared and trainable, so tasks cannot be added later)."""

    conv: str
    downsample: str = "task"
    norm: str = "task"
    nff: bool = False
    ri: bool = False
    joint: bool = False


VARIANTS = {
    "single_task": Variant("task"),
    "multi_task": Variant("shared", "shared", "shared", joint=True),
    "frozen_encoder": Variant("frozen", "frozen", "frozen"),
    "task_bn": Variant("frozen", "frozen", "task"),
    "series_ra": Variant("series_ra"),
    "parallel_ra": Variant("parallel_ra"),
    "rc": Variant("rc"),
    "rc_nff": Variant("rc", nff=True),
    "rc_ri": Variant("rc", ri=True),
    "rcm": Variant("rc", nff=True, ri=True),
}
ADAPTERS = {"rc": ReparamConv2D, "series_ra": SeriesResidualAdapter, "parallel_ra": ParallelResidualAdapter}


def _choice(kind, value, choices):
    if value not in choices:
        raise UserError(f"unknown {kind} {value!r}; choose one of: {', '.join(choices)}")


@dataclasses.dataclass(frozen=True)
class MultiTaskConfig:
    """What :func:`build_multitask` builds. Defaults follow the reference (ResNet-18, OS16, ASPP rates 6/12/18).

    Args:
        variant: a key of ``VARIANTS``.
        dataset: "nyud" or "pascal" (sets the head channels per task).
        tasks: task names of the dataset (default: its standard tasks), in the order they were added.
        input_shape: (height, width) of the images, or (None, None) for any size (export needs a fixed one);
            default: the dataset's training crop (425×560, 512×512).
        backbone: "resnet18" or "resnet26".
        width: channel multiplier of encoder, ASPP and decoder (1.0 = the reference; small values for tests).
        aspp_rates: dilation rates of the three 3×3 ASPP branches.
    """

    variant: str = "rcm"
    dataset: str = "nyud"
    tasks: tuple = ()
    input_shape: tuple = ()
    backbone: str = "resnet18"
    width: float = 1.0
    aspp_rates: tuple = (6, 12, 18)

    def __post_init__(self):
        _choice("variant", self.variant, VARIANTS)
        _choice("backbone", self.backbone, BACKBONES)
        _choice("dataset", self.dataset, DATASET_TASKS)
        tasks = check_tasks(self.dataset, tuple(self.tasks) or DATASET_TASKS[self.dataset])
        shape = tuple(self.input_shape) or DEFAULT_INPUT_SHAPES[self.dataset]
        if len(shape) != 2:
            raise UserError(f"input_shape {shape} must be (height, width)")
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "input_shape", tuple(None if d is None else int(d) for d in shape))
        object.__setattr__(self, "aspp_rates", tuple(int(r) for r in self.aspp_rates))
        object.__setattr__(self, "width", float(self.width))

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text):
        fields = json.loads(text)
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UserError(f"unknown multi-task config fields {sorted(unknown)}")
        return cls(**fields)

    def head_channels(self, task):
        return TASK_CHANNELS[self.dataset][task]


def _head_init():
    return keras.initializers.RandomNormal(stddev=0.01)


def deeplab_decoder(low_level, features, make_norm, prefix="", width=1.0, aspp_rates=(6, 12, 18)):
    """DeepLabv3+ ASPP (1×1, three dilated 3×3, image pooling; concat; 1×1) and decoder (layer1 → 1×1 to 48,
    concat with the upsampled ASPP output, two 3×3) on ``features`` and ``low_level``: the 256-channel stride-4
    feature. ``make_norm(name, channels)`` gives the normalisation layers; every convolution is bias-free,
    N(0, 0.01)-initialised and followed by norm and ReLU."""
    width_256, width_48 = channels(256, width), channels(48, width)

    def conv_norm_relu(x, name, filters, kernel_size=1, dilation_rate=1):
        x = conv_layer(prefix + name, filters, kernel_size, dilation_rate=dilation_rate,
                       padding="same" if kernel_size > 1 else "valid", initializer=_head_init())(x)
        return keras.layers.ReLU()(make_norm(prefix + name + "_bn", filters)(x))

    branches = [conv_norm_relu(features, "aspp_b0", width_256)]
    branches += [conv_norm_relu(features, f"aspp_b{i}", width_256, 3, rate) for i, rate in enumerate(aspp_rates, 1)]
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(features)
    branches.append(ResizeLike()([conv_norm_relu(pooled, "aspp_pool", width_256), features]))
    x = conv_norm_relu(keras.layers.Concatenate()(branches), "aspp_project", width_256)
    low = conv_norm_relu(low_level, "decoder_low_level", width_48)
    x = keras.layers.Concatenate()([ResizeLike()([x, low]), low])
    x = conv_norm_relu(x, "decoder_conv1", width_256, 3)
    return conv_norm_relu(x, "decoder_conv2", width_256, 3)


def deeplab_trunk(backbone="resnet18", norm="batch", input_shape=(None, None, 3), width=1.0, name="trunk"):
    """A single-task DeepLabv3+ trunk: ``image -> 256-channel stride-4 decoder feature`` (CompL's heads branch from
    it). ``norm="group"`` uses GroupNorm with 32 groups everywhere (24 in the 48-channel low-level layer)."""
    image = keras.Input(tuple(input_shape), name="image")
    low_level, features = resnet_body(image, plain_layers(norm), backbone, width)

    def make_norm(layer_name, count):
        return norm_layer(norm, layer_name, count, groups=24 if layer_name.endswith("low_level_bn") else 32)

    return keras.Model(image, deeplab_decoder(low_level, features, make_norm, width=width), name=name)


class _TaskEncoderLayers:
    """The layer factory of one task's encoder (see :mod:`zippy_tf.multitask.resnet`) for a variant: shared
    layers come from (and go into) ``shared``, task-specific ones are new and named ``f"{task}_{name}"``."""

    def __init__(self, variant, task, shared):
        self.variant, self.task, self.shared = variant, task, shared

    def _shared(self, name, create):
        if name not in self.shared:
            self.shared[name] = create()
        return self.shared[name]

    def __call__(self, kind, name, **spec):
        policy = getattr(self.variant, kind)
        if policy in ("shared", "frozen"):
            return self._shared(name, lambda: plain_layers(trainable=policy == "shared")(kind, name, **spec))
        if policy == "task":
            return plain_layers(prefix=f"{self.task}_")(kind, name, **spec)
        bank = self._shared(name, lambda: FilterBank(name=name, **spec))
        options = {"nff": self.variant.nff} if policy == "rc" else {}
        return ADAPTERS[policy](bank, name=f"{self.task}_{name}", **options)


class MultiTaskNetwork:
    """A task-conditional multi-task network: one Keras model per task, sharing layers as its variant says.

    Attributes:
        config: the :class:`MultiTaskConfig` (its ``tasks`` grow with :func:`add_task`).
        models: {task: keras.Model}, image -> that task's prediction.
        shared_layers: {name: layer} of the layers shared by the tasks (filter banks, shared encoder layers).
        image: the Keras input tensor every task model starts from.
    """

    def __init__(self, config):
        self.config = config
        self.variant = VARIANTS[config.variant]
        self.image = keras.Input((*config.input_shape, 3), name="image")
        self.shared_layers = {}
        self.models = {}
        self._encoder_outputs = None  # a fully shared encoder is applied once, so the joint model runs it once

    @property
    def tasks(self):
        return tuple(self.models)

    def __getitem__(self, task):
        if task not in self.models:
            raise UserError(f"unknown task {task!r}; this network has: {', '.join(self.models)}")
        return self.models[task]

    def joint_model(self):
        """One model predicting every task: image -> {task: prediction} (joint training, saving, evaluation)."""
        return keras.Model(self.image, {task: model.output for task, model in self.models.items()}, name="joint")

    def _build_task(self, task):
        config = self.config
        shared = all(getattr(self.variant, kind) in ("shared", "frozen") for kind in ("conv", "downsample", "norm"))
        if shared and self._encoder_outputs is not None:
            low_level, features = self._encoder_outputs
        else:
            make = _TaskEncoderLayers(self.variant, task, self.shared_layers)
            low_level, features = resnet_body(self.image, make, config.backbone, config.width)
            self._encoder_outputs = (low_level, features) if shared else None

        def make_norm(name, count):
            return norm_layer("batch", name, count)

        x = deeplab_decoder(low_level, features, make_norm, f"{task}_", config.width, config.aspp_rates)
        x = keras.layers.Conv2D(config.head_channels(task), 1, name=f"{task}_head", kernel_initializer=_head_init())(x)
        if task == "normals":
            x = ResizeLike()([x, self.image])
            output = L2Normalize(name=task)(x)
        else:
            output = ResizeLike(name=task)([x, self.image])
        self.models[task] = keras.Model(self.image, output, name=task)
        return self.models[task]


def _encoder_layer(encoder, name, layer):
    """``encoder``'s layer ``name``, checked to have the weight shapes of ``layer`` (its counterpart here)."""
    fix = "pass a model from zippy_tf.multitask.resnet.resnet() with the network's backbone and width"
    try:
        source = encoder.get_layer(name)
    except ValueError:
        raise UserError(f"encoder {encoder.name!r} has no layer {name!r}; {fix}") from None
    target = layer.filter_bank.weights if isinstance(layer, TaskConv2D) else layer.weights
    expected, found = [tuple(w.shape) for w in target], [tuple(w.shape) for w in source.weights]
    if expected != found:
        raise UserError(f"encoder layer {name!r} has weights of shapes {found}, the network needs {expected}; {fix}")
    return source


def _initialize_task(network, task, encoder, bases=None, set_banks=False):
    """Copies ``encoder``'s weights into ``task``'s encoder path; filter banks get W (or Uᵀ·W with ``bases``) when
    ``set_banks``, and each modulator the W_t with W_t·W_s = W (least squares: exact for full-rank banks)."""
    model = network[task]
    for layer in model.layers:
        name = layer.name[len(task) + 1:] if layer.name.startswith(f"{task}_") else layer.name
        if not layer.weights or name.startswith(("aspp", "decoder", "head")) or layer.name == task:
            continue
        source = _encoder_layer(encoder, name, layer)
        if not isinstance(layer, TaskConv2D):
            if layer.trainable or set_banks:  # shared frozen layers are set once, at build time
                layer.set_weights(source.get_weights())
            continue
        kernel = source.kernel.numpy()
        bank = layer.filter_bank
        if set_banks:
            basis = bases[name][0] if bases else np.eye(kernel.shape[-1], dtype=np.float32)
            bank.kernel.assign(np.tensordot(kernel, basis, axes=([3], [0])))
        if isinstance(layer, ReparamConv2D):
            shared = bank.kernel.numpy().reshape(-1, bank.filters)
            layer.set_modulator(np.linalg.lstsq(shared, kernel.reshape(-1, bank.filters), rcond=None)[0])


def build_multitask(config, encoder=None, ri_images=None):
    """Builds the variant ``config.variant`` of task-conditional DeepLabv3+ for ``config.tasks``.

    Args:
        config: a :class:`MultiTaskConfig`.
        encoder: a pretrained plain encoder from :func:`zippy_tf.multitask.resnet.resnet` (same backbone and width);
            its weights initialise every task's encoder path (ASPP, decoder and heads start from N(0, 0.01)).
            None: Keras's initialisers (filter banks random and frozen), for tests or before loading weights.
        ri_images: (N, H, W, 3) float images (normalised like the training images) for Response Initialization;
            required with ``encoder`` by rc_ri and rcm.

    Returns:
        a :class:`MultiTaskNetwork`.
    """
    variant = VARIANTS[config.variant]
    if variant.ri and encoder is not None and ri_images is None:
        raise UserError(f"variant {config.variant!r} uses Response Initialization: pass ri_images= (images to "
                        "collect the encoder's responses on) with encoder=")
    network = MultiTaskNetwork(config)
    for task in config.tasks:
        network._build_task(task)
    if encoder is not None:
        bases = None
        if variant.ri:
            names = [layer.filter_bank.name for layer in network[config.tasks[0]].layers
                     if isinstance(layer, TaskConv2D)]
            bases = response_bases(encoder, ri_images, names)
        for index, task in enumerate(config.tasks):
            _initialize_task(network, task, encoder, bases, set_banks=index == 0)
    return network


def add_task(network, task, encoder=None):
    """Adds ``task`` to a built network, leaving every other task's layers untouched; returns the new task's model
    (``network`` is updated in place: ``network.config.tasks`` and ``network.models``).

    ``encoder`` (the pretrained ResNet the network was built from) initialises the new task's encoder path so that
    it computes that encoder again: per-task BatchNorms and downsample convolutions are copied, and each modulator
    is set to the W_t with W_t·W_s = W, whatever basis the frozen bank is in (RI or not). Without it the new path
    starts from Keras's initialisers (modulators: identity; adapters: zero).
    """
    if task in network.models:
        raise UserError(f"task {task!r} is already in the network; add a task that is not one of: "
                        f"{', '.join(network.models)}")
    if network.variant.joint:
        raise UserError(f"variant {network.config.variant!r} trains one shared encoder for all tasks, so a new task "
                        "would change the others; add tasks to a rcm, rc*, series_ra, parallel_ra, task_bn, "
                        "frozen_encoder or single_task network")
    previous = network.config
    network.config = dataclasses.replace(previous, tasks=previous.tasks + (task,))
    model = network._build_task(task)
    if encoder is not None:
        try:
            _initialize_task(network, task, encoder)
        except UserError:  # leave the network as it was
            del network.models[task]
            network.config = previous
            raise
    return model


def _counted(variable):
    """Parameters, not statistics: BatchNorm moving means and variances are not counted."""
    return not variable.name.split("/")[-1].startswith("moving_")


def parameter_counts(network):
    """{"total", "shared", "per_task": {task: n}} parameters (BatchNorm moving statistics excluded); a shared
    weight (filter bank, shared encoder layer) is counted once, in "shared"."""
    shared = {id(v): v for layer in network.shared_layers.values() for v in layer.weights if _counted(v)}
    per_task = {task: sum(int(np.prod(v.shape)) for v in model.weights if _counted(v) and id(v) not in shared)
                for task, model in network.models.items()}
    shared_count = sum(int(np.prod(v.shape)) for v in shared.values())
    return {"total": shared_count + sum(per_task.values()), "shared": shared_count, "per_task": per_task}


CONFIG_FILE = "config.json"


def save_network(network, directory):
    """Writes ``config.json`` and one ``{task}.weights.h5`` per task (each holds the shared weights too, so a single
    task's file is a complete single-task model)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, CONFIG_FILE), "w") as f:
        f.write(network.config.to_json())
    for task, model in network.models.items():
        model.save_weights(os.path.join(directory, f"{task}.weights.h5"))


def load_network(directory):
    """The network saved by :func:`save_network` in ``directory``."""
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(path):
        raise UserError(f"no {CONFIG_FILE} in {directory}; pass a directory written by save_network")
    with open(path) as f:
        network = build_multitask(MultiTaskConfig.from_json(f.read()))
    for task, model in network.models.items():
        weights = os.path.join(directory, f"{task}.weights.h5")
        if not os.path.isfile(weights):
            raise UserError(f"missing {weights} for task {task!r}; the directory is incomplete")
        try:
            model.load_weights(weights)
        except (ValueError, OSError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise UserError(f"{weights} does not fit task {task!r} of {path} ({first}); keep each directory's "
                            "weights with its own config.json") from None
    return network


__all__ = ["DEFAULT_INPUT_SHAPES", "MultiTaskConfig", "MultiTaskNetwork", "TASK_CHANNELS", "VARIANTS", "Variant",
           "add_task", "build_multitask", "deeplab_decoder", "deeplab_trunk", "load_network", "parameter_counts",
           "save_network"]
