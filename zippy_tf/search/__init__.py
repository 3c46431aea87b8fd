"""Layer partitioning and traversal search over ``list[MacroBlock]`` (thesis §5.3.2), with pluggable costs.

Example:
    >>> from zippy_tf.search import AnalyticCost, traverse
    >>> result = traverse(blocks, evaluate=score, cost=AnalyticCost(), log=RecordLog("log.jsonl"), budget=0.02)
"""

from zippy_tf.search.cost_models import AnalyticCost, InterpreterCost, TableCost
from zippy_tf.search.traversal import SearchResult, plot_search, searchable, traverse

__all__ = ["AnalyticCost", "InterpreterCost", "SearchResult", "TableCost", "plot_search", "searchable", "traverse"]
