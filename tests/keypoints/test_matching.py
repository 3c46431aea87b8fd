"""Hamming matching equals brute-force float matching on ±1 descriptors; ratio test and mutual check."""

import cv2
import numpy as np
import pytest

from zippy_tf.errors import UserError
from zippy_tf.keypoints import matching
from zippy_tf.keypoints.matching import HAMMING_KERNELS, hamming_distances, match_hamming, match_l2, to_dmatches


@pytest.fixture(params=HAMMING_KERNELS)
def hamming_kernel(request):
    """Runs a test on the C kernel and on the numpy fallback used when the package is built without a compiler."""
    return request.param


def test_c_kernel_is_built():
    assert matching.HAMMING_KERNEL == "c_popcount", (
        "zippy_tf.keypoints._hamming is missing: install with a C compiler (pip install -e .) for fast matching")


def test_unknown_kernel_is_a_user_error():
    one = np.zeros((1, 32), np.uint8)
    with pytest.raises(UserError, match="unknown Hamming kernel 'avx512'; use one of c_popcount, numpy_table16"):
        match_hamming(one, one, kernel="avx512")


def test_missing_c_kernel(monkeypatch):
    """Built without a C compiler: forcing the C kernel names the fix; the default falls back to numpy."""
    monkeypatch.setattr(matching, "_hamming", None)
    one = np.zeros((1, 32), np.uint8)
    with pytest.raises(UserError, match="not built; reinstall with a C compiler .*BUILD.md §6") as error:
        match_hamming(one, one, kernel="c_popcount")
    assert "\n" not in str(error.value)
    assert match_hamming(one, one)[0].tolist() == [[0, 0]]


def test_forced_numpy_kernel_skips_the_c_kernel(monkeypatch):
    def fail(*args):
        raise AssertionError("the C kernel ran")

    monkeypatch.setattr(matching._hamming, "nearest", fail)
    one = np.zeros((1, 32), np.uint8)
    assert match_hamming(one, one, kernel="numpy_table16")[0].tolist() == [[0, 0]]
    with pytest.raises(AssertionError, match="the C kernel ran"):
        match_hamming(one, one)


def _bits(rng, n, m=256):
    return rng.integers(0, 2, (n, m)).astype(np.uint8)


def _brute_force(bits1, bits2, mutual, ratio):
    """The reference: float ±1 vectors, full L2 matrix, argmin (ties to the lowest index)."""
    x1, x2 = 2.0 * bits1 - 1.0, 2.0 * bits2 - 1.0
    d = np.sqrt(((x1[:, None] - x2[None]) ** 2).sum(-1)) / 2.0  # = sqrt(Hamming)
    hamming = np.round(d ** 2)
    best = hamming.argmin(1)
    keep = np.ones(len(x1), bool)
    if ratio is not None:
        second = np.sort(hamming, 1)[:, 1]
        keep &= hamming[np.arange(len(x1)), best] <= ratio * second
    if mutual:
        keep &= hamming.argmin(0)[best] == np.arange(len(x1))
    rows = np.flatnonzero(keep)
    return np.stack([rows, best[rows]], 1), hamming[rows, best[rows]]


def test_hamming_distances_match_unpacked_count():
    rng = np.random.default_rng(0)
    a, b = _bits(rng, 37, 248), _bits(rng, 23, 248)  # 31 bytes: an odd byte count
    expected = (a[:, None] != b[None]).sum(-1)
    np.testing.assert_array_equal(hamming_distances(np.packbits(a, 1), np.packbits(b, 1), block_rows=8), expected)


@pytest.mark.parametrize("mutual", [True, False])
@pytest.mark.parametrize("ratio", [None, 0.95, 0.8])
@pytest.mark.parametrize("bits", [256, 72, 8])  # 72: not whole 64-bit words; 8: many ties
def test_hamming_equals_brute_force_float(hamming_kernel, mutual, ratio, bits):
    rng = np.random.default_rng(1)
    bits1 = _bits(rng, 120, bits)
    bits2 = np.concatenate([bits1[:60] ^ (rng.random((60, bits)) < 0.1), _bits(rng, 90, bits)]).astype(np.uint8)
    indices, distances = match_hamming(np.packbits(bits1, 1), np.packbits(bits2, 1), mutual=mutual, ratio=ratio,
                                       kernel=hamming_kernel)
    expected_indices, expected_distances = _brute_force(bits1, bits2, mutual, ratio)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances)
    # On ±1 vectors L2 = 2·sqrt(Hamming): the same neighbours, and a Hamming ratio r is an L2 ratio sqrt(r).
    l2_ratio = None if ratio is None else np.sqrt(ratio)
    l2_indices, l2_distances = match_l2(2.0 * bits1 - 1.0, 2.0 * bits2 - 1.0, mutual=mutual, ratio=l2_ratio)
    np.testing.assert_array_equal(l2_indices, expected_indices)
    np.testing.assert_allclose(l2_distances, 2.0 * np.sqrt(expected_distances), rtol=1e-5)


def test_ratio_test_rejects_ambiguous(hamming_kernel):
    base = np.zeros((1, 32), np.uint8)
    near = base.copy(); near[0, 0] = 0b1  # distance 1
    also_near = base.copy(); also_near[0, 1] = 0b1  # distance 1: ambiguous
    far = np.full((1, 32), 0xFF, np.uint8)
    ambiguous = np.concatenate([near, also_near, far])
    assert len(match_hamming(base, ambiguous, ratio=0.95, kernel=hamming_kernel)[0]) == 0
    clear = np.concatenate([near, far])
    indices, distances = match_hamming(base, clear, ratio=0.95, kernel=hamming_kernel)
    assert indices.tolist() == [[0, 0]] and distances.tolist() == [1.0]


def test_mutual_check(hamming_kernel):
    """Two queries share one nearest neighbour: only the closer survives the mutual check."""
    target = np.zeros((2, 1), np.uint8)
    target[1, 0] = 0xFF
    queries = np.array([[0b1], [0b11]], np.uint8)  # both nearest to target 0, distances 1 and 2
    assert match_hamming(queries, target, mutual=False, kernel=hamming_kernel)[0].tolist() == [[0, 0], [1, 0]]
    assert match_hamming(queries, target, mutual=True, kernel=hamming_kernel)[0].tolist() == [[0, 0]]


def test_empty_and_single(hamming_kernel):
    empty = np.zeros((0, 32), np.uint8)
    one = np.zeros((1, 32), np.uint8)
    assert match_hamming(empty, one, kernel=hamming_kernel)[0].shape == (0, 2)
    assert match_hamming(one, one, ratio=0.9, kernel=hamming_kernel)[0].tolist() == [[0, 0]]
    assert match_l2(np.zeros((0, 4)), np.ones((3, 4)))[0].shape == (0, 2)


def test_to_dmatches():
    rng = np.random.default_rng(2)
    a = np.packbits(_bits(rng, 10), 1)
    matches = to_dmatches(*match_hamming(a, a))
    assert len(matches) == 10 and isinstance(matches[0], cv2.DMatch)
    assert [(m.queryIdx, m.trainIdx, m.distance) for m in matches] == [(i, i, 0.0) for i in range(10)]


def test_rejects_float_for_hamming():
    with pytest.raises(ValueError, match="uint8"):
        match_hamming(np.zeros((2, 4), np.float32), np.zeros((2, 4), np.float32))
