"""Fixtures for the baresip codec-mix test (GitHub issue 5): one real `voice-connector serve`
on 127.0.0.1 for the tests of a module, provisioning through its AWS-compatible API (boto3),
and baresip 1.0.0 callers over SIP/TLS with SDES-SRTP, each restricted to one audio codec.

Names are `bs_*` / `Bs*` so this file can sit beside tests/conftest.py and tests/sip/conftest.py
(nothing is imported across folders: pytest's `conftest` module name would clash).
"""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
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

#: Upper bound for the server to come up (first start creates the database and a CA).
STARTUP_TIMEOUT_S = 30.0

#: Safety net only: baresip quits on its own after this many seconds (`-t`).
BARESIP_MAX_SECONDS = 25


def _find_binary() -> Path:
    """$VC_BIN, else the newest existing cargo build (./target or $CARGO_TARGET_DIR), else a
    fresh `cargo build -p voice-connector`."""
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


def _free_rtp_range(size: int = 200) -> tuple[int, int]:
    """An even-aligned UDP range free right now, below the kernel's ephemeral ports (and below
    30000) so no socket bound to port 0 lands in it while the server runs."""
    rng = random.Random()
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    top = min(ephemeral_low, 30000)
    for _ in range(50):
        low = rng.randrange(10000, top - size, 2)
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
class BsServer:
    proc: subprocess.Popen
    data_dir: Path
    log_path: Path
    api_url: str = ""
    tls_port: int = 0
    key_id: str = ""
    secret: str = ""
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
        """A voice connector with termination for 127.0.0.1/32, calling region US; returns
        (id, outbound host name)."""
        voice = self.client("chime-sdk-voice")
        vc = voice.create_voice_connector(
            Name="bs-" + uuid.uuid4().hex[:10], RequireEncryption=require_encryption
        )["VoiceConnector"]
        voice.put_voice_connector_termination(
            VoiceConnectorId=vc["VoiceConnectorId"],
            Termination={"CidrAllowedList": ["127.0.0.1/32"], "CallingRegions": ["US"], "CpsLimit": 100},
        )
        return vc["VoiceConnectorId"], vc["OutboundHostName"]

    def create_meeting(self, attendees: int) -> tuple[str, list[tuple[str, str]]]:
        """One meeting with `attendees` attendees; returns (meeting id, [(attendee id, token)])."""
        meetings = self.client("chime-sdk-meetings")
        meeting_id = meetings.create_meeting(
            ClientRequestToken=uuid.uuid4().hex,
            MediaRegion="us-east-1",
            ExternalMeetingId="bs-" + uuid.uuid4().hex[:12],
        )["Meeting"]["MeetingId"]
        out = []
        for _ in range(attendees):
            a = meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="bs-" + uuid.uuid4().hex[:12])[
                "Attendee"
            ]
            out.append((a["AttendeeId"], a["JoinToken"]))
        return meeting_id, out

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match:
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


@pytest.fixture(scope="module")
def bs_server(tmp_path_factory) -> BsServer:
    """A real `voice-connector serve` on 127.0.0.1 (kernel-chosen SIP, TLS and API ports read
    back from its log), stopped with SIGTERM afterwards; a panic in its log fails the test."""
    work = tmp_path_factory.mktemp("vc-baresip")
    binary = _find_binary()
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
    server = BsServer(proc, data_dir, log_path)
    try:
        api = server.wait_for_log(r"voice-connector started api=127\.0\.0\.1:(\d+)", STARTUP_TIMEOUT_S)
        tls = server.wait_for_log(r'SIP listening transport="tls" addr=127\.0\.0\.1:(\d+)', STARTUP_TIMEOUT_S)
        server.api_url = f"http://127.0.0.1:{api.group(1)}"
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
    assert "panicked" not in server.log(), server.log()[-4000:]


# ---------------------------------------------------------------------------------------
# baresip


def _free_baresip_sip_port() -> int:
    """baresip binds UDP and TCP on the sip_listen port and TLS on the port above it."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65534:
            continue
        socks = []
        try:
            for p, kind in ((port, socket.SOCK_DGRAM), (port, socket.SOCK_STREAM), (port + 1, socket.SOCK_STREAM)):
                sock = socket.socket(socket.AF_INET, kind)
                socks.append(sock)
                sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return port
    raise RuntimeError("no free port pair for baresip")


def _free_udp_range(size: int) -> tuple[int, int]:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            low = s.getsockname()[1] & ~1
        if low + size > 65535:
            continue
        socks = []
        try:
            for p in range(low, low + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return low, low + size - 1
    raise RuntimeError("no free UDP range for baresip RTP")


#: baresip codec module and account `audio_codecs` entry per codec. The audio source and
#: player run at the codec's own rate and channel count (no audio_srate/audio_channels in
#: the config), so the tone WAV is made in that format.
BARESIP_CODECS = {
    # RFC 7587: opus/48000/2 in SDP whatever is really sent.
    "opus": SimpleNamespace(module="opus.so", codec="opus/48000/2", rate=48000, channels=2),
    # RFC 3551 §4.5.2: G722/8000 in SDP, sampled at 16 kHz.
    "g722": SimpleNamespace(module="g722.so", codec="G722/8000/1", rate=16000, channels=1),
    "pcmu": SimpleNamespace(module="g711.so", codec="PCMU/8000/1", rate=8000, channels=1),
}


class BsBaresip:
    """One baresip process with its own config directory placing one call over TLS with
    mandatory SDES-SRTP, with exactly one audio codec module loaded and offered."""

    def __init__(self, workdir: Path, server: BsServer, codec: str, tone_hz: int, seconds: float):
        if shutil.which("baresip") is None:
            pytest.fail("baresip is not installed; run scripts/setup-deps")
        if shutil.which("sox") is None:
            pytest.fail("sox is not installed; run scripts/setup-deps")
        spec = BARESIP_CODECS[codec]
        self.codec = codec
        self.tone_hz = tone_hz
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "baresip.log"
        wav = self.dir / f"tone{tone_hz}.wav"
        subprocess.run(
            ["sox", "-n", "-r", str(spec.rate), "-c", str(spec.channels), "-b", "16", str(wav),
             "synth", str(seconds), "sine", str(tone_hz), "vol", "0.4"],
            check=True, timeout=30,
        )
        sip_port = _free_baresip_sip_port()
        rtp_low, rtp_high = _free_udp_range(20)
        (self.dir / "config").write_text(
            "\n".join(
                [
                    "poll_method\t\tepoll",
                    f"sip_listen\t\t127.0.0.1:{sip_port}",
                    f"sip_cafile\t\t{server.ca_pem}",
                    "call_local_timeout\t30",
                    "call_max_calls\t\t1",
                    "audio_player\t\taubridge,speaker",
                    f"audio_source\t\taufile,{wav}",
                    "audio_alert\t\taubridge,speaker",
                    f"rtp_ports\t\t{rtp_low}-{rtp_high}",
                    "rtp_stats\t\tyes",
                    "net_interface\t\t127.0.0.1",
                    "module_path\t\t/usr/lib/baresip/modules",
                    f"module\t\t\t{spec.module}",
                    "module\t\t\taufile.so",
                    "module\t\t\taubridge.so",
                    "module\t\t\tsndfile.so",
                    "module\t\t\tsrtp.so",
                    "module\t\t\tmenu.so",
                    "module\t\t\taccount.so",
                    f"snd_path\t\t{self.dir}",
                    "",
                ]
            )
        )
        # regint=0: no REGISTER (the connector authorises by source address). outbound=:
        # everything goes to the server's TLS port, no DNS for the connector host name.
        (self.dir / "accounts").write_text(
            f"<sip:+1206555{random.randrange(1000, 9999)}@127.0.0.1;transport=tls>;regint=0;mediaenc=srtp-mand;"
            f'outbound="sip:127.0.0.1:{server.tls_port};transport=tls";audio_codecs={spec.codec}\n'
        )
        (self.dir / "contacts").write_text("")
        self.proc: subprocess.Popen | None = None
        self._log = None

    def dial(self, uri: str) -> None:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["baresip", "-f", str(self.dir), "-s", "-t", str(BARESIP_MAX_SECONDS), "-e", f"/dial {uri}"],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return re.sub(r"\x1b\[[0-9;]*m", "", self.log_path.read_text(errors="replace"))

    def established(self) -> bool:
        return "Call established" in self.log()

    def ended(self) -> bool:
        return bool(re.search(r"terminated \(duration|session closed|Call failed|call: terminate", self.log()))

    def hang_up(self) -> int:
        """Stops baresip with SIGTERM (a clean `ua: stop all`, which sends BYE), SIGKILL if it
        lingers; returns its exit status."""
        if self.proc is None:
            return -1
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc

    def decoded_wav(self) -> Path | None:
        dumps = sorted(self.dir.glob("dump-*-dec.wav"))
        return dumps[-1] if dumps else None


# ---------------------------------------------------------------------------------------
# tone analysis


def bs_read_wav(path: Path) -> tuple[list[float], int]:
    """The first channel of a 16-bit PCM WAV as floats in [-1, 1), and its sample rate."""
    import struct

    with wave.open(str(path)) as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    assert width == 2, f"{path}: {width * 8}-bit samples"
    count = len(raw) // 2
    samples = struct.unpack(f"<{count}h", raw[: count * 2])
    return [s / 32768.0 for s in samples[::channels]], rate


def bs_goertzel_db(samples: list[float], rate: int, freq: float) -> float:
    """Power of `freq` over `samples` (Goertzel, Hann window), in dB relative to a full-scale
    sine; -200 for silence."""
    n = len(samples)
    if n == 0:
        return -200.0
    k = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for i, x in enumerate(samples):
        w = 0.5 - 0.5 * math.cos(2.0 * math.pi * i / (n - 1)) if n > 1 else 1.0
        s0 = x * w + k * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    # A full-scale sine through a Hann window gives an amplitude of n/4 at its bin.
    ref = (n / 4.0) ** 2
    return 10.0 * math.log10(power / ref) if power > 0 else -200.0


def bs_tone_levels(samples: list[float], rate: int, freqs: list[int], block_s: float = 0.1) -> dict[int, list[float]]:
    """Per `block_s` block, the Goertzel level (dBFS) of each frequency in `freqs`."""
    block = int(rate * block_s)
    out: dict[int, list[float]] = {f: [] for f in freqs}
    for start in range(0, len(samples) - block + 1, block):
        chunk = samples[start : start + block]
        for f in freqs:
            out[f].append(bs_goertzel_db(chunk, rate, f))
    return out


@pytest.fixture(scope="session")
def bs_tools():
    """Helpers for the test modules (through a fixture: `import conftest` could pick up
    another folder's conftest)."""
    return SimpleNamespace(
        Baresip=BsBaresip,
        read_wav=bs_read_wav,
        goertzel_db=bs_goertzel_db,
        tone_levels=bs_tone_levels,
    )
