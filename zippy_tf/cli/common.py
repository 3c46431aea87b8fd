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


def define_distribution_flags(fv):
    """--strategy and --mixed_precision of every ``train`` verb (:mod:`zippy_tf.distribute`)."""
    from absl import flags

    from zippy_tf.distribute import STRATEGIES

    flags.DEFINE_enum("strategy", "auto", list(STRATEGIES), "auto: MirroredStrategy over several local GPUs, else one "
                      "device; mirrored: MirroredStrategy over the local devices; multi_worker: "
                      "MultiWorkerMirroredStrategy over the machines in TF_CONFIG (--output on a shared filesystem; "
                      "only the chief writes it). --batch_size is the global batch over all replicas",
                      flag_values=fv)
    flags.DEFINE_boolean("mixed_precision", False, "compute in float16 with float32 weights and loss scaling (Keras's "
                         "mixed_float16 policy), for GPUs; slow on a CPU", flag_values=fv)


def start_distribution(fv, batch_size):
    """The strategy of ``--strategy`` with the ``--mixed_precision`` policy set; call it before any other TensorFlow
    work (a multi-worker strategy configures the runtime). Refuses a global ``batch_size`` that does not split
    evenly over the replicas (each replica's share of the loss assumes equal slices)."""
    from zippy_tf.distribute import is_chief, make_strategy, use_mixed_precision, worker_count

    strategy = make_strategy(fv.strategy)
    if worker_count(strategy) > 1:
        role = "the chief: writes --output" if is_chief(strategy) else "writes a temporary copy of --output"
        progress(f"--strategy {fv.strategy}: one of {worker_count(strategy)} workers, {role}")
    use_mixed_precision(fv.mixed_precision)
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UserError(f"--batch_size {batch_size} does not split over the {replicas} replicas of --strategy "
                        f"{fv.strategy}; pass a multiple of {replicas}")
    return strategy


def synchronized_batch_norm(fv, strategy):
    """Whether a verb's BatchNorm layers compute global-batch statistics (``zippy_tf.distribute.
    synchronize_batch_norm``): always under ``--strategy mirrored`` and ``multi_worker``, so that their runs give
    the same weights on any number of replicas (the fused kernel of one device corrects the moving variance by
    n/(n-1), the synchronised one does not); under ``auto`` only with several replicas."""
    return fv.strategy != "auto" or strategy.num_replicas_in_sync > 1


def output_folder(output):
    """``--output`` checked as a run folder to write (not created): its absolute path."""
    from zippy_tf.io import check_output_folder

    if not output:
        raise UserError("--output is required (the run folder to write)")
    return check_output_folder(output)


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


__all__ = ["build_from_flags", "define_distribution_flags", "define_model_flags", "define_refine_radius",
           "output_folder", "resume_checkpoints", "start_distribution", "starting_fresh", "synchronized_batch_norm"]
