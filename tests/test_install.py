"""A non-editable install carries the shipped weights: a wheel built from this repository and installed with
``--no-deps`` into a fresh venv, which reuses this environment's site-packages (TensorFlow, larq...) but not its
editable zippy_tf, loads them from inside the installed package, from a folder outside the repository."""

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_ENV_SITE = sysconfig.get_paths()["purelib"]
TEST_ENV_SITES = sorted({TEST_ENV_SITE, sysconfig.get_paths()["platlib"]})


def _run(args, **kwargs):
    proc = subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _shipped_files(folder):
    """Every file under a models folder, relative to it (hidden files and caches aside)."""
    files = (path.relative_to(folder) for path in folder.rglob("*") if path.is_file())
    return sorted(str(path) for path in files if not any(part.startswith((".", "__")) for part in path.parts))


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _build_env(folder):
    """setuptools' build/ and egg-info go to ``folder`` (DIST_EXTRA_CONFIG), so a build neither writes into the
    source tree nor packs what an earlier build left in build/."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "extra.cfg"
    config.write_text(f"[build]\nbuild_base = {folder / 'build'}\n[egg_info]\negg_base = {folder}\n")
    return {**os.environ, "DIST_EXTRA_CONFIG": str(config)}


def _build_wheel(source, folder, cwd):
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--disable-pip-version-check", "-q", "-w", folder / "dist", source], cwd=cwd, env=_build_env(folder))
    (path,) = (folder / "dist").glob("zippy_tf-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return _build_wheel(".", tmp_path_factory.mktemp("wheel"), cwd=REPO)


# Run at the new venv's start-up (from a .pth): this environment's site-packages after the venv's own, with their .pth
# files (setuptools' distutils shim, which TensorFlow 2.16 imports on Python 3.12) except the editable zippy-tf's.
REUSE_TEST_ENVIRONMENT = f"""import os, site, sys
for folder in {TEST_ENV_SITES!r}:
    sys.path.append(folder)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".pth") and not name.startswith("__editable__"):
            with open(os.path.join(folder, name)) as pth:
                if {str(REPO)!r} not in pth.read():
                    site.addpackage(folder, name, None)
"""


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh venv with the wheel installed, reusing this environment's packages but not its editable zippy_tf."""
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", root])
    python = root / "bin" / "python"
    # pip runs on the new interpreter before the .pth exists: it sees an empty venv, never the editable zippy-tf
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
          "--disable-pip-version-check", "-q", wheel])
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "_reuse_test_environment.py").write_text(REUSE_TEST_ENVIRONMENT)
    (site / "reuse_test_environment.pth").write_text("import _reuse_test_environment\n")
    return root


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """A working folder outside the repository, and an environment without ZIPPY_TF_MODELS or PYTHONPATH."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    return {"cwd": cwd, "env": {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "TF_CPP_MIN_LOG_LEVEL": "3"}}


def _installed_python(venv, outside, code):
    return json.loads(_run([venv / "bin" / "python", "-c", code], **outside).stdout.strip().splitlines()[-1])


PROBE = """
import json, sys, zippy_tf
from zippy_tf import presets
from zippy_tf.keypoints import matching
from zippy_tf.tracking.hyperparameters import shipped_hyperparameters
print(json.dumps({"package": zippy_tf.__file__, "models_dir": str(presets.MODELS_DIR), "sys_path": sys.path,
                  "kernel": matching.HAMMING_KERNEL, "ettrack": shipped_hyperparameters("ettrack"),
                  "editable_finders": [repr(f) for f in sys.meta_path if "editable" in repr(f).lower()]}))
"""


def test_the_installed_package_finds_its_weights_inside_itself(venv, outside):
    from zippy_tf.keypoints import matching
    from zippy_tf.tracking.hyperparameters import read_hyperparameters

    found = _installed_python(venv, outside, PROBE)
    package = Path(found["package"]).parent
    assert package.is_relative_to(venv), found["package"]  # not the editable source tree
    assert found["editable_finders"] == []
    assert TEST_ENV_SITE in found["sys_path"]  # TensorFlow & co. come from the reused site-packages
    assert Path(found["models_dir"]) == package / "models"
    assert found["ettrack"] == read_hyperparameters(str(REPO / "models" / "ettrack" / "tracker.json"))
    assert found["ettrack"]  # the tuned settings, not the empty defaults of a missing file
    assert found["kernel"] == matching.HAMMING_KERNEL  # the optional C kernel built into the wheel as here


def test_the_installed_zippypoint_runs_the_repositorys_weights(venv, outside):
    shipped = REPO / "models" / "zippypoint" / "weights.h5"
    found = _installed_python(venv, outside, f"""
import json, numpy as np
from zippy_tf import presets
network = presets.load("zippypoint")
reference = presets.load("zippypoint", weights={str(shipped)!r}).get_weights()
equal = [bool(np.array_equal(a, b)) for a, b in zip(network.get_weights(), reference)]
print(json.dumps({{"weights_path": network.weights_path, "equal": equal, "count": len(reference)}}))
""")
    assert Path(found["weights_path"]).is_relative_to(venv)
    assert _sha256(Path(found["weights_path"]).read_bytes()) == _sha256(shipped.read_bytes())
    assert found["count"] > 0 and found["equal"] == [True] * found["count"]


def test_the_console_script_runs_the_installed_package(venv, outside):
    script = venv / "bin" / "zippy-tf"
    assert script.read_text().splitlines()[0] == f"#!{venv / 'bin' / 'python'}"
    proc = _run([script, "info", "--list"], **outside)
    assert "zippypoint" in json.loads(proc.stdout)["models"]


def test_the_wheel_holds_the_package_and_every_shipped_file_and_nothing_else(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        models = {name.removeprefix("zippy_tf/models/"): archive.read(name)
                  for name in names if name.startswith("zippy_tf/models/")}
        leaks = [name for name in names if str(REPO).encode() in archive.read(name)]
    dist_info = f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info/"
    assert all(name.startswith(("zippy_tf/", dist_info)) for name in names)
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc") or ".." in name]
    assert leaks == []  # no path of the machine that built it
    sources = sorted(str(path.relative_to(REPO)) for path in (REPO / "zippy_tf").rglob("*.py")
                     if "__pycache__" not in path.parts)
    assert sorted(name for name in names if name.endswith(".py")) == sources
    # a file kind setup.py's MODEL_FILES does not list would be missing here: add it there and in MANIFEST.in
    assert sorted(models) == _shipped_files(REPO / "models")
    for name, data in models.items():
        assert _sha256(data) == _sha256((REPO / "models" / name).read_bytes()), name


def test_a_wheel_built_from_the_sdist_ships_the_same_files(wheel, tmp_path):
    _run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(tmp_path)!r})"],
         cwd=REPO, env=_build_env(tmp_path / "sdist_build"))
    (sdist,) = tmp_path.glob("zippy*-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert not [name for name in members if "__pycache__" in name or name.endswith((".pyc", ".so"))]
    assert not [name for name in members if "/tests/" in name]
    from_sdist = _build_wheel(sdist, tmp_path / "wheel_build", cwd=tmp_path)
    with zipfile.ZipFile(wheel) as direct, zipfile.ZipFile(from_sdist) as rebuilt:
        assert sorted(rebuilt.namelist()) == sorted(direct.namelist())
        for name in direct.namelist():
            if name.startswith("zippy_tf/models/"):
                assert rebuilt.getinfo(name).CRC == direct.getinfo(name).CRC, name
