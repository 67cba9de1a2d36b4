"""The web console driven in headless Chromium by driver/driver.mjs (puppeteer-core), one
command at a time from a test:

    with ConsoleDriver(tmp_path, server.api_url + "/console") as ui:
        ui.call("signin", keyId=..., secret=...)

`call` sends a command and returns its result, or fails with the driver's error and the
tail of its stderr. The driver's npm packages are installed from its package-lock.json
(`npm ci`) on first use."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# tests/browser's harness finds Chromium the same way for its page.
sys.path.insert(0, str(HERE.parent / "browser"))
from harness import find_chromium  # noqa: E402
DRIVER = HERE / "driver"
#: Upper bound for `npm ci` on a cold machine.
INSTALL_TIMEOUT_S = 300.0
#: Upper bound for one command (a page load and a few API calls).
CALL_TIMEOUT_S = 60.0


def install_driver() -> None:
    """`npm ci` in driver/ unless node_modules is newer than the lockfile."""
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed (Debian nodejs/npm); run scripts/setup-deps")
    stamp = DRIVER / "node_modules" / ".package-lock.json"
    if stamp.is_file() and stamp.stat().st_mtime >= (DRIVER / "package-lock.json").stat().st_mtime:
        return
    proc = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=DRIVER, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"npm ci in {DRIVER} failed:\n{proc.stdout}\n{proc.stderr}")


class ConsoleDriver:
    def __init__(self, work: Path, console_url: str):
        self.work = work
        self.url = console_url
        self.downloads = work / "downloads"
        self.stderr_path = work / "console-driver.log"
        self.proc: subprocess.Popen | None = None
        self._next = 0
        self._buf = b""

    def __enter__(self) -> "ConsoleDriver":
        install_driver()
        self.downloads.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CHROMIUM=find_chromium(), CONSOLE_URL=self.url, DOWNLOADS=str(self.downloads))
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            ["node", str(DRIVER / "driver.mjs")],
            cwd=DRIVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
            start_new_session=True,
        )
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.write(b'{"op": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._stderr.close()

    def stderr_tail(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def call(self, op: str, **args):
        """Runs one driver command; its result."""
        assert self.proc is not None and self.proc.poll() is None, f"driver exited:\n{self.stderr_tail()}"
        self._next += 1
        self.proc.stdin.write(json.dumps({"id": self._next, "op": op, "args": args}).encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + CALL_TIMEOUT_S
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"console driver: {op} took over {CALL_TIMEOUT_S} s\n{self.stderr_tail()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"console driver exited during {op}:\n{self.stderr_tail()}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        answer = json.loads(line)
        assert answer.get("id") == self._next, answer
        if not answer["ok"]:
            raise AssertionError(f"console driver: {op} failed: {answer['error']}\n{self.stderr_tail()}")
        return answer["result"]
