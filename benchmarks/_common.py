"""What every benchmark and experiment script does alike: its default result path, the run wrapper that turns a
``UserError`` into one line, the provenance of a report, writing it, plots, tracking sequences, thread counts and
shared flags.

The scripts in ``experiments/`` import this module too (they put ``benchmarks/`` on ``sys.path``). Importing it
does not import TensorFlow.
"""

import contextlib
import json
import os
import platform
import sys
import tempfile

from absl import app, flags

from zippy_tf.errors import UserError
from zippy_tf.io import atomic_write, check_output_path, write_json

FLAGS = flags.FLAGS


def default_output(script, suffix=".json"):
    """``results/<script name><suffix>`` beside ``script`` (the caller's ``__file__``), relative to the working
    folder: where a script writes its one current result unless told otherwise."""
    folder, name = os.path.split(os.path.abspath(script))
    return os.path.relpath(os.path.join(folder, "results", os.path.splitext(name)[0] + suffix))


def run(main):
    """``app.run(main)`` after checking that --output (and --plot) can be written, before any work; bad input
    (``UserError``) ends the script with one line ``<script>: error: ...``."""
    def guarded(argv):
        try:
            for name in ("output", "plot"):
                if name in FLAGS and FLAGS[name].value:
                    check_output_path(FLAGS[name].value)
            return main(argv)
        except UserError as error:
            sys.exit(f"{os.path.basename(sys.argv[0])}: error: {error}")

    app.run(guarded)


def provenance():
    """Where a report was measured: the command as run, the machine and the library versions (TensorFlow's if the
    script imported it)."""
    import zippy_tf

    tensorflow = sys.modules.get("tensorflow")
    return {
        "command": " ".join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
        "machine": {"processor": platform.processor() or platform.machine(), "system": platform.platform(),
                    "cpu_count": os.cpu_count()},
        **({"tensorflow": tensorflow.__version__} if tensorflow else {}),
        "zippy_tf": zippy_tf.__version__,
    }


def write_report(path, report, markdown=None, printed=None):
    """Writes ``report`` as JSON to ``path`` (and ``markdown``, if given, beside it as ``.md``), then prints
    ``printed``, else the markdown, else the JSON."""
    write_json(path, report)
    if markdown is not None:
        atomic_write(os.path.splitext(path)[0] + ".md", markdown + "\n")
    print(printed or markdown or json.dumps(report, indent=2, sort_keys=True))


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (the scripts run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def otb_sequences(folder, num_sequences, num_frames, seed):
    """Yields ``folder``, or if it is None ``num_sequences`` generated sequences of ``num_frames`` frames (``seed``)
    written in the OTB layout to a temporary folder for the block."""
    if folder is not None:
        yield folder
        return
    from zippy_tf.tracking.generate import write_otb_sequences

    with tempfile.TemporaryDirectory(prefix="zippy_tf-sequences-") as tmp:
        write_otb_sequences(tmp, num_sequences, num_frames, seed)
        yield tmp


def _script():
    """The module name absl gives the running script, so that the shared flags are listed as its own (--helpshort)."""
    return sys.argv[0]


def define_tracker_flags(weights_help, multiple_weights=False, data_help=None):
    """The flags of the tracker analyses: --tracker (a neural tracker preset), --weights, --data and --threads."""
    from zippy_tf.tracking.evaluate import NEURAL_TRACKERS

    script = _script()
    flags.DEFINE_enum("tracker", "ettrack", list(NEURAL_TRACKERS), "tracker preset", module_name=script)
    define_weights = flags.DEFINE_multi_string if multiple_weights else flags.DEFINE_string
    define_weights("weights", None, weights_help, module_name=script)
    flags.DEFINE_string("data", None, data_help or "OTB-layout validation sequences (default: generated, seed 2, "
                        "10 × 60)", module_name=script)
    flags.DEFINE_integer("threads", 1, "CPU threads", module_name=script)


def compare_weights(measure):
    """``{label: measure(network)}`` for the --tracker network with each --weights file (the shipped weights when
    none is given), labelled by the path or ``"shipped"``; each result is also a progress line."""
    from zippy_tf.runtime import progress
    from zippy_tf.tracking.evaluate import build_network

    results = {}
    for weights in FLAGS.weights or [None]:
        label = weights or "shipped"
        results[label] = measure(build_network(FLAGS.tracker, weights))
        progress(f"{label}: {results[label]}")
    return results


def pair_outputs(network, templates, searches, key, batch_size=16):
    """The tracker network's ``key`` output (``"cls"`` or ``"reg"``) for template/search pairs, in batches."""
    import numpy as np

    pair = network.pair_model()
    return np.concatenate([pair([templates[i:i + batch_size], searches[i:i + batch_size]], training=False)[key]
                           .numpy() for i in range(0, len(searches), batch_size)])


def nearest_cells(output_size, search_size, points):
    """(row, column) of the output grid cell nearest each (x, y) point in search-crop pixels, and the grid's pixel
    coordinates along one axis."""
    import numpy as np

    from zippy_tf.tracking.model import grid_points

    grid = grid_points(output_size, search_size)
    return np.abs(grid[None] - points[:, 1:]).argmin(1), np.abs(grid[None] - points[:, :1]).argmin(1), grid


def thread_counts(values):
    """A ``--threads`` list (e.g. ``["1", "all"]``; "all" is ``os.cpu_count()``) as distinct counts ≥ 1, in order;
    a one-line error for anything else."""
    counts = []
    for value in values:
        count = os.cpu_count() or 1 if value == "all" else int(value) if str(value).isdigit() else 0
        if count < 1:
            raise UserError(f"--threads takes counts >= 1 or 'all' (e.g. 1,all), not {value!r}")
        if count not in counts:
            counts.append(count)
    if not counts:
        raise UserError("--threads is empty; pass e.g. --threads 1,all")
    return counts


def define_hpatches_flags(entries, entry_help):
    """The flags of the HPatches scripts: --entry (repeatable), --data_dir and --resolution."""
    script = _script()
    flags.DEFINE_multi_string("entry", entries, entry_help, module_name=script)
    flags.DEFINE_string("data_dir", os.path.join("out", "hpatches_sets"), "where the test sets are (written if "
                        "absent)", module_name=script)
    flags.DEFINE_string("resolution", "320x240", "WIDTHxHEIGHT of the protocol", module_name=script)


__all__ = ["compare_weights", "default_output", "define_hpatches_flags", "define_tracker_flags", "nearest_cells",
           "otb_sequences", "pair_outputs", "provenance", "pyplot", "run", "thread_counts", "write_report"]
