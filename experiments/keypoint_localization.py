"""Where keypoint detectors lose viewpoint pairs: localisation or description?

On the generated HPatches-layout test set (``benchmarks/hpatches_table.py``'s ``generated``), split into viewpoint
(v_*) and illumination (i_*) pairs, for each detector:

- repeatability at 1…10 px (the protocol's metric uses 3 px): a detector that finds the right places but puts them
  off by a few pixels rises late in this sweep;
- mean matching accuracy (MMA, D2-Net) at 1…10 px: which fraction of the mutual nearest-neighbour matches lands
  within ε px; a right-but-imprecise match counts at a large ε only;
- where keypoints sit inside the network's 8-px cells (x mod 8, y mod 8): a location head that learned sub-cell
  offsets spreads them over the cell; one that did not piles them near its centre. The OpenCV detectors are the
  reference (uniform);
- how far each keypoint is from the strongest Shi-Tomasi corner of its cell (the corner teacher's target,
  ``zippy_tf.keypoints.teacher.cell_teacher``), next to how far that cell's centre is from it: the gap is what
  the location head learned of where in the cell the corner is.

    python experiments/keypoint_localization.py [--entry zippypoint=zippypoint --entry kp2d=kp2d] \
        [--data_dir out/hpatches_sets] [--resolution 320x240] [--output experiments/results/keypoint_localization.json]

Writes the JSON and a plot next to it (``.png``), and prints a summary.
"""

import os
import sys

import numpy as np
from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf.data.hpatches import list_sequences, load_sequence, standard_test_set
from zippy_tf.io import save_figure
from zippy_tf.keypoints.evaluate import make_detector, parse_detector_entry
from zippy_tf.keypoints.metrics import MMA_THRESHOLDS, TOP_K, mean_matching_accuracy, repeatability, top_k
from zippy_tf.keypoints.model import CELL
from zippy_tf.keypoints.teacher import cell_teacher
from zippy_tf.runtime import hpatches_resolution, progress

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import _common  # noqa: E402  (benchmarks/_common.py: what the benchmark and experiment scripts share)

FLAGS = flags.FLAGS
_common.define_hpatches_flags(["zippypoint=zippypoint", "kp2d=kp2d", "orb=orb", "sift=sift"],
                              "LABEL=MODEL[,weights=PATH][,config=PATH], as in benchmarks/hpatches_table.py")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result (the plot goes to .png)")

KINDS = {"v_": "viewpoint", "i_": "illumination"}


def sweep(detector, root, resolution):
    """Per kind: mean repeatability and MMA at each threshold, and the histogram of keypoints' cell positions."""
    per_kind = {kind: {"repeatability": [], "mma": []} for kind in KINDS.values()}
    cell_positions, corner_distances = [], []
    for folder in list_sequences(root):
        pairs = load_sequence(folder, resolution)
        features1 = detector(pairs[0]["image1"])
        keypoints = top_k(features1, TOP_K)["keypoints"]
        cell_positions.append(keypoints % CELL)
        corner_distances.append(corner_distance(pairs[0]["image1"], keypoints))
        for pair in pairs:
            features2 = detector(pair["image2"])
            shapes = (features1, features2, pair["homography"], pair["image1"].shape, pair["image2"].shape)
            rows = per_kind[KINDS[pair["sequence"][:2]]]
            rows["repeatability"].append([repeatability(*shapes, threshold=t)[0] for t in MMA_THRESHOLDS])
            rows["mma"].append(list(mean_matching_accuracy(*shapes, binary=detector.binary).values()))
    positions = np.concatenate(cell_positions)
    histogram = np.histogram2d(positions[:, 1], positions[:, 0], bins=CELL, range=[[0, CELL], [0, CELL]])[0]
    return {
        **{kind: {name: [round(float(v), 4) for v in np.nanmean(values, axis=0)] for name, values in rows.items()}
           for kind, rows in per_kind.items()},
        # keypoints within 1.5 px of the cell centre in x and y: 3/8 · 3/8 = 0.14 for uniformly spread points
        "near_cell_centre": round(float(np.mean(np.all(np.abs(positions - (CELL - 1) / 2) <= 1.5, axis=1))), 4),
        "cell_histogram": (histogram / histogram.sum()).round(4).tolist(),
        # mean over keypoints of (keypoint, its cell's centre) → the cell's strongest corner, px
        "corner_distance": dict(zip(("keypoint", "cell_centre"), np.concatenate(corner_distances).mean(0).round(3)
                                    .tolist())),
    }


def corner_distance(image, keypoints):
    """(N, 2): distance (px) of each keypoint (x, y), and of its cell's centre, to its cell's strongest corner."""
    h, w = image.shape[:2]
    padded = np.pad(image, [(0, -h % CELL), (0, -w % CELL), (0, 0)], mode="edge")
    corners = cell_teacher(padded[None].astype(np.float32))["location"][0].numpy()
    cells = np.minimum(np.floor(keypoints / CELL).astype(int), [corners.shape[1] - 1, corners.shape[0] - 1])
    target = corners[cells[:, 1], cells[:, 0]]
    centre = cells * CELL + (CELL - 1) / 2
    return np.stack([np.linalg.norm(keypoints - target, axis=1), np.linalg.norm(centre - target, axis=1)], 1)


def plot(results, path):
    plt = _common.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, kind in zip(axes, KINDS.values()):
        for index, (label, r) in enumerate(results["detectors"].items()):
            colour = f"C{index}"
            ax.plot(MMA_THRESHOLDS, r[kind]["repeatability"], "-o", color=colour, ms=3, label=f"{label} repeatability")
            ax.plot(MMA_THRESHOLDS, r[kind]["mma"], "--s", color=colour, ms=3, label=f"{label} MMA")
        ax.axvline(3, color="grey", lw=0.8)  # the protocol's threshold
        ax.set(title=f"{kind} pairs ({results['resolution']})", xlabel="threshold (px)", ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction")
    axes[1].legend(fontsize=7, loc="lower right")
    save_figure(figure, path)


def main(argv):
    del argv
    width, height = hpatches_resolution(FLAGS.resolution)
    root = standard_test_set("generated", FLAGS.data_dir, progress)
    results = {**_common.provenance(), "resolution": FLAGS.resolution, "top_k": TOP_K,
               "thresholds": list(MMA_THRESHOLDS), "num_sequences": len(list_sequences(root)), "detectors": {}}
    for label, model, kwargs in map(parse_detector_entry, FLAGS.entry):
        progress(f"{label}: {model}")
        detector = make_detector(model, resolution=(width, height), **kwargs)
        results["detectors"][label] = {"model": model, **kwargs, **sweep(detector, root, (width, height))}
    plot(results, os.path.splitext(FLAGS.output)[0] + ".png")
    summary = []
    for label, r in results["detectors"].items():
        v, i = r["viewpoint"], r["illumination"]
        summary.append(f"{label:>12}: viewpoint rep@3 {v['repeatability'][2]:.3f} @8 {v['repeatability'][7]:.3f}, "
                       f"MMA@3 {v['mma'][2]:.3f} @8 {v['mma'][7]:.3f} | illumination rep@3 "
                       f"{i['repeatability'][2]:.3f}, MMA@3 {i['mma'][2]:.3f} | near cell centre "
                       f"{r['near_cell_centre']:.3f} | to the cell's corner {r['corner_distance']['keypoint']:.2f} px "
                       f"(its centre {r['corner_distance']['cell_centre']:.2f})")
    _common.write_report(FLAGS.output, results, printed="\n".join(summary))


if __name__ == "__main__":
    _common.run(main)
