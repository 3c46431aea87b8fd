"""``zippy-tf eval hpatches``: HPatches metrics of a network, a flatbuffer or an OpenCV detector, as one JSON line."""

from absl import flags

from zippy_tf.cli.common import define_refine_radius
from zippy_tf.errors import UserError
from zippy_tf.io import check_output_path, write_json
from zippy_tf.runtime import hpatches_resolution, progress

HELP = "HPatches repeatability, localization error, homography correctness and matching score (KP2D protocol)"


def define_flags(fv):
    flags.DEFINE_string("data", None, "HPatches folder (hpatches-sequences-release layout: i_*/v_* sequences)",
                        flag_values=fv)
    flags.DEFINE_string("model", "zippypoint", "zippypoint, zippypoint-int8, kp2d, orb, sift, akaze, brisk, or a "
                        "path to an exported .tflite", flag_values=fv)
    flags.DEFINE_string("weights", None, "weights for a network model (default: the shipped weights in models/)",
                        flag_values=fv)
    flags.DEFINE_string("config", None, "macro-block JSON of another zippypoint-family configuration (e.g. a "
                        "searched one); pass its --weights", flag_values=fv)
    flags.DEFINE_string("resolution", "320x240", "WIDTHxHEIGHT the images are resized to, or 'native'",
                        flag_values=fv)
    flags.DEFINE_integer("top_k", 300, "keypoints per image kept by the metrics (300 at 320x240, 1000 at 640x480 "
                         "in the KP2D protocol)", lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("descriptors", "auto", ["auto", "binary", "float"], "descriptor kind of a network model "
                      "(auto: binary, float for kp2d)", flag_values=fv)
    define_refine_radius(fv)
    flags.DEFINE_string("output", None, "also write the JSON result to this file", flag_values=fv)


def main(fv, args, name):
    from zippy_tf.keypoints.evaluate import evaluate_hpatches, make_detector

    if args:
        raise UserError(f"unexpected arguments {args}; pass options as --flag=value")
    if fv.data is None:
        raise UserError("--data is required; pass the HPatches folder")
    if fv.output:
        check_output_path(fv.output)
    resolution = hpatches_resolution(fv.resolution)
    binary = None if fv.descriptors == "auto" else fv.descriptors == "binary"
    detector = make_detector(fv.model, weights=fv.weights, resolution=resolution, binary=binary, config=fv.config,
                             refine_radius=fv.refine_radius)
    result = evaluate_hpatches(detector, fv.data, resolution=resolution, top_k=fv.top_k,
                               progress=progress)
    result.update(model=fv.model, resolution=fv.resolution, top_k=fv.top_k,
                  descriptors="binary" if detector.binary else "float", weights=detector.weights, config=fv.config,
                  refine_radius=fv.refine_radius)
    if fv.output:
        write_json(fv.output, result)
    return result


__all__ = ["HELP", "define_flags", "main"]
