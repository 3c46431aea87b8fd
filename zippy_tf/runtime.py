"""Run-time helpers shared by the command line, the benchmarks and the experiments.

Progress lines go to stderr (stdout carries a script's result); resolutions are written ``WIDTHxHEIGHT`` as the
HPatches tables write them; one thread count is set for OpenCV and TensorFlow so timings of different methods
compare; TensorFlow's native notices are kept off the terminal. Importing this module does not import TensorFlow.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile

from zippy_tf.errors import UserError


def progress(message):
    """Prints one progress line on stderr, at once."""
    print(message, file=sys.stderr, flush=True)


def parse_resolution(text, *, multiple_of=1):
    """``"320x240"`` (width x height) → ``(height, width)``, the order of an ``input_shape``.

    Args:
        text: ``"WIDTHxHEIGHT"``, e.g. ``"320x240"`` for 320 pixels wide and 240 high.
        multiple_of: both sides must be a multiple of this (8 for the keypoint networks' cells).
    """
    try:
        width, height = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise UserError(f"resolution={text!r} is not WIDTHxHEIGHT; pass e.g. '320x240' (width 320, height 240)")
    if width <= 0 or height <= 0:
        raise UserError(f"resolution={text!r} must have a positive width and height, e.g. '320x240'")
    if width % multiple_of or height % multiple_of:
        fixed = f"{-(-width // multiple_of) * multiple_of}x{-(-height // multiple_of) * multiple_of}"
        raise UserError(f"resolution={text!r} (width {width}, height {height}) is not a multiple of {multiple_of} "
                        f"in both sides; pass e.g. {fixed!r}")
    return height, width


def hpatches_resolution(text, *, minimum=16):
    """``"320x240"`` → ``(320, 240)`` (width, height: the order the HPatches loader takes); ``"native"`` → None."""
    if text == "native":
        return None
    height, width = parse_resolution(text)
    if width < minimum or height < minimum:
        raise UserError(f"resolution={text!r} is too small for the HPatches protocol; pass at least "
                        f"'{minimum}x{minimum}' or 'native'")
    return width, height


# Notices TensorFlow's C++ code writes straight to the process's stderr, past TF_CPP_MIN_LOG_LEVEL: the TFLite
# interpreter's delegate line, the MLIR quantizer's settings, absl's pre-initialisation warning.
NATIVE_NOTICES = re.compile(r"INFO: Created TensorFlow Lite|fully_quantize: \d|WARNING: All log messages before "
                            r"absl::InitializeLog|[IW]0000 00:00:")


def _below_warning(record):
    return record.levelno >= logging.WARNING


@contextlib.contextmanager
def native_notices_hidden(notices=NATIVE_NOTICES):
    """Runs the block without TensorFlow's notices: Python log lines below WARNING (absl scripts print INFO, e.g. for
    every SavedModel a conversion writes), and the ``notices`` its C++ code writes to file descriptor 2, which is
    captured and written back without them, so errors and warnings still reach stderr (after the block)."""
    sys.stderr.flush()
    saved = os.dup(2)
    # TF logs through the "tensorflow" and "absl" loggers and may reset their levels (the converter does), so the
    # filter sits on the handlers that print them
    handlers = {h for name in ("", "tensorflow", "absl") for h in logging.getLogger(name).handlers}
    for handler in handlers:
        handler.addFilter(_below_warning)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(_below_warning)
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                    if not notices.search(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def set_threads(threads):
    """One thread count for OpenCV and TensorFlow, so the frame rates and latencies of different methods compare.

    TensorFlow takes the setting only before it runs its first operation; later calls keep its current setting.
    """
    import cv2

    from zippy_tf._compat import tf

    if threads < 1:
        raise UserError(f"threads={threads} must be at least 1")
    cv2.setNumThreads(threads)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised (in-process callers): keep its setting
        pass


__all__ = ["NATIVE_NOTICES", "hpatches_resolution", "native_notices_hidden", "parse_resolution", "progress",
           "set_threads"]
