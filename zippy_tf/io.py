"""File helpers shared by every method: atomic writes, friendly reads, compact weight files, and result logs."""

import contextlib
import io
import json
import os
import tempfile
import warnings

import numpy as np

from zippy_tf.errors import UserError


def check_writable(folder):
    """Raises a :class:`UserError` unless a file can be created in ``folder`` (what ``os.access`` cannot tell for
    root or read-only mounts)."""
    try:
        handle, path = tempfile.mkstemp(dir=folder, prefix=".write-test-")
    except OSError as e:
        raise UserError(f"folder {folder!r} is not writable ({e.strerror}); pick an output path in a writable "
                        "folder") from None
    os.close(handle)
    os.remove(path)


def check_output_path(path):
    """Fails early, before any work, when the file ``path`` cannot be written: its folder is missing or read-only,
    or ``path`` is a folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"output folder {folder!r} does not exist; create it first or pick another output path")
    if os.path.isdir(path):
        raise UserError(f"output {path!r} is a folder; pass a file path")
    check_writable(folder)
    return path


def check_output_folder(path):
    """Fails early, before any work, when the folder ``path`` cannot be created or written (its parent is missing or
    read-only, or ``path`` is a file); returns its absolute path. The folder itself is not created."""
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"output {path!r} is an existing file; pass a folder (a new or existing run folder)")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise UserError(f"output folder {parent!r} does not exist; create it first or pick another output path")
    check_writable(path if os.path.isdir(path) else parent)
    return path


def resumable_checkpoint(checkpoint, folder, resume, *, what, new_folder):
    """A ``tf.train.CheckpointManager`` over ``folder`` for resumable training, with ``checkpoint`` restored from the
    latest checkpoint when ``resume`` is set. One-line errors instead of silently mixing runs: checkpoints there but
    ``resume`` unset, ``resume`` set but none there, or a checkpoint that does not fit ``what`` (e.g. "this
    tracker"). ``new_folder`` names the argument that picks another folder (e.g. "output=")."""
    from zippy_tf._compat import tf

    manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=2)
    if manager.latest_checkpoint and not resume:
        raise UserError(f"{folder!r} already holds checkpoints; pass resume=True to continue or pick a new "
                        f"{new_folder}")
    if resume and not manager.latest_checkpoint:
        raise UserError(f"no checkpoint in {folder!r} to resume from; drop resume=True to start a new run")
    if manager.latest_checkpoint:
        try:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise UserError(f"checkpoint in {folder!r} does not fit {what} ({first}); resume the run it came from, or "
                            f"pick a new {new_folder}") from None
    return manager


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


def save_figure(figure, path):
    """Writes a matplotlib figure as PNG, atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    atomic_write(path, buffer.getvalue())


# Compact weight files: a root attribute marks them, and each int8 kernel carries its scale and shape as attributes.
FORMAT_ATTR, COMPACT_FORMAT = "zippy_tf_format", "compact-int8-v1"
_SCALE, _SHAPE = "zippy_tf_scale", "zippy_tf_shape"
COMPACT_MIN_SIZE = 1024  # smaller kernels stay float16: their share of the file is small, their scales are not


def _float16(name, values, attrs):
    """float32 → float16, except BatchNorm moving statistics (tiny, and their precision matters) and values beyond
    float16's range."""
    if values.dtype == np.float32 and "moving_" not in name and np.abs(values).max(initial=0) < 6e4:
        values = values.astype(np.float16)
    return values, attrs


def _int8(name, values, attrs):
    """Kernels (rank ≥ 2, ≥ ``COMPACT_MIN_SIZE`` values) → int8 with a float32 scale per output channel; the rest
    as :func:`_float16`. The channel is the last axis, for depthwise kernels (kh, kw, in, multiplier) the last two.

    Mid-rise quantisation: ``q = floor(w / s)`` in [−128, 127] stands for ``(q + 0.5) · s`` with
    ``s = max|w| / 127.5``. Every value is within s/2, and the sign is exact: w ≥ 0 gives q ≥ 0, w < 0 gives q ≤ −1
    (0 counts as positive, as in Larq's sign). Binary (Larq) layers compute with sign(w), so rounding to the nearest
    of ..., −1, 0, 1, ... would flip tiny negative latent weights to sign(0) = +1; the price is that 0 is stored
    as s/2. The int8 values are stored flat, so that Keras's own loader refuses the file (shape mismatch) instead
    of loading unscaled values: read it through :func:`readable_weights`.
    """
    if values.dtype.kind != "f" or "kernel" not in name or values.ndim < 2 or values.size < COMPACT_MIN_SIZE:
        return _float16(name, values, attrs)
    values = values.astype(np.float64)  # float32 / scale could underflow to −0.0 and lose a sign
    reduce = tuple(range(values.ndim - (2 if "depthwise" in name else 1)))
    scale = np.maximum(np.abs(values).max(axis=reduce, keepdims=True) / 127.5, np.finfo(np.float32).tiny)
    scale = scale.astype(np.float32)
    q = np.clip(np.floor(values / scale), -128, 127).astype(np.int8)
    return q.ravel(), {**attrs, _SCALE: scale, _SHAPE: values.shape}


def _dequantize(name, values, attrs):
    """The inverse of :func:`_int8` (up to s/2): float32 kernels, every other dataset as stored."""
    if _SCALE not in attrs:
        return values, attrs
    scale, shape = attrs.pop(_SCALE), tuple(attrs.pop(_SHAPE))
    return (values.reshape(shape).astype(np.float32) + np.float32(0.5)) * scale, attrs


def _copy_weights(source, target, encode, file_format=None):
    """Copies the .h5 file ``source`` to ``target`` (atomically; it may be ``source``), every dataset through
    ``encode(name, values, attrs) -> (values, attrs)``; ``file_format`` (or none) becomes the root format mark."""
    import h5py

    if not os.path.isfile(source) or not is_hdf5(source):
        raise UserError(f"weights file {source!r} is missing or not an .h5 file; pass weights saved as .h5")

    def copy(src, dst):
        dst.attrs.update({key: value for key, value in src.attrs.items() if key != FORMAT_ATTR})
        for name, item in src.items():
            if isinstance(item, h5py.Group):
                copy(item, dst.create_group(name))
                continue
            values, attrs = encode(name, item[()], dict(item.attrs))
            dst.create_dataset(name, data=values).attrs.update(attrs)

    # a new file, not datasets replaced in place: HDF5 does not give back the space of deleted datasets
    try:
        with atomic_path(target) as tmp, h5py.File(source, "r") as src, h5py.File(tmp, "w") as dst:
            copy(src, dst)
            if file_format is not None:
                dst.attrs[FORMAT_ATTR] = file_format
    except OSError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"weights file {source!r} could not be copied ({first[:160]}); pass a complete .h5 file")
    return target


def is_hdf5(path, what="weights file"):
    """Whether the existing file ``path`` is an HDF5 file (Keras's .h5 weights); a :class:`UserError` naming
    ``what`` when it cannot be read at all."""
    import h5py

    try:
        return h5py.is_hdf5(path)
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else type(e).__name__
        raise UserError(f"{what} {str(path)!r} cannot be read ({reason}); check the path and its permissions") from None


def check_hdf5(path, what="weights file"):
    """Raises a one-line :class:`UserError` naming ``what`` unless the file ``path`` is an HDF5 file that opens: not
    empty, another kind of file, truncated or unreadable."""
    import h5py

    if not is_hdf5(path, what):
        raise UserError(f"{what} {str(path)!r} is not an HDF5 file (empty or another kind of file); pass weights saved "
                        "as .h5 by Keras")
    try:
        h5py.File(path, "r").close()
    except OSError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise UserError(f"{what} {str(path)!r} is damaged ({first}); save or copy it again") from None


def _is_compact(path):
    import h5py

    if not os.path.isfile(path) or not is_hdf5(path):
        return False
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get(FORMAT_ATTR) == COMPACT_FORMAT
    except OSError:  # a damaged file: the loader it is passed on to reports it
        return False


@contextlib.contextmanager
def readable_weights(path):
    """Yields a weights path Keras's ``model.load_weights`` reads right: ``path`` itself, or for a compact file
    (:func:`save_compact_weights`) a temporary copy with the kernels dequantised to float32, removed afterwards.
    Every loader of weights files goes through here: Keras alone refuses a compact file. A file that is not HDF5
    (empty, a text file) or cannot be read is refused here, in one line that says so."""
    if os.path.isfile(path):  # a file (not a TensorFlow checkpoint prefix) must be a whole HDF5 file
        check_hdf5(path)
    if not _is_compact(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="zippy_tf-weights-") as folder:
        yield _copy_weights(path, os.path.join(folder, os.path.basename(path)), _dequantize)


def save_float16_weights(source, target):
    """Copies a Keras .h5 weights file ``source`` to ``target`` with its float32 weights stored as float16: half the
    size, for shipping. BatchNorm moving statistics and values beyond float16's range stay float32. Keras casts
    the values back to float32 when it loads them (``model.load_weights``). ``target`` is written atomically and
    may be ``source``; a compact ``source`` is dequantised first.
    """
    with readable_weights(source) as plain:
        return _copy_weights(plain, target, _float16)


def save_compact_weights(source, target):
    """As :func:`save_float16_weights`, but the convolution and dense kernels, nearly all of a network's weights,
    are stored as int8 with a float32 scale per output channel (see :func:`_int8`): about a quarter of the
    float32 size. Lossy: each kernel value moves by at most half its channel's step, max|w| / 255. Load it
    through :func:`readable_weights` (``zippy_tf``'s loaders do). A compact ``source`` gives the same int8 values.
    """
    with readable_weights(source) as plain:
        return _copy_weights(plain, target, _int8, COMPACT_FORMAT)


def write_json(path, obj):
    return atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_file(path, what="file", binary=False):
    """The contents (str, or bytes when ``binary``) of the file ``path``; a :class:`UserError` naming ``what`` when
    it cannot be read (permissions, a folder, an I/O error)."""
    try:
        with open(path, "rb" if binary else "r") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or type(e).__name__
        raise UserError(f"{what} {str(path)!r} cannot be read ({reason}); check the path and its permissions") from None


def read_json(path, what="JSON file"):
    if not os.path.isfile(path):
        raise UserError(f"{what} {path!r} does not exist; check the path")
    try:
        return json.loads(read_file(path, what))
    except json.JSONDecodeError as e:
        raise UserError(f"{what} {path!r} is not valid JSON ({e.msg} at line {e.lineno}); fix or regenerate it")


class RecordLog:
    """Append-only JSONL log of results, one JSON object with a ``"key"`` per line, flushed as each is made.

    A search's memory (the precision search's candidates, the tracker tuning's trials): a killed run resumes by
    reading it, and a key already in it is never evaluated again. A corrupt line (a kill mid-write) is skipped with
    a warning; the others are kept.

    Args:
        path: the ``.jsonl`` file (created if missing; its folder must exist).
    """

    def __init__(self, path):
        self.path = path
        self.records = {}
        if os.path.exists(path):
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                        self.records[record["key"]] = record
                    except (json.JSONDecodeError, KeyError, TypeError):
                        warnings.warn(f"{path}:{number}: skipping a corrupt log line (kept the others)")

    def __contains__(self, key):
        return key in self.records

    def __getitem__(self, key):
        return self.records[key]

    def __len__(self):
        return len(self.records)

    def append(self, record):
        with open(self.path, "a") as f:
            # a leading newline closes a line a killed writer may have left unfinished
            f.write(("\n" if f.tell() and not self._ends_with_newline() else "") + json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records[record["key"]] = record

    def _ends_with_newline(self):
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"


__all__ = ["RecordLog", "atomic_path", "atomic_write", "check_hdf5", "check_output_folder", "check_output_path",
           "check_writable", "is_hdf5", "read_file", "read_json", "readable_weights", "resumable_checkpoint",
           "save_compact_weights",
           "save_figure", "save_float16_weights", "write_json"]
