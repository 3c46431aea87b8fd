"""Cost models for the search: lower is cheaper. Each is a callable ``cost(blocks) -> float`` with a ``name``.

- :class:`AnalyticCost` (default): BOP-weighted MACs (float 1, int8 1/4, binary 1/64) of the built network.
- :class:`TableCost`: per-block milliseconds measured on a real ARM device (see BUILD.md), summed.
- :class:`InterpreterCost`: the LCE interpreter on this machine. On x86 its binary kernels are reference code,
  so it ranks binary blocks wrongly; it is here to show that, not to be trusted.
"""

import numpy as np

from zippy_tf.errors import UserError
from zippy_tf.io import read_json
from zippy_tf.quantization.cost import analytic_cost


class AnalyticCost:
    name = "analytic"

    def __init__(self, build, fmt="lce"):
        self.build = build
        self.fmt = fmt

    def __call__(self, blocks):
        return float(analytic_cost(self.build(blocks), self.fmt)["bop_cost"])


class TableCost:
    """Sums a measured latency per block choice.

    The table is JSON ``{"<block name>": {"<choice>": milliseconds, ...}, ...}``: time each block's candidates on
    the device (export the network once per choice with ``zippy-tf export`` and run ``lce_benchmark_model
    --enable_op_profiling=true``, summing the block's ops), and write the numbers down.
    """

    name = "table"

    def __init__(self, path):
        self.path = path
        self.table = read_json(path, "cost table")

    def __call__(self, blocks):
        total = 0.0
        for block in blocks:
            try:
                total += float(self.table[block.name][block.choice])
            except KeyError:
                raise UserError(f"cost table {self.path!r} has no entry for block {block.name!r} = "
                                f"{block.choice!r}; measure it on the device and add it")
        return total


class InterpreterCost:
    name = "interpreter"

    def __init__(self, build, runs=5, threads=1):
        self.build = build
        self.runs = runs
        self.threads = threads

    def __call__(self, blocks):
        from zippy_tf.export import FlatbufferRunner, convert
        from zippy_tf.export.latency import time_interleaved

        runner = FlatbufferRunner(convert(self.build(blocks), "lce"), self.threads)
        return float(np.median(time_interleaved({"m": runner}, warmup=1, runs=self.runs)["m"]))


__all__ = ["AnalyticCost", "InterpreterCost", "TableCost"]
