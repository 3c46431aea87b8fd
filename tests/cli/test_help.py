"""`zippy-tf --help` and every verb's `--help` answer without importing TensorFlow, and library messages reach the
user in the command line's flags."""

import subprocess
import sys

import pytest

from zippy_tf.cli.main import VERBS, to_flags


def _verbs(table=VERBS, prefix=()):
    for name, target in table.items():
        if isinstance(target, dict):
            yield from _verbs(target, (*prefix, name))
        else:
            yield (*prefix, name)


@pytest.mark.parametrize("verb", [(), *_verbs()], ids=lambda verb: " ".join(verb) or "zippy-tf")
def test_help_does_not_import_tensorflow(verb):
    code = ("import sys\nfrom zippy_tf.cli.main import main\n"
            f"code = main({[*verb, '--help']!r})\n"
            "heavy = sorted(m for m in ('tensorflow', 'larq', 'tf_keras') if m in sys.modules)\n"
            "print('HEAVY', heavy, 'CODE', code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: zippy-tf" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY [] CODE 0"


def test_the_usage_lists_every_verb():
    proc = subprocess.run([sys.executable, "-m", "zippy_tf.cli.main", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and all(verb in proc.stdout for verb in VERBS)


class _Flags:
    def __init__(self, *names):
        self.names = names

    def __contains__(self, name):
        return name in self.names


@pytest.mark.parametrize("message,expected", [
    ("resolution='big' is not WIDTHxHEIGHT", "--resolution='big' is not WIDTHxHEIGHT"),
    ("threads=0 must be at least 1; weights='w.h5' too", "--threads=0 must be at least 1; --weights='w.h5' too"),
    ("input_shape=(44, 60, 3) is odd", "input_shape=(44, 60, 3) is odd"),  # not a flag of this verb: kept
    ("write e.g. {\"lr\": 0.3} or a==b", "write e.g. {\"lr\": 0.3} or a==b"),
    ("--resolution=64x48 already a flag", "--resolution=64x48 already a flag"),
])
def test_library_argument_names_become_flags(message, expected):
    assert to_flags(message, _Flags("resolution", "threads", "weights", "a")) == expected
