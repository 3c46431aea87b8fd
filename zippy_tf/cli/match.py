"""``zippy-tf match IMG1 IMG2 --output matches.png``: detect, match, and draw the matches side by side."""

import os

import cv2
import numpy as np
from absl import flags

from zippy_tf.cli.common import define_refine_radius
from zippy_tf.errors import UserError
from zippy_tf.io import atomic_write, check_output_path

HELP = "IMG1 IMG2 --output OUT.png: detect keypoints, match them (Hamming if binary) and draw the matches"
DEFAULT_MAX_SIDE = 1280  # a 4000x3000 + 3000x2000 pair at this side: 2.6 GB peak (at full size about 18 GB)
MIN_SIDE = 24  # keypoints.detector.MIN_SIDE, not imported here: `--help` runs without TensorFlow
INLIER_COLOUR, OUTLIER_COLOUR, KEYPOINT_COLOUR = (0, 200, 0), (0, 0, 230), (230, 160, 0)  # BGR


def define_flags(fv):
    flags.DEFINE_string("output", None, "picture of the matches to write (.png or .jpg)", flag_values=fv)
    flags.DEFINE_string("model", "zippypoint", "zippypoint, zippypoint-int8, kp2d, orb, sift, akaze, brisk, or a "
                        "path to an exported .tflite", flag_values=fv)
    flags.DEFINE_string("weights", None, "weights for a network model (default: the shipped weights in models/)",
                        flag_values=fv)
    flags.DEFINE_integer("top_k", 1000, "keypoints kept per image (highest scores)", lower_bound=1, flag_values=fv)
    flags.DEFINE_float("ratio", 0.95, "ratio test: keep a match iff d_best <= ratio * d_second (1 disables it)",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_integer("max_side", DEFAULT_MAX_SIDE, "longer side, in px, the images are shrunk to before detection "
                         "(bounds time and memory: a 4000x3000 photo at full size needs about 18 GB); keypoints are "
                         "reported and drawn in the original images' pixels", lower_bound=MIN_SIDE, flag_values=fv)
    define_refine_radius(fv)


def draw_matches(image1, keypoints1, image2, keypoints2, matches, inliers):
    """Both images side by side with every keypoint, inlier matches in green and outliers in red."""
    def as_cv(points):
        return [cv2.KeyPoint(float(x), float(y), 3.0) for x, y in points]

    kp1, kp2 = as_cv(keypoints1), as_cv(keypoints2)
    good = [m for m, keep in zip(matches, inliers) if keep]
    bad = [m for m, keep in zip(matches, inliers) if not keep]
    canvas = cv2.drawMatches(image1, kp1, image2, kp2, good, None, matchColor=INLIER_COLOUR,
                             singlePointColor=KEYPOINT_COLOUR)
    return cv2.drawMatches(image1, kp1, image2, kp2, bad, canvas, matchColor=OUTLIER_COLOUR,
                           flags=cv2.DrawMatchesFlags_DRAW_OVER_OUTIMG | cv2.DrawMatchesFlags_NOT_DRAW_SINGLE_POINTS)


def ransac_inliers(points1, points2):
    """Inlier mask of a RANSAC homography (3 px), all False with fewer than four matches."""
    if len(points1) < 4:
        return np.zeros(len(points1), bool)
    _, mask = cv2.findHomography(points1.astype(np.float64), points2.astype(np.float64), cv2.RANSAC, 3.0,
                                 maxIters=5000)
    return np.zeros(len(points1), bool) if mask is None else mask.ravel().astype(bool)


def detect_shrunk(detector, image, max_side):
    """``detector`` run on ``image`` shrunk to at most ``max_side`` px a side: (features with keypoints in
    ``image``'s pixels, the (width, height) detection ran at)."""
    from zippy_tf.keypoints.postprocess import shrink_image

    working, scale = shrink_image(image, max_side)
    found = detector(working)
    return {**found, "keypoints": found["keypoints"] / scale}, (working.shape[1], working.shape[0])


def main(fv, args, name):
    from zippy_tf.data.image_folder import read_image
    from zippy_tf.keypoints.evaluate import make_detector
    from zippy_tf.keypoints.matching import match_descriptors, to_dmatches
    from zippy_tf.keypoints.metrics import top_k
    from zippy_tf.runtime import progress

    if len(args) != 2:
        raise UserError(f"expected two image paths, got {len(args)}; run `zippy-tf match IMG1 IMG2 --output out.png`")
    if fv.output is None:
        raise UserError("--output is required; pass the picture to write, e.g. --output matches.png")
    check_output_path(fv.output)
    extension = os.path.splitext(fv.output)[1].lower()
    if extension not in (".png", ".jpg", ".jpeg"):
        raise UserError(f"--output {fv.output!r} must end in .png, .jpg or .jpeg")
    for path in args:
        if not os.path.isfile(path):
            raise UserError(f"image {path!r} does not exist; check the path")
    images = [read_image(path) for path in args]
    detector = make_detector(fv.model, weights=fv.weights, resolution=None, refine_radius=fv.refine_radius)
    features, working_sizes = [], []
    for path, image in zip(args, images):
        found, size = detect_shrunk(detector, image, fv.max_side)
        if size != (image.shape[1], image.shape[0]):
            progress(f"{path}: {image.shape[1]}x{image.shape[0]} shrunk to {size[0]}x{size[1]} for detection "
                     f"(--max_side {fv.max_side}); keypoints are in the original's pixels")
        features.append(top_k(found, fv.top_k))
        working_sizes.append(list(size))
    ratio = None if fv.ratio >= 1.0 else fv.ratio
    indices, distances = match_descriptors(features[0]["descriptors"], features[1]["descriptors"],
                                           binary=detector.binary, mutual=True, ratio=ratio)
    inliers = ransac_inliers(features[0]["keypoints"][indices[:, 0]], features[1]["keypoints"][indices[:, 1]])
    picture = draw_matches(images[0], features[0]["keypoints"], images[1], features[1]["keypoints"],
                           to_dmatches(indices, distances), inliers)
    ok, encoded = cv2.imencode(extension, picture)
    if not ok:
        raise UserError(f"could not encode the picture as {extension}; pick .png")
    atomic_write(fv.output, encoded.tobytes())
    return {"num_keypoints": [len(f["keypoints"]) for f in features], "num_matches": len(indices),
            "inliers": int(inliers.sum()), "output": fv.output, "model": fv.model, "weights": detector.weights,
            "working_sizes": working_sizes}


__all__ = ["HELP", "define_flags", "detect_shrunk", "draw_matches", "main", "ransac_inliers"]
