"""Exports what a device latency table for the precision search (``zippy-tf search --cost table``) is measured on.

The starting configuration is exported to ``start.tflite``, and for every searched macro-block (``--blocks``,
default all) and every other candidate of its role, the configuration with that one block changed (one LCE
flatbuffer per block choice), plus ``table_template.json``: the table the search reads,
``{"<block>": {"<choice>": null, ...}, ...}``, to be filled in with milliseconds measured on the device (BUILD.md
§5 says how). The search's ``TableCost`` sums one entry per block, so every block has an entry for its starting
choice (measured on ``start.tflite``) and searched blocks one per candidate.

    python converters/export_cost_table.py --output_dir cost_table [--config int8] [--resolution 320x240] \
        [--blocks stage1,stage2]
"""

import os
import sys

from absl import app, flags

from zippy_tf.errors import UserError
from zippy_tf.export import convert
from zippy_tf.io import atomic_write, write_json
from zippy_tf.keypoints.model import as_blocks, keypoint_network
from zippy_tf.quantization.macro_block import ROLE_CANDIDATES
from zippy_tf.runtime import parse_resolution

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "cost_table", "folder for the flatbuffers, manifest.json and table_template.json")
flags.DEFINE_string("config", "int8", "starting configuration: zippypoint, int8, or a macro-block JSON file")
flags.DEFINE_string("resolution", "320x240", "input WIDTHxHEIGHT (the one the device runs)")
flags.DEFINE_list("blocks", None, "macro-blocks to search (default: all)")


def main(argv):
    del argv
    try:
        height, width = parse_resolution(FLAGS.resolution)
        blocks = as_blocks(FLAGS.config)
        unknown = set(FLAGS.blocks or ()) - {b.name for b in blocks}
        if unknown:
            raise UserError(f"--blocks {sorted(unknown)} are not in the configuration; choose from "
                            f"{', '.join(b.name for b in blocks)}")
    except UserError as e:
        sys.exit(f"export_cost_table: error: {e}")
    os.makedirs(FLAGS.output_dir, exist_ok=True)

    def export(config, name):
        path = os.path.join(FLAGS.output_dir, f"{name}.tflite")
        atomic_write(path, convert(keypoint_network(config, input_shape=(height, width, 3)), "lce"))
        print(f"wrote {path}", file=sys.stderr, flush=True)
        return path

    start = export(blocks, "start")
    template, manifest = {}, []
    for index, block in enumerate(blocks):
        template[block.name] = {block.choice: None}
        manifest.append({"block": block.name, "choice": block.choice, "path": start,
                         "layer_prefix": f"{block.name}_"})
        if FLAGS.blocks is not None and block.name not in FLAGS.blocks:
            continue
        for choice in ROLE_CANDIDATES[block.role]:
            if choice == block.choice:
                continue
            template[block.name][choice] = None
            config = [*blocks[:index], block.with_choice(choice), *blocks[index + 1:]]
            manifest.append({"block": block.name, "choice": choice, "path": export(config, f"{block.name}={choice}"),
                             "layer_prefix": f"{block.name}_"})
    write_json(os.path.join(FLAGS.output_dir, "manifest.json"), manifest)
    write_json(os.path.join(FLAGS.output_dir, "table_template.json"), template)


if __name__ == "__main__":
    app.run(main)
