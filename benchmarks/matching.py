"""Hamming vs float32 L2 descriptor matching speed on the same descriptors, in one run.

Descriptors are ZippyPoint-like: 256 bits with exactly 64 ones (hard Bin.Norm), packed to 32 bytes for Hamming and
the same vectors as float32 (256-d) for L2. Every matcher does mutual nearest-neighbour matching of N x N
descriptors; times are the best of ``--repeats`` runs (wall clock, this machine). The Hamming kernel runs on one
thread; the BLAS baseline on numpy's default thread count (all cores), and on one thread when threadpoolctl is
installed.

    python benchmarks/matching.py [--sizes 1000,4000] [--repeats 5]

Writes benchmarks/results/matching.json and prints it.
"""

import contextlib
import time

import zippy_tf  # noqa: F401  (before TensorFlow-adjacent imports, by house rule)
import cv2
import numpy as np
from absl import flags

from zippy_tf.errors import UserError
from zippy_tf.keypoints import matching
from zippy_tf.keypoints.matching import match_hamming, match_l2

import _common

try:
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["1000", "4000"], "descriptor counts N (N x N matching), comma-separated")
flags.DEFINE_integer("repeats", 5, "timed runs per matcher (the best is reported)", lower_bound=1)
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result")


def descriptors(rng, n, bits=256, ones=64):
    """``n`` random {0, 1} descriptors with exactly ``ones`` set bits."""
    order = np.argsort(rng.random((n, bits)), axis=1)
    out = np.zeros((n, bits), np.uint8)
    np.put_along_axis(out, order[:, :ones], 1, axis=1)
    return out


def l2_one_blas_thread(a, b):
    with threadpool_limits(limits=1, user_api="blas") if threadpool_limits else contextlib.nullcontext():
        return match_l2(a, b)


def opencv_l2_mutual(a, b):
    """KP2D's float matcher: ``cv2.BFMatcher(NORM_L2, crossCheck=True)``."""
    return cv2.BFMatcher(cv2.NORM_L2, crossCheck=True).match(a, b)


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(sizes, repeats, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        bits1, bits2 = descriptors(rng, n), descriptors(rng, n)
        packed1, packed2 = np.packbits(bits1, 1), np.packbits(bits2, 1)
        float1, float2 = bits1.astype(np.float32), bits2.astype(np.float32)
        same = np.array_equal(match_hamming(packed1, packed2)[0], match_l2(float1, float2)[0])
        seconds = {
            "hamming": best_time(lambda: match_hamming(packed1, packed2), repeats),
            "hamming_numpy_table16": best_time(lambda: match_hamming(packed1, packed2, kernel="numpy_table16"),
                                               repeats),
            "l2_float32_blas": best_time(lambda: match_l2(float1, float2), repeats),
            "l2_float32_opencv_bf": best_time(lambda: opencv_l2_mutual(float1, float2), repeats),
        }
        if threadpool_limits:
            seconds["l2_float32_blas_1_thread"] = best_time(lambda: l2_one_blas_thread(float1, float2), repeats)
        rows.append({
            "n": n, "seconds": seconds, "same_matches_hamming_vs_l2": bool(same),
            **{f"speedup_vs_{name}": seconds[name] / seconds["hamming"] for name in seconds if name != "hamming"},
        })
        rows[-1]["target_10x_met"] = rows[-1]["speedup_vs_l2_float32_blas"] >= 10.0
    return {
        "benchmark": "mutual nearest-neighbour matching, N x N, 256-bit (64 ones) vs 256-d float32",
        **_common.provenance(),
        "libraries": {"opencv_threads": cv2.getNumThreads(), "numpy": np.__version__, "opencv": cv2.__version__},
        "hamming_kernel": matching.HAMMING_KERNEL,
        "repeats": repeats,
        "note": "hamming is zippy_tf.keypoints.match_hamming (kernel above, 1 thread); l2_float32_blas is match_l2 "
                "(numpy matmul, default BLAS threads). Times are wall clock: compare ratios within one run.",
        "results": rows,
    }


def main(argv):
    del argv
    try:
        sizes = [int(n) for n in FLAGS.sizes]
    except ValueError:
        raise UserError(f"--sizes takes whole numbers separated by commas, not {','.join(FLAGS.sizes)!r}") from None
    _common.write_report(FLAGS.output, run(sizes, FLAGS.repeats))


if __name__ == "__main__":
    _common.run(main)
