"""The search's result log: one JSON object per evaluated candidate, appended and flushed as it is made.

The log is the search's memory: a killed search resumes by reading it, and a candidate already in it is never
trained again. A corrupt line (a kill mid-write) is skipped with a warning; the others are kept.
"""

import json
import os
import warnings


def config_key(blocks):
    """A stable identity of a configuration: the searched choice of every block, in order."""
    return "|".join(f"{b.name}={b.choice}" for b in blocks)


class SearchLog:
    """Append-only JSONL log of evaluated candidates, keyed by :func:`config_key`.

    Args:
        path: the ``.jsonl`` file (created if missing; its folder must exist).
    """

    def __init__(self, path):
        self.path = path
        self.records = {}
        if os.path.exists(path):
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                        self.records[record["key"]] = record
                    except (json.JSONDecodeError, KeyError, TypeError):
                        warnings.warn(f"{path}:{number}: skipping a corrupt log line (kept the others)")

    def __contains__(self, key):
        return key in self.records

    def __getitem__(self, key):
        return self.records[key]

    def __len__(self):
        return len(self.records)

    def append(self, record):
        with open(self.path, "a") as f:
            # a leading newline closes a line a killed writer may have left unfinished
            f.write(("\n" if f.tell() and not self._ends_with_newline() else "") + json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records[record["key"]] = record

    def _ends_with_newline(self):
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"


__all__ = ["SearchLog", "config_key"]
