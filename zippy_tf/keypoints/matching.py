"""Descriptor matching: Hamming distance on packed binary descriptors, L2 on float ones, with one interface.

Both matchers find, for every descriptor of the first set, its nearest (and second-nearest) neighbour in the
second set, then keep a match when it passes the optional ratio test and, if asked, the mutual check. Ties go to
the lowest index in both matchers, as in ``np.argmin`` and ``cv2.BFMatcher``.

The Hamming nearest-neighbour search runs on OpenCV's ``cv2.batchDistance`` (hardware popcount on XOR'ed words);
:func:`hamming_distances` gives the full distance matrix in numpy (XOR, then a popcount table on 16-bit chunks,
in row blocks so memory stays bounded).
"""

import functools

import cv2
import numpy as np

BLOCK_ROWS = 1024  # rows of the first set per block: bounds the (rows, M) temporaries


@functools.lru_cache(maxsize=None)
def popcount_table16():
    """Set-bit counts of every 16-bit value (64 KiB: stays in cache)."""
    byte_counts = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1).astype(np.uint8)
    values = np.arange(1 << 16)
    return byte_counts[values & 0xFF] + byte_counts[values >> 8]


def _as_packed(descriptors):
    descriptors = np.ascontiguousarray(descriptors)
    if descriptors.dtype != np.uint8 or descriptors.ndim != 2:
        raise ValueError(f"expected packed (N, bytes) uint8 descriptors, got {descriptors.dtype} {descriptors.shape}")
    return descriptors


def hamming_distances(a, b, block_rows=BLOCK_ROWS):
    """The full (N, M) Hamming distance matrix (int32) between packed uint8 descriptors (N, B) and (M, B)."""
    a, b = _as_packed(a), _as_packed(b)
    if a.shape[1] % 2:  # pad to whole 16-bit chunks; zero bytes add no distance
        a, b = (np.pad(x, ((0, 0), (0, 1))) for x in (a, b))
    a16, b16 = a.view(np.uint16), b.view(np.uint16)
    table = popcount_table16()
    out = np.empty((len(a), len(b)), np.int32)
    for start in range(0, len(a), block_rows):
        xor = a16[start:start + block_rows, None, :] ^ b16[None]
        out[start:start + block_rows] = table[xor].sum(-1, dtype=np.int32)
    return out


def _hamming_neighbours(a, b, k):
    """The ``k`` nearest neighbours in ``b`` of each row of ``a``: (distances (N, k) float32, indices (N, k))."""
    distances, indices = cv2.batchDistance(a, b, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=min(k, len(b)))
    return distances.astype(np.float32), indices.astype(np.int64)


def _l2_neighbours(a, b, k):
    """As :func:`_hamming_neighbours` for float descriptors, with BLAS products in row blocks."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    k = min(k, len(b))
    norms_b = np.einsum("ij,ij->i", b, b)
    distances, indices = np.empty((len(a), k), np.float32), np.empty((len(a), k), np.int64)
    for start in range(0, len(a), BLOCK_ROWS):
        rows = a[start:start + BLOCK_ROWS]
        squared = np.einsum("ij,ij->i", rows, rows)[:, None] + norms_b[None] - 2.0 * rows @ b.T
        rows_index = np.arange(len(rows))
        for column in range(k):  # argmin: ties go to the lower index; then mask it for the next neighbour
            nearest = squared.argmin(1)
            indices[start:start + BLOCK_ROWS, column] = nearest
            distances[start:start + BLOCK_ROWS, column] = np.sqrt(np.maximum(squared[rows_index, nearest], 0.0))
            squared[rows_index, nearest] = np.inf
    return distances, indices


def _match(neighbours, desc1, desc2, mutual, ratio):
    """Nearest-neighbour matches of ``desc1`` in ``desc2`` with the ratio test and the mutual check."""
    if len(desc1) == 0 or len(desc2) == 0:
        return np.zeros((0, 2), np.int64), np.zeros((0,), np.float32)
    distances, indices = neighbours(desc1, desc2, 2 if ratio is not None else 1)
    keep = np.ones(len(desc1), bool)
    if ratio is not None and distances.shape[1] == 2:
        # Accept iff d_best <= ratio · d_second (the reference's intent, without its ordering quirk).
        keep &= distances[:, 0].astype(np.float64) <= ratio * distances[:, 1].astype(np.float64)
    rows = np.flatnonzero(keep)
    if mutual and len(rows):
        # Only the descriptors of desc2 that some kept row chose need their own nearest neighbour.
        targets, position = np.unique(indices[rows, 0], return_inverse=True)
        _, back = neighbours(desc2[targets], desc1, 1)
        rows = rows[back[position, 0] == rows]
    return np.stack([rows, indices[rows, 0]], 1), distances[rows, 0]


def match_hamming(desc1, desc2, *, mutual=True, ratio=None):
    """Matches packed uint8 binary descriptors by Hamming distance.

    Args:
        desc1, desc2: (N, B) and (M, B) uint8, bits packed as ``np.packbits`` / ``postprocess.pack_bits`` do.
        mutual: keep only matches that are each other's nearest neighbour.
        ratio: if given, keep a match only when d_best <= ratio · d_second (e.g. 0.95 as in ZippyPoint's demo).

    Returns:
        indices (K, 2) int64 of (row in desc1, row in desc2), and distances (K,) float32 in bits.

    References:
        Kanakis et al., "ZippyPoint: Fast Interest Point Detection, Description, and Matching through
        Mixed Precision Discretization", CVPRW 2023, https://arxiv.org/abs/2203.03610
    """
    return _match(_hamming_neighbours, _as_packed(desc1), _as_packed(desc2), mutual, ratio)


def match_l2(desc1, desc2, *, mutual=True, ratio=None):
    """Matches float descriptors (N, D), (M, D) by Euclidean distance; same arguments and returns as
    :func:`match_hamming`, distances in L2 units."""
    return _match(_l2_neighbours, desc1, desc2, mutual, ratio)


def match_descriptors(desc1, desc2, *, binary, mutual=True, ratio=None):
    """Dispatches to :func:`match_hamming` (``binary``) or :func:`match_l2`."""
    return (match_hamming if binary else match_l2)(desc1, desc2, mutual=mutual, ratio=ratio)


def to_dmatches(indices, distances):
    """Matches as a list of ``cv2.DMatch`` (queryIdx into the first set, trainIdx into the second)."""
    return [cv2.DMatch(int(i), int(j), float(d)) for (i, j), d in zip(indices, distances)]


__all__ = ["hamming_distances", "match_descriptors", "match_hamming", "match_l2", "popcount_table16", "to_dmatches"]
