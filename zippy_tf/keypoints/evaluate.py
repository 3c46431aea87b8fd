"""HPatches evaluation of any detector-descriptor through one code path: the networks of zippy-tf (Keras or an
exported flatbuffer) and OpenCV's ORB, SIFT, AKAZE and BRISK.

A detector is a callable ``detector(image) -> {"keypoints" (N, 2) x, y, "scores" (N,), "descriptors"}`` taking one
BGR uint8 image, with an attribute ``binary`` (packed uint8 descriptors matched by Hamming distance, else float
descriptors matched by L2).
"""

import os
import time
import warnings

import cv2
import numpy as np

from zippy_tf.data.hpatches import list_sequences, load_sequence
from zippy_tf.errors import UserError
from zippy_tf.keypoints.metrics import TOP_K, average, evaluate_pair
from zippy_tf.presets import get_preset

# name → (factory, binary descriptors?). ORB keeps 500 points unless told; allow as many as the others find.
OPENCV_DETECTORS = {
    "orb": (lambda: cv2.ORB_create(nfeatures=5000), True),
    "sift": (lambda: cv2.SIFT_create(), False),
    "akaze": (lambda: cv2.AKAZE_create(), True),
    "brisk": (lambda: cv2.BRISK_create(), True),
}
OPENCV_MIN_SIDE = 8  # ORB, AKAZE and BRISK fail (an OpenCV assertion) on images under 8 px a side: no keypoints
NETWORK_PRESETS = ("zippypoint", "zippypoint-int8", "kp2d")


class OpenCVDetector:
    """An OpenCV ``Feature2D`` as a detector: keypoint response as score, descriptors as OpenCV computes them.

    Args:
        name: one of ``OPENCV_DETECTORS``.
    """

    def __init__(self, name):
        factory, self.binary = OPENCV_DETECTORS[name]
        self.name = name
        self.weights = None
        self.feature2d = factory()

    def __call__(self, image):
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        keypoints, descriptors = [], None
        if min(grey.shape) >= OPENCV_MIN_SIDE:
            keypoints, descriptors = self.feature2d.detectAndCompute(grey, None)
        if descriptors is None:  # no keypoints found
            width = self.feature2d.descriptorSize()
            descriptors = np.zeros((0, width), np.uint8 if self.binary else np.float32)
        return {
            "keypoints": np.array([k.pt for k in keypoints], np.float64).reshape(-1, 2),
            "scores": np.array([k.response for k in keypoints], np.float64),
            "descriptors": descriptors,
        }


class NetworkDetector:
    """A dense keypoint network (Keras model or :class:`~zippy_tf.export.FlatbufferRunner`) as a detector.

    Every cell with a positive score is a keypoint (no NMS), as in the KP2D protocol; the metrics take the top-k.

    Args:
        network: the dense network or a flatbuffer runner.
        binary: binary (hard Bin.Norm, packed) or L2-normalised float descriptors.
        name: what to call it in results; weights: where its weights came from (None: random initialisation).
        refine_radius: > 0 moves keypoints onto Shi-Tomasi corners within that many px
            (:func:`~zippy_tf.keypoints.corners.refine_to_corners`); 0, the default, keeps the network's own.
    """

    def __init__(self, network, binary=True, name="network", weights=None, refine_radius=0):
        from zippy_tf._compat import keras, tf
        from zippy_tf.keypoints.detector import KeypointDetector

        self.binary = binary
        self.name = name
        self.weights = weights
        self.network = network  # the Keras model or runner as given
        if isinstance(network, keras.Model):
            keras_network = network
            # A compiled graph runs the network ~1.6x faster than eager calls; one trace per image size.
            network = tf.function(lambda images: keras_network(images, training=False), reduce_retracing=True)
        self.model = KeypointDetector(network, top_k=None, binary=binary, refine_radius=refine_radius,
                                      weights_path=weights)

    def __call__(self, image):
        return self.model.detect(image)

    def describe_points(self, image, keypoints):
        """This network's descriptors at another detector's (N, 2) keypoints of ``image``."""
        return self.model.describe_points(image, keypoints)


def _padded(size):
    return -(-size // 8) * 8


def make_detector(model, *, weights=None, resolution=(320, 240), binary=None, config=None, refine_radius=0):
    """A detector from a model name (``NETWORK_PRESETS``, ``OPENCV_DETECTORS``) or a ``.tflite`` path.

    Args:
        model: the name or path.
        weights: weights for a network preset (default: the shipped weights, when present, of the preset's own
            configuration).
        config: another macro-block configuration (JSON path or list) of the zippypoint family, e.g. a searched one.
        resolution: (width, height) the images will have, or None for any size (Keras networks only).
        binary: descriptor kind of a network; default binary except for ``kp2d``.
        refine_radius: a network's keypoints moved onto Shi-Tomasi corners within this many px (0: off).
    """
    if config is not None and model not in ("zippypoint", "zippypoint-int8"):
        raise UserError(f"config= applies to zippypoint and zippypoint-int8, not {model!r}; drop it")
    if model in OPENCV_DETECTORS:
        if weights is not None:
            raise UserError(f"weights= does not apply to the OpenCV detector {model!r}; drop it")
        if refine_radius:
            raise UserError(f"refine_radius= applies to networks, not the OpenCV detector {model!r}; drop it")
        return OpenCVDetector(model)
    if binary is None:  # a flatbuffer's descriptors are binary unless said otherwise
        binary = model not in NETWORK_PRESETS or get_preset(model).descriptors == "binary"
    shape = (None, None, 3) if resolution is None else (_padded(resolution[1]), _padded(resolution[0]), 3)
    if model.endswith(".tflite"):
        if weights is not None:
            raise UserError("weights= does not apply to a flatbuffer, which carries its own weights; drop it")
        return NetworkDetector(_flatbuffer_runner(model, shape), binary=binary, name=os.path.basename(model),
                               weights=model, refine_radius=refine_radius)
    if model in NETWORK_PRESETS:
        from zippy_tf.presets import build_model

        weights = weights or (get_preset(model).shipped_weights if config is None else None)
        if weights is None:
            warnings.warn(f"model {model!r} has no shipped weights and no weights= was given: its weights are a "
                          "random initialisation", stacklevel=2)
        network = build_model(model, weights=weights, input_shape=shape, config=config)
        return NetworkDetector(network, binary=binary, name=model, weights=weights, refine_radius=refine_radius)
    choices = ", ".join((*NETWORK_PRESETS, *OPENCV_DETECTORS))
    raise UserError(f"unknown model {model!r}; choose one of: {choices}, or a path to a .tflite file")


def parse_detector_entry(text):
    """A benchmark's detector entry 'LABEL=MODEL[,weights=P][,config=C][,refine=R]' → (label, model, {"weights": P,
    "config": C, "refine_radius": R}), the keyword arguments of :func:`make_detector`."""
    usage = "LABEL=MODEL[,weights=PATH][,config=PATH][,refine=RADIUS]"
    label, _, rest = text.partition("=")
    model, *options = rest.split(",")
    if not label or not model:
        raise UserError(f"entry {text!r} is not {usage}")
    kwargs = {}
    for option in options:
        key, _, value = option.partition("=")
        if key not in ("weights", "config", "refine") or not value:
            raise UserError(f"entry {text!r}: unknown option {option!r}; use {usage}")
        if key == "refine":
            if not value.isdigit():
                raise UserError(f"entry {text!r}: refine {value!r} is not a radius in pixels; use e.g. refine=4")
            kwargs["refine_radius"] = int(value)
        else:
            kwargs[key] = value
    return label, model, kwargs


def _flatbuffer_runner(path, shape):
    from zippy_tf.export.flatbuffer import read_flatbuffer
    from zippy_tf.export.runner import FlatbufferRunner

    runner = FlatbufferRunner(read_flatbuffer(path))
    expected = tuple(runner.input_shape[1:3])
    if shape[0] is not None and expected != shape[:2]:
        raise UserError(f"flatbuffer {path!r} takes images of width {expected[1]} and height {expected[0]}, not width "
                        f"{shape[1]} and height {shape[0]}; pass resolution= of its size or re-export it at this one")
    return runner


def evaluate_hpatches(detector, root, *, resolution=(320, 240), top_k=TOP_K, progress=None):
    """Runs ``detector`` on every HPatches pair under ``root`` and averages the KP2D metrics.

    Args:
        detector: see the module docstring.
        root: an ``hpatches-sequences-release``-layout folder.
        resolution: (width, height) images are resized to, or None for native sizes.
        top_k: keypoints per image the metrics keep (300 at 320x240 in the KP2D / thesis protocol).
        progress: optional callable receiving a line per sequence.

    Returns:
        {"repeatability", "localization_error", "correctness_1", "correctness_3", "correctness_5",
        "matching_score", "num_pairs", "seconds"}, plus the metrics of the "illumination" (i_*) and "viewpoint"
        (v_*) sequences alone.
    """
    start = time.perf_counter()
    per_pair = {"i_": [], "v_": []}
    sequences = list_sequences(root)
    for number, folder in enumerate(sequences, 1):
        pairs = load_sequence(folder, resolution)
        features1 = detector(pairs[0]["image1"])  # image 1 is shared by the sequence's five pairs
        for pair in pairs:
            per_pair[pair["sequence"][:2]].append(evaluate_pair(
                features1, detector(pair["image2"]), pair["homography"], pair["image1"].shape, pair["image2"].shape,
                binary=detector.binary, k=top_k))
        if progress is not None:
            progress(f"[{number}/{len(sequences)}] {os.path.basename(folder)}")
    every = per_pair["i_"] + per_pair["v_"]
    return {**average(every), "num_pairs": len(every), "seconds": time.perf_counter() - start,
            "illumination": average(per_pair["i_"]), "viewpoint": average(per_pair["v_"])}


__all__ = ["NETWORK_PRESETS", "NetworkDetector", "OPENCV_DETECTORS", "OpenCVDetector", "evaluate_hpatches",
           "make_detector", "parse_detector_entry"]
