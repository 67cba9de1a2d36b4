"""Fixtures for the pjsua2 (pjsip 2.15) meeting-join tests: one real `voice-connector serve`
process for the whole tests/pjsua2 session on 127.0.0.1, provisioning through its
AWS-compatible API with boto3, and a runner for `caller.py` (one pjsua2 caller per process).

Every fixture here is named `pj_*` so it can sit beside tests/conftest.py and tests/sip.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
import sys
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from vctest.server import CALLER, MEETING_NUMBER, serve
from vctest.server import MeetingServer as PjServer

CALLER_SCRIPT = Path(__file__).resolve().parent / "caller.py"
#: Frequencies of the test tones (Hz): far apart and not harmonics of each other.
TONES = (440, 1000, 1700)


@pytest.fixture(scope="session")
def pj_server(tmp_path_factory) -> PjServer:
    """A real `voice-connector serve` on 127.0.0.1 with kernel-chosen SIP, TLS and API ports
    (read back from its log) and an RTP range that is free at start."""
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        pytest.fail("pjsua2 is not installed (PyPI pjsua2-python); run scripts/setup-deps")
    if shutil.which("sox") is None:
        pytest.fail("sox is not installed; run scripts/setup-deps")
    yield from serve(tmp_path_factory.mktemp("vc-pjsua2"), label="pj", rtp_size=100)


# ---------------------------------------------------------------------------------------
# Tones and their analysis


@pytest.fixture(scope="session")
def pj_tones(tmp_path_factory) -> dict[int, Path]:
    """Sine WAVs (16-bit mono 16 kHz, -6 dBFS, 20 s: longer than any call) made with sox,
    keyed by frequency."""
    d = tmp_path_factory.mktemp("pj-tones")
    out = {}
    for hz in TONES:
        path = d / f"tone{hz}.wav"
        subprocess.run(
            ["sox", "-n", "-r", "16000", "-b", "16", "-c", "1", str(path), "synth", "20", "sine", str(hz),
             "vol", "0.5"],
            check=True, timeout=30,
        )
        out[hz] = path
    return out


def read_wav(path: Path) -> tuple[list[int], int]:
    """(16-bit samples of the first channel, sample rate)."""
    with wave.open(str(path), "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    assert width == 2, f"{path}: {width * 8}-bit samples"
    samples = struct.unpack(f"<{len(raw) // 2}h", raw[: len(raw) // 2 * 2])
    return list(samples[::channels]), rate


def goertzel_power(samples: list[int], rate: int, hz: float) -> float:
    """Mean power of `samples` at `hz` (Goertzel algorithm, one DFT bin), normalised so a
    full-scale sine at `hz` gives about 0.25 * 32768^2 regardless of length."""
    n = len(samples)
    if n == 0:
        return 0.0
    k = round(n * hz / rate)
    w = 2.0 * math.pi * k / n
    coeff = 2.0 * math.cos(w)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return power / (n * n)


#: Analysis block (s): 10 Hz bins, short enough that a phase jump (packet-loss
#: concealment, a re-INVITE) only costs its own block.
BLOCK_S = 0.1
#: A tone counts as present in a block above this level (dB relative to a full-scale sine).
PRESENT_DB = -30.0


def tone_levels(path: Path, freqs: tuple[float, ...] = TONES, window: tuple[float, float] | None = None) -> dict:
    """Per frequency, the mean level (dB relative to a full-scale sine, Goertzel power per
    100 ms block averaged over the blocks) and, under "present", the share of blocks in
    which it is above PRESENT_DB; plus the recording's length in seconds and the analysed
    part's RMS in dBFS. Without `window` the analysis starts at the first sound (the other
    caller may join later); with `window` = (from, to) it covers those seconds."""
    samples, rate = read_wav(path)
    if window is not None:
        body = samples[int(window[0] * rate) : int(window[1] * rate)]
    else:
        frame = rate // 50
        start = next(
            (i for i in range(0, len(samples) - frame + 1, frame)
             if max(abs(x) for x in samples[i : i + frame]) > 300),
            len(samples),
        )
        body = samples[start:]
    out: dict = {
        "seconds": len(samples) / rate if rate else 0.0,
        "analysed_seconds": len(body) / rate if rate else 0.0,
        "present": {},
    }
    ref = 0.25 * 32768.0 * 32768.0
    block = int(rate * BLOCK_S)
    blocks = [body[i : i + block] for i in range(0, len(body) - block + 1, block)]
    for hz in freqs:
        powers = [goertzel_power(b, rate, hz) / ref for b in blocks]
        mean = sum(powers) / len(powers) if powers else 0.0
        out[int(hz)] = 10.0 * math.log10(mean) if mean > 0 else -200.0
        floor = 10.0 ** (PRESENT_DB / 10.0)
        out["present"][int(hz)] = sum(1 for p in powers if p > floor) / len(powers) if powers else 0.0
    rms = (sum(x * x for x in body) / len(body)) ** 0.5 if body else 0.0
    out["rms_dbfs"] = 20.0 * math.log10(rms / 32768.0) if rms > 0 else -200.0
    return out


# ---------------------------------------------------------------------------------------
# Callers


class CallerRun:
    """A running caller.py; `result()` waits for its JSON line."""

    def __init__(self, cmd: list[str], log_file: Path, ready_file: Path, timeout: float):
        self.cmd = cmd
        self.log_file = log_file
        self.ready_file = ready_file
        self.timeout = timeout
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )

    def wait_media(self, timeout: float = 15.0) -> None:
        """Waits until the caller's call is up with media running."""
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"caller exited before its media ran: {self.result()}")
            if time.monotonic() > deadline:
                pytest.fail(f"caller's media did not start in {timeout} s (log {self.log_file})")
            time.sleep(0.05)

    def result(self) -> dict:
        try:
            stdout, stderr = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate(timeout=5)
            pytest.fail(f"caller did not finish in {self.timeout} s: {' '.join(self.cmd)}\n{stderr.decode()[-3000:]}")
        lines = [l for l in stdout.decode(errors="replace").splitlines() if l.startswith("{")]
        if self.proc.returncode != 0 or not lines:
            pytest.fail(
                f"caller rc={self.proc.returncode}: {' '.join(self.cmd)}\n"
                f"{stdout.decode(errors='replace')[-2000:]}\n{stderr.decode(errors='replace')[-3000:]}"
            )
        res = json.loads(lines[-1])
        res["log_file"] = str(self.log_file)
        return res


@dataclass
class PjCallers:
    server: PjServer
    tmp_path: Path

    def start(
        self,
        host: str,
        token: str,
        transport: str = "tls",
        suites: list[str] | None = None,
        play: Path | None = None,
        record: Path | None = None,
        duration: float = 4.0,
        codecs: list[str] | None = None,
        name: str = "caller",
        actions: list[str] | None = None,
    ) -> CallerRun:
        """Starts one caller joining with `token` at `host` (the connector's outbound host
        name) through 127.0.0.1 as outbound proxy."""
        if transport == "tls":
            uri = f"sip:{MEETING_NUMBER}@{host};transport=tls;X-chime-join-token={token}"
            proxy = f"sip:127.0.0.1:{self.server.tls_port};transport=tls;lr"
        else:
            uri = f"sip:{MEETING_NUMBER}@{host};X-chime-join-token={token}"
            proxy = f"sip:127.0.0.1:{self.server.sip_port};lr"
        log_file = self.tmp_path / f"{name}.pjsip.log"
        ready_file = self.tmp_path / f"{name}.ready"
        cmd = [
            sys.executable, str(CALLER_SCRIPT),
            "--uri", uri,
            "--from-uri", f"sip:{CALLER}@127.0.0.1",
            "--proxy", proxy,
            "--transport", transport,
            "--ca", str(self.server.ca_pem),
            "--duration", str(duration),
            "--timeout", "8",
            "--log-level", "5",
            "--log-file", str(log_file),
            "--ready-file", str(ready_file),
        ]
        for s in suites or []:
            cmd += ["--suite", s]
        for c in codecs or []:
            cmd += ["--codec", c]
        for a in actions or []:
            cmd += ["--action", a]
        if play is not None:
            cmd += ["--play", str(play)]
        if record is not None:
            cmd += ["--record", str(record)]
        return CallerRun(cmd, log_file, ready_file, timeout=duration + 25)


@pytest.fixture
def pj_callers(pj_server, tmp_path) -> PjCallers:
    return PjCallers(pj_server, tmp_path)


@pytest.fixture
def pj_tools():
    """Helpers for test modules (a fixture, since `import conftest` could pick up
    tests/conftest.py instead of this file)."""
    return SimpleNamespace(tone_levels=tone_levels, read_wav=read_wav, goertzel_power=goertzel_power)
