"""Tracker.from_preset: the shipped weights and the hyper-parameters tuned for them, and what it says it runs."""

import logging

import pytest

from zippy_tf import presets
from zippy_tf.errors import UserError
from zippy_tf.tracking import Tracker, load_sequences
from zippy_tf.tracking.generate import write_otb_sequences
from zippy_tf.tracking.hyperparameters import read_hyperparameters


def test_from_preset_runs_the_shipped_weights_with_their_tuned_settings(tmp_path, caplog):
    """On the Keras runtime; test_runtime.py runs the default (exported) one."""
    with caplog.at_level(logging.INFO):
        tracker = Tracker.from_preset("ettrack", runtime="keras")
    shipped = presets.get_preset("ettrack").shipped_weights
    assert tracker.weights_path == shipped and shipped in repr(tracker) and shipped in caplog.text
    tuned = read_hyperparameters(str(presets.MODELS_DIR / "ettrack" / "tracker.json"), "keras")
    assert {name: getattr(tracker, name) for name in tuned} == tuned
    assert Tracker.from_preset("ettrack", runtime="keras", lr=0.5).lr == 0.5  # an argument overrides the tuned one
    write_otb_sequences(tmp_path, 1, 3, seed=0, size=(96, 128))
    sequence = load_sequences(str(tmp_path), "otb")[0]
    frames = [sequence.read(i) for i in range(3)]
    assert tracker.init(frames[0], tuple(sequence.boxes[0]))
    ok, box = tracker.update(frames[1])
    assert isinstance(ok, bool) and len(box) == 4 and box[2] > 0 and box[3] > 0


@pytest.mark.parametrize("name,kwargs,message", [("zippypoint", {}, "KeypointDetector.from_preset"),
                                                 ("nope", {}, "unknown model 'nope'"),
                                                 ("ettrack", {"runtime": "lce"}, "unknown runtime 'lce'")])
def test_from_preset_errors_name_the_fix(name, kwargs, message):
    with pytest.raises(UserError, match=message):
        Tracker.from_preset(name, **kwargs)
