"""The Shi-Tomasi corner teacher of the score and location heads."""

import numpy as np
import pytest

from zippy_tf._compat import keras, tf
from zippy_tf.errors import UserError
from zippy_tf.keypoints.model import kp2d_baseline, zippypoint
from zippy_tf.keypoints.teacher import cell_teacher, teacher_losses, warped_cell_mask
from zippy_tf.keypoints.training import KeypointTrainer

from synthetic_pairs import grey_photo, photo_pairs


def test_cell_teacher_finds_a_corner_and_ranks_its_cell_first():
    image = np.zeros((1, 32, 48, 3), np.float32)
    image[0, 19:, 29:] = 255.0  # one bright quadrant: a single corner at (x, y) ≈ (29, 19), in cell (2, 3)
    teacher = cell_teacher(image)
    location, rank = teacher["location"].numpy()[0], teacher["rank"].numpy()[0]
    assert location.shape == (4, 6, 2) and rank.shape == (4, 6)
    assert np.unravel_index(np.argmax(rank), rank.shape) == (2, 3)
    assert np.abs(location[2, 3] - [29, 19]).max() <= 1.0


def test_cell_teacher_locations_stay_in_their_cells_and_ranks_are_a_permutation():
    _, batch = grey_photo(seed=1)
    teacher = cell_teacher(batch)
    location, rank = teacher["location"].numpy()[0], teacher["rank"].numpy()[0]
    rows, cols = np.mgrid[0:rank.shape[0], 0:rank.shape[1]]
    assert np.all(location[..., 0] // 8 == cols) and np.all(location[..., 1] // 8 == rows)
    np.testing.assert_allclose(np.sort(rank.ravel()), np.linspace(0, 1, rank.size), atol=1e-6)


def test_teacher_losses_vanish_on_the_teachers_own_answer_and_have_gradients():
    _, batch = grey_photo(seed=2)
    teacher = cell_teacher(batch)
    exact = {"location": teacher["location"], "score": tf.clip_by_value(teacher["rank"][..., None], 1e-3, 1 - 1e-3)}
    assert teacher_losses(exact, batch)["teacher_location"].numpy()[0] == 0.0
    network = kp2d_baseline(input_shape=batch.shape[1:])
    with tf.GradientTape() as tape:
        terms = teacher_losses(network(batch, training=True), batch)
        total = tf.add_n(list(terms.values()))
    assert np.all(total.numpy() > 0)
    gradients = tape.gradient(total, network.trainable_variables)
    heads = [g for g, v in zip(gradients, network.trainable_variables) if "score" in v.name or "location" in v.name]
    assert heads and all(g is not None for g in heads) and any(np.any(g.numpy() != 0) for g in heads)
    # the cross-entropy against the rank is smallest at the rank itself
    shifted = dict(exact, score=tf.clip_by_value(exact["score"] + 0.1, 1e-3, 1 - 1e-3))
    assert teacher_losses(shifted, batch)["teacher_score"] > teacher_losses(exact, batch)["teacher_score"]


def test_warped_cell_mask_keeps_only_cells_whose_content_lands_inside():
    identity = np.eye(3, dtype=np.float32)[None]
    mask = warped_cell_mask(identity, (1, 8, 10, 1), (64, 80)).numpy()[0]
    assert mask[1:-1, 1:-1].all() and not mask[0].any() and not mask[:, -1].any()
    shift = np.array([[[1, 0, 40], [0, 1, 0], [0, 0, 1]]], np.float32)  # 40 px right: the right half falls out
    assert not warped_cell_mask(shift, (1, 8, 10, 1), (64, 80)).numpy()[0][:, 4:].any()


@pytest.mark.parametrize("builder, binary", [(zippypoint, True), (kp2d_baseline, False)])
def test_trainer_with_a_teacher_logs_its_terms_and_adds_them_to_the_loss(builder, binary):
    pair = photo_pairs(seed=0)
    network = builder(input_shape=pair["source"].shape[1:])
    # without the IO-Net, whose random initialisation differs between trainers, the rest is deterministic
    plain = KeypointTrainer(network, binary_descriptors=binary, with_io=False).pair_losses(pair, False)
    taught = KeypointTrainer(network, binary_descriptors=binary, with_io=False, teacher_weight=2.0).pair_losses(
        pair, False)
    extra = 2.0 * (taught["teacher_location"] + taught["teacher_score"])
    np.testing.assert_allclose(taught["total"], plain["total"] + extra, rtol=1e-5)
    trainer = KeypointTrainer(builder(input_shape=pair["source"].shape[1:]), binary_descriptors=binary,
                              teacher_weight=1.0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = trainer.fit(tf.data.Dataset.from_tensors(pair), epochs=1, verbose=0).history
    assert {"teacher_location_loss", "teacher_score_loss"} <= set(history)
    assert all(np.isfinite(v[-1]) for v in history.values())
    with pytest.raises(UserError, match="teacher_weight"):
        KeypointTrainer(network, binary_descriptors=binary, teacher_weight=-1.0)
