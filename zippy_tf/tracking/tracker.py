"""The online tracker: Ocean / LightTrack / E.T.Track inference logic around any template + search network.

The state logic is numpy (and OpenCV for the crops), so the same class runs on Keras weights or on exported
flatbuffers next to a TFLite interpreter (:class:`zippy_tf.tracking.export.FlatbufferNetwork`). Interface as
OpenCV's trackers: ``init(frame, box)`` then ``update(frame) -> (ok, box)``, frames BGR uint8 (grayscale is
converted), boxes (x, y, w, h) in pixels.
"""

import logging

import numpy as np

from zippy_tf.errors import UserError
from zippy_tf.tracking.crops import as_bgr, check_initial_box, context_size, crop_and_resize
from zippy_tf.tracking.hyperparameters import shipped_hyperparameters

# Below this target-area / frame-area ratio the search region grows to ``small_target_search_size`` (reference).
SMALL_TARGET_AREA_RATIO = 0.004
MIN_TARGET_SIZE = 10.0


def _change(ratio):
    return np.maximum(ratio, 1.0 / ratio)


def _input_size(network, branch):
    """The static image side of ``network.<branch>_net``, or None if it takes any size.

    Flatbuffer networks say it as ``<branch>_size``; for Keras models it is the first input's shape.
    """
    if hasattr(network, f"{branch}_size"):
        return getattr(network, f"{branch}_size")
    shape = getattr(getattr(network, f"{branch}_net"), "input_shape", None)
    if isinstance(shape, list):  # several inputs: the image comes first
        shape = shape[0]
    return int(shape[1]) if shape is not None and len(shape) == 4 and shape[1] is not None else None


def _to_network_input(crop_bgr):
    """A (1, S, S, 3) float32 RGB batch in [0, 255]: the pair sampler's format the networks are trained on."""
    return crop_bgr[None, :, :, ::-1].astype(np.float32)


class Tracker:
    """Siamese tracker with Ocean-style post-processing (cosine window, scale/ratio penalty, size learning rate).

    Args:
        network: object with ``template_net(template_batch) -> features`` and
            ``search_net([search_batch, features]) -> {"cls": (1, S, S, 1) logits, "reg": (1, S, S, 4)}``, where
            ``reg`` holds (l, t, r, b) distances in search-crop pixels from each grid point.
        template_size: template crop side fed to the network (127 at test time in the reference).
        search_size: search crop side.
        small_target_search_size: search crop side when the target covers less than 0.4% of the frame (288 in
            the reference); set it to ``search_size`` for networks with a fixed input size.
        stride: network stride: grid point j of S sits at (j − S//2)·stride + search_size//2.
        penalty_k, window_influence, lr: the reference's hyper-parameters (0.007, 0.225, 0.616).
        context_amount: context around the target in the template crop.
        failure_threshold: ``update`` returns ``ok=False`` when the confidence of the chosen box, the raw sigmoid
            score of its grid cell (``self.score``), is below this (0 never fails). The raw score, not the
            window-penalised one that picks the cell: the cosine window alone keeps the latter near
            ``window_influence`` at the centre however absent the target is. On failure the tracker still returns
            and follows its prediction (state updated as usual, as Ocean / E.T.Track do; the size learning rate is
            already damped by the low score); callers that prefer to hold the last confident box keep it
            themselves. (The OpenCV wrapper reports OpenCV's previous box instead, since OpenCV's box is
            meaningless on failure.)

    Attributes:
        weights_path: the weights file the network runs (None: unknown, e.g. a flatbuffer, or untrained).
        runtime: how the network runs when built by :meth:`from_preset` ("int8", "fp32", "keras"), else None.

    Example:
        >>> tracker = Tracker.from_preset("ettrack")
        >>> tracker.init(first_frame, (x, y, w, h))
        >>> ok, box = tracker.update(next_frame)
    """

    def __init__(self, network, *, template_size=127, search_size=256, small_target_search_size=288, stride=16,
                 penalty_k=0.007, window_influence=0.225, lr=0.616, context_amount=0.5, failure_threshold=0.2):
        self.network = network
        self.template_size = template_size
        self.search_size = search_size
        self.small_target_search_size = small_target_search_size
        self.stride = stride
        self.penalty_k = penalty_k
        self.window_influence = window_influence
        self.lr = lr
        self.context_amount = context_amount
        self.failure_threshold = failure_threshold
        self.weights_path = getattr(network, "weights_path", None)
        self.runtime = None
        self._windows = {}
        self.center = self.size = None

    def __repr__(self):
        return (f"Tracker(weights_path={self.weights_path!r}, runtime={self.runtime!r}, penalty_k={self.penalty_k}, "
                f"window_influence={self.window_influence}, lr={self.lr}, search_size={self.search_size})")

    @classmethod
    def from_preset(cls, name, *, weights=None, runtime=None, num_threads=1, **kwargs):
        """The tracker of preset ``name`` ("ettrack", "ettrack-s", "lighttrack", "attention") with the shipped
        weights and the hyper-parameters tuned for them (``models/<name>/tracker.json``), on the deployed runtime by
        default.

        Args:
            name: a tracking preset of ``zippy_tf.presets.PRESETS``.
            weights: other weights (a path); then the reference hyper-parameters apply unless given.
            runtime: "int8" or "fp32": the network exported to TFLite flatbuffers, once per weights and cached
                (:func:`~zippy_tf.tracking.export.cached_network`; the first call exports, about 20 s, and says so
                on stderr); "keras": the Keras model (for debugging). Default: the preset's
                (:data:`~zippy_tf.tracking.hyperparameters.DEFAULT_RUNTIMES`, the faster on a CPU).
            num_threads: threads of the flatbuffer interpreter.
            **kwargs: the tracker's arguments (e.g. ``lr=0.3``), over the tuned ones.
        """
        from zippy_tf import presets
        from zippy_tf.tracking.export import cached_network
        from zippy_tf.tracking.hyperparameters import check_runtime, default_runtime

        preset = presets.get_preset(name)
        if preset.task != "tracking":
            raise UserError(f"preset {name!r} is a {preset.task} model; use "
                            "zippy_tf.keypoints.KeypointDetector.from_preset")
        runtime = check_runtime(default_runtime(name) if runtime is None else runtime)
        network = presets.load(name, weights=weights)
        if runtime != "keras":
            network = cached_network(network, runtime, num_threads=num_threads)
        tuned = shipped_hyperparameters(name, runtime) if weights is None else {}
        tracker = cls.for_network(network, **{**tuned, **kwargs})
        tracker.runtime = runtime
        logging.getLogger(__name__).info("%s: weights %s on %s, hyper-parameters %s", name, tracker.weights_path,
                                         runtime, {**tuned, **kwargs})
        return tracker

    @classmethod
    def for_network(cls, network, **kwargs):
        """A tracker at the input sizes (and stride, if it says) ``network`` was built or exported with.

        Networks with a fixed search input (Keras models built at one size, flatbuffers) cannot take the larger
        search region for small targets, so it is switched off for them.
        """
        template_size, search_size = _input_size(network, "template"), _input_size(network, "search")
        sizes = {"stride": network.stride} if hasattr(network, "stride") else {}
        if template_size:
            sizes["template_size"] = template_size
        if search_size:
            sizes["search_size"] = sizes["small_target_search_size"] = search_size
        return cls(network, **sizes, **kwargs)

    def init(self, frame, box):
        frame = as_bgr(frame)
        x, y, w, h = check_initial_box(box, frame.shape)
        height, width = frame.shape[:2]
        self.center = np.array([x + w / 2, y + h / 2])
        self.size = np.array([w, h])
        self.frame_size = np.array([width, height], np.float64)
        # Ocean pads with the first frame's mean colour and keeps it for the whole sequence.
        self.pad_colour = frame.reshape(-1, 3).mean(axis=0)
        small = w * h / (width * height) < SMALL_TARGET_AREA_RATIO
        self.instance_size = self.small_target_search_size if small else self.search_size
        s_z = round(context_size(w, h, self.context_amount))
        template = crop_and_resize(frame, self.center, s_z, self.template_size, self.pad_colour)
        self.features = self.network.template_net(_to_network_input(template))
        self.score = 1.0
        return True

    def _window(self, cells):
        if cells not in self._windows:
            self._windows[cells] = np.outer(np.hanning(cells), np.hanning(cells))
        return self._windows[cells]

    def search_region(self):
        """(centre (x, y), side) in frame pixels of the square that the next ``update`` crops and resizes to the
        search input: a target outside it cannot be found in that frame."""
        if self.center is None:
            raise UserError("the tracker was used before init; call init(first_frame, box) first")
        scale_z = self.template_size / context_size(*self.size, self.context_amount)
        return self.center.copy(), self.instance_size / scale_z

    def update(self, frame):
        _, s_x = self.search_region()
        frame = as_bgr(frame)
        scale_z = self.instance_size / s_x
        search = crop_and_resize(frame, self.center, s_x, self.instance_size, self.pad_colour)
        out = self.network.search_net([_to_network_input(search), self.features])
        logits = np.asarray(out["cls"], np.float64)[0, ..., 0]
        ltrb = np.asarray(out["reg"], np.float64)[0]
        cells = logits.shape[0]
        score = 1.0 / (1.0 + np.exp(-logits))

        grid = (np.arange(cells) - cells // 2) * self.stride + self.instance_size // 2
        gx, gy = np.meshgrid(grid, grid)
        x1, y1 = gx - ltrb[..., 0], gy - ltrb[..., 1]
        x2, y2 = gx + ltrb[..., 2], gy + ltrb[..., 3]
        pred_w, pred_h = np.maximum(x2 - x1, 1e-6), np.maximum(y2 - y1, 1e-6)

        # Penalise size and aspect changes relative to the previous box (both measured in crop pixels).
        prev_w, prev_h = self.size * scale_z
        s_c = _change(context_size(pred_w, pred_h) / context_size(prev_w, prev_h))
        r_c = _change((prev_w / prev_h) / (pred_w / pred_h))
        penalty = np.exp(-(r_c * s_c - 1) * self.penalty_k)
        pscore = penalty * score
        pscore = pscore * (1 - self.window_influence) + self._window(cells) * self.window_influence
        row, col = np.unravel_index(np.argmax(pscore), pscore.shape)

        offset = np.array([(x1 + x2)[row, col] / 2, (y1 + y2)[row, col] / 2]) - self.instance_size // 2
        pred_size = np.array([pred_w[row, col], pred_h[row, col]]) / scale_z
        # Ocean/LightTrack blend the size twice with rate lr (once into the prediction, once into the state), i.e.
        # once with lr²; the reference hyper-parameters were tuned with that, so we keep it.
        lr = (penalty[row, col] * score[row, col] * self.lr) ** 2
        self.center = np.clip(self.center + offset / scale_z, 0, self.frame_size)
        self.size = np.clip((1 - lr) * self.size + lr * pred_size, MIN_TARGET_SIZE, self.frame_size)
        self.score = float(score[row, col])
        self.predicted_size = pred_size  # the network's own (w, h) for this frame, before the size learning rate
        x, y = np.maximum(self.center - self.size / 2, 0)
        ok = self.score >= self.failure_threshold
        return ok, (float(x), float(y), float(self.size[0]), float(self.size[1]))


__all__ = ["Tracker"]
