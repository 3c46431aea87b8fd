"""Every ```python block of README.md runs as written (each in a fresh interpreter, in an empty folder), so the
quick start cannot rot. A block whose first line has the comment "# slow" is `large` (run with --run-large); the
others run in the default suite."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)


def test_the_readme_has_python_blocks_most_of_them_fast():
    assert len(BLOCKS) >= 3 and all("import zippy_tf" in block for block in BLOCKS)
    assert sum(not _marks(block) for block in BLOCKS) >= 3


def _marks(block):
    return [pytest.mark.large] if "# slow" in block.splitlines()[0] else []


@pytest.mark.parametrize("number", [pytest.param(n, marks=_marks(b), id=f"block{n + 1}") for n, b in enumerate(BLOCKS)])
def test_readme_block_runs(number, tmp_path):
    env = dict(os.environ, ZIPPY_TF_CACHE=str(tmp_path / "cache"))  # trackers export into it, never into ~/.cache
    proc = subprocess.run([sys.executable, "-c", BLOCKS[number]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900, env=env)
    assert proc.returncode == 0, f"README block {number + 1} failed:\n{BLOCKS[number]}\n{proc.stderr[-3000:]}"
