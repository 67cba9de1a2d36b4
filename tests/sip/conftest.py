"""Fixtures for the SIP interop tests: one real `voice-connector serve` process for the whole
tests/sip session, bound to 127.0.0.1 only, plus helpers that provision voice connectors,
meetings and attendees through its AWS-compatible API (boto3) and that drive SIPp.

Everything here uses distinct names (`sip_*`) so it can sit beside the control-plane
fixtures in tests/conftest.py.
"""

from __future__ import annotations

import random
import shutil
import socket
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from vctest.ports import free_udp_port, free_udp_tcp_port
from vctest.server import MeetingServer as SipServer
from vctest.server import serve

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


@pytest.fixture(scope="session")
def sip_server(tmp_path_factory) -> SipServer:
    """A real `voice-connector serve` on 127.0.0.1 with kernel-chosen SIP, TLS and API ports
    (read back from its log) and an RTP range that is free at start."""
    yield from serve(tmp_path_factory.mktemp("vc-sip"), label="sip")


@pytest.fixture
def sip_private_server(tmp_path_factory) -> SipServer:
    """A server of its own for one test, for tests that assert the server's global state
    (active legs, held RTP ports) and must not see other tests' calls."""
    yield from serve(tmp_path_factory.mktemp("vc-sip-private"), label="sip")


@pytest.fixture(scope="module")
def sip_dropping_server(tmp_path_factory) -> SipServer:
    """A server run with --sip-drop-unallowed-sources: sources outside a connector's
    CidrAllowedList get no answer at all."""
    yield from serve(tmp_path_factory.mktemp("vc-sip-drop"), ("--sip-drop-unallowed-sources",), label="sip")


@pytest.fixture(scope="module")
def sip_module_server(tmp_path_factory) -> SipServer:
    """Like sip_private_server, shared by the tests of one module."""
    yield from serve(tmp_path_factory.mktemp("vc-sip-module"), label="sip")


# ---------------------------------------------------------------------------------------
# RTP peer


class RtpPeer:
    """A minimal RTP endpoint on 127.0.0.1 that records what the server sends and answers
    each packet with one PCMU packet of its own back to the packet's source (symmetric
    RTP), so the server sees media in both directions."""

    def __init__(self, reply_pt: int = 0, reply_audio: bytes = b""):
        """`reply_audio`: G.711 payload bytes sent 160 at a time (looped); digital
        silence (0xFF in PCMU) when empty."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.reply_pt = reply_pt
        self.reply_audio = reply_audio
        self.packets: list[tuple[bytes, tuple[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RtpPeer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _run(self) -> None:
        seq = random.randrange(0, 1 << 16)
        ts = random.randrange(0, 1 << 32)
        ssrc = random.randrange(1, 1 << 32)
        offset = 0
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.packets.append((data, addr))
            if len(data) >= 12 and data[0] >> 6 == 2 and 64 <= (data[1] & 0x7F) <= 95:
                continue  # RTCP (RFC 5761 §4 payload-type range): not answered
            header = struct.pack("!BBHII", 0x80, self.reply_pt, seq, ts, ssrc)
            seq = (seq + 1) & 0xFFFF
            ts = (ts + 160) & 0xFFFFFFFF
            if len(self.reply_audio) >= 160:
                if offset + 160 > len(self.reply_audio):
                    offset = 0
                payload = self.reply_audio[offset : offset + 160]
                offset += 160
            else:
                payload = b"\xff" * 160
            try:
                self.sock.sendto(header + payload, addr)
            except OSError:
                return

    def rtp(self) -> list[dict]:
        """Parsed RTP headers (RFC 3550 §5.1) of what arrived, RTCP left out."""
        out = []
        for data, addr in list(self.packets):
            if len(data) < 12 or data[0] >> 6 != 2:
                continue
            pt = data[1] & 0x7F
            if 64 <= pt <= 95:
                continue
            seq, ts, ssrc = struct.unpack("!HII", data[2:12])
            out.append({"pt": pt, "seq": seq, "ts": ts, "ssrc": ssrc, "len": len(data), "from": addr,
                        "payload": data[12 + 4 * (data[0] & 0x0F):]})
        return out


@pytest.fixture
def sip_rtp_peer():
    with RtpPeer() as peer:
        yield peer


@pytest.fixture(scope="session")
def sip_tools():
    """Helpers for test modules (imported through a fixture: `import conftest` could pick
    up tests/conftest.py instead of this file)."""
    return SimpleNamespace(RtpPeer=RtpPeer, g711_to_pcm16=g711_to_pcm16, tone_frequency=tone_frequency,
                           run_sipp=run_sipp)


def g711_to_pcm16(payload: bytes, law: str = "u") -> list[int]:
    """Decodes G.711 (ITU-T G.711 §2, μ-law or A-law) with sox into 16-bit samples."""
    out = subprocess.run(
        ["sox", "-t", f"{law}l", "-r", "8000", "-c", "1", "-", "-t", "raw", "-e", "signed", "-b", "16",
         "-L", "-"],
        input=payload, stdout=subprocess.PIPE, check=True, timeout=30,
    ).stdout
    return list(struct.unpack(f"<{len(out) // 2}h", out[: len(out) // 2 * 2]))


def tone_frequency(samples: list[int], rate: int = 8000, frame: int = 160) -> tuple[float, int]:
    """(estimated frequency in Hz from zero crossings, number of audible 20 ms frames)
    over the frames whose RMS is above -40 dBFS; (0, 0) when all is silence."""
    crossings = 0
    audible = 0
    for i in range(0, len(samples) - frame + 1, frame):
        chunk = samples[i : i + frame]
        rms = (sum(x * x for x in chunk) / frame) ** 0.5
        if rms < 328:  # -40 dBFS
            continue
        audible += 1
        crossings += sum(1 for a, b in zip(chunk, chunk[1:]) if (a < 0) != (b < 0))
    if audible == 0:
        return 0.0, 0
    return crossings / 2 / (audible * frame / rate), audible


# ---------------------------------------------------------------------------------------
# SIPp


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stats: dict[str, str]
    log: str
    messages: str

    def counter(self, name: str) -> int:
        """A cumulative counter from the -stf statistics file, e.g. SuccessfulCall."""
        return int(self.stats[f"{name}(C)"])

    def describe(self) -> str:
        return f"sipp rc={self.returncode}\n{self.stdout[-3000:]}\n--- messages ---\n{self.messages[-6000:]}"


def _parse_stf(path: Path) -> dict[str, str]:
    lines = [l for l in path.read_text(errors="replace").splitlines() if l.strip()]
    if len(lines) < 2:
        return {}
    header = lines[0].rstrip(";").split(";")
    values = lines[-1].rstrip(";").split(";")
    return dict(zip(header, values))


def run_sipp(
    server: SipServer,
    scenario: str,
    keys: dict[str, str],
    tmp_path: Path,
    transport: str = "u1",
    extra: list[str] | None = None,
    timeout_s: int = 20,
    tag: str = "",
    source_ip: str = "127.0.0.1",
) -> SippResult:
    """Runs one SIPp call of `scenario` against the server's UDP/TCP port (127.0.0.1 as the
    outbound proxy: the Request-URI names the voice connector host, no DNS involved).
    `tag` tells apart the trace files of several runs of one scenario in one test;
    `source_ip` (127.0.0.x) is the address SIPp sends from."""
    if shutil.which("sipp") is None:
        pytest.fail("sipp (Debian sip-tester) is not installed; run scripts/setup-deps")
    name = Path(scenario).stem + "-" + transport + (f"-{tag}" if tag else "")
    stf = tmp_path / f"{name}.stat.csv"
    log = tmp_path / f"{name}.log"
    msgs = tmp_path / f"{name}.messages"
    cmd = [
        "sipp", "-sf", str(SCENARIOS / scenario),
        "-t", transport,
        "-i", source_ip,
        "-p", str(free_udp_tcp_port()),
        "-mi", source_ip,
        "-mp", str(free_udp_port()),
        "-nostdin",
        "-timeout", f"{timeout_s}s", "-timeout_error",
        "-trace_stat", "-stf", str(stf),
        "-trace_logs", "-log_file", str(log),
        "-trace_msg", "-message_file", str(msgs),
    ]
    for k, v in keys.items():
        cmd += ["-key", k, v]
    extra = extra or []
    if "-m" not in extra:
        cmd += ["-m", "1"]
    cmd += extra
    cmd.append(f"127.0.0.1:{server.sip_port}")
    proc = subprocess.run(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, timeout=timeout_s + 15,
    )
    read = lambda p: p.read_text(errors="replace") if p.exists() else ""
    return SippResult(
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        _parse_stf(stf) if stf.exists() else {},
        read(log),
        read(msgs),
    )


@pytest.fixture
def sip_sipp(sip_server, tmp_path):
    """`sip_sipp(scenario, keys, transport="u1", extra=[...])` runs SIPp against sip_server."""

    def run(scenario: str, keys: dict[str, str], transport: str = "u1", **kw) -> SippResult:
        return run_sipp(sip_server, scenario, keys, tmp_path, transport, **kw)

    return run
