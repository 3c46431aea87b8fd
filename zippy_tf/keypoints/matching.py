"""Descriptor matching: Hamming distance on packed binary descriptors, L2 on float ones, with one interface.

Both matchers find, for every descriptor of the first set, its nearest (and second-nearest) neighbour in the
second set and, for the mutual check, every second-set descriptor's nearest neighbour in the first set, all in one
pass over the pairs. A match is kept when it passes the optional ratio test and, if asked, the mutual check. Ties
go to the lowest index in both matchers, as in ``np.argmin`` and ``cv2.BFMatcher``.

The Hamming search runs in a small C kernel (``_hamming.c``: XOR and hardware popcount, no distance matrix) when the
package was built with it; otherwise, and in :func:`hamming_distances`, numpy XORs and counts bits with a 16-bit
table, in row blocks so memory stays bounded. ``match_hamming(..., kernel=...)`` forces one of the two
(:data:`HAMMING_KERNELS`), e.g. to time the fallback.
"""

import functools

import cv2
import numpy as np

from zippy_tf.errors import UserError

try:
    from zippy_tf.keypoints import _hamming
except ImportError:  # built without a C compiler (setup.py marks the kernel optional)
    _hamming = None

BLOCK_ROWS = 1024  # rows of the first set per block: bounds the (rows, M) temporaries
HAMMING_KERNELS = ("c_popcount", "numpy_table16")  # the C extension; the numpy fallback
HAMMING_KERNEL = "c_popcount" if _hamming is not None else "numpy_table16"  # what match_hamming runs by default


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


def _padded(a, b, multiple):
    """Both packed sets with zero bytes appended to a whole number of ``multiple``-byte words (no added distance)."""
    pad = -a.shape[1] % multiple
    return (np.pad(a, ((0, 0), (0, pad))), np.pad(b, ((0, 0), (0, pad)))) if pad else (a, b)


def _hamming_blocks(a, b, block_rows):
    """(start row, int32 Hamming distances of rows start.. of ``a`` to all of ``b``) in row blocks."""
    a16, b16 = (x.view(np.uint16) for x in _padded(a, b, 2))
    table = popcount_table16()
    for start in range(0, len(a16), block_rows):
        yield start, table[a16[start:start + block_rows, None, :] ^ b16[None]].sum(-1, dtype=np.int32)


def hamming_distances(a, b, block_rows=BLOCK_ROWS):
    """The full (N, M) Hamming distance matrix (int32) between packed uint8 descriptors (N, B) and (M, B)."""
    a, b = _as_packed(a), _as_packed(b)
    out = np.empty((len(a), len(b)), np.int32)
    for start, block in _hamming_blocks(a, b, block_rows):
        out[start:start + len(block)] = block
    return out


def _nearest_from_blocks(blocks, n, m, k, columns):
    """Row k-nearest and column nearest from (start, (rows, M) distance block) pairs covering all N rows.

    Returns (row distances (N, k) float32, row indices (N, k) int64, column nearest rows (M,) int64 or None).
    """
    distances, indices = np.empty((n, k), np.float32), np.empty((n, k), np.int64)
    column_best, column_index = np.full(m, np.inf, np.float32), np.zeros(m, np.int64)
    for start, block in blocks:
        block = block.astype(np.float32, copy=False)
        rows = np.arange(len(block))
        if columns:
            nearest = block.argmin(0)
            best = block[nearest, np.arange(m)]
            better = best < column_best  # blocks arrive in row order: strict < keeps the lowest row on ties
            column_best[better], column_index[better] = best[better], nearest[better] + start
        for column in range(k):  # argmin: ties go to the lower index; then mask it for the next neighbour
            nearest = block.argmin(1)
            indices[start:start + len(block), column] = nearest
            distances[start:start + len(block), column] = block[rows, nearest]
            block[rows, nearest] = np.inf
    return distances, indices, column_index if columns else None


def _numpy_hamming_neighbours(a, b, k, columns):
    """As :func:`_nearest_from_blocks`, for packed binary descriptors, distances in bits (16-bit table in numpy)."""
    return _nearest_from_blocks(_hamming_blocks(a, b, BLOCK_ROWS), len(a), len(b), k, columns)


def _c_hamming_neighbours(a, b, k, columns):
    """As :func:`_numpy_hamming_neighbours`, in the C kernel."""
    a64, b64 = (np.ascontiguousarray(x).view(np.uint64) for x in _padded(a, b, 8))
    distances, indices = np.empty((len(a), k), np.int32), np.empty((len(a), k), np.int64)
    column_best = np.full(len(b), np.iinfo(np.int32).max, np.int32) if columns else None
    column_index = np.zeros(len(b), np.int64) if columns else None
    _hamming.nearest(a64, b64, len(a), len(b), a64.shape[1], k, distances, indices, column_best, column_index)
    return distances.astype(np.float32), indices, column_index


def _hamming_neighbours(kernel):
    """The neighbour search of ``kernel`` (a name in :data:`HAMMING_KERNELS`, or None for the best built one)."""
    if kernel is None:
        kernel = "c_popcount" if _hamming is not None else "numpy_table16"
    if kernel not in HAMMING_KERNELS:
        raise UserError(f"unknown Hamming kernel {kernel!r}; use one of {', '.join(HAMMING_KERNELS)}, or None for "
                        "the best available")
    if kernel == "c_popcount" and _hamming is None:
        raise UserError("the c_popcount Hamming kernel is not built; reinstall with a C compiler (pip install -e ., "
                        "see BUILD.md §6) or use kernel='numpy_table16'")
    return _c_hamming_neighbours if kernel == "c_popcount" else _numpy_hamming_neighbours


def _l2_neighbours(a, b, k, columns):
    """As :func:`_nearest_from_blocks`, for float descriptors with BLAS products, distances in L2 units."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    norms_b = np.einsum("ij,ij->i", b, b)
    blocks = ((start, np.einsum("ij,ij->i", rows, rows)[:, None] + norms_b[None] - 2.0 * rows @ b.T)
              for start, rows in ((s, a[s:s + BLOCK_ROWS]) for s in range(0, len(a), BLOCK_ROWS)))
    squared, indices, column_index = _nearest_from_blocks(blocks, len(a), len(b), k, columns)
    return np.sqrt(np.maximum(squared, 0.0)), indices, column_index


def _match(neighbours, desc1, desc2, mutual, ratio):
    """Nearest-neighbour matches of ``desc1`` in ``desc2`` with the ratio test and the mutual check."""
    if len(desc1) == 0 or len(desc2) == 0:
        return np.zeros((0, 2), np.int64), np.zeros((0,), np.float32)
    k = min(2 if ratio is not None else 1, len(desc2))
    distances, indices, column_nearest = neighbours(desc1, desc2, k, mutual)
    keep = np.ones(len(desc1), bool)
    if ratio is not None and k == 2:
        # Accept iff d_best <= ratio · d_second (the reference's intent, without its ordering quirk).
        keep &= distances[:, 0].astype(np.float64) <= ratio * distances[:, 1].astype(np.float64)
    if mutual:
        keep &= column_nearest[indices[:, 0]] == np.arange(len(desc1))
    rows = np.flatnonzero(keep)
    return np.stack([rows, indices[rows, 0]], 1), distances[rows, 0]


def match_hamming(desc1, desc2, *, mutual=True, ratio=None, kernel=None):
    """Matches packed uint8 binary descriptors by Hamming distance.

    Args:
        desc1, desc2: (N, B) and (M, B) uint8, bits packed as ``np.packbits`` / ``postprocess.pack_bits`` do.
        mutual: keep only matches that are each other's nearest neighbour.
        ratio: if given, keep a match only when d_best <= ratio · d_second (e.g. 0.95 as in ZippyPoint's demo).
        kernel: "c_popcount" or "numpy_table16" to force that kernel (same results), None for the best built one
            (:data:`HAMMING_KERNEL`). Forcing "c_popcount" where the package was built without it is a UserError.

    Returns:
        indices (K, 2) int64 of (row in desc1, row in desc2), and distances (K,) float32 in bits.

    References:
        Kanakis et al., "ZippyPoint: Fast Interest Point Detection, Description, and Matching through
        Mixed Precision Discretization", CVPRW 2023, https://arxiv.org/abs/2203.03610
    """
    return _match(_hamming_neighbours(kernel), _as_packed(desc1), _as_packed(desc2), mutual, ratio)


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


__all__ = [
    "HAMMING_KERNEL", "HAMMING_KERNELS", "hamming_distances", "match_descriptors", "match_hamming", "match_l2",
    "popcount_table16", "to_dmatches",
]
