"""Generated OTB-layout sequences: readable by the OTB reader, deterministic, exact ground truth."""

import os

import numpy as np
import pytest

from zippy_tf.errors import UserError
from zippy_tf.tracking.datasets import load_sequences
from zippy_tf.tracking.generate import render_sequence, validation_sequences, write_otb_sequences


def test_written_sequences_load_as_otb(tmp_path):
    names = write_otb_sequences(str(tmp_path), 2, 5, seed=3, size=(96, 128))
    sequences = load_sequences(str(tmp_path), "otb")
    assert [s.name for s in sequences] == names and all(len(s) == 5 for s in sequences)
    frames, boxes, distractors = render_sequence(np.random.default_rng([3, 0]), 5, (96, 128))
    np.testing.assert_array_equal(sequences[0].boxes, boxes)  # 1-based on disk, 0-based after reading
    np.testing.assert_array_equal(sequences[0].distractors, distractors)
    assert sequences[0].read(4).shape == (96, 128, 3)
    assert not list(tmp_path.glob(".tmp-*"))


def test_deterministic_and_seeds_differ():
    a = render_sequence(np.random.default_rng([0, 1]), 6, (96, 128))
    b = render_sequence(np.random.default_rng([0, 1]), 6, (96, 128))
    c = render_sequence(np.random.default_rng([1, 1]), 6, (96, 128))
    np.testing.assert_array_equal(a[1], b[1])
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0]))
    assert not np.array_equal(a[0][0], c[0][0])


def test_target_moves_changes_scale_and_matches_its_box():
    frames, boxes, _ = render_sequence(np.random.default_rng([5, 0]), 40, (120, 160))
    x, y, w, h = boxes.T
    assert np.all((x >= 0) & (y >= 0) & (x + w <= 160) & (y + h <= 120))  # always fully visible
    assert np.ptp(x + w / 2) > 5 and np.ptp(w) >= 2  # it moves and changes size
    assert np.abs(np.diff(x + w / 2)).max() < 20  # smoothly
    target = frames[0][int(y[0]) : int(y[0] + h[0]), int(x[0]) : int(x[0] + w[0])]
    assert target.std() > 10  # textured, not a flat patch


def test_distractor_boxes_are_the_pasted_rectangles():
    """The last-pasted distractor shows the same pixels in its box in every frame, except where the target covers it:
    so its recorded boxes are exact."""
    frames, boxes, distractors = render_sequence(np.random.default_rng([5, 1]), 40, (120, 160))
    assert distractors.shape == (40, 2, 4)
    assert np.all(distractors[:, :, 2:] == distractors[:1, :, 2:])  # a fixed size, the target's base size
    assert np.ptp(distractors[:, :, :2], axis=0).min() > 3  # they move

    def patch_and_uncovered(i):
        x, y, w, h = distractors[i, -1].astype(int)
        rows, cols = np.mgrid[y : y + h, x : x + w]
        tx, ty, tw, th = boxes[i]
        uncovered = ~((cols >= tx) & (cols < tx + tw) & (rows >= ty) & (rows < ty + th))
        return frames[i][y : y + h, x : x + w], uncovered

    first, first_uncovered = patch_and_uncovered(0)
    for i in (10, 25, 39):
        patch, uncovered = patch_and_uncovered(i)
        both = first_uncovered & uncovered
        assert both.mean() > 0.3
        np.testing.assert_array_equal(patch[both], first[both])
    assert first.std() > 10  # textured


@pytest.mark.parametrize("lines,message", [("1,2,3\n", "multiple of 4"), ("1,1,4,4\n", "1 lines for 3 frames")])
def test_bad_distractor_file(tmp_path, lines, message):
    write_otb_sequences(str(tmp_path), 1, 3, seed=0, size=(96, 128))
    (tmp_path / "gen0_0000" / "distractors_rect.txt").write_text(lines)
    with pytest.raises(UserError, match=message):
        load_sequences(str(tmp_path), "otb")


@pytest.mark.parametrize("kwargs", [dict(num_sequences=0, num_frames=5), dict(num_sequences=1, num_frames=1),
                                    dict(num_sequences=1, num_frames=5, size=(32, 32))])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(UserError):
        write_otb_sequences(str(tmp_path), seed=0, **kwargs)


def test_validation_sequences_default_split_is_temporary(tmp_path):
    with validation_sequences(str(tmp_path)) as folder:
        assert folder == str(tmp_path)
    with validation_sequences() as folder:
        assert sorted(os.listdir(folder)) == [f"gen2_{i:04d}" for i in range(10)]
        assert len(os.listdir(os.path.join(folder, "gen2_0000", "img"))) == 60
    assert not os.path.exists(folder)
