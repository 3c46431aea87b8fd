r"""The self-supervised KP2D losses (Tang et al., ICLR 2020) on the dense maps of a (source, target) pair.

Every cell of the 1/8 score map is a keypoint. Source keypoints are warped into the target by the known
homography $H$ (source pixels → target pixels) and associated with their nearest target keypoint; the losses
make the locations agree (location), the descriptors of corresponding points closer than any other point's
(triplet), the scores high where localisation is good (usp, consistency), and the IO-Net tell correct nearest-
descriptor matches from wrong ones (outlier). Each loss returns one value per image, shape (B,), so the caller
reduces over the *global* batch under any ``tf.distribute`` strategy.

Choices where the reference is unclear or quirky (stated, not hidden):

- Means are per image (KP2D averages the location / score terms over the whole batch).
- The hardest negative is the smallest distance among *allowed* candidates (KP2D sets forbidden distances to 2
  and then uses the argmin's real descriptor, which can be a forbidden one).
- ``negatives="semi_hard"`` (not KP2D's) takes the closest negative *farther* than the positive. With hardest
  negatives on the dense 8-px grid the hardest negative is closer than the positive for almost every anchor early
  on, and shrinking all distances together lowers the loss to the margin: the descriptors collapse (trained KP2D
  and ZippyPoint weights here: every pair of descriptors within ~0.01 of each other) and learn slowly.
- The IO-Net sees the 300 *highest*-scoring points (KP2D's code takes the lowest, ``largest=False``).
- Binary descriptors (ZippyPoint; the reference's loss is not released): the soft descriptors of the Bin.Norm
  projection (k ones of M) are centred and compared like KP2D's unit vectors (:class:`SoftHammingDistance`),
  a distance that ranks hard descriptors exactly as Hamming does, so the KP2D margin 0.2 carries over.

References:
    - Tang et al., Neural Outlier Rejection for Self-Supervised Keypoint Learning (https://arxiv.org/abs/1912.10615)
    - Kanakis et al., ZippyPoint (https://arxiv.org/abs/2203.03610), §3.3
"""

from zippy_tf._compat import keras, register, tf
from zippy_tf.keypoints.postprocess import sample_descriptors
from zippy_tf.quantization.binary_norm import lml_projection

# Total loss = Σ weight · term, weights as KP2D codes them (descriptor ×2, consistency ×2).
KP2D_LOSS_WEIGHTS = {"location": 1.0, "descriptor": 2.0, "score": 1.0, "consistency": 2.0, "io": 1.0}
ASSOCIATION_RADIUS = 4.0  # px: a warped source point with no target point this close is not supervised
MAX_DISTANCE = 2.0  # upper bound of both descriptor distances
NEGATIVES = ("hardest", "semi_hard")  # the descriptor triplet's negative: KP2D's, or FaceNet's semi-hard


class L2Distance:
    r"""KP2D descriptors: L2-normalised floats, $d(a, b) = \|a - b\| = \sqrt{2 - 2 a^\top b}$."""

    def normalize(self, logits):
        return tf.math.l2_normalize(logits, axis=-1)

    def pairwise(self, a, b):
        """(B, N, D), (B, K, D) normalised → (B, N, K) distances."""
        dot = tf.clip_by_value(tf.matmul(a, b, transpose_b=True), -1.0, 1.0)
        return tf.sqrt(tf.maximum(2.0 - 2.0 * dot, 1e-12))  # the floor keeps the gradient finite at d = 0


class SoftHammingDistance:
    r"""ZippyPoint descriptors: Bin.Norm (LML projection, k ones of M), compared by a distance that ranks hard
    descriptors exactly as the Hamming distance does.

    The projection $y = \mathrm{BinNorm}(x) \in [0, 1]^M$, $1^\top y = k$, is centred on the uniform vector and
    compared by the L2 distance of unit vectors, $d(a, b) = \sqrt{2 - 2\cos(a - \tfrac{k}{M}1,\ b - \tfrac{k}{M}1)}$.
    For hard descriptors (k ones) every centred vector has the same norm $\sqrt{k(1 - k/M)}$, so
    $d^2 = \mathrm{Hamming}(a, b) / (k(1 - k/M))$: the same nearest neighbours as the deployed Hamming matcher,
    in KP2D's distance range (0 … 1.63 for k/M = 1/4), so KP2D's margin carries over.

    Why centred: the plain soft-Hamming distance $(2k - 2a^\top b)/k$ only sees a descriptor's deviation from
    uniform. At initialisation the logits are small, every soft descriptor is close to $k/M$ and all distances lie
    within ±0.02 of $2 - 2k/M$, so its gradients are second order; in 100-step runs at 160×120 the descriptor recall
    stayed at chance (0.01) with it, whatever the logit scale, and rose (0.013 → 0.027) with the centred form.
    The reference's training loss for binary descriptors is not released (thesis §5.4.2 names a Hamming triplet).

    Args:
        k: ones per descriptor (64 of 256 in ZippyPoint).
    """

    def __init__(self, k=64):
        self.k = int(k)

    def normalize(self, logits):
        return lml_projection(logits, self.k)

    def pairwise(self, a, b):
        """(B, N, M), (B, K, M) Bin.Norm descriptors → (B, N, K) distances."""
        return L2Distance().pairwise(self._centred_unit(a), self._centred_unit(b))

    def _centred_unit(self, y):
        centred = y - self.k / float(y.shape[-1])
        return centred * tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(centred), -1, keepdims=True), 1e-12))


def masked_mean(values, mask, axis=-1):
    """Mean of ``values`` where ``mask`` is 1 along ``axis``; 0 where the mask is empty."""
    return tf.reduce_sum(values * mask, axis) / tf.maximum(tf.reduce_sum(mask, axis), 1.0)


def warp_points(points, homography):
    r"""Pixel points (B, N, 2) through homographies (B, 3, 3): $p' \sim H [x, y, 1]^\top$."""
    ones = tf.ones_like(points[..., :1])
    projected = tf.matmul(tf.concat([points, ones], -1), homography, transpose_b=True)
    return projected[..., :2] / projected[..., 2:]


def to_unit_square(points, image_size):
    """Pixel (x, y) → [−1, 1] with image corners at ±1 (the IO-Net's input coordinates)."""
    h, w = float(image_size[0]), float(image_size[1])
    return 2.0 * points / tf.constant([w - 1.0, h - 1.0]) - 1.0


def sample_at(feature_map, points, image_size):
    """Bilinear sampling (``postprocess.sample_descriptors``) at pixel points; a non-finite point samples the
    corner instead of indexing out of the map, so a diverged network gives a NaN loss, not a crash."""
    points = tf.where(tf.math.is_finite(points), points, tf.zeros_like(points))
    return sample_descriptors(feature_map, points, image_size)


def _flat(score, location):
    batch = tf.shape(score)[0]
    return tf.reshape(score, [batch, -1]), tf.reshape(location, [batch, -1, 2])


def inner_cell_mask(score):
    """(1, Hc, Wc) 1 for cells off the border ring (the network zeroes scores there), else 0; ``score`` is
    (B, Hc, Wc[, 1])."""
    shape = tf.shape(score)
    return tf.pad(tf.ones(shape[1:3] - 2), [[1, 1], [1, 1]])[None]


class PairGeometry:
    r"""Correspondences between the keypoints of a source and a target image, shared by all losses.

    Attributes (N = cells of the score map):
        source_points, target_points: (B, N, 2) pixel keypoints; source_scores, target_scores: (B, N).
        warped: (B, N, 2) source keypoints mapped into the target by H.
        valid: (B, N) 1 where the source cell is off the border ring and its warped point inside the target.
        nearest: (B, N) index of the target keypoint closest to each warped point;
        nearest_distance: (B, N) $d_i = \min_j \|H p^s_i - p^t_j\|$ (pixels).
        associated: (B, N) 1 where ``valid`` and $d_i$ < 4 px (the points the location and usp losses use).
    """

    def __init__(self, source, target, homography, image_size):
        self.image_size = tuple(int(v) for v in image_size)
        h, w = self.image_size
        self.source_scores, self.source_points = _flat(source["score"], source["location"])
        self.target_scores, self.target_points = _flat(target["score"], target["location"])
        self.warped = warp_points(self.source_points, tf.cast(homography, tf.float32))
        x, y = self.warped[..., 0], self.warped[..., 1]
        inside = (x > 0.0) & (x < w - 1.0) & (y > 0.0) & (y < h - 1.0)
        self.valid = tf.reshape(inner_cell_mask(source["score"]), [1, -1]) * tf.cast(inside, tf.float32)
        offsets = self.warped[:, :, None, :] - self.target_points[:, None, :, :]
        distances = tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(offsets), -1), 1e-12))
        self.nearest = tf.argmin(distances, axis=-1, output_type=tf.int32)
        self.nearest_distance = tf.reduce_min(distances, axis=-1)
        self.associated = self.valid * tf.cast(self.nearest_distance < ASSOCIATION_RADIUS, tf.float32)


def location_loss(geometry):
    r"""Location loss: mean distance of each warped source keypoint to its nearest target keypoint,
    $\mathcal{L}_{loc} = \frac{1}{|A|}\sum_{i \in A} \min_j \|H p^s_i - p^t_j\|_2$, over the associated points A
    (inside the target, off the border, nearest distance below 4 px). Returns (B,)."""
    return masked_mean(geometry.nearest_distance, geometry.associated)


def score_loss(geometry):
    r"""Score loss (usp, Christiansen et al.): high scores where localisation is better than average,
    $\mathcal{L}_{usp} = \frac{1}{|A|}\sum_{i \in A} (s^s_i + s^t_{j(i)})\,(d_i - \bar d)$, with $j(i)$ the
    nearest target keypoint and $\bar d$ the mean of $d_i$ over A. Returns (B,)."""
    associated_scores = tf.gather(geometry.target_scores, geometry.nearest, batch_dims=1)
    mean_distance = masked_mean(geometry.nearest_distance, geometry.associated)
    terms = (geometry.source_scores + associated_scores) * (geometry.nearest_distance - mean_distance[:, None])
    return masked_mean(terms, geometry.associated)


def score_consistency_loss(target_score_map, geometry):
    r"""Score consistency: $\frac{1}{|V|}\sum_{i \in V} (S^t(H p^s_i) - s^s_i)^2$, the target score map sampled
    bilinearly at the (fixed) warped source keypoints against the source score, over valid points V.
    Returns (B,)."""
    resampled = sample_at(target_score_map, tf.stop_gradient(geometry.warped), geometry.image_size)
    return masked_mean(tf.square(resampled[..., 0] - geometry.source_scores), geometry.valid)


def descriptor_triplet_loss(source_map, target_map, geometry, distance, *, margin=0.2, relax_field=4.0,
                            min_points=20, negatives="hardest"):
    r"""Triplet loss with hardest (or semi-hard) negatives, per pixel as in KP2D.

    Anchor $a_i$: source descriptor at source keypoint $p^s_i$; positive $p_i$: target descriptor at $H p^s_i$;
    hardest negative: the closest target descriptor $p_j$ whose location is more than ``relax_field`` px away
    from $H p^s_i$ along x or y,
    $\mathcal{L}_{desc} = \frac{1}{|V|}\sum_{i \in V} \max(0,\ d(a_i, p_i) - \min_{j \notin R(i)} d(a_i, p_j) + m)$.
    Semi-hard negative (Schroff et al., FaceNet): the minimum only over the $p_j$ with
    $d(a_i, p_j) > d(a_i, p_i)$, or the hardest negative where there is none; unlike the hardest negative, it
    cannot be lowered by shrinking every distance at once, so it does not drive the descriptors to collapse.
    Keypoint positions are fixed here: this loss trains descriptors, not locations. Images with fewer than
    ``min_points`` valid points contribute 0.

    Args:
        source_map, target_map: (B, H/4, W/4, D) dense descriptor logits.
        distance: :class:`L2Distance` or :class:`SoftHammingDistance`.
        negatives: "hardest" (KP2D) or "semi_hard".
    Returns:
        (loss, recall), each (B,): recall = share of anchors whose nearest descriptor is their positive.
    """
    anchors = distance.normalize(
        sample_at(source_map, tf.stop_gradient(geometry.source_points), geometry.image_size))
    warped = tf.stop_gradient(geometry.warped)
    positives = distance.normalize(sample_at(target_map, warped, geometry.image_size))
    d = distance.pairwise(anchors, positives)  # (B, N, N)
    valid = geometry.valid
    apart = tf.reduce_any(tf.abs(warped[:, :, None, :] - warped[:, None, :, :]) > relax_field, axis=-1)
    negative = tf.cast(apart, tf.float32) * valid[:, None, :]
    positive_distance = tf.linalg.diag_part(d)
    if negatives == "semi_hard":
        farther = negative * tf.cast(d > positive_distance[..., None], tf.float32)
        any_farther = tf.reduce_max(farther, axis=-1, keepdims=True)
        negative = any_farther * farther + (1.0 - any_farther) * negative
    elif negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
    hardest_negative = tf.reduce_min(d * negative + MAX_DISTANCE * (1.0 - negative), axis=-1)
    triplet = tf.nn.relu(positive_distance - hardest_negative + margin)
    enough = tf.cast(tf.reduce_sum(valid, -1) >= min_points, tf.float32)
    nearest = tf.argmin(d + MAX_DISTANCE * (1.0 - valid[:, None, :]), axis=-1, output_type=tf.int32)
    hit = tf.cast(nearest == tf.range(tf.shape(d)[1])[None], tf.float32)
    return enough * masked_mean(triplet, valid), masked_mean(hit, valid)


@register
class InstanceNormalization(keras.layers.Layer):
    r"""Normalises each channel over the points of one sample, $\hat x = (x - \mu) / \sqrt{\sigma^2 + \epsilon}$
    (no affine parameters, like PyTorch's default InstanceNorm used by the IO-Net / context normalisation)."""

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        mean, variance = tf.nn.moments(inputs, axes=[1], keepdims=True)
        return (inputs - mean) * tf.math.rsqrt(variance + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def inlier_net(*, width=128, blocks=4, name="io_net"):
    """The IO-Net (KP2D's InlierNet): per-match features (B, K, 5) → inlier score (B, K). Training only.

    Each of K putative matches is (source x, y, target x, y in [−1, 1], descriptor distance); 1×1 convolutions
    (Dense on the last axis) with context normalisation over the K matches let each decision see the others.
    Stem 5→width (BN, ReLU), ``blocks`` residual blocks of 2 × [Dense → InstanceNorm → BN → ReLU], Dense → 1.
    """
    matches = keras.Input((None, 5), name="matches")
    x = keras.layers.Dense(width, name=f"{name}_stem")(matches)
    x = keras.layers.ReLU(name=f"{name}_stem_relu")(keras.layers.BatchNormalization(name=f"{name}_stem_bn")(x))
    for b in range(blocks):
        y = x
        for u in range(2):
            prefix = f"{name}_block{b}_{u}"
            y = keras.layers.Dense(width, name=f"{prefix}_dense")(y)
            y = keras.layers.BatchNormalization(name=f"{prefix}_bn")(InstanceNormalization(name=f"{prefix}_in")(y))
            y = keras.layers.ReLU(name=f"{prefix}_relu")(y)
        x = keras.layers.Add(name=f"{name}_block{b}_add")([x, y])
    inlier = keras.layers.Reshape((-1,), name="inlier")(keras.layers.Dense(1, name=f"{name}_out")(x))
    return keras.Model(matches, inlier, name=name)


def outlier_loss(io_net, source, target, geometry, distance, *, top_k=300, inlier_threshold=4.0, min_inliers=10,
                 training=True):
    r"""IO-Net outlier loss: regress +1 for correct and −1 for wrong nearest-descriptor matches.

    The ``top_k`` best-scoring keypoints of each image are matched source → target by nearest descriptor;
    a match is correct if $\|H p^s_i - p^t_{nn(i)}\| <$ ``inlier_threshold`` px. With IO-Net output $o_i$,
    $\mathcal{L}_{io} = \frac{1}{K}\sum_i (o_i - y_i)^2$, $y_i = \pm 1$; 0 for images with at most
    ``min_inliers`` correct matches. Gradients reach the keypoint network through the match features.
    Returns (B,).
    """
    n = geometry.source_scores.shape[1]
    k = top_k if n is None else min(top_k, n)
    source_best = tf.math.top_k(geometry.source_scores, k).indices
    target_best = tf.math.top_k(geometry.target_scores, k).indices
    source_points = tf.gather(geometry.source_points, source_best, batch_dims=1)
    target_points = tf.gather(geometry.target_points, target_best, batch_dims=1)
    warped = tf.gather(geometry.warped, source_best, batch_dims=1)
    source_descriptors = distance.normalize(
        sample_at(source["descriptor"], source_points, geometry.image_size))
    target_descriptors = distance.normalize(
        sample_at(target["descriptor"], target_points, geometry.image_size))
    d = distance.pairwise(source_descriptors, target_descriptors)
    nearest = tf.argmin(d, axis=-1, output_type=tf.int32)
    matched = tf.gather(target_points, nearest, batch_dims=1)
    features = tf.concat([to_unit_square(source_points, geometry.image_size),
                          to_unit_square(matched, geometry.image_size), tf.reduce_min(d, -1)[..., None]], -1)
    prediction = io_net(features, training=training)
    inlier = tf.norm(tf.stop_gradient(warped - matched), axis=-1) < inlier_threshold
    label = 2.0 * tf.cast(inlier, tf.float32) - 1.0
    enough = tf.cast(tf.reduce_sum(tf.cast(inlier, tf.float32), -1) > min_inliers, tf.float32)
    return enough * tf.reduce_mean(tf.square(prediction - label), -1)


def kp2d_losses(source, target, homography, image_size, distance, io_net=None, *, training=True,
                negatives="hardest"):
    """All KP2D loss terms for a batch of pairs, each (B,), keyed like :data:`KP2D_LOSS_WEIGHTS`, plus
    ``descriptor_recall``. ``source``/``target`` are the dense network outputs; without ``io_net`` the io term is
    0 (KP2D's configurations without IO); ``negatives`` as in :func:`descriptor_triplet_loss`."""
    geometry = PairGeometry(source, target, homography, image_size)
    descriptor, recall = descriptor_triplet_loss(source["descriptor"], target["descriptor"], geometry, distance,
                                                 negatives=negatives)
    io = (tf.zeros_like(geometry.source_scores[:, 0]) if io_net is None
          else outlier_loss(io_net, source, target, geometry, distance, training=training))
    return {
        "location": location_loss(geometry),
        "descriptor": descriptor,
        "score": score_loss(geometry),
        "consistency": score_consistency_loss(target["score"], geometry),
        "io": io,
        "descriptor_recall": recall,
    }


__all__ = [
    "KP2D_LOSS_WEIGHTS", "InstanceNormalization", "L2Distance", "PairGeometry", "SoftHammingDistance",
    "descriptor_triplet_loss", "inlier_net", "inner_cell_mask", "kp2d_losses", "location_loss", "masked_mean",
    "outlier_loss", "sample_at", "score_consistency_loss", "score_loss", "to_unit_square", "warp_points",
]
