"""The KP2D losses: zero / positive where they must be, and finite gradients for every trainable variable."""

import numpy as np
import pytest

from zippy_tf._compat import tf
from zippy_tf.keypoints import losses
from zippy_tf.keypoints.model import kp2d_baseline, zippypoint

from synthetic_pairs import photo_pairs

SIZE = (64, 64)  # 8 x 8 cells, 36 off the border ring
CELLS = 8


def dense(batch=2, seed=0, shift=(0.0, 0.0), descriptor=None, score=None):
    """Hand-built network outputs: keypoints at cell centres (+ shift), random descriptors and scores."""
    rng = np.random.default_rng(seed)
    centres = np.arange(CELLS) * 8 + 3.5
    xy = np.stack(np.meshgrid(centres, centres), -1)[None].repeat(batch, 0) + np.float32(shift)
    if score is None:
        score = rng.uniform(0.1, 1.0, (batch, CELLS, CELLS, 1))
    if descriptor is None:
        descriptor = rng.normal(size=(batch, 16, 16, 256))
    return {"score": tf.constant(score, tf.float32), "location": tf.constant(xy, tf.float32),
            "descriptor": tf.constant(descriptor, tf.float32)}


def translation(dx, dy, batch=2):
    return tf.constant(np.array([[[1, 0, dx], [0, 1, dy], [0, 0, 1]]] * batch, np.float32))


def geometry(source, target, homography):
    return losses.PairGeometry(source, target, homography, SIZE)


def test_location_loss_is_zero_for_identical_images_and_identity():
    maps = dense()
    loss = losses.location_loss(geometry(maps, maps, translation(0, 0)))
    np.testing.assert_allclose(loss, 0.0, atol=1e-5)


@pytest.mark.parametrize("shift", [(1.5, 0.0), (0.0, -2.0), (2.0, 2.0)])
def test_location_loss_measures_a_known_offset(shift):
    source = dense()
    target = dense(shift=shift)
    loss = losses.location_loss(geometry(source, target, translation(0, 0)))
    np.testing.assert_allclose(loss, np.hypot(*shift), rtol=1e-5)


def test_location_loss_follows_the_homography():
    source, target = dense(), dense(shift=(3.0, -1.0))
    loss = losses.location_loss(geometry(source, target, translation(3.0, -1.0)))
    np.testing.assert_allclose(loss, 0.0, atol=1e-5)


def test_points_warped_out_of_the_target_are_not_supervised():
    source = dense()
    g = geometry(source, source, translation(40.0, 0.0))
    assert float(tf.reduce_sum(g.valid[0])) < 36  # part of the view leaves the image
    np.testing.assert_array_equal(g.valid.numpy() * (g.warped[..., 0].numpy() >= 63), 0)


@pytest.mark.parametrize("distance", [losses.L2Distance(), losses.SoftHammingDistance(64)])
def test_triplet_loss_is_small_for_matching_and_large_for_swapped_descriptors(distance):
    source = dense(seed=1)
    g = geometry(source, source, translation(0, 0))
    matching, recall = losses.descriptor_triplet_loss(source["descriptor"], source["descriptor"], g, distance)
    # target descriptors rolled by whole cells: every positive is some other point's descriptor
    rolled = tf.roll(source["descriptor"], shift=4, axis=2)
    swapped, swapped_recall = losses.descriptor_triplet_loss(source["descriptor"], rolled, g, distance)
    assert np.all(matching.numpy() < 0.2) and np.all(recall.numpy() > 0.9)
    assert np.all(swapped.numpy() > 0.2) and np.all(swapped_recall.numpy() < 0.1)


def test_triplet_loss_skips_images_with_too_few_points():
    source = dense()
    g = geometry(source, source, translation(0, 0))
    loss, _ = losses.descriptor_triplet_loss(source["descriptor"], source["descriptor"], g, losses.L2Distance(),
                                             min_points=37)
    np.testing.assert_array_equal(loss, 0.0)


def _far_positives_and_their_collapse(shrink):
    """Target descriptors = source + strong noise (the positive is farther than the hardest negative), both
    squeezed by ``shrink`` towards a common vector (shrink → 0: every descriptor the same)."""
    rng = np.random.default_rng(2)
    source = rng.normal(size=(2, 16, 16, 256))
    target = source + 3.0 * rng.normal(size=source.shape)
    common = 10.0 * rng.normal(size=256)  # not constant: Bin.Norm ignores a constant shift of the logits
    return (tf.constant(common + shrink * source, tf.float32), tf.constant(common + shrink * target, tf.float32))


@pytest.mark.parametrize("distance", [losses.L2Distance(), losses.SoftHammingDistance(64)])
def test_semi_hard_negatives_do_not_reward_collapsing_descriptors(distance):
    g = geometry(dense(), dense(), translation(0, 0))

    def loss(shrink, negatives):
        source, target = _far_positives_and_their_collapse(shrink)
        return float(tf.reduce_mean(losses.descriptor_triplet_loss(source, target, g, distance,
                                                                   negatives=negatives)[0]))

    # hardest negatives: squeezing every descriptor together lowers the loss towards the margin (collapse pays)
    assert loss(0.1, "hardest") < loss(1.0, "hardest")
    # semi-hard negatives: the same squeeze raises it
    assert loss(0.1, "semi_hard") > loss(1.0, "semi_hard")


def test_semi_hard_negative_is_the_closest_one_farther_than_the_positive():
    source, target = dense(seed=3), dense(seed=4)
    g = geometry(source, source, translation(0, 0))
    distance = losses.L2Distance()
    loss, _ = losses.descriptor_triplet_loss(source["descriptor"], target["descriptor"], g, distance,
                                             negatives="semi_hard")
    anchors = distance.normalize(losses.sample_at(source["descriptor"], g.source_points, SIZE))
    positives = distance.normalize(losses.sample_at(target["descriptor"], g.warped, SIZE))
    d, valid, points = distance.pairwise(anchors, positives).numpy(), g.valid.numpy(), g.warped.numpy()
    expected = []
    for b in range(d.shape[0]):
        terms = []
        for i in np.flatnonzero(valid[b]):
            apart = (np.abs(points[b] - points[b, i]) > 4.0).any(-1) & (valid[b] > 0)
            candidates = d[b, i][apart]
            farther = candidates[candidates > d[b, i, i]]
            negative = farther.min() if farther.size else candidates.min()
            terms.append(max(0.0, d[b, i, i] - negative + 0.2))
        expected.append(np.mean(terms))
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_soft_hamming_distance_is_a_function_of_hamming_on_hard_descriptors():
    rng = np.random.default_rng(0)
    bits = np.zeros((2, 5, 32), np.float32)
    for row in bits.reshape(-1, 32):
        row[rng.choice(32, 8, replace=False)] = 1.0
    d = losses.SoftHammingDistance(8).pairwise(tf.constant(bits), tf.constant(bits)).numpy()
    hamming = (bits[:, :, None, :] != bits[:, None, :, :]).sum(-1)
    np.testing.assert_allclose(d ** 2 * 8 * (1 - 8 / 32), hamming, atol=1e-4)


def test_bin_norm_descriptors_sum_to_k():
    y = losses.SoftHammingDistance(64).normalize(tf.random.normal((3, 256)))
    np.testing.assert_allclose(tf.reduce_sum(y, -1), 64.0, rtol=1e-3)


def test_score_loss_rewards_scores_where_localisation_is_good():
    source = dense()
    offsets = np.random.default_rng(2).uniform(0.0, 2.5, (2, CELLS, CELLS, 1))
    target = dict(dense(), location=source["location"] + tf.constant(np.concatenate([offsets, 0 * offsets], -1),
                                                                     tf.float32))
    good = dict(source, score=tf.constant(1.0 - offsets / 2.5, tf.float32))
    bad = dict(source, score=tf.constant(offsets / 2.5, tf.float32))
    assert np.all(losses.score_loss(geometry(good, target, translation(0, 0))).numpy() < 0)
    assert np.all(losses.score_loss(geometry(bad, target, translation(0, 0))).numpy() > 0)


def test_score_consistency_is_zero_for_constant_equal_scores_and_positive_otherwise():
    flat = dense(score=np.full((2, CELLS, CELLS, 1), 0.5))
    g = geometry(flat, flat, translation(1.0, 2.0))
    np.testing.assert_allclose(losses.score_consistency_loss(flat["score"], g), 0.0, atol=1e-7)
    other = dense(score=np.full((2, CELLS, CELLS, 1), 0.8))
    assert np.all(losses.score_consistency_loss(other["score"], g).numpy() > 0.08)


def test_outlier_loss_needs_inliers_and_is_positive_with_them():
    io_net = losses.inlier_net()
    maps = dense(seed=3)
    g = geometry(maps, maps, translation(0, 0))
    loss = losses.outlier_loss(io_net, maps, maps, g, losses.L2Distance())
    assert np.all(loss.numpy() > 0)  # identical descriptors: every match is an inlier, the untrained net is wrong
    far = losses.outlier_loss(io_net, maps, maps, geometry(maps, maps, translation(30.0, 30.0)), losses.L2Distance())
    np.testing.assert_array_equal(far, 0.0)  # nothing lands within 4 px: too few inliers to supervise
    assert io_net(tf.zeros((2, 7, 5))).shape == (2, 7)


@pytest.mark.parametrize("builder, distance", [(zippypoint, losses.SoftHammingDistance(64)),
                                               (kp2d_baseline, losses.L2Distance())])
def test_every_trainable_variable_gets_a_finite_gradient(builder, distance):
    network, io_net = builder(input_shape=(*SIZE, 3)), losses.inlier_net()
    pair = photo_pairs(height=SIZE[0], width=SIZE[1])
    with tf.GradientTape() as tape:
        source = network(pair["source"], training=True)
        target = network(pair["target"], training=True)
        terms = losses.kp2d_losses(source, target, pair["homography"], SIZE, distance, io_net)
        total = tf.add_n([w * tf.reduce_mean(terms[t]) for t, w in losses.KP2D_LOSS_WEIGHTS.items()])
    variables = network.trainable_variables + io_net.trainable_variables
    gradients = tape.gradient(total, variables)
    missing = [v.name for v, g in zip(variables, gradients) if g is None]
    assert not missing
    assert all(np.isfinite(g.numpy()).all() for g in gradients)
    assert all(np.isfinite(v.numpy()).all() for v in terms.values())
