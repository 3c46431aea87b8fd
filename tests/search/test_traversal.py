import json

import numpy as np
import pytest

from zippy_tf._compat import keras
from zippy_tf.errors import UserError
from zippy_tf.io import RecordLog
from zippy_tf.quantization.blocks import build_macro_block
from zippy_tf.quantization.macro_block import MacroBlock, blocks_from_json, blocks_to_json
from zippy_tf.search import AnalyticCost, InterpreterCost, TableCost, plot_search, traverse

START = [
    MacroBlock("stem", "first_conv", "float", 32),
    MacroBlock("stage1", "encoder", "int8", 32),
    MacroBlock("pool", "pool", "int8", 32, pooling="max"),
    MacroBlock("stage2", "encoder", "int8", 32),
]
# metric penalty and cost of each choice; additive, so the traversal's answer is known
PENALTY = {"stem": {"float": 0, "int8": 0}, "stage1": {"int8": 0, "bin": 0.05, "bin_r": 0.01},
           "pool": {"max": 0, "avg": 0.005, "subsample": 0.03, "learned": 0},
           "stage2": {"int8": 0, "bin": 0.015, "bin_r": 0.009}}
COST = {"stem": {"float": 4, "int8": 1}, "stage1": {"int8": 1, "bin": 0.1, "bin_r": 0.2},
        "pool": {"max": 0.5, "avg": 0.5, "subsample": 0.1, "learned": 0.3},
        "stage2": {"int8": 1, "bin": 0.1, "bin_r": 0.2}}
EXPECTED = {"stem": "int8", "stage1": "bin_r", "pool": "learned", "stage2": "bin_r"}  # budget 0.02


class SyntheticCost:
    name = "synthetic"

    def __call__(self, blocks):
        return sum(COST[b.name][b.choice] for b in blocks)


class Metric:
    def __init__(self, fail_after=None):
        self.calls, self.fail_after = [], fail_after

    def __call__(self, blocks, parent):
        if self.fail_after is not None and len(self.calls) == self.fail_after:
            raise KeyboardInterrupt  # a kill in the middle of the search
        self.calls.append(tuple(b.choice for b in blocks))
        return 1.0 - sum(PENALTY[b.name][b.choice] for b in blocks)


def test_traversal_finds_the_known_optimum_with_linear_cost(tmp_path):
    metric = Metric()
    result = traverse(START, evaluate=metric, cost=SyntheticCost(), log=RecordLog(str(tmp_path / "log.jsonl")),
                      budget=0.02)
    assert {b.name: b.choice for b in result.blocks} == EXPECTED
    # one start + the sum of the candidate counts, minus the already-evaluated current choice at each step
    assert len(metric.calls) == len(set(metric.calls)) == 1 + (2 + 3 + 4 + 3) - 4
    assert [p["block"] for p in result.path] == ["stem", "stage1", "pool", "stage2"]


@pytest.mark.parametrize("kill_after", [1, 4, 7])
def test_a_killed_search_resumes_and_evaluates_each_candidate_once(tmp_path, kill_after):
    path = str(tmp_path / "log.jsonl")
    first = Metric(fail_after=kill_after)
    with pytest.raises(KeyboardInterrupt):
        traverse(START, evaluate=first, cost=SyntheticCost(), log=RecordLog(path), budget=0.02)
    second = Metric()
    result = traverse(START, evaluate=second, cost=SyntheticCost(), log=RecordLog(path), budget=0.02)
    assert not set(first.calls) & set(second.calls)
    assert len(first.calls) + len(second.calls) == 9
    assert {b.name: b.choice for b in result.blocks} == EXPECTED


def test_corrupt_log_line_is_skipped_and_the_rest_kept(tmp_path):
    path = tmp_path / "log.jsonl"
    traverse(START, evaluate=Metric(), cost=SyntheticCost(), log=RecordLog(str(path)), budget=0.02)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3] + ['{"key": "stem=int8|stage1=' ] + lines[3:]) + "\n")
    with pytest.warns(UserWarning, match="corrupt log line"):
        log = RecordLog(str(path))
    assert len(log) == len(lines)
    again = Metric()
    traverse(START, evaluate=again, cost=SyntheticCost(), log=log, budget=0.02)
    assert again.calls == []


def test_chosen_config_round_trips_and_builds(tmp_path):
    result = traverse(START, evaluate=Metric(), cost=SyntheticCost(), log=RecordLog(str(tmp_path / "l.jsonl")),
                      budget=0.02)
    blocks = blocks_from_json(blocks_to_json(result.blocks))
    assert blocks == result.blocks
    inputs = keras.Input((16, 16, 3))
    x = inputs
    for block in blocks:
        x = build_macro_block(block, x)
    assert keras.Model(inputs, x).output_shape == (None, 8, 8, 32)
    json.dumps(result.to_dict())
    assert (tmp_path / "p.png").exists() is False
    plot_search(result, str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 1000


@pytest.mark.parametrize("budget", [0.0, 1.0, -0.1, 2.0])
def test_budget_outside_unit_interval(tmp_path, budget):
    with pytest.raises(UserError, match="budget"):
        traverse(START, evaluate=Metric(), cost=SyntheticCost(), log=RecordLog(str(tmp_path / "l")), budget=budget)


def test_empty_search_space(tmp_path):
    with pytest.raises(UserError, match="empty search space"):
        traverse(START, evaluate=Metric(), cost=SyntheticCost(), log=RecordLog(str(tmp_path / "l")), budget=0.1,
                 candidates={"encoder": ("int8",)})


def _build(blocks):
    inputs = keras.Input((16, 16, 32))
    x = inputs
    for block in blocks:
        x = build_macro_block(block, x)
    return keras.Model(inputs, x)


def test_analytic_cost_ranks_binary_below_int8_below_float():
    cost = AnalyticCost(_build)
    costs = [cost([MacroBlock("b", "encoder", p, 32, num_convs=2)]) for p in ("float", "int8", "bin")]
    assert costs[0] > costs[1] > costs[2] > 0


def test_table_cost_sums_and_names_a_missing_entry(tmp_path):
    path = tmp_path / "table.json"
    path.write_text(json.dumps({"stem": {"int8": 1.5}, "stage1": {"bin_r": 2.0}}))
    cost = TableCost(str(path))
    blocks = [MacroBlock("stem", "first_conv", "int8", 32), MacroBlock("stage1", "encoder", "bin_r", 32)]
    assert cost(blocks) == pytest.approx(3.5)
    with pytest.raises(UserError, match="no entry for block 'stage1' = 'bin'"):
        cost([blocks[0], blocks[1].with_choice("bin")])


def test_interpreter_cost_ranks_more_convolutions_as_slower():
    cost = InterpreterCost(_build, runs=5)
    one = cost([MacroBlock("b", "encoder", "float", 64, num_convs=1)])
    four = cost([MacroBlock("b", "encoder", "float", 64, num_convs=6)])
    assert np.isfinite(one) and four > one
