"""The online tracker: a fake network that finds the target by template matching must let it follow a moving
target; bad inputs give one-line errors; the flatbuffer adapter gives the same boxes as the Keras network."""

import cv2
import numpy as np
import pytest

from zippy_tf._compat import keras, tf
from zippy_tf.data.photos import load_photo
from zippy_tf.errors import UserError
from zippy_tf.tracking.metrics import iou
from zippy_tf.tracking.crops import as_bgr, crop_and_resize
from zippy_tf.tracking.export import FlatbufferNetwork
from zippy_tf.tracking.tracker import Tracker, _to_network_input

SIDE = 40  # target side in frame pixels
HALF = 32  # half the target side in crop pixels: context 0.5 makes a square target half the template side (~64)


class MatchingNetwork:
    """Template matching in place of a trained network: the template's centre patch is the "feature"; a grid
    cell scores the best match within half a stride of it and regresses that match's box."""

    stride = 16

    def template_net(self, template):
        c = template.shape[1] // 2
        return template[0, c - HALF : c + HALF, c - HALF : c + HALF]

    def search_net(self, inputs):
        search, patch = inputs
        # response[v, u] scores the patch centred at (u + HALF, v + HALF), clipped to the valid range below.
        response = cv2.matchTemplate(search[0], patch, cv2.TM_CCOEFF_NORMED)
        size = search.shape[1]
        cells = size // self.stride
        grid = (np.arange(cells) - cells // 2) * self.stride + size // 2
        last = response.shape[0] - 1
        cls = np.zeros((cells, cells))
        reg = np.zeros((cells, cells, 4))
        for i, gy in enumerate(grid):
            for j, gx in enumerate(grid):
                v, u = np.clip([gy - HALF, gx - HALF], 0, last)
                v0, u0 = np.clip([v - self.stride // 2, u - self.stride // 2], 0, last)
                window = response[v0 : v + self.stride // 2 + 1, u0 : u + self.stride // 2 + 1]
                cls[i, j] = 20 * (window.max() - 0.7)
                dv, du = np.unravel_index(np.argmax(window), window.shape)
                px, py = u0 + du + HALF, v0 + dv + HALF  # centre of the best match in this cell
                reg[i, j] = [gx - (px - HALF), gy - (py - HALF), px + HALF - gx, py + HALF - gy]
        return {"cls": cls[None, ..., None], "reg": reg[None]}


def moving_target(num_frames=25, size=(240, 320)):
    """Frames with a textured square sliding and bobbing over a photo, and its exact boxes."""
    background = cv2.resize(load_photo("coffee"), size[::-1])
    target = cv2.resize(load_photo("chelsea")[100:260, 120:280], (SIDE, SIDE))
    frames, boxes = [], []
    for t in range(num_frames):
        x, y = int(40 + 8 * t), int(100 + 30 * np.sin(t / 4))
        frame = background.copy()
        frame[y : y + SIDE, x : x + SIDE] = target
        frames.append(frame)
        boxes.append((x, y, SIDE, SIDE))
    return frames, np.array(boxes, float)


def track(tracker, frames, box):
    tracker.init(frames[0], box)
    return np.array([box] + [tracker.update(f)[1] for f in frames[1:]])


def test_follows_a_moving_target():
    frames, boxes = moving_target()
    predicted = track(Tracker(MatchingNetwork()), frames, boxes[0])
    assert iou(predicted, boxes).min() > 0.7


def test_update_reports_failure_when_the_target_is_gone():
    """ok=False once the chosen cell's sigmoid score drops below the threshold (target hidden), True again after;
    the box is still the prediction (the tracker keeps following it); threshold 0 never fails."""
    frames, boxes = moving_target(num_frames=16)
    background = cv2.resize(load_photo("coffee"), frames[0].shape[1::-1])
    hidden = range(8, 11)
    frames = [background.copy() if i in hidden else f for i, f in enumerate(frames)]
    for threshold, expect_failures in ((0.2, True), (0.0, False)):
        tracker = Tracker(MatchingNetwork(), failure_threshold=threshold)
        tracker.init(frames[0], boxes[0])
        results = [tracker.update(frame) for frame in frames[1:]]
        oks = [ok for ok, _ in results]
        assert all(isinstance(ok, (bool, np.bool_)) for ok in oks)
        assert all(oks[:6]) and all(oks[-2:])  # visible before, visible again at the end
        assert (not any(oks[i - 1] for i in hidden)) == expect_failures
        assert all(np.isfinite(box).all() and box[2] > 0 for _, box in results)


def test_grayscale_frames_are_converted():
    frames, boxes = moving_target(8)
    gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    predicted = track(Tracker(MatchingNetwork()), gray, boxes[0])
    assert iou(predicted, boxes).min() > 0.6


def test_small_targets_get_the_larger_search_region():
    frames, _ = moving_target(2)
    tracker = Tracker(MatchingNetwork())
    tracker.init(frames[0], (10, 10, 12, 12))  # 144 / 76800 px² < 0.4 % of the frame
    assert tracker.instance_size == 288
    tracker.init(frames[0], (10, 10, SIDE, SIDE))
    assert tracker.instance_size == 256


def test_box_stays_in_the_frame():
    frames, _ = moving_target(6)
    tracker = Tracker(MatchingNetwork())
    tracker.init(frames[0], (300, 220, 30, 30))  # partly outside: allowed, the tracker clamps
    for frame in frames[1:]:
        ok, (x, y, w, h) = tracker.update(frame)
        assert ok and x >= 0 and y >= 0 and 10 <= w <= 320 and 10 <= h <= 240 and x <= 320 and y <= 240


BAD_INPUTS = [
    ((10, 10, 0, 20), "zero or invalid size"),
    ((10, 10, 20, -5), "zero or invalid size"),
    ((10, 10, np.nan, 20), "zero or invalid size"),
    ((400, 10, 20, 20), "outside"),
    ((-50, 10, 20, 20), "outside"),
    ((10, 10, 20), "four numbers"),
    ("a box", "four numbers"),
]


@pytest.mark.parametrize("box, message", BAD_INPUTS)
def test_bad_initial_box(box, message):
    frames, _ = moving_target(1)
    with pytest.raises(UserError, match=message):
        Tracker(MatchingNetwork()).init(frames[0], box)


@pytest.mark.parametrize("frame", [np.zeros((10,)), np.zeros((0, 5, 3)), np.zeros((8, 8, 2))])
def test_bad_frame(frame):
    with pytest.raises(UserError, match="not an image"):
        Tracker(MatchingNetwork()).init(frame, (1, 1, 4, 4))


def test_search_region_is_the_square_update_crops():
    frames, boxes = moving_target(2)
    seen = []

    class Recording(MatchingNetwork):
        def search_net(self, inputs):
            seen.append(inputs[0])
            return super().search_net(inputs)

    tracker = Tracker(Recording())
    tracker.init(frames[0], boxes[0])
    centre, side = tracker.search_region()
    x, y, w, h = boxes[0]
    np.testing.assert_allclose(centre, [x + w / 2, y + h / 2])
    # a square target with context 0.5 fills a 2·SIDE square, which the template resizes to 127 pixels
    assert side == pytest.approx(tracker.instance_size * 2 * SIDE / 127)
    tracker.update(frames[1])
    crop = crop_and_resize(as_bgr(frames[1]), centre, side, tracker.instance_size, tracker.pad_colour)
    np.testing.assert_array_equal(seen[0], _to_network_input(crop))


def test_update_before_init():
    with pytest.raises(UserError, match="before init"):
        Tracker(MatchingNetwork()).update(np.zeros((20, 20, 3), np.uint8))


class TinyKerasNetwork:
    """A small two-branch Keras network with the TrackerNetwork interface (random weights)."""

    def __init__(self):
        tf.random.set_seed(0)
        template = keras.Input((127, 127, 3))
        features = keras.layers.Conv2D(8, 16, strides=16)(template / 255.0)
        self.template_net = keras.Model(template, features)
        search = keras.Input((256, 256, 3))
        kernel = keras.Input(features.shape[1:])
        x = keras.layers.Conv2D(8, 16, strides=16)(search / 255.0)
        x = x * tf.reduce_mean(kernel, axis=(1, 2), keepdims=True)
        cls = keras.layers.Conv2D(1, 3, padding="same", name="cls")(x)
        reg = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x) * 16 + 20
        self.search_net = keras.Model([search, kernel], {"cls": cls, "reg": reg})


def test_flatbuffer_network_matches_keras():
    keras_network = TinyKerasNetwork()

    def convert(model):
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()

    flatbuffer = FlatbufferNetwork(convert(keras_network.template_net), convert(keras_network.search_net))
    frames, boxes = moving_target(6)
    keras_tracker = Tracker.for_network(keras_network)
    assert (keras_tracker.template_size, keras_tracker.search_size, keras_tracker.small_target_search_size) == (
        127, 256, 256)  # fixed-size inputs: no larger search region for small targets
    expected = track(keras_tracker, frames, boxes[0])
    exported = track(Tracker.for_network(flatbuffer), frames, boxes[0])
    assert iou(expected, exported).min() >= 0.99


@pytest.mark.large
def test_exported_ettrack_gives_the_keras_boxes():
    model = pytest.importorskip("zippy_tf.tracking.model")
    from zippy_tf.export import convert

    network = model.ettrack()
    flatbuffer = FlatbufferNetwork(convert(network.template_net, "fp32"), convert(network.search_net, "fp32"))
    frames, boxes = moving_target(8)
    expected = track(Tracker.for_network(network), frames, boxes[0])
    exported = track(Tracker.for_network(flatbuffer), frames, boxes[0])
    assert iou(expected, exported).min() >= 0.99


class OracleNetwork:
    """The training targets as network outputs: ``assign_targets`` of the true box in the search crop, as the
    tracker cuts it (logits ±5 from the labels, the regression targets as distances). Decoding them must give back
    the box, so the tracker reads the outputs the way the losses define them (grid, stride, l/t/r/b)."""

    stride = 16

    def __init__(self):
        self.tracker = self.box = None

    def template_net(self, template):
        return np.zeros(1)

    def search_net(self, inputs):
        from zippy_tf.tracking.crops import context_size, image_to_crop
        from zippy_tf.tracking.losses import assign_targets

        size, t = inputs[0].shape[1], self.tracker
        s_x = t.instance_size * context_size(*t.size, t.context_amount) / t.template_size
        x, y, w, h = self.box
        corners = image_to_crop(np.array([[x, y], [x + w, y + h]]), t.center, s_x, size).reshape(1, 4)
        label, reg, _ = assign_targets(corners.astype(np.float32), output_size=size // self.stride, search_size=size)
        return {"cls": np.where(label.numpy() > 0, 5.0, -5.0), "reg": reg.numpy()}


def test_decoding_the_training_targets_gives_back_the_box():
    from zippy_tf.tracking.generate import render_sequence

    frames, boxes, _ = render_sequence(np.random.default_rng([5, 3]), 30, (240, 320))
    network = OracleNetwork()
    network.tracker = tracker = Tracker(network, small_target_search_size=256)
    tracker.init(frames[0], boxes[0])
    predicted, network_sizes = [], []
    for frame, box in zip(frames[1:], boxes[1:]):
        network.box = box
        predicted.append(tracker.update(frame)[1])
        network_sizes.append(tracker.predicted_size)
    assert iou(np.array(predicted), boxes[1:]).mean() > 0.85  # the size learning rate lags a growing target
    # the network's own box, before that lag, is the true size up to the crop's pixel rounding
    np.testing.assert_allclose(np.array(network_sizes), boxes[1:, 2:], rtol=0.05, atol=1.0)
