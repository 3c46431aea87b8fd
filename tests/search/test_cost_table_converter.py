"""converters/export_cost_table.py writes the flatbuffers and the table template that TableCost reads."""

import json
import os
import subprocess
import sys

from zippy_tf.export.flatbuffer import op_census
from zippy_tf.keypoints.configs import ZIPPYPOINT_INT8, with_precisions
from zippy_tf.search import TableCost

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "converters", "export_cost_table.py")


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


def test_exports_each_choice_of_the_searched_blocks_and_a_complete_template(tmp_path):
    out = tmp_path / "table"
    done = run(f"--output_dir={out}", "--resolution=32x32", "--blocks=stage1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["manifest.json", "stage1=bin.tflite", "stage1=bin_r.tflite", "start.tflite",
                                       "table_template.json"]
    binary = op_census((out / "stage1=bin.tflite").read_bytes())["ops"]
    assert binary.get("LceBconv2d", 0) == 2 and "LceBconv2d" not in op_census((out / "start.tflite").read_bytes())["ops"]
    template = json.loads((out / "table_template.json").read_text())
    assert set(template) == {b.name for b in ZIPPYPOINT_INT8}
    assert template["stage1"] == {"int8": None, "bin": None, "bin_r": None} and template["stage2"] == {"int8": None}

    # filled in (as measured on a device), it ranks the candidates it was measured for
    filled = {block: {choice: 1.0 for choice in choices} for block, choices in template.items()}
    filled["stage1"].update(int8=5.0, bin=1.0, bin_r=2.0)
    (tmp_path / "table.json").write_text(json.dumps(filled))
    cost = TableCost(str(tmp_path / "table.json"))
    costs = [cost(with_precisions(ZIPPYPOINT_INT8, stage1=c)) for c in ("int8", "bin_r", "bin")]
    assert costs == sorted(costs, reverse=True)


def test_unknown_block_is_one_line(tmp_path):
    done = run(f"--output_dir={tmp_path / 'x'}", "--blocks=stage9")
    assert done.returncode != 0 and "stage9" in done.stderr.strip().splitlines()[-1]
    assert not os.path.exists(tmp_path / "x")
