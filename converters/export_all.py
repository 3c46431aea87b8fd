"""Exports every model preset in every format it supports, with a manifest of sizes and op counts.

    python converters/export_all.py --output_dir flatbuffers [--resolution 320x240]

Binary models (ZippyPoint) go to LCE only: stock TFLite has no binary kernels. Each file is written
atomically; the manifest (manifest.json) lists path, format, size and the op census of each.
"""

import os
import sys

from absl import app, flags

from zippy_tf.errors import UserError
from zippy_tf.export import FORMATS, convert, op_census
from zippy_tf.io import atomic_write, write_json
from zippy_tf.presets import PRESETS, build_model
from zippy_tf.runtime import parse_resolution

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "flatbuffers", "folder for the .tflite files and manifest.json")
flags.DEFINE_string("resolution", "320x240", "input WIDTHxHEIGHT")
flags.DEFINE_list("models", ["zippypoint", "zippypoint-int8", "kp2d"], "presets to export")


def main(argv):
    del argv
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    height, width = parse_resolution(FLAGS.resolution)
    manifest = []
    for name in FLAGS.models:
        if name not in PRESETS:
            raise app.UsageError(f"unknown model {name!r}; choose from {', '.join(PRESETS)}")
        model = build_model(name, input_shape=(height, width, 3))
        for fmt in FORMATS:
            try:
                data = convert(model, fmt)
            except UserError as e:  # e.g. int8 of a binary model: not a supported combination
                print(f"skip {name} {fmt}: {e}", file=sys.stderr)
                continue
            path = os.path.join(FLAGS.output_dir, f"{name}_{fmt}.tflite")
            atomic_write(path, data)
            manifest.append({"model": name, "format": fmt, "path": path, "size_bytes": len(data),
                             "ops": op_census(data)["ops"]})
            print(f"wrote {path} ({len(data) / 1e6:.1f} MB)", file=sys.stderr)
    write_json(os.path.join(FLAGS.output_dir, "manifest.json"), manifest)


if __name__ == "__main__":
    app.run(main)
