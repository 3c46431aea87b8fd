"""Fixtures of the command-line tests: paths no file can be written to or read from, for any user (tests run as
root in CI, and root ignores permission bits)."""

import os

import pytest

ROOT = os.geteuid() == 0


@pytest.fixture
def readonly_folder(tmp_path):
    """A folder in which no file can be created: mode 555, or for root (who writes there anyway) /proc, which
    refuses new files to everyone."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    return "/proc" if ROOT else str(folder)


@pytest.fixture
def unreadable_file(tmp_path):
    """A file that cannot be read: mode 000, or for root (who reads it anyway) another process's memory, which
    /proc refuses to read."""
    path = tmp_path / "unreadable"
    path.write_text("secret")
    path.chmod(0)
    return "/proc/1/mem" if ROOT else str(path)
