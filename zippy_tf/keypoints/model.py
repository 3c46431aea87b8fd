"""Keypoint detector-descriptor networks built from a list of macro-blocks: ZippyPoint and the KP2D baseline."""

import os

from zippy_tf._compat import keras
from zippy_tf.errors import UserError
from zippy_tf.io import is_hdf5, read_file, readable_weights
from zippy_tf.keypoints.configs import KP2D, KP2D_SKIP, ZIPPYPOINT, ZIPPYPOINT_INT8
from zippy_tf.keypoints.layers import BorderMask, CellToPixel
from zippy_tf.quantization.blocks import build_macro_block, conv_unit
from zippy_tf.quantization.layers import DepthToSpace
from zippy_tf.quantization.macro_block import MacroBlock, blocks_from_json

NAMED_CONFIGS = {"zippypoint": ZIPPYPOINT, "int8": ZIPPYPOINT_INT8, "kp2d": KP2D}
CELL = 8  # the score / location maps are at 1/8 resolution, the dense descriptor map at 1/4
HEADS = ("score_head", "location_head", "descriptor_head")
# Image normalisation of KP2D / ZippyPoint: (x / 255 − 0.5) · 0.225 (a product, as in the reference code).
NORM_SCALE, NORM_OFFSET = 0.225 / 255.0, -0.5 * 0.225


def as_blocks(config):
    """Accepts a list of MacroBlock / dicts, a path to a JSON file holding one, or a named config."""
    if isinstance(config, str) and config in NAMED_CONFIGS:
        return list(NAMED_CONFIGS[config])
    if isinstance(config, (str, os.PathLike)):
        if not os.path.isfile(config):
            raise UserError(f"config file {str(config)!r} does not exist; pass a JSON list of macro-blocks")
        return blocks_from_json(read_file(config, "config file"))
    return [b if isinstance(b, MacroBlock) else MacroBlock.from_dict(b) for b in config]


def _check(blocks):
    names = {b.name: b for b in blocks}
    missing = [n for n in (*HEADS, "decoder") if n not in names]
    if missing:
        raise UserError(f"keypoint config lacks the blocks {missing}; it needs a 'decoder' block and the three heads")
    if sum(b.role == "pool" for b in blocks) != 3:
        raise UserError("keypoint config needs exactly three pooling blocks (the score map is at 1/8 resolution)")
    return names


def keypoint_network(blocks, *, input_shape=(240, 320, 3), descriptor_skip=None, name="keypoint_net"):
    """The dense network: image (float, [0, 255]) → {"score", "location", "descriptor"} maps.

    score: (B, H/8, W/8, 1) in [0, 1], outer ring of cells zeroed; location: (B, H/8, W/8, 2) keypoint (x, y) in
    input pixels; descriptor: (B, H/4, W/4, D) logits. Keypoint selection, descriptor sampling and binarisation
    are post-processing (``zippy_tf.keypoints.postprocess``), so the exported graph holds only dense ops.
    """
    blocks = as_blocks(blocks)
    by_name = _check(blocks)
    input_shape = (None, None, 3) if input_shape is None else tuple(input_shape)
    h, w = input_shape[0], input_shape[1]
    if (h is not None and h % CELL) or (w is not None and w % CELL):
        raise UserError(f"input_shape={input_shape} (height {h}, width {w}) is not a multiple of {CELL} in both sides; "
                        "pass None for any size, or pad the image (see postprocess.pad_image)")
    image = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(NORM_SCALE, NORM_OFFSET, name="normalize")(image)
    skip = None
    for block in blocks:
        if block.role in ("first_conv", "encoder", "pool"):
            x = build_macro_block(block, x)
            if block.name == descriptor_skip:
                skip = x
    if descriptor_skip is not None and skip is None:
        raise UserError(f"descriptor_skip {descriptor_skip!r} names no encoder block of this config")

    dec = by_name["decoder"]

    def unit(t, filters, activation, unit_name):
        return conv_unit(t, dec.precision, filters, dec.kernel_size, activation=activation, name=unit_name,
                         qmax=dec.qmax)

    score = build_macro_block(by_name["score_head"], unit(x, dec.filters, dec.activation, "decoder_score"))
    location = build_macro_block(by_name["location_head"], unit(x, dec.filters, dec.activation, "decoder_location"))
    d = unit(x, dec.filters, dec.activation, "decoder_desc_a")
    d = unit(d, 2 * dec.filters, None, "decoder_desc_b")
    d = DepthToSpace(2, name="decoder_desc_shuffle")(d)  # 1/8 → 1/4 resolution
    if skip is not None:
        if skip.shape[1:3] != d.shape[1:3]:
            raise UserError(f"descriptor_skip {descriptor_skip!r} is not at 1/4 resolution")
        d = keras.layers.Concatenate(name="decoder_desc_skip")([d, skip])
    d = unit(d, dec.filters, dec.activation, "decoder_desc_c")
    descriptor = build_macro_block(by_name["descriptor_head"], d)
    outputs = {
        "score": BorderMask(name="score")(score),
        "location": CellToPixel(CELL, name="location")(location),
        # output names = layer names (they name the flatbuffer's signature outputs too)
        "descriptor": keras.layers.Activation("linear", name="descriptor")(descriptor),
    }
    return keras.Model(image, outputs, name=name)


def zippypoint(*, config=None, input_shape=(240, 320, 3), weights=None, name="zippypoint"):
    """ZippyPoint (thesis ch. 5): mixed-precision encoder, Int8 decoder, binary descriptors via Bin.Norm.

    Args:
        config: list of :class:`MacroBlock` (or dicts, a JSON path, or "int8"); default: the thesis's config.
        input_shape: (H, W, 3) with H, W multiples of 8; None (or None sides) for any size.
        weights: optional path to weights saved with ``model.save_weights`` (kept as ``model.weights_path``).
    """
    model = keypoint_network(ZIPPYPOINT if config is None else config, input_shape=input_shape, name=name)
    return load_weights(model, weights)


def kp2d_baseline(*, input_shape=(240, 320, 3), weights=None, name="kp2d"):
    """KP2D (Tang et al., ICLR 2020) in full precision: the baseline ZippyPoint is derived from; arguments as
    :func:`zippypoint`."""
    model = keypoint_network(KP2D, input_shape=input_shape, descriptor_skip=KP2D_SKIP, name=name)
    return load_weights(model, weights)


def load_weights(model, weights):
    """Loads ``weights`` (a path, or None for none) into ``model`` and records the path as ``model.weights_path``, so
    a detector can say which weights it runs."""
    model.weights_path = None if weights is None else str(weights)
    if weights is None:
        return model
    if not os.path.exists(weights) and not os.path.exists(f"{weights}.index"):
        raise UserError(f"weights={str(weights)!r} does not exist; pass the path of a weights file")
    try:
        with readable_weights(weights) as readable:
            model.load_weights(readable)
    except UserError:
        raise
    except (ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"weights {weights!r} do not fit model {model.name!r} ({first[:160]}); "
                        "pass weights saved from the same architecture/config")
    return model


def load_matching_layers(model, weights):
    """Loads the layers of ``weights`` (.h5) whose name and weight shapes match a layer of ``model``; the others
    keep their initial values. Returns the names of the layers loaded.

    The start of a precision change: a block switched from Int8 to Bin-R keeps its BN and residual layers' names,
    so it starts from the trained parent wherever the shapes agree.
    """
    import h5py

    if not os.path.isfile(weights) or not is_hdf5(weights):
        raise UserError(f"weights file {weights!r} is not an .h5 file; pass weights saved by `zippy-tf train`")
    loaded = []
    with readable_weights(weights) as readable, h5py.File(readable, "r") as f:
        for layer in model.layers:
            if not layer.weights or layer.name not in f:
                continue
            group = f[layer.name]
            stored = [group[n.decode() if isinstance(n, bytes) else n][()] for n in group.attrs["weight_names"]]
            if [w.shape for w in stored] == [tuple(w.shape) for w in layer.weights]:
                layer.set_weights(stored)
                loaded.append(layer.name)
    if not loaded:
        raise UserError(f"no layer of {weights!r} matches model {model.name!r}; pass weights of the same family")
    return loaded


__all__ = ["as_blocks", "keypoint_network", "kp2d_baseline", "load_matching_layers", "load_weights", "zippypoint"]
