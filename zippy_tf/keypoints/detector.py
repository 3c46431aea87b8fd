"""`KeypointDetector`: images in, keypoints + scores + descriptors out, around any dense keypoint network."""

import logging

import numpy as np

from zippy_tf._compat import keras, tf
from zippy_tf.errors import UserError
from zippy_tf.keypoints.corners import refine_to_corners
from zippy_tf.keypoints.postprocess import describe_at, pad_image, select_keypoints, shrink_image

CELL = 8
# The score map masks its outer ring of cells, so an image needs 3 cells a side to hold one keypoint: smaller images
# are padded up to it with mid-grey (zero after normalisation).
MIN_SIDE = 3 * CELL
logger = logging.getLogger(__name__)


def _any_size(network):
    """``network`` as a Keras model taking images of any height and width (same layers, same weights), so a network
    built at 240x320 serves a 512x512 photo; other callables (flatbuffer runners) are returned as they are."""
    if not isinstance(network, keras.Model) or tuple(network.input_shape[1:3]) == (None, None):
        return network
    config = network.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_input_shape"] = (None, None, None, layer["config"]["batch_input_shape"][-1])
    resized = keras.Model.from_config(config)
    resized.set_weights(network.get_weights())
    return resized


class KeypointDetector(keras.Model):
    """A detector-descriptor: the dense network followed by keypoint selection and descriptor sampling.

    ``model(images)`` takes (B, H, W, 3) float images in [0, 255] (BGR, as ``cv2.imread`` gives; H, W multiples
    of 8) and returns {"keypoints": (B, N, 2) pixel x, y, "scores": (B, N), "descriptors": (B, N, D/8) uint8
    with exactly ``k`` set bits (``binary=True``) or (B, N, D) L2-normalised float32 (``binary=False``, KP2D)}.
    :meth:`detect` handles one image of any size: it pads to a multiple of 8 (as the reference does; images under
    24 px a side are padded to 24, the smallest with a cell inside the masked border) and serves the network at
    that size, or first shrinks images whose longer side exceeds ``max_side``.

    Args:
        network: the dense model (``zippy_tf.keypoints.zippypoint()`` / ``kp2d_baseline()``, built at any input
            size), or any callable returning the same dict, e.g. a :class:`~zippy_tf.export.FlatbufferRunner`.
        top_k: keypoints kept per image (None: every cell).
        binary: binary (Bin.Norm, Hamming) or float (L2) descriptors.
        k: ones per binary descriptor.
        refine_radius: 0 keeps the location head's keypoints; r > 0 moves each onto the strongest Shi-Tomasi
            corner within r px before its descriptor is sampled (:func:`~zippy_tf.keypoints.corners.refine_to_corners`,
            our addition, not the thesis's).
        max_side: :meth:`detect` resizes images whose longer side exceeds this (None: never) and returns keypoints
            in the original image's pixels.
        weights_path: the weights ``network`` runs, for :attr:`weights_path` and the log; default: the network's
            own ``weights_path`` (set by the builders' ``weights=`` and :func:`zippy_tf.presets.load`).

    Example:
        >>> detector = KeypointDetector.from_preset("zippypoint", top_k=500)
        >>> out = detector.detect(image)  # {"keypoints": (N, 2), "scores": (N,), "descriptors": (N, 32) uint8}
    """

    def __init__(self, network, *, top_k=1000, binary=True, k=64, refine_radius=0, max_side=None, weights_path=None,
                 **kwargs):
        super().__init__(**kwargs)
        if refine_radius < 0:
            raise UserError(f"refine_radius={refine_radius} must be >= 0")
        if max_side is not None and max_side < MIN_SIDE:
            raise UserError(f"max_side={max_side} must be at least {MIN_SIDE} (or None: never resize)")
        self.network = _any_size(network)
        self.top_k = top_k
        self.binary = binary
        self.k = k
        self.refine_radius = int(refine_radius)
        self.max_side = max_side
        self.weights_path = weights_path or getattr(network, "weights_path", None)
        if self.weights_path is None and isinstance(network, keras.Model):
            logger.warning("KeypointDetector runs %s with randomly initialised weights; pass weights= to the builder "
                           "or use KeypointDetector.from_preset", network.name)
        else:
            logger.info("KeypointDetector runs weights %s", self.weights_path)

    @classmethod
    def from_preset(cls, name, *, weights=None, config=None, **kwargs):
        """The detector of keypoint preset ``name`` (``zippy_tf.presets.PRESETS``) with its shipped weights.

        Args:
            name: "zippypoint", "zippypoint-int8" or "kp2d".
            weights: other weights (a path) for the preset's network; config: another macro-block configuration of
                the zippypoint family (then ``weights`` is required).
            **kwargs: the detector's arguments; ``binary`` defaults to the preset's descriptor kind.
        """
        from zippy_tf import presets

        preset = presets.get_preset(name)
        if preset.task != "keypoints":
            raise UserError(f"preset {name!r} is a {preset.task} model; use zippy_tf.tracking.Tracker.from_preset")
        network = presets.load(name, weights=weights, config=config, input_shape=(None, None, 3))
        kwargs.setdefault("binary", preset.descriptors == "binary")
        return cls(network, **kwargs)

    def __repr__(self):
        return (f"KeypointDetector(network={getattr(self.network, 'name', type(self.network).__name__)!r}, "
                f"weights_path={self.weights_path!r}, top_k={self.top_k}, binary={self.binary}, "
                f"max_side={self.max_side})")

    def call(self, images, training=False):
        shape = images.shape
        if shape.rank != 4 or shape[-1] != 3:
            raise UserError(f"images of shape {tuple(shape)} are not (batch, height, width, 3); use .detect(image) "
                            "for one (height, width, 3) image")
        if any(d is not None and d % CELL for d in shape[1:3]):
            raise UserError(f"images of height {shape[1]} and width {shape[2]} are not a multiple of {CELL} in both "
                            "sides; pad them with zippy_tf.keypoints.postprocess.pad_image or call .detect(image), "
                            "which pads")
        dense = self._dense(images)
        keypoints, scores = select_keypoints(dense["score"], dense["location"], self.top_k)
        if self.refine_radius:
            keypoints = refine_to_corners(images, keypoints, self.refine_radius)
        descriptors = describe_at(dense["descriptor"], keypoints, tf.shape(images)[1:3], binary=self.binary, k=self.k)
        return {"keypoints": keypoints, "scores": scores, "descriptors": descriptors}

    def _dense(self, images):
        return self.network(images, training=False) if isinstance(self.network, keras.Model) else self.network(
            images)

    def _prepared(self, image):
        """(padded float image, (top, left) offset, scale from the image's pixels to the padded one's)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or 0 in image.shape:
            raise UserError(f"image of shape {image.shape} is not a non-empty (height, width, 3) image; convert grey "
                            "images to 3 channels")
        image, scale = shrink_image(image, self.max_side)
        padded, offset = pad_image(image, CELL, min_side=MIN_SIDE)
        return padded, offset, scale

    def detect(self, image):
        """One (H, W, 3) image of any size → numpy dict of keypoints in the image's own pixel coordinates."""
        padded, (top, left), scale = self._prepared(image)
        out = {key: np.asarray(v)[0] for key, v in self(padded[None]).items()}
        out["keypoints"] = (out["keypoints"] - np.array([left, top], np.float32)) / scale
        keep = out["scores"] > 0  # border cells are masked to zero
        return {key: v[keep] for key, v in out.items()}

    def describe_points(self, image, keypoints):
        """Descriptors of given (N, 2) pixel keypoints x, y of one (H, W, 3) image, like ``cv2.Feature2D.compute``:
        pairs this network's descriptors with another detector's keypoints."""
        padded, (top, left), scale = self._prepared(image)
        points = np.asarray(keypoints, np.float32).reshape(1, -1, 2) * scale + np.array([left, top], np.float32)
        dense = self._dense(padded[None])
        return np.asarray(describe_at(dense["descriptor"], points, padded.shape[:2], binary=self.binary, k=self.k))[0]


__all__ = ["KeypointDetector", "MIN_SIDE"]
