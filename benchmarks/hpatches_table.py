"""HPatches-protocol scores of keypoint detectors side by side, on the generated test set and the held-out one.

Every entry goes through the same code path as ``zippy-tf eval hpatches`` (``make_detector`` +
``evaluate_hpatches``). Two test sets, written on first use under ``--data_dir``:

- ``generated``: 16 HPatches-layout sequences from scikit-image's photos (seed 0; the photos training uses, other
  crops and warps),
- ``heldout``: 12 sequences from scikit-learn's and matplotlib's photos, which no training or tuning ever sees
  (needs scikit-learn: ``pip install -e .[heldout]``).

An entry is ``LABEL=MODEL[,weights=PATH][,config=PATH][,refine=RADIUS]`` with MODEL a preset (zippypoint,
zippypoint-int8, kp2d), an OpenCV detector (orb, sift, akaze, brisk) or a .tflite path; ``refine`` moves a network's
keypoints onto Shi-Tomasi corners (``--refine_radius`` of ``zippy-tf eval hpatches``). ``--sets validation`` runs
the validation split (seed 1001) instead, for choices such as the radius.

    python benchmarks/hpatches_table.py --entry zippypoint=zippypoint --entry kp2d=kp2d \
        [--data_dir out/hpatches_sets] [--output benchmarks/results/hpatches_table.json]

Writes the JSON (every metric, per set) and a Markdown table next to it (``.md``), and prints the table.
"""

from absl import flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf.data.hpatches import STANDARD_TEST_SETS, standard_test_set
from zippy_tf.keypoints.evaluate import OPENCV_DETECTORS, evaluate_hpatches, make_detector, parse_detector_entry
from zippy_tf.runtime import hpatches_resolution, progress

import _common

FLAGS = flags.FLAGS
_common.define_hpatches_flags([], "LABEL=MODEL[,weights=PATH][,config=PATH][,refine=RADIUS]; the OpenCV detectors "
                                  "are always added")
flags.DEFINE_list("sets", list(STANDARD_TEST_SETS), "test sets to run (or validation, for choices made by hand)")
flags.DEFINE_integer("top_k", 300, "keypoints per image (300 at 320x240 in the KP2D protocol)")
flags.DEFINE_string("output", _common.default_output(__file__), "JSON result (the table goes to .md)")

COLUMNS = ("repeatability", "localization_error", "correctness_1", "correctness_3", "correctness_5",
           "matching_score")


def markdown(results):
    lines = []
    for set_name, rows in results["sets"].items():
        lines += [f"**{set_name}** ({rows[next(iter(rows))]['num_pairs']} pairs, {results['resolution']}, "
                  f"top-k {results['top_k']})", "",
                  "| detector | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        for label, row in rows.items():
            lines.append(f"| {label} | " + " | ".join(f"{row[c]:.3f}" for c in COLUMNS) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv):
    del argv
    width, height = hpatches_resolution(FLAGS.resolution)
    entries = [parse_detector_entry(e) for e in FLAGS.entry] + [(n, n, {}) for n in OPENCV_DETECTORS]
    results = {**_common.provenance(), "resolution": FLAGS.resolution, "top_k": FLAGS.top_k, "entries": {},
               "sets": {}}
    for set_name in FLAGS.sets:
        root = standard_test_set(set_name, FLAGS.data_dir, progress)
        results["sets"][set_name] = {}
        for label, model, kwargs in entries:
            detector = make_detector(model, resolution=(width, height), **kwargs)
            progress(f"{set_name}: {label}")
            results["entries"][label] = {"model": model, **kwargs}
            results["sets"][set_name][label] = evaluate_hpatches(detector, root, resolution=(width, height),
                                                                 top_k=FLAGS.top_k)
    _common.write_report(FLAGS.output, results, markdown=markdown(results))


if __name__ == "__main__":
    _common.run(main)
