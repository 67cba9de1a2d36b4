"""A pjsua2 phone (tests/pjsua2/caller.py, its own process) joining a meeting by token
over SIP/UDP through the server, for the browser tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PJSUA2_CALLER = Path(__file__).resolve().parents[1] / "pjsua2" / "caller.py"
#: The meeting-join number of the spec.
MEETING_NUMBER = "+17035550122"
#: The SIP caller's E.164 number: From, and the SIP attendee's ExternalUserId.
CALLER_NUMBER = "+12065550100"


def start_caller(
    tmp_path: Path, sip_port: int, host: str, token: str, play: Path, record: Path, seconds: float
) -> subprocess.Popen:
    """One pjsua2 caller joining by `token` over UDP through the server as outbound proxy;
    it stays `seconds` in the call once its media runs, then hangs up and prints one JSON
    line."""
    cmd = [
        sys.executable, str(PJSUA2_CALLER),
        "--uri", f"sip:{MEETING_NUMBER}@{host};X-chime-join-token={token}",
        "--from-uri", f"sip:{CALLER_NUMBER}@127.0.0.1",
        "--proxy", f"sip:127.0.0.1:{sip_port};lr",
        "--transport", "udp",
        "--play", str(play),
        "--record", str(record),
        "--duration", str(seconds),
        "--timeout", "8",
        "--log-level", "5",
        "--log-file", str(tmp_path / "caller.pjsip.log"),
        "--ready-file", str(tmp_path / "caller.ready"),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def caller_result(proc: subprocess.Popen, timeout: float) -> dict:
    """The caller's JSON line once it hung up (the test fails if it does not in `timeout`)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=5)
        pytest.fail(f"SIP caller did not finish in {timeout} s:\n{err.decode(errors='replace')[-3000:]}")
    lines = [line for line in out.decode(errors="replace").splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, (
        f"SIP caller rc={proc.returncode}\n{out.decode(errors='replace')[-2000:]}\n{err.decode(errors='replace')[-3000:]}"
    )
    return json.loads(lines[-1])


def stop(proc: subprocess.Popen) -> None:
    """Kills the caller if it still runs (a test that failed half-way)."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=5)
