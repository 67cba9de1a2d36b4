"""Result rows shared by every benchmark script, read by `bench/run` to build the table in
docs/BENCHMARKS.md.

A benchmark script called with `--json PATH` appends its rows to PATH (a JSON-lines file).
One row is one figure of one run; `bench/run` repeats scripts and takes the median, min and
max of the rows that share `section` and `figure`.

    {"section": "Media capacity",              # table the figure belongs to
     "figure": "G.711+SRTP legs, 5-party",     # what was measured
     "unit": "legs",                          # unit of value / peer_value
     "value": 640.0,                          # ours, this run
     "peer": "libsrtp2" | null,               # who we compare with, measured in the same run
     "peer_value": 512.0 | null,
     "higher_is_better": true,
     "goal": ">= 1000" | null,                # a goal from an issue, as text: ">= X" or "<= X"
     "note": "free text" | null,
     "command": "bench/media/capacity.py --codec pcmu"}
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def emit(
    path: str | os.PathLike | None,
    *,
    section: str,
    figure: str,
    unit: str,
    value: float,
    command: str,
    peer: str | None = None,
    peer_value: float | None = None,
    higher_is_better: bool = True,
    goal: str | None = None,
    note: str | None = None,
) -> dict:
    """Append one result row to `path` (if given) and return it."""
    row = {
        "section": section,
        "figure": figure,
        "unit": unit,
        "value": float(value),
        "peer": peer,
        "peer_value": None if peer_value is None else float(peer_value),
        "higher_is_better": higher_is_better,
        "goal": goal,
        "note": note,
        "command": command,
    }
    if path:
        with Path(path).open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    return row


def goal_met(goal: str | None, value: float) -> bool | None:
    """Evaluate a goal string of the form '>= X' or '<= X' against a value."""
    if not goal:
        return None
    text = goal.strip()
    for op in (">=", "<="):
        if text.startswith(op):
            try:
                limit = float(text[len(op):].strip().split()[0].replace(",", ""))
            except (ValueError, IndexError):
                return None
            return value >= limit if op == ">=" else value <= limit
    return None
