"""zippy_tf.runtime: resolutions in WIDTHxHEIGHT, thread counts, and TensorFlow's notices kept off stderr."""

import logging
import os

import pytest

from zippy_tf.errors import UserError
from zippy_tf.runtime import hpatches_resolution, native_notices_hidden, parse_resolution, set_threads


@pytest.mark.parametrize("text,expected", [("320x240", (240, 320)), ("64X48", (48, 64)), ("1x1", (1, 1))])
def test_resolution_is_width_by_height_and_returns_height_first(text, expected):
    assert parse_resolution(text) == expected


@pytest.mark.parametrize("text,kwargs,message", [
    ("big", {}, "resolution='big' is not WIDTHxHEIGHT"),
    ("0x10", {}, "positive width and height"),
    ("60x44", {"multiple_of": 8}, r"\(width 60, height 44\) is not a multiple of 8 .* pass e.g. '64x48'"),
])
def test_bad_resolutions_name_width_and_height(text, kwargs, message):
    with pytest.raises(UserError, match=message):
        parse_resolution(text, **kwargs)


def test_hpatches_resolution_is_width_first_or_native():
    assert hpatches_resolution("320x240") == (320, 240) and hpatches_resolution("native") is None
    with pytest.raises(UserError, match="at least '16x16'"):
        hpatches_resolution("8x8")


def test_threads_below_one_are_refused():
    with pytest.raises(UserError, match="threads=0"):
        set_threads(0)


def test_notices_are_hidden_and_everything_else_reaches_stderr(capfd):
    tf_log = logging.getLogger("tensorflow")
    handler = logging.StreamHandler()  # a handler like the one TensorFlow installs
    tf_log.addHandler(handler)
    level = tf_log.level
    tf_log.setLevel(logging.INFO)  # as in an absl script
    try:
        with native_notices_hidden():
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
            os.write(2, b"fully_quantize: 0, inference_type: 6\n")
            os.write(2, b"a real error\n")
            tf_log.warning("a warning")
            tf_log.info("an info line")
        tf_log.info("info after the block")
    finally:
        tf_log.removeHandler(handler)
        tf_log.setLevel(level)
    err = capfd.readouterr().err
    assert "a real error" in err and "a warning" in err and "info after the block" in err
    assert "XNNPACK" not in err and "fully_quantize" not in err and "an info line" not in err
