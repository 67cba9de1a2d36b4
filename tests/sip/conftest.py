"""Fixtures for the SIP interop tests: one real `voice-connector serve` process for the whole
tests/sip session, bound to 127.0.0.1 only, plus helpers that provision voice connectors,
meetings and attendees through its AWS-compatible API (boto3) and that drive SIPp.

Everything here uses distinct names (`sip_*`) so it can sit beside the control-plane
fixtures in tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).resolve().parent / "scenarios"

#: Upper bound for the server to come up (first start creates the database and a CA).
STARTUP_TIMEOUT_S = 30.0

#: The phone number of a meeting join (the spec: "Use phone number +17035550122").
MEETING_NUMBER = "+17035550122"
#: E.164 caller id used in From.
CALLER = "+12065550100"


def _find_binary() -> Path:
    """The server binary: $VC_BIN (set by scripts/test), else the newest existing cargo
    build (release or debug, in ./target or $CARGO_TARGET_DIR), else a fresh
    `cargo build -p voice-connector`."""
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


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIPp listens on both with -t t1)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free for both UDP and TCP")


def _free_rtp_range(size: int = 200) -> tuple[int, int]:
    """An even-aligned UDP port range of `size` ports that is free right now, so parallel
    test runs of other suites (which may use fixed ranges) do not collide with ours.

    Taken below the kernel's ephemeral range (and below 30000, where other suites pick
    theirs), so that no socket bound to port 0 (SIPp, the RTP peers, other programs) can land
    in it while the server runs: a port the server finds taken is then its own doing."""
    rng = random.Random()
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    top = min(ephemeral_low, 30000)
    lowest = 10000 if top - size > 10000 else 30000
    highest = top - size if lowest == 10000 else 60000 - size
    for _ in range(50):
        low = rng.randrange(lowest, highest, 2)
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
class Provisioned:
    """A voice connector with termination for 127.0.0.1, a meeting and one attendee."""

    voice_connector_id: str
    host: str
    meeting_id: str
    attendee_id: str
    token: str


@dataclass
class SipServer:
    proc: subprocess.Popen
    data_dir: Path
    log_path: Path
    api_url: str
    sip_port: int
    tls_port: int
    key_id: str
    secret: str
    _clients: dict = field(default_factory=dict)
    #: The --rtp-ports range the server was started with (inclusive).
    rtp_ports: tuple[int, int] = (0, 0)

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

    def create_connector(
        self, require_encryption: bool = False, cidrs: tuple[str, ...] = ("127.0.0.1/32",)
    ) -> tuple[str, str]:
        """Creates a voice connector with termination enabled for `cidrs` (by default
        127.0.0.1, where every test client sends from); returns (id, host)."""
        voice = self.client("chime-sdk-voice")
        vc = voice.create_voice_connector(
            Name="sip-" + uuid.uuid4().hex[:10], RequireEncryption=require_encryption
        )["VoiceConnector"]
        voice.put_voice_connector_termination(
            VoiceConnectorId=vc["VoiceConnectorId"],
            Termination={
                "CidrAllowedList": list(cidrs),
                "CallingRegions": ["US"],
                "CpsLimit": 100,
            },
        )
        return vc["VoiceConnectorId"], vc["OutboundHostName"]

    def create_attendee(self) -> tuple[str, str, str]:
        """Creates a meeting with one attendee; returns (meeting id, attendee id, join token)."""
        meetings = self.client("chime-sdk-meetings")
        meeting = meetings.create_meeting(
            ClientRequestToken=uuid.uuid4().hex,
            MediaRegion="us-east-1",
            ExternalMeetingId="sip-" + uuid.uuid4().hex[:12],
        )["Meeting"]
        attendee = meetings.create_attendee(
            MeetingId=meeting["MeetingId"], ExternalUserId="sip-" + uuid.uuid4().hex[:12]
        )["Attendee"]
        return meeting["MeetingId"], attendee["AttendeeId"], attendee["JoinToken"]

    def add_attendee(self, meeting_id: str) -> tuple[str, str]:
        """Adds an attendee to an existing meeting; returns (attendee id, join token)."""
        attendee = self.client("chime-sdk-meetings").create_attendee(
            MeetingId=meeting_id, ExternalUserId="sip-" + uuid.uuid4().hex[:12]
        )["Attendee"]
        return attendee["AttendeeId"], attendee["JoinToken"]

    def put_termination(self, vc_id: str, **termination) -> None:
        """PutVoiceConnectorTermination with 127.0.0.1 allowed, CallingRegions US and
        CpsLimit 100, overridden by `termination` (e.g. Disabled=True, CpsLimit=1)."""
        doc = {"CidrAllowedList": ["127.0.0.1/32"], "CallingRegions": ["US"], "CpsLimit": 100}
        doc.update(termination)
        self.client("chime-sdk-voice").put_voice_connector_termination(
            VoiceConnectorId=vc_id, Termination=doc
        )

    def create_attendees(self, count: int, per_meeting: int = 250) -> list[tuple[str, str, str]]:
        """`count` attendees over as many meetings as needed (at most `per_meeting` each,
        the service's limit is 250), created with BatchCreateAttendee in chunks of 100 (its
        limit). Returns (meeting id, attendee id, join token) per attendee."""
        meetings = self.client("chime-sdk-meetings")
        out: list[tuple[str, str, str]] = []
        while len(out) < count:
            meeting_id = meetings.create_meeting(
                ClientRequestToken=uuid.uuid4().hex,
                MediaRegion="us-east-1",
                ExternalMeetingId="sip-" + uuid.uuid4().hex[:12],
            )["Meeting"]["MeetingId"]
            in_meeting = min(per_meeting, count - len(out))
            for start in range(0, in_meeting, 100):
                n = min(100, in_meeting - start)
                resp = meetings.batch_create_attendee(
                    MeetingId=meeting_id,
                    Attendees=[{"ExternalUserId": "sip-" + uuid.uuid4().hex[:12]} for _ in range(n)],
                )
                assert not resp.get("Errors"), resp["Errors"]
                assert len(resp["Attendees"]) == n, resp
                out += [(meeting_id, a["AttendeeId"], a["JoinToken"]) for a in resp["Attendees"]]
        return out

    def metrics(self) -> dict[str, float]:
        """GET /metrics (Prometheus text format 0.0.4) as {series: value}, the series
        written as in the exposition (`name` or `name{labels}`; `name{}` read as `name`)."""
        with urllib.request.urlopen(self.api_url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            out[series.removesuffix("{}")] = float(value)
        return out

    def held_udp_ports(self) -> set[int]:
        """Local ports of every UDP socket the server process holds right now (its open
        socket inodes from /proc/<pid>/fd, matched against /proc/net/udp and udp6)."""
        inodes = set()
        fd_dir = Path(f"/proc/{self.proc.pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed while we looked
            m = re.fullmatch(r"socket:\[(\d+)\]", target)
            if m:
                inodes.add(m.group(1))
        ports = set()
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()
                if len(cols) > 9 and cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        return ports

    def media_state(self) -> tuple[float, set[int]]:
        """(the `vc_active_legs` gauge, the ports of --rtp-ports the server holds)."""
        low, high = self.rtp_ports
        held = {p for p in self.held_udp_ports() if low <= p <= high}
        return self.metrics().get("vc_active_legs", 0.0), held

    def wait_media_idle(self, timeout: float = 10.0) -> tuple[float, set[int]]:
        """Waits until no leg is active and no RTP port is held (calls end asynchronously
        after their BYE), up to `timeout`; returns the last media_state()."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.media_state()
            if state == (0.0, set()) or time.monotonic() > deadline:
                return state
            time.sleep(0.1)

    def provision(self, require_encryption: bool = False) -> Provisioned:
        vc_id, host = self.create_connector(require_encryption)
        meeting_id, attendee_id, token = self.create_attendee()
        return Provisioned(vc_id, host, meeting_id, attendee_id, token)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def call_records(self, vc_id: str) -> list[dict]:
        """GET /admin/call-records?voice-connector-id=... (SigV4-signed): the connector's
        call detail records."""
        url = f"{self.api_url}/admin/call-records?voice-connector-id={vc_id}"
        req = AWSRequest(method="GET", url=url)
        SigV4Auth(Credentials(self.key_id, self.secret), "chime", "us-east-1").add_auth(req)
        prepared = urllib.request.Request(url, headers=dict(req.headers.items()), method="GET")
        with urllib.request.urlopen(prepared, timeout=10) as resp:
            return json.loads(resp.read())["CallRecords"]

    def wait_call_records(self, vc_id: str, n: int, timeout: float = 10.0) -> list[dict]:
        """The connector's call records once there are at least `n` (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.call_records(vc_id)
            if len(recs) >= n or time.monotonic() > deadline:
                return recs
            time.sleep(0.1)

    def wait_for_log(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match:
        """Waits until the server's stderr log (from byte offset `start`) matches `pattern`."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.log()[start:])
            if m:
                return m
            if self.proc.poll() is not None:
                pytest.fail(f"voice-connector exited ({self.proc.returncode}):\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no server log line matching {pattern!r}:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def call_ended(self, meeting_id: str, timeout: float = 10.0) -> dict[str, int]:
        """Waits for the server's `call ended` line for `meeting_id` and returns its leg
        statistics (packets_in, packets_out, srtp_failures, ...)."""
        m = self.wait_for_log(
            r"call ended [^\n]*meeting=" + re.escape(meeting_id) + r"[^\n]*", timeout
        )
        stats = dict(
            (k, int(v)) for k, v in re.findall(r"(\w+): (\d+)", m.group(0))
        )
        reason = re.search(r"reason=(\S+)", m.group(0))
        stats["_reason"] = reason.group(1) if reason else ""
        return stats


@pytest.fixture(scope="session")
def sip_server(tmp_path_factory) -> SipServer:
    """A real `voice-connector serve` on 127.0.0.1 with kernel-chosen SIP, TLS and API ports
    (read back from its log) and an RTP range that is free at start."""
    yield from _serve(tmp_path_factory.mktemp("vc-sip"))


@pytest.fixture
def sip_private_server(tmp_path_factory) -> SipServer:
    """A server of its own for one test, for tests that assert the server's global state
    (active legs, held RTP ports) and must not see other tests' calls."""
    yield from _serve(tmp_path_factory.mktemp("vc-sip-private"))


@pytest.fixture(scope="module")
def sip_dropping_server(tmp_path_factory) -> SipServer:
    """A server run with --sip-drop-unallowed-sources: sources outside a connector's
    CidrAllowedList get no answer at all."""
    yield from _serve(tmp_path_factory.mktemp("vc-sip-drop"), ("--sip-drop-unallowed-sources",))


@pytest.fixture(scope="module")
def sip_module_server(tmp_path_factory) -> SipServer:
    """Like sip_private_server, shared by the tests of one module."""
    yield from _serve(tmp_path_factory.mktemp("vc-sip-module"))


def _serve(work: Path, extra_args: tuple[str, ...] = ()):
    """Starts the server in `work` (with `extra_args` after the usual flags), yields it,
    stops it (SIGTERM) and fails on a panic."""
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
            str(binary),
            "serve",
            "--data-dir", str(data_dir),
            "--http", "127.0.0.1:0",
            "--sip", "127.0.0.1:0",
            "--sip-tls", "127.0.0.1:0",
            "--rtp-ports", f"{rtp_low}-{rtp_high}",
            *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    server = SipServer(proc, data_dir, log_path, "", 0, 0, "", "")
    try:
        api = server.wait_for_log(r"voice-connector started api=127\.0\.0\.1:(\d+)", STARTUP_TIMEOUT_S)
        udp = server.wait_for_log(r'SIP listening transport="udp" addr=127\.0\.0\.1:(\d+)', STARTUP_TIMEOUT_S)
        tcp = server.wait_for_log(r'SIP listening transport="tcp" addr=127\.0\.0\.1:(\d+)', STARTUP_TIMEOUT_S)
        tls = server.wait_for_log(r'SIP listening transport="tls" addr=127\.0\.0\.1:(\d+)', STARTUP_TIMEOUT_S)
        assert udp.group(1) == tcp.group(1), "UDP and TCP must share the SIP port"
        server.api_url = f"http://127.0.0.1:{api.group(1)}"
        server.sip_port = int(udp.group(1))
        server.rtp_ports = (rtp_low, rtp_high)
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
    # A panic anywhere in the server is a failure of whichever test provoked it.
    assert "panicked" not in server.log(), server.log()[-4000:]


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
