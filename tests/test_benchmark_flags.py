"""Every benchmark script given a bad flag ends with one `<script>: error:` line, no traceback and no result file."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("script, args, message", [
    ("compl_sweep.py", ["--fractions", "0.05,1.5"], "--fractions"),
    ("rcm_table.py", ["--variants", "rcm,nope"], "unknown variant 'nope'"),
    ("tracking_fps.py", ["--threads", "0"], "--threads takes counts >= 1"),
    ("tracking_fps.py", ["--threads", "two"], "--threads takes counts >= 1"),
    ("tracking_fps.py", ["--trackers", "csrt,nope"], "unknown trackers ['nope']"),
    ("tracking_fps.py", ["--precisions", "fp16"], "--precisions takes fp32, int8"),
    ("exemplar_vs_attention.py", ["--precisions", "fp32,lce"], "--precisions takes fp32, int8"),
])
def test_bad_flags_are_one_line(script, args, message, tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args,
                             "--output", str(tmp_path / "out.json")], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(f"{script}: error:")
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.json").exists()
