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
     "command": "bench/media/capacity.py --codec pcmu",
     # optional: the spread inside this one run (e.g. criterion's fastest and slowest
     # sample), used for the table's min/max when present
     "value_min": 600.0, "value_max": 700.0, "peer_min": 500.0, "peer_max": 530.0,
     # optional: the peer never failed (the top of a ladder), so its figure is a lower
     # bound and our advantage an upper bound
     "peer_capped": true}

A goal may also be "ratio >= 1.0": then it is the advantage over the peer (ours/peer when
higher is better, peer/ours when lower is better) that must reach the figure.
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
    value_min: float | None = None,
    value_max: float | None = None,
    peer_min: float | None = None,
    peer_max: float | None = None,
    peer_capped: bool = False,
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
    for k, v in (("value_min", value_min), ("value_max", value_max), ("peer_min", peer_min),
                 ("peer_max", peer_max)):
        if v is not None:
            row[k] = float(v)
    if peer_capped:
        row["peer_capped"] = True
    if path:
        with Path(path).open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    return row


def advantage(value: float, peer: float | None, higher_is_better: bool) -> float | None:
    """How many times better ours is than the peer (> 1: ours is better)."""
    if peer is None or peer == 0 or value == 0:
        return None
    return value / peer if higher_is_better else peer / value


def goal_met(goal: str | None, value: float, ratio: float | None = None) -> bool | None:
    """Evaluate a goal string ('>= X', '<= X', or 'ratio >= X') against a value (or the
    advantage over the peer)."""
    if not goal:
        return None
    text = goal.strip()
    if text.startswith("ratio"):
        if ratio is None:
            return None
        value, text = ratio, text[len("ratio"):].strip()
    for op in (">=", "<="):
        if text.startswith(op):
            try:
                limit = float(text[len(op):].strip().split()[0].replace(",", ""))
            except (ValueError, IndexError):
                return None
            return value >= limit if op == ">=" else value <= limit
    return None
