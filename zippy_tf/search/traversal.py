"""Layer partitioning and traversal (thesis §5.3.2): choose each macro-block's precision one block at a time.

Blocks are visited upstream to downstream. At each block every candidate of its kind is evaluated (trained
from the current configuration, then scored by the caller's metric); the cheapest candidate whose metric stays
within ``budget`` of the starting configuration's is kept, frozen, and the traversal moves on. The cost is the
sum of the candidate counts, not their product, and the network is always trained end to end.
"""

import dataclasses
import os
import time

from zippy_tf.errors import UserError
from zippy_tf.quantization.macro_block import ROLE_CANDIDATES, config_key


@dataclasses.dataclass
class SearchResult:
    blocks: list
    start: dict
    path: list  # the record chosen at each step
    records: list  # every record the search used, in evaluation order
    cost_model: str

    def to_dict(self):
        return {"config": [b.to_dict() for b in self.blocks], "start": self.start, "path": self.path,
                "cost_model": self.cost_model, "evaluated": len(self.records)}


def searchable(blocks, candidates=None, only=None):
    """Indices of the blocks with more than one candidate (and named in ``only``, if given), upstream first."""
    table = candidates or ROLE_CANDIDATES
    return [i for i, b in enumerate(blocks) if len(table.get(b.role, ())) > 1 and (only is None or b.name in only)]


def traverse(blocks, *, evaluate, cost, log, budget, candidates=None, only=None, progress=None):
    """Runs the traversal. Returns a :class:`SearchResult`.

    Args:
        blocks: the starting configuration (list of MacroBlock), upstream first.
        evaluate: ``evaluate(blocks, parent_key) -> float`` (higher is better), e.g. fine-tune from the parent
            configuration's weights for a few hundred steps and return the validation metric.
        cost: a cost model, ``cost(blocks) -> float`` with a ``name`` (see ``cost_models``).
        log: a :class:`~zippy_tf.io.RecordLog` keyed by :func:`~zippy_tf.quantization.macro_block.config_key`;
            logged candidates are reused, never re-evaluated.
        budget: allowed relative metric drop in (0, 1) with respect to the starting configuration.
        candidates: {role: choices}; default: the thesis's candidate sets.
        only: names of the blocks to search (the others keep their choice); default: all.
        progress: optional callable(record) called after each candidate.
    """
    if not 0.0 < budget < 1.0:
        raise UserError(f"budget={budget} must be in (0, 1) (an allowed relative metric drop)")
    table = candidates or ROLE_CANDIDATES
    unknown = set(only or ()) - {b.name for b in blocks}
    if unknown:
        raise UserError(f"blocks {sorted(unknown)} are not in the configuration; choose from "
                        f"{', '.join(b.name for b in blocks)}")
    steps = searchable(blocks, table, only)
    if not steps:
        raise UserError("empty search space: no macro-block has more than one candidate")
    used = []

    def record_for(config, parent, step):
        key = config_key(config)
        if key not in log:
            start = time.time()
            metric = float(evaluate(config, parent))
            log.append({"key": key, "config": [b.to_dict() for b in config], "metric": metric,
                        "cost": float(cost(config)), "cost_model": cost.name, "seconds": time.time() - start,
                        "parent": parent, "step": step})
        record = log[key]
        used.append(record)
        if progress is not None:
            progress(record)
        return record

    current = list(blocks)
    start = current_record = record_for(current, None, "start")
    floor = start["metric"] - budget * abs(start["metric"])
    path = []
    for index in steps:
        block = current[index]
        tried = []
        for choice in table[block.role]:
            config = current[:index] + [block.with_choice(choice)] + current[index + 1:]
            tried.append((record_for(config, current_record["key"], block.name), config))
        keep = [t for t in tried if t[0]["metric"] >= floor]
        current_record, current = (min(keep, key=lambda t: t[0]["cost"]) if keep
                                   else max(tried, key=lambda t: t[0]["metric"]))
        path.append({**current_record, "block": block.name, "choice": current[index].choice})
    return SearchResult(current, start, path, used, cost.name)


def plot_search(result, path, metric_name="metric"):
    """Pareto plot: cost vs. metric of every evaluated candidate, the chosen path highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter([r["cost"] for r in result.records], [r["metric"] for r in result.records], c="lightgrey",
               edgecolor="grey", label="evaluated candidates")
    chosen = [result.start] + result.path
    ax.plot([r["cost"] for r in chosen], [r["metric"] for r in chosen], "o-", color="tab:red", label="chosen path")
    labels = {result.start["key"]: ["start"]}  # steps that kept the parent's choice share its point
    for r in result.path:
        labels.setdefault(r["key"], []).append(f"{r['block']}={r['choice']}")
    for r in chosen:
        if r["key"] in labels:
            ax.annotate("\n".join(labels.pop(r["key"])), (r["cost"], r["metric"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"cost ({result.cost_model})")
    ax.set_ylabel(metric_name)
    ax.set_title("Layer partitioning and traversal")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=120)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)
    return path


__all__ = ["SearchResult", "plot_search", "searchable", "traverse"]
