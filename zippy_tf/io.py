"""File helpers shared by every method: atomic writes and friendly reads."""

import contextlib
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


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside ``path``; when the block succeeds it is renamed to ``path``, otherwise
    removed. Whatever writes to it (``f.write``, ``model.save_weights``) never leaves a half-written file."""
    check_output_path(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-",
                               suffix=os.path.basename(path))
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes owner-only files; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, data):
    """Writes ``data`` (bytes or str) to ``path`` via a temporary file and a rename: never a half-written file."""
    with atomic_path(path) as tmp, open(tmp, "wb" if isinstance(data, (bytes, bytearray)) else "w") as f:
        f.write(data)
    return path


def save_float16_weights(source, target):
    """Copies a Keras .h5 weights file ``source`` to ``target`` with its float32 weights stored as float16: half the
    size, for shipping. BatchNorm moving statistics and values beyond float16's range stay float32. Keras casts
    the values back to float32 when it loads them (``model.load_weights``). ``target`` is written atomically and
    may be ``source``.
    """
    import h5py
    import numpy as np

    def copy(src, dst):
        dst.attrs.update(dict(src.attrs))
        for name, item in src.items():
            if isinstance(item, h5py.Group):
                copy(item, dst.create_group(name))
                continue
            values = item[()]
            if values.dtype == np.float32 and "moving_" not in name and np.abs(values).max(initial=0) < 6e4:
                values = values.astype(np.float16)
            dst.create_dataset(name, data=values).attrs.update(dict(item.attrs))

    # a new file, not datasets replaced in place: HDF5 does not give back the space of deleted datasets
    with atomic_path(target) as tmp, h5py.File(source, "r") as src, h5py.File(tmp, "w") as dst:
        copy(src, dst)
    return target


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


__all__ = ["atomic_path", "atomic_write", "check_output_path", "read_json", "write_json"]
