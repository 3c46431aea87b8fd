"""Layer partitioning and traversal search over ``list[MacroBlock]`` (thesis §5.3.2), with pluggable costs."""

from zippy_tf.search.cost_models import AnalyticCost, InterpreterCost, TableCost
from zippy_tf.search.log import SearchLog, config_key
from zippy_tf.search.traversal import SearchResult, plot_search, searchable, traverse

__all__ = ["AnalyticCost", "InterpreterCost", "SearchLog", "SearchResult", "TableCost", "config_key",
           "plot_search", "searchable", "traverse"]
