"""Metadata lives in setup.cfg; this file only adds the optional C kernel for Hamming matching."""

import platform

from setuptools import Extension, setup

# x86-64 compilers emit a hardware popcount only when told the CPU has one (every x86-64 since 2008 does);
# AArch64's is always available.
POPCOUNT_FLAGS = ["-mpopcnt"] if platform.machine().lower() in ("x86_64", "amd64") else []

setup(ext_modules=[Extension(
    "zippy_tf.keypoints._hamming", ["zippy_tf/keypoints/_hamming.c"],
    extra_compile_args=["-O3", *POPCOUNT_FLAGS],
    optional=True,  # without a compiler the package still installs; matching falls back to numpy
)])
