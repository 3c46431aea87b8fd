"""Flag helpers shared by the verbs."""

import sys

from zippy_tf.errors import UserError


def parse_resolution(text):
    """"320x240" (width x height, as the HPatches tables write it) → (height, width)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--resolution {text!r} is not WIDTHxHEIGHT (e.g. 320x240)")
    if width <= 0 or height <= 0:
        raise UserError(f"--resolution {text!r} must be positive")
    return height, width


def define_model_flags(fv, default_model=None):
    from absl import flags

    flags.DEFINE_string("model", default_model, "model name (see `zippy-tf info --list`)", flag_values=fv)
    flags.DEFINE_string("config", None, "JSON list of macro-blocks (zippypoint family only)", flag_values=fv)
    flags.DEFINE_string("weights", None, "weights file (.h5); default: the shipped weights in models/, if any",
                        flag_values=fv)
    flags.DEFINE_string("resolution", "320x240", "input WIDTHxHEIGHT, multiples of 8", flag_values=fv)


def build_from_flags(fv):
    from zippy_tf.presets import build_model

    if not fv.model:
        raise UserError("--model is required (see `zippy-tf info --list` for names)")
    height, width = parse_resolution(fv.resolution)
    return build_model(fv.model, config=fv.config, weights=fv.weights, input_shape=(height, width, 3))


def define_refine_radius(fv):
    """--refine_radius of the keypoint verbs (``zippy_tf.keypoints.corners.refine_to_corners``)."""
    from absl import flags

    flags.DEFINE_integer("refine_radius", 0, "move a network's keypoints onto the strongest Shi-Tomasi corner "
                         "within this many px (our addition, not the thesis's; 4 = half a cell); 0 keeps them",
                         lower_bound=0, flag_values=fv)


def progress(message):
    print(message, file=sys.stderr, flush=True)


__all__ = ["build_from_flags", "define_model_flags", "define_refine_radius", "parse_resolution", "progress"]
