"""Smoke tests of the dense multi-task benchmarks: each script end to end on a tiny generated set (1–2 steps),
checking the structure of its JSON, that Δm of the baseline rows is 0, and one bad flag."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--preset", "small", "--train_scenes", "8", "--val_scenes", "2", "--resolution", "40x32", "--steps", "1",
        "--batch_size", "2", "--width", "0.125"]


def run(script, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_rcm_table_end_to_end(tmp_path):
    output = tmp_path / "rcm_table.json"
    result = run("rcm_table.py", *TINY, "--variants", "single_task,multi_task,rcm", "--output", str(output),
                 "--save_dir", str(tmp_path / "rcm"))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert report["complete"] and report["preset"] == "small" and report["encoder"]["init"] == "random"
    assert report["tasks"] == ["edge", "normals", "semseg", "depth"]
    rows = {row["variant"]: row for row in report["rows"]}
    assert list(rows) == ["single_task", "multi_task", "rcm"]
    assert rows["single_task"]["delta_m"] == 0.0
    for row in rows.values():
        assert set(row["scores"]) == set(report["tasks"])
        assert set(row["parameters"]["per_task"]) == set(report["tasks"])
        assert row["parameters"]["total"] == row["parameters"]["shared"] + sum(row["parameters"]["per_task"].values())
        assert row["wall_seconds"] > 0
    assert rows["single_task"]["parameters"]["shared"] == 0 < rows["rcm"]["parameters"]["shared"]
    assert rows["rcm"]["old_tasks_bit_identical"] is True and rows["multi_task"]["old_tasks_bit_identical"] is None
    incremental = {row["variant"]: row for row in report["incremental"]["rows"]}
    assert list(incremental) == ["single_task", "rcm", "multi_task + frozen encoder"]
    assert incremental["single_task"]["delta_m_added"] == 0.0
    assert incremental["rcm"]["scores"] == {t: rows["rcm"]["scores"][t] for t in ("semseg", "depth")}
    assert report["ordering"]["rcm_old_tasks_bit_identical"] is True
    assert sorted(os.listdir(tmp_path / "rcm")) == ["config.json"] + sorted(f"{t}.weights.h5" for t in report["tasks"])


def test_compl_sweep_end_to_end(tmp_path):
    output, plot = tmp_path / "compl_sweep.json", tmp_path / "compl_sweep.png"
    result = run("compl_sweep.py", *TINY, "--methods", "none,densecl", "--fractions", "0.5",
                 "--view_offset", "1", "--output", str(output), "--plot", str(plot))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert report["complete"] and report["label_fractions"] == [0.5] and report["metric"]["name"] == "rmse"
    rows = {row["method"]: row for row in report["rows"]}
    assert list(rows) == ["none", "densecl"]
    assert rows["none"]["delta_m"] == 0.0 and rows["none"]["delta_m_shifted"] == 0.0
    assert rows["none"]["ssl_images"] == 0 and rows["densecl"]["ssl_images"] == 8
    for row in rows.values():
        assert row["labelled_images"] == 4
        assert set(row["shifted"]) == {"noise", "blur", "contrast"}
        assert row["drop"] == pytest.approx(row["shifted_score"] - row["score"], abs=1e-4)
    assert set(report["findings"]["0.5"]["compl_at_least_target_only"]) == {"densecl"}
    assert plot.stat().st_size > 0
