"""The ``zippy-tf`` command line: ``zippy-tf <verb> [<sub-verb>] --flags``; every verb prints one JSON line."""

__all__ = []
