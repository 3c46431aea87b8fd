"""Metadata lives in setup.cfg; this file adds the optional C kernel for Hamming matching and puts the shipped
weights (the repository's models/) into wheels as zippy_tf/models/, where an installed zippy_tf.presets finds them."""

import platform
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

MODELS = Path(__file__).resolve().parent / "models"
# What a models/<preset>/ folder ships: weights (.h5), tracker/network settings (.json), cards (.md) and what the
# cards show (.png, .jsonl). MANIFEST.in lists the same kinds, so a wheel built from the sdist has them too.
MODEL_FILES = ("*.h5", "*.json", "*.jsonl", "*.md", "*.png")


def model_files():
    """The files under models/ that ship, relative to it, sorted (a reproducible wheel)."""
    found = {path for pattern in MODEL_FILES for path in MODELS.rglob(pattern) if path.is_file()}
    relative = (path.relative_to(MODELS) for path in found)
    return sorted(path for path in relative if not any(part.startswith((".", "__")) for part in path.parts))


class BuildPyWithModels(build_py):
    """build_py that also copies models/ into the built package as zippy_tf/models/. Editable installs skip it:
    they read models/ in the source tree."""

    def _models_target(self):
        return Path(self.build_lib) / "zippy_tf" / "models"

    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = self._models_target()
        shutil.rmtree(target, ignore_errors=True)  # a preset removed from models/ must not linger in build/
        for relative in model_files():
            self.mkpath(str((target / relative).parent))
            self.copy_file(str(MODELS / relative), str(target / relative))

    def get_outputs(self, include_bytecode=1):
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        return outputs + [str(self._models_target() / relative) for relative in model_files()]


# x86-64 compilers emit a hardware popcount only when told the CPU has one (every x86-64 since 2008 does);
# AArch64's is always available.
POPCOUNT_FLAGS = ["-mpopcnt"] if platform.machine().lower() in ("x86_64", "amd64") else []

setup(
    cmdclass={"build_py": BuildPyWithModels},
    ext_modules=[Extension(
        "zippy_tf.keypoints._hamming", ["zippy_tf/keypoints/_hamming.c"],
        # -g0: Python's own CFLAGS may ask for debug info, which would put this machine's paths into the wheel
        extra_compile_args=["-O3", "-g0", *POPCOUNT_FLAGS],
        optional=True,  # without a compiler the package still installs; matching falls back to numpy
    )],
)
