"""`ZippyPoint`: images in, keypoints + scores + descriptors out, around any dense keypoint network."""

import numpy as np

from zippy_tf._compat import keras, tf
from zippy_tf.errors import UserError
from zippy_tf.keypoints.corners import refine_to_corners
from zippy_tf.keypoints.postprocess import describe_at, pad_image, select_keypoints


class ZippyPoint(keras.Model):
    """A detector-descriptor: the dense network followed by keypoint selection and descriptor sampling.

    ``model(images)`` takes (B, H, W, 3) float images in [0, 255] (BGR, as ``cv2.imread`` gives; H, W multiples
    of 8) and returns {"keypoints": (B, N, 2) pixel x, y, "scores": (B, N), "descriptors": (B, N, D/8) uint8
    with exactly ``k`` set bits (``binary=True``) or (B, N, D) L2-normalised float32 (``binary=False``, KP2D)}.
    :meth:`detect` handles one image of any size (padding as the reference does).

    Args:
        network: the dense model (``zippy_tf.keypoints.zippypoint()`` / ``kp2d_baseline()``), or any callable
            returning the same dict, e.g. a :class:`~zippy_tf.export.FlatbufferRunner`.
        top_k: keypoints kept per image (None: every cell).
        binary: binary (Bin.Norm, Hamming) or float (L2) descriptors.
        k: ones per binary descriptor.
        refine_radius: 0 keeps the location head's keypoints; r > 0 moves each onto the strongest Shi-Tomasi
            corner within r px before its descriptor is sampled (:func:`~zippy_tf.keypoints.corners.refine_to_corners`,
            our addition, not the thesis's).
    """

    def __init__(self, network, *, top_k=1000, binary=True, k=64, refine_radius=0, **kwargs):
        super().__init__(**kwargs)
        if refine_radius < 0:
            raise UserError(f"refine_radius must be >= 0, got {refine_radius}")
        self.network = network
        self.top_k = top_k
        self.binary = binary
        self.k = k
        self.refine_radius = int(refine_radius)

    def call(self, images, training=False):
        shape = images.shape
        if shape.rank != 4 or shape[-1] != 3:
            raise UserError(f"expected images of shape (B, H, W, 3), got {tuple(shape)}; use .detect(image) for one "
                            "(H, W, 3) image")
        if any(d is not None and d % 8 for d in shape[1:3]):
            raise UserError(f"image size {shape[1]}x{shape[2]} is not a multiple of 8; pad it with "
                            "zippy_tf.keypoints.postprocess.pad_image or call .detect(image), which pads")
        dense = self._dense(images)
        keypoints, scores = select_keypoints(dense["score"], dense["location"], self.top_k)
        if self.refine_radius:
            keypoints = refine_to_corners(images, keypoints, self.refine_radius)
        descriptors = describe_at(dense["descriptor"], keypoints, tf.shape(images)[1:3], binary=self.binary, k=self.k)
        return {"keypoints": keypoints, "scores": scores, "descriptors": descriptors}

    def _dense(self, images):
        return self.network(images, training=False) if isinstance(self.network, keras.Model) else self.network(
            images)

    def detect(self, image):
        """One (H, W, 3) image of any size → numpy dict of keypoints in the image's own pixel coordinates."""
        padded, (top, left) = pad_image(image)
        out = {key: np.asarray(v)[0] for key, v in self(padded[None]).items()}
        out["keypoints"] = out["keypoints"] - np.array([left, top], np.float32)
        keep = out["scores"] > 0  # border cells are masked to zero
        return {key: v[keep] for key, v in out.items()}

    def describe_points(self, image, keypoints):
        """Descriptors of given (N, 2) pixel keypoints x, y of one (H, W, 3) image, like ``cv2.Feature2D.compute``:
        pairs this network's descriptors with another detector's keypoints."""
        padded, (top, left) = pad_image(image)
        points = np.asarray(keypoints, np.float32).reshape(1, -1, 2) + np.array([left, top], np.float32)
        dense = self._dense(padded[None])
        return np.asarray(describe_at(dense["descriptor"], points, padded.shape[:2], binary=self.binary, k=self.k))[0]


__all__ = ["ZippyPoint"]
