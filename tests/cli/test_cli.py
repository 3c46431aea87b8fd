"""The `zippy-tf` command on good and bad input: JSON on stdout, one error line and exit 2, no partial files."""

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run(*args):
    proc = subprocess.run([sys.executable, "-m", "zippy_tf.cli.main", *args], capture_output=True, text=True,
                          env=ENV, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def error_line(stderr):
    lines = [line for line in stderr.splitlines() if line.startswith("zippy-tf: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_help_lists_verbs():
    code, out, _ = run("--help")
    assert code == 0 and "export" in out and "bench" in out and "info" in out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export") / "kp2d.tflite")
    code, out, err = run("export", "--model", "kp2d", "--format", "fp32", "--resolution", "64x48",
                         "--output", path)
    assert code == 0, err
    return path, json.loads(out)


def test_export_prints_one_json_line(exported):
    path, result = exported
    assert result["path"] == path and result["format"] == "fp32"
    assert result["size_bytes"] == os.path.getsize(path) and result["ops"]["CONV_2D"] == 16


def test_export_lce_zippypoint_counts_binary_convs(tmp_path):
    code, out, err = run("export", "--model", "zippypoint", "--format", "lce", "--resolution", "64x48",
                         "--output", str(tmp_path / "zp.tflite"))
    assert code == 0, err
    assert json.loads(out)["ops"]["LceBconv2d"] == 8


def test_bench_prints_the_schema(exported):
    path, _ = exported
    code, out, err = run("bench", path, "--baseline", path, "--runs", "3", "--warmup", "1")
    assert code == 0, err
    result = json.loads(out)
    assert {"model", "baseline", "median_ms", "baseline_median_ms", "speedup"} <= set(result)
    assert result["median_ms"] > 0 and result["speedup"] > 0


def test_info_reports_binary_params():
    code, out, _ = run("info", "--model", "zippypoint")
    assert code == 0 and json.loads(out)["kernel_params"]["binary"] == 1_271_808


BAD = [
    (["frobnicate"], "unknown command"),
    (["export", "--model", "nope", "--output", "{tmp}/x.tflite"], "unknown model 'nope'"),
    (["export", "--model", "kp2d", "--format", "int4", "--output", "{tmp}/x.tflite"], "int4"),
    (["export", "--model", "kp2d", "--output", "{tmp}/missing/x.tflite"], "does not exist"),
    (["export", "--model", "kp2d", "--weights", "{tmp}/none.h5", "--output", "{tmp}/x.tflite"], "does not exist"),
    (["export", "--model", "kp2d", "--resolution", "60x44", "--output", "{tmp}/x.tflite"], "multiple of 8"),
    (["export", "--model", "kp2d", "--resolution", "big", "--output", "{tmp}/x.tflite"], "WIDTHxHEIGHT"),
    (["export", "--model", "zippypoint", "--config", "{tmp}/bad.json", "--output", "{tmp}/x.tflite"], "not valid JSON"),
    (["export", "--model", "zippypoint", "--format", "int8", "--resolution", "64x48", "--output",
      "{tmp}/x.tflite"], "binary layers"),
    (["bench", "{tmp}/bad.tflite", "--baseline", "{tmp}/bad.tflite"], "not a TFLite flatbuffer"),
    (["bench", "{tmp}/bad.tflite"], "--baseline is required"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_one_line_exit_2_no_output(tmp_path, args, message):
    (tmp_path / "bad.json").write_text("[{")
    (tmp_path / "bad.tflite").write_bytes(b"not a flatbuffer at all")
    code, out, err = run(*[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and out == ""
    assert message in error_line(err)
    assert not (tmp_path / "x.tflite").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_export_tracker_writes_template_and_search_branches(tmp_path):
    code, out, err = run("export", "--model", "lighttrack", "--format", "fp32", "--output", str(tmp_path / "lt.tflite"))
    assert code == 0, err
    result = json.loads(out)
    for branch in ("template", "search"):
        assert os.path.getsize(result[branch]["path"]) == result[branch]["size_bytes"] > 0
    assert sorted(os.listdir(tmp_path)) == ["lt_search.tflite", "lt_template.tflite"]
    code, out, err = run("export", "--model", "lighttrack", "--format", "lce", "--output", str(tmp_path / "x.tflite"))
    assert code == 2 and "fp32 or int8" in error_line(err) and not (tmp_path / "x_search.tflite").exists()
