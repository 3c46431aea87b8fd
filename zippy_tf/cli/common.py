"""Flag helpers shared by the verbs."""

import os

from zippy_tf.errors import UserError
from zippy_tf.runtime import parse_resolution, progress


def define_model_flags(fv, default_model=None):
    from absl import flags

    flags.DEFINE_string("model", default_model, "model name (see `zippy-tf info --list`)", flag_values=fv)
    flags.DEFINE_string("config", None, "JSON list of macro-blocks (zippypoint family only)", flag_values=fv)
    flags.DEFINE_string("weights", None, "weights file (.h5); default: the shipped weights in models/, if any",
                        flag_values=fv)
    flags.DEFINE_string("resolution", "320x240", "input WIDTHxHEIGHT, multiples of 8", flag_values=fv)


def build_from_flags(fv):
    from zippy_tf.presets import build_model, get_preset

    if not fv.model:
        raise UserError("--model is required (see `zippy-tf info --list` for names)")
    # the keypoint networks work on 8x8 cells; trackers have fixed template and search sizes
    height, width = parse_resolution(fv.resolution, multiple_of=8 if get_preset(fv.model).task == "keypoints" else 1)
    return build_model(fv.model, config=fv.config, weights=fv.weights, input_shape=(height, width, 3))


def define_refine_radius(fv):
    """--refine_radius of the keypoint verbs (``zippy_tf.keypoints.corners.refine_to_corners``)."""
    from absl import flags

    flags.DEFINE_integer("refine_radius", 0, "move a network's keypoints onto the strongest Shi-Tomasi corner "
                         "within this many px (our addition, not the thesis's; 4 = half a cell); 0 keeps them",
                         lower_bound=0, flag_values=fv)


def starting_fresh(output):
    """The one stderr line of every ``train`` verb whose ``--resume`` finds no previous run in ``output``."""
    progress(f"--resume: no previous run in {output}; starting fresh")


def resume_checkpoints(output, resume, folder="checkpoints"):
    """``--resume`` of a verb that checkpoints into ``output``/``folder``: True when there is a checkpoint to continue
    from; with none, says the run starts fresh and returns False (so a typo in ``--output`` is noticed)."""
    from zippy_tf._compat import tf

    if resume and tf.train.latest_checkpoint(os.path.join(output, folder)) is None:
        starting_fresh(output)
        return False
    return resume


__all__ = ["build_from_flags", "define_model_flags", "define_refine_radius", "resume_checkpoints", "starting_fresh"]
