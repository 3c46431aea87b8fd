"""Training pairs: the target's box lies where the jitter bounds say, and the dataset matches the spec and the
sequential draws."""

import numpy as np
import pytest

from zippy_tf.errors import UserError
from zippy_tf.tracking.crops import crop_and_resize, crop_to_image, image_to_crop
from zippy_tf.tracking.datasets import load_sequences
from zippy_tf.tracking.generate import write_otb_sequences
from zippy_tf.tracking.pairs import pair_dataset, sample_pair


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    write_otb_sequences(str(root), 2, 8, seed=11, size=(120, 160))
    return load_sequences(str(root), "otb")


def test_crop_geometry():
    image = np.zeros((50, 60, 3), np.uint8)
    image[20:30, 10:20] = 255  # a 10×10 white square centred at (15, 25)
    crop = crop_and_resize(image, (15, 25), 20, 40, (7, 7, 7))
    assert crop.shape == (40, 40, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop[11:29, 11:29], 255)  # the square fills the centre half (edges blend)
    assert crop[8, 20, 0] == 0 and crop[31, 20, 0] == 0
    assert crop[9, 20, 0] == crop[30, 20, 0] == crop[20, 9, 0] == crop[20, 30, 0]  # exactly centred
    assert crop[0, 0, 0] == 0
    corner = crop_and_resize(image, (0, 0), 20, 40, (7, 8, 9))
    np.testing.assert_array_equal(corner[0, 0], (7, 8, 9))  # outside the image: the pad colour
    points = np.array([[10.0, 20.0], [20.0, 30.0]])
    np.testing.assert_allclose(image_to_crop(points, (15, 25), 20, 40), [[10, 10], [30, 30]])
    np.testing.assert_allclose(crop_to_image(image_to_crop(points, (3, 4), (9, 13), 40), (3, 4), (9, 13), 40), points)


def test_without_jitter_the_target_is_centred(sequences):
    images, box = sample_pair(np.random.default_rng(0), sequences, template_shift=0, template_scale=0,
                              search_shift=0, search_scale=0)
    np.testing.assert_allclose((box[:2] + box[2:]) / 2, 128, atol=1e-3)
    w, h = box[2:] - box[:2]
    # The target spans (w, h) / √((w+p)(h+p)) of the 127-px template, i.e. the same fraction × 127 px here.
    assert 127 * 0.4 < np.sqrt(w * h) < 127 * 0.8


def test_jitter_bounds(sequences):
    rng = np.random.default_rng(1)
    for _ in range(30):
        images, box = sample_pair(rng, sequences)
        assert images["template"].shape == (127, 127, 3) and images["search"].shape == (256, 256, 3)
        assert images["search"].dtype == np.float32 and 0 <= images["search"].min() <= images["search"].max() <= 255
        centre = (box[:2] + box[2:]) / 2
        # Shift ≤ 64 px in the output, divided by the scale jitter (≥ 1 − 0.18).
        assert np.all(np.abs(centre - 128) <= 64 / 0.82 + 1e-3)
        assert np.all(box[:2] >= 0) and np.all(box[2:] <= 256)  # these targets stay inside the crop
        assert np.all(box[2:] > box[:2])


@pytest.mark.parametrize("search_scale", [0.18, 0.4])
def test_search_scale_jitter_sets_the_spread_of_target_sizes(sequences, search_scale):
    # The same seed draws the same pair and the same U(−1, 1) variates, so only the scale factor differs.
    ratios = []
    for seed in range(40):
        _, fixed = sample_pair(np.random.default_rng(seed), sequences, search_scale=0)
        _, jittered = sample_pair(np.random.default_rng(seed), sequences, search_scale=search_scale)
        ratios.append((jittered[2:] - jittered[:2]) / (fixed[2:] - fixed[:2]))
    ratios = np.array(ratios)
    # The region side is scaled by 1 ± U(s) per axis, so the target in the crop by its inverse.
    assert np.all(ratios >= 1 / (1 + search_scale) - 1e-4) and np.all(ratios <= 1 / (1 - search_scale) + 1e-4)
    assert ratios.min() < 1 / (1 + 0.6 * search_scale) and ratios.max() > 1 / (1 - 0.6 * search_scale)


def test_dataset_spec_and_determinism(sequences):
    first = next(iter(pair_dataset(sequences, batch_size=3, seed=5)))
    again = next(iter(pair_dataset(sequences, batch_size=3, seed=5)))
    other = next(iter(pair_dataset(sequences, batch_size=3, seed=6)))
    inputs, targets = first
    assert inputs["template"].shape == (3, 127, 127, 3) and inputs["search"].shape == (3, 256, 256, 3)
    assert targets["box"].shape == (3, 4) and targets["box"].dtype.name == "float32"
    np.testing.assert_array_equal(targets["box"], again[1]["box"])
    assert not np.array_equal(targets["box"], other[1]["box"])


def test_the_dataset_cuts_in_parallel_the_pairs_sample_pair_draws_in_order(sequences):
    """Only the draws run in the generator; decoding and cropping run in a parallel map, in order."""
    images, targets = next(iter(pair_dataset(sequences, batch_size=6, seed=2, template_size=32, search_size=64)))
    rng = np.random.default_rng(2)
    for k in range(6):
        expected, box = sample_pair(rng, sequences, template_size=32, search_size=64)
        np.testing.assert_array_equal(images["template"][k], expected["template"])
        np.testing.assert_array_equal(images["search"][k], expected["search"])
        np.testing.assert_array_equal(targets["box"][k], box)


def test_no_visible_target(sequences):
    hidden = [type(s)(s.name, s.frames, np.full_like(s.boxes, np.nan)) for s in sequences]
    with pytest.raises(UserError, match="no sequence has a visible target"):
        pair_dataset(hidden, batch_size=2, seed=0)


def _flat(sequence, tmp_path):
    """A copy of ``sequence`` whose frames are black: crops of it are all zero (the pad colour is the mean)."""
    import cv2

    frames = []
    for i, path in enumerate(sequence.frames):
        frames.append(str(tmp_path / f"{i:04d}.jpg"))
        cv2.imwrite(frames[-1], np.zeros_like(cv2.imread(path)))
    return type(sequence)("black", frames, sequence.boxes)


def test_negative_pairs_take_the_search_crop_from_another_sequence(sequences, tmp_path):
    pool = [sequences[0], _flat(sequences[0], tmp_path)]
    rng = np.random.default_rng(3)
    seen = set()
    for negative in [True, False] * 12:
        images, box = sample_pair(rng, pool, negative=negative)
        black_template, black_search = images["template"].max() == 0, images["search"].max() == 0
        assert black_template != black_search if negative else black_template == black_search
        assert np.all(box[2:] > box[:2])  # the other sequence's target, where the crop is cut around it
        seen.add((negative, bool(black_template)))
    assert len(seen) == 4  # both sequences gave templates for both kinds of pair


def test_negative_fraction_marks_the_pairs_and_keeps_the_positive_stream(sequences):
    def draw(fraction, count=48):
        batches = pair_dataset(sequences, batch_size=count, seed=4, negative_fraction=fraction)
        return next(iter(batches))[1]

    plain = draw(0.0)
    np.testing.assert_array_equal(plain["positive"], 1.0)
    rng = np.random.default_rng(4)  # the pairs are those sample_pair draws from the seed, as before negatives existed
    np.testing.assert_array_equal(plain["box"][:3], [sample_pair(rng, sequences)[1] for _ in range(3)])
    mixed = draw(0.5)["positive"].numpy()
    assert set(np.unique(mixed)) == {0.0, 1.0} and 0.25 < mixed.mean() < 0.75


def test_distractor_pairs_cut_the_search_crop_around_a_look_alike(sequences):
    """Without jitter the search crop is exactly the crop around one annotated distractor of some frame, and the box
    is the template's target in that crop's pixels."""
    from zippy_tf.tracking.crops import context_size

    rng = np.random.default_rng(7)
    still = dict(template_shift=0, template_scale=0, search_shift=0, search_scale=0)
    for _ in range(6):
        images, box = sample_pair(rng, sequences, distractor=True, **still)
        found = 0
        for sequence in sequences:
            for i, target in enumerate(sequence.boxes):
                side = context_size(*target[2:], 0.5) * 256 / 127
                for d in sequence.distractors[i]:
                    centre = d[:2] + d[2:] / 2
                    expected = image_to_crop(np.array([target[:2], target[:2] + target[2:]]), centre, side, 256)
                    if np.allclose(box, expected.reshape(4), atol=1e-3):
                        image = sequence.read(i)
                        crop = crop_and_resize(image, centre, side, 256, image.reshape(-1, 3).mean(0))
                        np.testing.assert_array_equal(images["search"], crop[..., ::-1])
                        found += 1
        assert found == 1
        assert np.abs((box[:2] + box[2:]) / 2 - 128).max() > 1  # the target is not where the crop is centred


def test_fractions_keep_the_earlier_streams_and_mark_the_pairs(sequences):
    def draw(negative, distractor, count=40):
        batches = pair_dataset(sequences, batch_size=count, seed=4, negative_fraction=negative,
                               distractor_fraction=distractor)
        return next(iter(batches))[1]

    rng = np.random.default_rng(4)  # distractor fraction 0: the pairs drawn before distractor pairs existed
    expected = [sample_pair(rng, sequences, negative=rng.random() < 0.5)[1] for _ in range(3)]
    np.testing.assert_array_equal(draw(0.5, 0.0)["box"][:3], expected)
    np.testing.assert_array_equal(draw(0.0, 0.5)["positive"], 1.0)  # distractor pairs are positive pairs
    assert not np.array_equal(draw(0.0, 0.5)["box"], draw(0.0, 0.0)["box"])
    mixed = draw(0.3, 0.5)["positive"].numpy()
    assert set(np.unique(mixed)) == {0.0, 1.0}


@pytest.mark.parametrize("fraction,count,message", [
    (0.3, 1, "at least two sequences"),
    (1.0, 2, "some pairs must be plain positive"),
])
def test_negative_fraction_bad_input(sequences, fraction, count, message):
    with pytest.raises(UserError, match=message):
        pair_dataset(sequences[:count], batch_size=2, seed=0, negative_fraction=fraction)


def test_distractor_fraction_bad_input(sequences):
    with pytest.raises(UserError, match="sum to less than 1"):
        pair_dataset(sequences, batch_size=2, seed=0, negative_fraction=0.5, distractor_fraction=0.5)
    plain = [type(s)(s.name, s.frames, s.boxes) for s in sequences]  # e.g. real OTB data: no distractors annotated
    with pytest.raises(UserError, match="distractors_rect.txt"):
        pair_dataset(plain, batch_size=2, seed=0, distractor_fraction=0.2)
    with pytest.raises(UserError, match="distractors_rect.txt"):
        sample_pair(np.random.default_rng(0), plain, distractor=True)
