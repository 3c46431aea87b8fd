"""File helpers shared by every method: atomic writes and friendly reads."""

import json
import os
import tempfile

from zippy_tf.errors import UserError


def check_output_path(path):
    """Fails early, before any work, when ``path`` cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"output folder {folder!r} does not exist; create it first or pick another output path")
    return path


def atomic_write(path, data):
    """Writes ``data`` (bytes or str) to ``path`` via a temporary file and a rename: never a half-written file."""
    check_output_path(path)
    folder = os.path.dirname(os.path.abspath(path))
    mode = "wb" if isinstance(data, (bytes, bytearray)) else "w"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_json(path, obj):
    return atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path, what="JSON file"):
    if not os.path.isfile(path):
        raise UserError(f"{what} {path!r} does not exist; check the path")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{what} {path!r} is not valid JSON ({e.msg} at line {e.lineno}); fix or regenerate it")


__all__ = ["atomic_write", "check_output_path", "read_json", "write_json"]
