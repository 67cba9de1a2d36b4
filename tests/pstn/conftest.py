"""Fixtures for the PSTN termination tests (issue 12): a PBX (pjsua2's `caller.py` from
tests/pjsua2) calls `+1…` through a voice connector; the server, a B2BUA, sends the call on to
the operator's carrier trunks, which here are processes on 127.0.0.2 and up: `callee.py`
(pjsua2, answers and plays a tone) or SIPp running a UAS scenario from `scenarios/`
(503, 486, ringing forever, a plain answer).

Every test gets a server of its own (`pstn_lab`), because carriers are global to a server
and each test wants its own set. The order matters and is kept by the lab: the carriers
listen first, then `voice-connector admin carriers add` writes them into the data directory,
then `serve` starts on it, so the server never sees a carrier that is not there yet (its
OPTIONS keep-alive would mark it down) nor a cached empty carrier list.

Every fixture here is named `pstn_*`.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from vctest.server import CALLER, MeetingServer, find_binary, serve

HERE = Path(__file__).resolve().parent
CALLEE_SCRIPT = HERE / "callee.py"
SCENARIOS = HERE / "scenarios"
#: The destination every test dials: a US number, inside the connector's CallingRegions.
PSTN_NUMBER = "+14155550100"


def _load_pjsua2_helpers():
    """tests/pjsua2/conftest.py as a plain module (not a second conftest): the caller runner
    and the Goertzel tone analysis are shared from there."""
    path = HERE.parent / "pjsua2" / "conftest.py"
    spec = importlib.util.spec_from_file_location("pjsua2_e2e_helpers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


pj = _load_pjsua2_helpers()
tone_levels = pj.tone_levels
CallerRun = pj.CallerRun


@pytest.fixture(scope="session")
def pstn_tones(tmp_path_factory) -> dict[int, Path]:
    """Sine WAVs at 440 Hz (the PBX) and 1000 Hz (the carrier): 16-bit mono 16 kHz,
    -6 dBFS, 20 s (longer than any call)."""
    for tool, package in (("sox", "sox"), ("sipp", "sip-tester")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (Debian {package}); run scripts/setup-deps")
    d = tmp_path_factory.mktemp("pstn-tones")
    tones = {hz: d / f"tone{hz}.wav" for hz in (440, 1000)}
    for hz, path in tones.items():
        cmd = f"sox -n -r 16000 -b 16 -c 1 {path} synth 20 sine {hz} vol 0.5"
        subprocess.run(cmd.split(), check=True, timeout=30)
    return tones


def free_udp_port(host: str) -> int:
    """A UDP port on `host` (127.0.0.x) that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def sip_user(uri: str) -> str:
    """The user part of the first sip:/sips: URI in `uri` (a URI or a From/To value)."""
    m = re.search(r"sips?:([^@;>\s]+)@", uri)
    return m.group(1) if m else ""


def media_port(sdp: str) -> int:
    """The port of the audio m= line (RFC 4566 §5.14); 0 when there is none."""
    m = re.search(r"^m=audio (\d+) ", sdp, re.M)
    return int(m.group(1)) if m else 0


def header(msg: str, name: str) -> str:
    """The first `name` header's value in a SIP message as received ('' when absent)."""
    m = re.search(rf"^{re.escape(name)}\s*:\s*(.*?)\r?$", msg, re.M | re.I)
    return m.group(1) if m else ""


def terminate(proc: subprocess.Popen) -> None:
    """SIGTERM (the process reports and exits), SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# ---------------------------------------------------------------------------------------
# Carriers


class CalleeRun(CallerRun):
    """A running callee.py (a pjsua2 carrier). `result()` waits for its JSON line; `stop()`
    ends it first (SIGTERM: a ringing call gets 480, a live one a BYE)."""

    def __init__(self, cmd: list[str], log_file: Path, ready_file: Path, timeout: float, address: str):
        super().__init__(cmd, log_file, ready_file, timeout)
        self.address = address

    def wait_listening(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"callee {self.address} exited before it listened: {self.result()}")
            if time.monotonic() > deadline:
                pytest.fail(f"callee {self.address} did not listen within {timeout} s (log {self.log_file})")
            time.sleep(0.05)

    def stop(self) -> dict:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.result()


@dataclass
class SipMessage:
    """One message from a SIPp -trace_msg file."""

    at: float  # epoch seconds
    received: bool
    text: str

    @property
    def method(self) -> str:
        first = self.text.split(" ", 1)[0]
        return "" if first.startswith("SIP/") else first


class SippUas:
    """SIPp running a UAS scenario from scenarios/ on 127.0.0.x, in the background, with
    -aa (OPTIONS keep-alives get 200 OK) and no -m: each keep-alive counts as a call of its
    own in SIPp's statistics, so the run ends by `stop()` (SIGTERM, after which SIPp has
    written its traces) rather than after one call. Bounded by -timeout."""

    def __init__(self, scenario: str, host: str, tmp_path: Path, name: str, rtp_echo: bool = False,
                 extra: tuple[str, ...] = ()):
        tmp_path = tmp_path.resolve()  # SIPp runs in it and is handed these paths
        self.host = host
        self.port = free_udp_port(host)
        self.address = f"{host}:{self.port}"
        self.messages_file = tmp_path / f"{name}.messages"
        self.log_file = tmp_path / f"{name}.log"
        self.out_file = tmp_path / f"{name}.out"
        cmd = [
            "sipp", "-sf", str(SCENARIOS / scenario), "-t", "u1", "-i", host, "-p", str(self.port),
            "-aa", "-nostdin", "-timeout", "120s",
            "-trace_msg", "-message_file", str(self.messages_file),
            "-trace_logs", "-log_file", str(self.log_file),
        ]
        if rtp_echo:
            cmd += ["-mi", host, "-mp", str(free_udp_port(host)), "-rtp_echo"]
        cmd += extra
        with open(self.out_file, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.wait_listening()

    def wait_listening(self, timeout: float = 10.0) -> None:
        """Sends OPTIONS until SIPp answers 200 (-aa): it is up and will answer the server's
        keep-alives too."""
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(0.2)
            local = s.getsockname()[1]
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"sipp exited ({self.proc.returncode}): {self.out_file.read_text(errors='replace')}")
                ping = (
                    f"OPTIONS sip:{self.address} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
                    f"From: <sip:probe@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\n"
                    f"To: <sip:{self.address}>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\n"
                    "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                )
                s.sendto(ping.encode(), (self.host, self.port))
                try:
                    if s.recv(4096).startswith(b"SIP/2.0 200 "):
                        return
                except socket.timeout:
                    continue
        pytest.fail(f"sipp on {self.address} did not answer OPTIONS within {timeout} s")

    def stop(self) -> "SippUas":
        terminate(self.proc)
        return self

    def messages(self) -> list[SipMessage]:
        """Every message SIPp received or sent, in order (its -trace_msg file)."""
        text = self.messages_file.read_text(errors="replace") if self.messages_file.exists() else ""
        out = []
        parts = re.split(r"^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*$", text, flags=re.M)
        for stamp, block in zip(parts[1::2], parts[2::2]):
            head, _, body = block.lstrip("\n").partition("\n")
            at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
            out.append(SipMessage(at, "received" in head, body.strip("\n").replace("\n", "\r\n")))
        return out

    def requests(self, method: str) -> list[SipMessage]:
        """The `method` requests SIPp received, one per transaction (retransmissions, which
        repeat the Via branch, left out)."""
        seen, out = set(), []
        for m in self.messages():
            if m.received and m.method == method:
                key = (header(m.text, "Call-ID"), header(m.text, "Via"), header(m.text, "CSeq"))
                if key not in seen:
                    seen.add(key)
                    out.append(m)
        return out

    def sent_statuses(self) -> list[int]:
        """The status codes SIPp answered INVITEs with, in order, each once (100 Trying,
        answers to CANCEL or keep-alives and retransmissions left out)."""
        codes = [
            int(m.text.split(" ", 2)[1])
            for m in self.messages()
            if not m.received and m.text.startswith("SIP/2.0 ") and header(m.text, "CSeq").endswith("INVITE")
        ]
        return [c for c in dict.fromkeys(codes) if c != 100]

    def describe(self) -> str:
        text = self.messages_file.read_text(errors="replace") if self.messages_file.exists() else ""
        return f"sipp {self.address} ({self.messages_file}):\n{text[-4000:]}"


# ---------------------------------------------------------------------------------------
# The lab: carriers, the server, the PBX


@dataclass
class PstnLab:
    """One test's set-up. Use in this order: carriers (`callee`, `sipp_uas`), then
    `add_carrier` for each, then `start_server`, `connector`, and calls from `pbx`."""

    tmp_path: Path
    tones: dict[int, Path]
    server: MeetingServer | None = None
    _server_gen: object = None
    _callees: list[CalleeRun] = field(default_factory=list)
    _sipps: list[SippUas] = field(default_factory=list)

    @property
    def work(self) -> Path:
        return self.tmp_path / "vc"

    @property
    def data_dir(self) -> Path:
        return self.work / "data"  # where vctest.server.serve keeps it

    def callee(
        self,
        name: str,
        host: str = "127.0.0.2",
        status: int = 200,
        answer_after: float = 0.5,
        never_answer: bool = False,
        codecs: tuple[str, ...] = ("PCMU/8000",),
        play: Path | None = None,
        record: Path | None = None,
        duration: float = 20.0,
        timeout: float = 60.0,
        extra: tuple[str, ...] = (),
    ) -> CalleeRun:
        """Starts callee.py listening on `host` and waits until it does; `extra`: more
        callee.py flags."""
        address = f"{host}:{free_udp_port(host)}"
        log_file = self.tmp_path / f"{name}.pjsip.log"
        ready = self.tmp_path / f"{name}.listening"
        cmd = [
            sys.executable, str(CALLEE_SCRIPT), "--bind", address,
            "--status", str(status), "--answer-after", str(answer_after),
            "--duration", str(duration), "--timeout", str(timeout),
            "--ready-file", str(ready), "--log-level", "5", "--log-file", str(log_file),
        ]
        for c in codecs:
            cmd += ["--codec", c]
        if never_answer:
            cmd.append("--never-answer")
        if play is not None:
            cmd += ["--play", str(play)]
        if record is not None:
            cmd += ["--record", str(record)]
        cmd += extra
        run = CalleeRun(cmd, log_file, ready, timeout + 15, address)
        self._callees.append(run)
        run.wait_listening()
        return run

    def sipp_uas(self, name: str, scenario: str, host: str, rtp_echo: bool = False,
                 extra: tuple[str, ...] = ()) -> SippUas:
        """SIPp running `scenario` on `host`; `extra`: more SIPp options."""
        uas = SippUas(scenario, host, self.tmp_path, name, rtp_echo, extra)
        self._sipps.append(uas)
        return uas

    def add_carrier(self, name: str, address: str, priority: int = 1, codecs: str = "PCMU", *extra: str) -> str:
        """`voice-connector admin carriers add NAME --address … --transport udp --prefix +1
        --priority N --codecs …` on the lab's data directory; its output."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(find_binary()), "admin", "carriers", "add", name, "--data-dir", str(self.data_dir),
            "--address", address, "--transport", "udp", "--prefix", "+1", "--priority", str(priority),
            "--codecs", codecs, *extra,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def start_server(self, answer_timeout: int | None = None, extra: tuple[str, ...] = ()) -> MeetingServer:
        """`voice-connector serve` on the lab's data directory (with
        `--carrier-answer-timeout N` when `answer_timeout` is given, and `extra` flags)."""
        if answer_timeout is not None:
            extra = (*extra, "--carrier-answer-timeout", str(answer_timeout))
        self.work.mkdir(parents=True, exist_ok=True)
        self._server_gen = serve(self.work, extra, label="pstn", rtp_size=100)
        self.server = next(self._server_gen)
        return self.server

    def single_carrier(self, require_encryption: bool, **callee) -> tuple[CalleeRun, str, str]:
        """The usual set-up: callee.py on 127.0.0.2 (`callee` as for `callee()`) as the only
        carrier, c1, offered PCMU; the server; a connector. Returns (c1, connector id, its
        host)."""
        c1 = self.callee("c1", "127.0.0.2", **callee)
        self.add_carrier("c1", c1.address, 1, "PCMU")
        self.start_server()
        vc_id, host = self.connector(require_encryption)
        return c1, vc_id, host

    def connector(self, require_encryption: bool) -> tuple[str, str]:
        """A voice connector with termination for 127.0.0.1, CallingRegions US; (id, host)."""
        return self.server.create_connector(require_encryption)

    def pbx(
        self,
        host: str,
        transport: str = "udp",
        suites: tuple[str, ...] = (),
        codecs: tuple[str, ...] = (),
        play: Path | None = None,
        record: Path | None = None,
        duration: float = 4.0,
        answer_timeout: float = 8.0,
        name: str = "pbx",
        extra: tuple[str, ...] = (),
        number: str = PSTN_NUMBER,
    ) -> CallerRun:
        """Starts the PBX: caller.py dialling `number` (PSTN_NUMBER) at the connector `host`
        through the server (127.0.0.1) as outbound proxy, From CALLER."""
        if transport == "tls":
            proxy = f"sip:127.0.0.1:{self.server.tls_port};transport=tls;lr"
        else:
            proxy = f"sip:127.0.0.1:{self.server.sip_port};lr"
        log_file = self.tmp_path / f"{name}.pjsip.log"
        ready = self.tmp_path / f"{name}.media"
        cmd = [
            sys.executable, str(pj.CALLER_SCRIPT),
            "--uri", f"sip:{number}@{host}",
            "--from-uri", f"sip:{CALLER}@127.0.0.1",
            "--proxy", proxy, "--transport", transport, "--ca", str(self.server.ca_pem),
            "--duration", str(duration), "--timeout", str(answer_timeout),
            "--log-level", "5", "--log-file", str(log_file), "--ready-file", str(ready),
        ]
        for s in suites:
            cmd += ["--suite", s]
        for c in codecs:
            cmd += ["--codec", c]
        if play is not None:
            cmd += ["--play", str(play)]
        if record is not None:
            cmd += ["--record", str(record)]
        cmd += extra  # more caller.py flags
        return CallerRun(cmd, log_file, ready, timeout=answer_timeout + duration + 20)

    def close(self) -> None:
        for run in self._callees:
            terminate(run.proc)
        for uas in self._sipps:
            uas.stop()
        if self._server_gen is not None:
            # Resumes serve(): SIGTERM, wait, and its check that the log holds no panic.
            next(self._server_gen, None)


@pytest.fixture
def pstn_lab(tmp_path, pstn_tones) -> PstnLab:
    lab = PstnLab(tmp_path, pstn_tones)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="session")
def pstn_tools():
    """Helpers for the test module (a fixture: `import conftest` could find another one)."""
    from types import SimpleNamespace

    return SimpleNamespace(tone_levels=tone_levels, sip_user=sip_user, media_port=media_port, header=header,
                           number=PSTN_NUMBER, caller=CALLER, free_udp_port=free_udp_port)
