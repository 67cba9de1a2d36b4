"""Processes a benchmark starts and measures: a nice value given to each (and to its session's
autogroup) before exec, stopping one by its own process group, and the CPU seconds of a
process group from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def preexec_nice(nice: int):
    """A `preexec_fn` (run in the child after setsid, before exec) that gives the process
    and every thread it creates the nice value `nice` (negative: ahead of other work on a
    shared machine, e.g. other engineers' compilers; needs root). With autogroup scheduling
    (sched_autogroup_enabled=1) a thread's nice only counts inside its session's group, so
    the new session's group gets the same nice (/proc/self/autogroup, sched(7)). None for 0."""
    if not nice:
        return None

    def apply() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError:
            pass
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(nice))
        except OSError:
            pass

    return apply


def stop(proc: subprocess.Popen | None, name: str) -> None:
    """SIGTERM the process (its own pid / process group), SIGKILL after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop on SIGTERM; killing it", file=sys.stderr)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def group_members(pgid: int) -> list[tuple[int, float]]:
    """(pid, user + system CPU seconds) of every live process in process group `pgid`."""
    tick = os.sysconf("SC_CLK_TCK")
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
        if len(fields) > 13 and int(fields[2]) == pgid:
            out.append((int(entry.name), (int(fields[11]) + int(fields[12])) / tick))
    return out


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group `pgid` (the
    server, or Kamailio's main process and its workers)."""
    return sum(cpu for _, cpu in group_members(pgid))
