"""Siamese tracker networks: E.T.Track and its two baselines, built as a template branch and a search branch.

The interface the online tracker (and the exported flatbuffers) rely on:

* ``network.template_net(template)``: template crops (B, 127, 127, 3) float32 RGB in [0, 255] → template features
  (B, 8, 8, 96) (LT-Mobile features after the neck's template BatchNorm). Run once, on the first frame; cache it.
* ``network.search_net([search, features])``: search crops (B, 256, 256, 3) float32 RGB in [0, 255] and the cached
  features → ``{"cls": (B, 16, 16, 1) logits, "reg": (B, 16, 16, 4)}``. ``reg`` holds the distances (l, t, r, b)
  in search-crop pixels from grid point (i, j) to the box sides; grid point j lies at x = j·16 + 128 − 16·(16 // 2)
  (see :func:`grid_points`). Apply a sigmoid to ``cls`` for scores.

Input names (also the flatbuffer signature names): "template", "search", "template_features"; outputs
"template_features", "cls", "reg". Other sizes work too (e.g. search 288 → 18×18 grid): see ``network.output_size``.

The branches share the LT-Mobile backbone's weights but not its BatchNorm layers (each branch keeps its own statistics
and affine parameters: one shared set would blend template and search statistics, so deployment would normalise
differently from training; see ``zippy_tf.tracking.backbone.branch_twin``).

Heads (thesis §4.3.2, reference code): neck = per-branch BatchNorm, pixel-wise correlation, channel attention,
1×1 conv to 128; classification tower 6 modules at 256 channels, regression tower 8 modules at 192 channels. The first
and last module of each tower are separable convolutions; the inner ones are Exemplar Transformers ("exemplar",
E.T.Track), separable convolutions ("conv", LightTrack-Mobile) or standard self-attention transformers
("attention").
"""

import contextlib
import dataclasses
import os

import numpy as np

from zippy_tf._compat import keras, tf
from zippy_tf.errors import UserError
from zippy_tf.io import readable_weights, save_float16_weights
from zippy_tf.tracking.attention import SelfAttentionTransformer
from zippy_tf.tracking.backbone import STRIDE, branch_twin, lt_mobile
from zippy_tf.tracking.exemplar import ExemplarAttention, ExemplarTransformer
from zippy_tf.tracking.layers import ChannelAttention, PixelwiseCorrelation, batch_norm

HEADS = ("exemplar", "conv", "attention")
NECK_CHANNELS = 128
CLS_CHANNELS, CLS_KERNELS = 256, (5, 5, 3, 3, 3, 3)
REG_CHANNELS, REG_KERNELS = 192, (3, 3, 3, 3, 3, 5, 5, 5)
CLS_SCALE = 0.1  # the reference scales the classification logits down by 10
FFN_DIM = 1024  # the reference's FFN width (the thesis gives none); the ettrack-s preset uses a narrower one


@dataclasses.dataclass
class TrackerNetwork:
    """The two branches of a Siamese tracker and the configuration they were built from.

    Attributes:
        template_net: template image → template features (run once per sequence).
        search_net: [search image, template features] → {"cls", "reg"} (run every frame).
        config: the keyword arguments of :func:`build_tracker_network` (JSON-safe).
        weights_path: the weights file last loaded (None: as initialised).
    """

    template_net: keras.Model
    search_net: keras.Model
    config: dict
    weights_path: str = None

    @property
    def stride(self):
        return STRIDE

    @property
    def output_size(self):
        """Side of the cls / reg grid (16 for a 256 search image)."""
        return int(self.search_net.outputs[0].shape[1])

    def pair_model(self):
        """One functional model [template, search] → {"cls", "reg"} over the same layers (for training and saving)."""
        template = keras.Input(self.template_net.inputs[0].shape[1:], name="template")
        search = keras.Input(self.search_net.inputs[0].shape[1:], name="search")
        outputs = self.search_net([search, self.template_net(template)])
        return keras.Model([template, search], outputs, name=f"{self.search_net.name}_pair")

    @contextlib.contextmanager
    def _every_layer_trainable(self):
        """Weight files list each branch's trainable weights before the others, so freezing layers (e.g.
        ``freeze_batch_norm`` for fine-tuning) would reorder them: files are written and read with every layer
        trainable, and the frozen ones are frozen again afterwards."""
        frozen = [m for m in self.pair_model().submodules if isinstance(m, keras.layers.Layer) and not m.trainable]
        try:
            for layer in frozen:
                layer.trainable = True
            yield
        finally:
            for layer in frozen:
                layer.trainable = False

    def save_weights(self, path, *, float16=False):
        """Writes both branches' weights to one .h5 file (the shared backbone weights included).

        With ``float16=True`` the weights are stored as float16 (half the file; BatchNorm statistics stay float32);
        :meth:`load_weights` reads either into the float32 network.
        """
        with self._every_layer_trainable():
            self.pair_model().save_weights(path)
        if float16:
            save_float16_weights(path, path)

    def load_weights(self, path):
        if not os.path.isfile(path):
            raise UserError(f"weights={str(path)!r} does not exist; pass the path of a tracker weights file")
        try:
            with self._every_layer_trainable(), readable_weights(path) as readable:
                self.pair_model().load_weights(readable)
        except (ValueError, OSError, KeyError) as e:
            saved = saved_ffn_dim(path)
            if saved is not None and self.config["head"] != "conv" and saved != self.config["ffn_dim"]:
                raise UserError(f"tracker weights {str(path)!r} were saved for ffn_dim {saved}, this tracker has "
                                f"ffn_dim {self.config['ffn_dim']}; pass the tracker built with ffn_dim {saved} "
                                f"({_presets_with_ffn_dim(saved)}), or narrow the weights with "
                                "zippy_tf.tracking.compress.narrow_ffn") from None
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"tracker weights {path!r} do not fit the {self.config['head']!r} head ({first[:160]}); "
                            "pass weights saved from the same tracker (ettrack, ettrack-s, lighttrack or attention)")
        self.weights_path = str(path)
        return self


def saved_ffn_dim(path):
    """The FFN width a tracker weights file was saved for (its first FFN's hidden bias), or None: no transformer
    head, or not a readable weights file."""
    import h5py

    widths = []
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, item: widths.append(item.shape[0])
                         if name.endswith("feed_forward/linear1/bias:0") and isinstance(item, h5py.Dataset) else None)
    except OSError:
        return None
    return int(widths[0]) if widths else None


def _presets_with_ffn_dim(ffn_dim):
    """The tracking presets built with FFN width ``ffn_dim`` ("no preset" if none), to name in an error."""
    from zippy_tf.presets import PRESETS

    names = [p.name for p in PRESETS.values() if p.task == "tracking" and p.builder.endswith(":ettrack")
             and p.kwargs.get("ffn_dim", FFN_DIM) == ffn_dim]
    return "preset " + " or ".join(names) if names else "no preset"


def grid_points(output_size, search_size, stride=STRIDE):
    """Pixel coordinate of each grid cell along one axis of the search crop (the same for x and y)."""
    return (np.arange(output_size) - output_size // 2) * stride + search_size // 2


def _separable(x, filters, kernel_size, name):
    """LightTrack's separable module: depthwise k×k → pointwise 1×1 → BN → ReLU (no BN between the two convs)."""
    x = keras.layers.DepthwiseConv2D(kernel_size, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(batch_norm(f"{name}_bn")(x))


def _tower(x, head, filters, kernels, name, options):
    x = _separable(x, filters, kernels[0], f"{name}0")
    for i, kernel_size in enumerate(kernels[1:-1], start=1):
        if head == "conv":
            x = _separable(x, filters, kernel_size, f"{name}{i}")
        elif head == "exemplar":
            x = ExemplarTransformer(kernel_size, options["num_exemplars"], ffn_dim=options["ffn_dim"],
                                    dropout=options["dropout"], depthwise_form=options["depthwise_form"],
                                    name=f"{name}{i}_exemplar")(x)
        else:
            x = SelfAttentionTransformer(options["num_heads"], options["ffn_dim"], options["dropout"],
                                         name=f"{name}{i}_attention")(x)
    return _separable(x, filters, kernels[-1], f"{name}{len(kernels) - 1}")


def build_tracker_network(*, head="exemplar", template_size=127, search_size=256, weights=None, num_exemplars=4,
                          num_heads=8, ffn_dim=FFN_DIM, dropout=0.1, depthwise_form="output_sum", batch_size=None,
                          name=None):
    """Builds a tracker's template and search branches around one LT-Mobile backbone.

    The branches share the backbone's convolution weights; each keeps its own BatchNorm layers (statistics and affine
    parameters, 15.7 k parameters): see :func:`~zippy_tf.tracking.backbone.branch_twin`. Weight files written before
    the split load unchanged, with the template BatchNorm starting as a copy of the shared one;
    :func:`~zippy_tf.tracking.training.estimate_batch_norm_statistics` then gives it the template's own statistics.

    Args:
        head: "exemplar" (E.T.Track), "conv" (LightTrack-Mobile) or "attention" (standard self-attention).
        template_size: template crop side (127 at test time; 128 gives the same 8×8 features).
        search_size: search crop side (256, or 288 for small targets).
        weights: optional .h5 file written by :meth:`TrackerNetwork.save_weights`.
        num_exemplars: E of the Exemplar Transformers.
        num_heads: heads of the self-attention baseline.
        ffn_dim, dropout: FFN width and dropout of both transformer heads.
        depthwise_form: how the Exemplar Attention applies its depthwise kernels: "output_sum" (Eq. 4.5, for
            training) or "mixed_kernel" (Eq. 4.6, the deployment form; see :func:`deployment_form`).
        batch_size: a static batch size of the inputs (None: any; the deployment form uses 1).
        name: model name prefix (default: the head's tracker name).

    Returns:
        A :class:`TrackerNetwork`.
    """
    if head not in HEADS:
        raise UserError(f"unknown tracker head {head!r}; choose one of: {', '.join(HEADS)}")
    for what, size in (("template_size", template_size), ("search_size", search_size)):
        if size < STRIDE * 2:
            raise UserError(f"{what} {size} is too small; use at least {STRIDE * 2} pixels (127 / 256 by default)")
    config = dict(head=head, template_size=template_size, search_size=search_size, num_exemplars=num_exemplars,
                  num_heads=num_heads, ffn_dim=ffn_dim, dropout=dropout, depthwise_form=depthwise_form,
                  batch_size=batch_size)
    name = name or {"exemplar": "ettrack", "conv": "lighttrack", "attention": "attention_tracker"}[head]
    backbone = lt_mobile(name="backbone")
    template_backbone = branch_twin(backbone, "template_", name="template_backbone")

    template = keras.Input((template_size, template_size, 3), batch_size, name="template")
    # The template's neck BatchNorm is folded into the cached branch: it depends on the template only.
    template_net = keras.Model(template, batch_norm("template_features")(template_backbone(template)),
                               name=f"{name}_template")

    search = keras.Input((search_size, search_size, 3), batch_size, name="search")
    features = keras.Input(template_net.outputs[0].shape[1:], batch_size, name="template_features")
    x = batch_norm("search_norm")(backbone(search))
    x = PixelwiseCorrelation(name="correlation")([x, features])
    x = ChannelAttention(1.0, name="channel_attention")(x)
    x = keras.layers.Conv2D(NECK_CHANNELS, 1, name="adjust")(x)
    cls = _tower(x, head, CLS_CHANNELS, CLS_KERNELS, "cls", config)
    cls = keras.layers.Conv2D(1, 3, padding="same", name="cls_out")(cls)
    reg = _tower(x, head, REG_CHANNELS, REG_KERNELS, "reg", config)
    reg = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="reg_out")(reg)
    outputs = {"cls": keras.layers.Rescaling(CLS_SCALE, name="cls")(cls),
               "reg": keras.layers.Rescaling(float(STRIDE), name="reg")(reg)}  # distances in crop pixels
    search_net = keras.Model([search, features], outputs, name=f"{name}_search")
    network = TrackerNetwork(template_net, search_net, config)
    return network.load_weights(weights) if weights is not None else network


def deployment_form(network):
    """The deployed form of a tracker network: batch 1, and every Exemplar Attention with its depthwise kernels
    mixed by the attention weights before ONE depthwise convolution (thesis Eq. 4.6, ``depthwise_form=
    "mixed_kernel"``) instead of E convolutions' outputs summed (Eq. 4.5). Same weights, same outputs (up to float
    summation order); E× fewer depthwise MACs. Export uses it (:func:`~zippy_tf.tracking.export.export_tracker`).

    Returns:
        a new :class:`TrackerNetwork` (``network`` is not changed).
    """
    deployed = build_tracker_network(**{**network.config, "depthwise_form": "mixed_kernel", "batch_size": 1},
                                     name=network.search_net.name[: -len("_search")])
    with network._every_layer_trainable():
        deployed.pair_model().set_weights(network.pair_model().get_weights())
    deployed.weights_path = network.weights_path
    return deployed


def ettrack(*, weights=None, **config):
    """E.T.Track: LT-Mobile with Exemplar Transformer heads (thesis ch. 4)."""
    return build_tracker_network(head="exemplar", weights=weights, **config)


def lighttrack(*, weights=None, **config):
    """LightTrack-Mobile: the convolutional-head baseline ("Conv" in thesis Table 4.7)."""
    return build_tracker_network(head="conv", weights=weights, **config)


def attention_tracker(*, weights=None, **config):
    """The standard multi-head self-attention head baseline ("Standard" in thesis Table 4.11)."""
    return build_tracker_network(head="attention", weights=weights, **config)


def _flops(model):
    """Floating-point operations of one batch-1 forward pass, as counted by TensorFlow's profiler."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    specs = [tf.TensorSpec((1, *t.shape[1:]), t.dtype) for t in model.inputs]
    concrete = tf.function(lambda *x: model(list(x) if len(x) > 1 else x[0], training=False))
    frozen = convert_variables_to_constants_v2(concrete.get_concrete_function(*specs))
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(frozen.graph.as_graph_def(), name="")
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def _exemplar_extra_macs(search_net):
    """MACs spent beyond mixing both kernels first: (E − 1) × each Exemplar Attention's depthwise conv in the
    ``"output_sum"`` form (E fixed convs summed), and (E − 1) × its pointwise conv in the ``"conv_sum"`` form (the
    default ``"matmul"`` form already applies one mixed pointwise kernel)."""
    extra = 0
    for layer in search_net.layers:
        if isinstance(layer, ExemplarTransformer):
            attention: ExemplarAttention = layer.attend
            h, w, c = layer.input_shape[1:]
            per_exemplar = ((c * attention.kernel_size ** 2 if attention.depthwise_form == "output_sum" else 0)
                            + (c * c if attention.pointwise_form == "conv_sum" else 0))
            extra += (attention.num_exemplars - 1) * h * w * per_exemplar
    return extra


def complexity(network):
    """Parameters and multiply-accumulates of a tracker, per frame with the template features cached.

    MACs are TensorFlow-profiler FLOPs / 2 of the graphs as built (so they include element-wise ops; Exemplar
    Attention with its pointwise kernels mixed per sample and applied by one matmul, and, in the training form, its
    depthwise convs as E× fixed convs summed); ``search_macs_mixed_kernels`` is what mixing the depthwise kernels
    too costs, the form that exports (:func:`deployment_form`), comparable to the reference's analytic 1.66 GMACs for
    E.T.Track.

    ``params`` counts every trainable weight once, the template branch's own BatchNorm affine parameters
    (``template_batch_norm_params``) included; ``params − template_batch_norm_params`` counts the backbone once, as
    the reference's 9.05 M does. At export BatchNorm folds into the convolutions either way.
    """
    weights = {id(w): w for net in (network.template_net, network.search_net) for w in net.weights}
    trainable = {id(w) for net in (network.template_net, network.search_net) for w in net.trainable_weights}
    count = lambda ids: int(sum(np.prod(weights[i].shape) for i in ids))  # noqa: E731
    backbone = {id(w) for w in network.search_net.get_layer("backbone").trainable_weights}
    search_macs = _flops(network.search_net) // 2
    return {
        "params": count(trainable),
        "params_with_statistics": count(weights),
        "backbone_params": count(backbone),
        "template_batch_norm_params": count({id(w) for w in network.template_net.get_layer("template_backbone")
                                             .trainable_weights} - backbone),
        "template_macs": _flops(network.template_net) // 2,
        "search_macs": search_macs,
        "search_macs_mixed_kernels": search_macs - _exemplar_extra_macs(network.search_net),
    }


def compare_complexity(**config):
    """:func:`complexity` of E.T.Track and both baselines built with the same ``config`` (sizes), by preset name.

    Measured at the reference sizes (template 127, search 256), params with the backbone counted once: ettrack
    9.05 M params, 1.71 GMACs as built (1.68 G with the depthwise kernels mixed as well, as exported; 2.08 G with E×
    pointwise convs, the ``pointwise_form="conv_sum"`` form; reference 9.05 M / 1.66 G); lighttrack 1.97 M / 0.53 G;
    attention 7.87 M / 2.34 G; template branch 0.087 G each; each + 15.7 k for the template branch's BatchNorm.
    """
    builders = {"ettrack": ettrack, "lighttrack": lighttrack, "attention": attention_tracker}
    return {name: complexity(builder(**config)) for name, builder in builders.items()}


__all__ = ["FFN_DIM", "HEADS", "TrackerNetwork", "attention_tracker", "build_tracker_network", "compare_complexity",
           "complexity", "deployment_form", "ettrack", "grid_points", "lighttrack", "saved_ffn_dim"]
