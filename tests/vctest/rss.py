"""A process's resident memory (VmRSS in /proc/<pid>/status), read once or sampled in a
thread while a flood runs; the memory bounds of tests/security are asserted on it."""

from __future__ import annotations

import threading
import time
from pathlib import Path


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Samples a process's VmRSS every 50 ms in a thread; `peak_kib` is the highest seen."""

    def __init__(self, pid: int):
        self.pid, self.peak_kib, self.samples = pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_kib = max(self.peak_kib, vm_rss_kib(self.pid))
                self.samples += 1
            except (OSError, AssertionError):
                return
            time.sleep(0.05)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
