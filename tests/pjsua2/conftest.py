"""Fixtures for the pjsua2 (pjsip 2.15) meeting-join tests: one real `voice-connector serve`
process for the whole tests/pjsua2 session on 127.0.0.1, provisioning through its
AWS-compatible API with boto3, and a runner for `caller.py` (one pjsua2 caller per process).

Every fixture here is named `pj_*` so it can sit beside tests/conftest.py and tests/sip.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
CALLER_SCRIPT = Path(__file__).resolve().parent / "caller.py"

#: Upper bound for the server to come up (first start creates the database and a CA).
STARTUP_TIMEOUT_S = 30.0
#: The meeting-join number of the spec.
MEETING_NUMBER = "+17035550122"
#: E.164 caller id in From.
CALLER = "+12065550100"
#: Frequencies of the test tones (Hz): far apart and not harmonics of each other.
TONES = (440, 1000, 1700)


def _find_binary() -> Path:
    """$VC_BIN (set by scripts/test), else the newest existing cargo build (release or
    debug, in ./target or $CARGO_TARGET_DIR), else a fresh `cargo build -p voice-connector`."""
    env = os.environ.get("VC_BIN")
    if env:
        path = Path(env)
        if not path.is_file():
            pytest.fail(f"VC_BIN={env} does not exist")
        return path
    targets = [ROOT / "target"]
    if os.environ.get("CARGO_TARGET_DIR"):
        targets.append(Path(os.environ["CARGO_TARGET_DIR"]))
    built = [
        t / profile / "voice-connector"
        for t in targets
        for profile in ("release", "debug")
        if (t / profile / "voice-connector").is_file()
    ]
    if built:
        return max(built, key=lambda b: b.stat().st_mtime)
    subprocess.run(["cargo", "build", "-p", "voice-connector"], cwd=ROOT, check=True, timeout=1800)
    return targets[-1] / "debug" / "voice-connector"


def _free_rtp_range(size: int = 100) -> tuple[int, int]:
    """An even-aligned UDP port range that is free right now (other suites may run beside)."""
    rng = random.Random()
    for _ in range(50):
        low = rng.randrange(30000, 60000 - size, 2)
        socks = []
        try:
            for port in range(low, low + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return low, low + size - 1
    raise RuntimeError("no free RTP port range")


@dataclass
class Join:
    """A voice connector with termination for 127.0.0.1, a meeting and one attendee."""

    voice_connector_id: str
    host: str
    meeting_id: str
    attendee_id: str
    token: str


@dataclass
class PjServer:
    proc: subprocess.Popen
    data_dir: Path
    log_path: Path
    api_url: str
    sip_port: int
    tls_port: int
    key_id: str
    secret: str
    _clients: dict = field(default_factory=dict)

    @property
    def ca_pem(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service,
                endpoint_url=self.api_url,
                region_name="us-east-1",
                aws_access_key_id=self.key_id,
                aws_secret_access_key=self.secret,
                config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10),
            )
        return self._clients[service]

    def create_connector(self, require_encryption: bool) -> tuple[str, str]:
        """A voice connector whose termination allows 127.0.0.1 and calls to the US;
        returns (id, outbound host name)."""
        voice = self.client("chime-sdk-voice")
        vc = voice.create_voice_connector(
            Name="pj-" + uuid.uuid4().hex[:10], RequireEncryption=require_encryption
        )["VoiceConnector"]
        voice.put_voice_connector_termination(
            VoiceConnectorId=vc["VoiceConnectorId"],
            Termination={"CidrAllowedList": ["127.0.0.1/32"], "CallingRegions": ["US"], "CpsLimit": 100},
        )
        return vc["VoiceConnectorId"], vc["OutboundHostName"]

    def create_meeting(self) -> str:
        meeting = self.client("chime-sdk-meetings").create_meeting(
            ClientRequestToken=uuid.uuid4().hex,
            MediaRegion="us-east-1",
            ExternalMeetingId="pj-" + uuid.uuid4().hex[:12],
        )["Meeting"]
        return meeting["MeetingId"]

    def add_attendee(self, meeting_id: str) -> tuple[str, str]:
        """Returns (attendee id, join token)."""
        attendee = self.client("chime-sdk-meetings").create_attendee(
            MeetingId=meeting_id, ExternalUserId="pj-" + uuid.uuid4().hex[:12]
        )["Attendee"]
        return attendee["AttendeeId"], attendee["JoinToken"]

    def provision(self, require_encryption: bool) -> Join:
        vc_id, host = self.create_connector(require_encryption)
        meeting_id = self.create_meeting()
        attendee_id, token = self.add_attendee(meeting_id)
        return Join(vc_id, host, meeting_id, attendee_id, token)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match:
        """Waits until the server's stderr log matches `pattern`."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.log())
            if m:
                return m
            if self.proc.poll() is not None:
                pytest.fail(f"voice-connector exited ({self.proc.returncode}):\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no server log line matching {pattern!r}:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def call_ended(self, attendee_or_meeting: str, timeout: float = 10.0) -> dict:
        """The server's `call ended` statistics for a meeting (packets_in, packets_out,
        srtp_failures, ...; `_reason` holds the termination reason)."""
        m = self.wait_for_log(r"call ended [^\n]*meeting=" + re.escape(attendee_or_meeting) + r"[^\n]*", timeout)
        stats: dict = {k: int(v) for k, v in re.findall(r"(\w+): (\d+)", m.group(0))}
        reason = re.search(r"reason=(\S+)", m.group(0))
        stats["_reason"] = reason.group(1) if reason else ""
        return stats


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
    binary = _find_binary()
    work = tmp_path_factory.mktemp("vc-pjsua2")
    data_dir = work / "data"
    data_dir.mkdir()
    log_path = work / "server.log"
    rtp_low, rtp_high = _free_rtp_range()
    env = dict(os.environ, NO_COLOR="1", RUST_BACKTRACE="1")
    env.setdefault("RUST_LOG", "info")
    for var in ("VC_CONFIG", "VC_DATABASE_URL", "VC_MEDIA_IP", "VC_SIP_DOMAIN", "VC_TLS_CERT", "VC_TLS_KEY"):
        env.pop(var, None)
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            str(binary), "serve",
            "--data-dir", str(data_dir),
            "--http", "127.0.0.1:0",
            "--sip", "127.0.0.1:0",
            "--sip-tls", "127.0.0.1:0",
            "--rtp-ports", f"{rtp_low}-{rtp_high}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    server = PjServer(proc, data_dir, log_path, "", 0, 0, "", "")
    try:
        api = server.wait_for_log(r"voice-connector started api=127\.0\.0\.1:(\d+)", STARTUP_TIMEOUT_S)
        udp = server.wait_for_log(r'SIP listening transport="udp" addr=127\.0\.0\.1:(\d+)', STARTUP_TIMEOUT_S)
        tls = server.wait_for_log(r'SIP listening transport="tls" addr=127\.0\.0\.1:(\d+)', STARTUP_TIMEOUT_S)
        server.api_url = f"http://127.0.0.1:{api.group(1)}"
        server.sip_port = int(udp.group(1))
        server.tls_port = int(tls.group(1))
        lines = (data_dir / "api-credentials").read_text().splitlines()
        server.key_id, server.secret = lines[0].strip(), lines[1].strip()
        assert server.ca_pem.is_file()
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log_file.close()
    # A panic anywhere in the server fails the session.
    assert "panicked" not in server.log(), server.log()[-4000:]


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
