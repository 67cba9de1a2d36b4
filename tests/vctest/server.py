"""The real `voice-connector serve` process under test, and its provisioning through the
AWS-compatible API (boto3): voice connectors, meetings, attendees, call records, metrics."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from vctest.ports import free_rtp_range

ROOT = Path(__file__).resolve().parents[2]

#: Upper bound for the server to come up (first start creates the database and a CA).
STARTUP_TIMEOUT_S = 30.0
#: The phone number of a meeting join (the spec: "Use phone number +17035550122").
MEETING_NUMBER = "+17035550122"
#: E.164 caller id used in From.
CALLER = "+12065550100"


def find_binary() -> Path:
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


@dataclass
class Provisioned:
    """A voice connector with termination for 127.0.0.1, a meeting and one attendee."""

    voice_connector_id: str
    host: str
    meeting_id: str
    attendee_id: str
    token: str


@dataclass
class MeetingServer:
    """A running server: its process, ports, API credentials, and helpers to provision it."""

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
    #: Prefix of the names this suite gives connectors, meetings and users ("sip", "pj", ...).
    label: str = "vc"

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
            Name=self.label + "-" + uuid.uuid4().hex[:10], RequireEncryption=require_encryption
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
        meeting_id = self.create_meeting()
        return (meeting_id, *self.add_attendee(meeting_id))

    def create_meeting(self) -> str:
        """Creates a meeting; returns its id."""
        return self.client("chime-sdk-meetings").create_meeting(
            ClientRequestToken=uuid.uuid4().hex,
            MediaRegion="us-east-1",
            ExternalMeetingId=self.label + "-" + uuid.uuid4().hex[:12],
        )["Meeting"]["MeetingId"]

    def create_meeting_with(self, attendees: int) -> tuple[str, list[tuple[str, str]]]:
        """One meeting with `attendees` attendees; returns (meeting id, [(attendee id, token)])."""
        meeting_id = self.create_meeting()
        return meeting_id, [self.add_attendee(meeting_id) for _ in range(attendees)]

    def add_attendee(self, meeting_id: str) -> tuple[str, str]:
        """Adds an attendee to an existing meeting; returns (attendee id, join token)."""
        attendee = self.client("chime-sdk-meetings").create_attendee(
            MeetingId=meeting_id, ExternalUserId=self.label + "-" + uuid.uuid4().hex[:12]
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
                ExternalMeetingId=self.label + "-" + uuid.uuid4().hex[:12],
            )["Meeting"]["MeetingId"]
            in_meeting = min(per_meeting, count - len(out))
            for start in range(0, in_meeting, 100):
                n = min(100, in_meeting - start)
                resp = meetings.batch_create_attendee(
                    MeetingId=meeting_id,
                    Attendees=[{"ExternalUserId": self.label + "-" + uuid.uuid4().hex[:12]} for _ in range(n)],
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

    def call_records(
        self, vc_id: str | None = None, meeting_id: str | None = None, attendee_id: str | None = None
    ) -> list[dict]:
        """GET /admin/call-records (SigV4-signed), every page: the call detail records of
        the connector `vc_id`, the meeting `meeting_id` and/or the attendee `attendee_id`
        (all of them when none is given), oldest first. See `call_ended` for the fields."""
        query = {
            k: v
            for k, v in (("voice-connector-id", vc_id), ("meeting-id", meeting_id), ("attendee-id", attendee_id))
            if v is not None
        }
        records: list[dict] = []
        while True:
            body = self.signed_get("/admin/call-records", query)
            records += body["CallRecords"]
            if not body.get("NextToken"):
                return records
            query["next-token"] = body["NextToken"]

    def signed_get(self, path: str, query: dict[str, str]) -> dict:
        """A SigV4-signed GET of our admin API; the JSON answer."""
        url = self.api_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        req = AWSRequest(method="GET", url=url)
        SigV4Auth(Credentials(self.key_id, self.secret), "chime", "us-east-1").add_auth(req)
        prepared = urllib.request.Request(url, headers=dict(req.headers.items()), method="GET")
        with urllib.request.urlopen(prepared, timeout=10) as resp:
            return json.loads(resp.read())

    def wait_call_records(
        self,
        vc_id: str | None = None,
        n: int = 1,
        timeout: float = 10.0,
        meeting_id: str | None = None,
        attendee_id: str | None = None,
        include_open: bool = False,
    ) -> list[dict]:
        """The finished call records `call_records(vc_id, meeting_id, attendee_id)` once
        there are at least `n` (or after `timeout`): a call's record is stored open
        (Status InProgress) at answer and finished when the call ends; open ones are left
        out unless `include_open`."""
        deadline = time.monotonic() + timeout
        while True:
            recs = [
                r for r in self.call_records(vc_id, meeting_id, attendee_id)
                if include_open or r.get("Status") != "InProgress"
            ]
            if len(recs) >= n or time.monotonic() > deadline:
                return recs
            time.sleep(0.1)

    def call_ended(self, meeting_id: str, attendee_id: str | None = None, timeout: float = 10.0) -> dict:
        """Waits for the call record of the one call of `meeting_id` (and `attendee_id`):
        the server stores it once the call has ended. Fails when none comes within
        `timeout` or when more than one call matches.

        A record (`domain::call_record::CallRecord`, JSON with PascalCase names) holds what
        the tests read: TransactionId, CallId (the SIP Call-ID), VoiceConnectorId, Status
        (Completed / Cancelled / Refused / Failed), StatusCode (the INVITE's final status),
        Reason (how it ended: RemoteBye when the caller's BYE ended it, LocalBye for ours,
        Cancelled, ...), MeetingId, AttendeeId, Codec, SrtpSuite, Transport, and Media
        {PacketsReceived, PacketsSent, PacketsLost, JitterMs, RoundTripTimeMs (when known),
        SrtpFailures} for a call that had media."""
        recs = self.wait_call_records(None, 1, timeout, meeting_id=meeting_id, attendee_id=attendee_id)
        who = f"meeting {meeting_id}" + (f" attendee {attendee_id}" if attendee_id else "")
        if not recs:
            pytest.fail(f"no call record for {who} within {timeout} s:\n{self.log()[-4000:]}")
        assert len(recs) == 1, f"{len(recs)} call records for {who}: {recs}"
        return recs[0]

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


def serve(work: Path, extra_args: tuple[str, ...] = (), label: str = "vc", rtp_size: int = 200):
    """Starts the server in `work` on 127.0.0.1 with kernel-chosen SIP, TLS and API ports
    (read back from its log), a free range of `rtp_size` RTP ports and `extra_args` after
    the usual flags; yields it (a generator for fixtures: `yield from serve(...)`), stops
    it with SIGTERM and fails on a panic in its log."""
    binary = find_binary()
    data_dir = work / "data"
    data_dir.mkdir(exist_ok=True)  # a restart on the same data keeps it
    log_path = work / "server.log"
    rtp_low, rtp_high = free_rtp_range(rtp_size)
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
    server = MeetingServer(proc, data_dir, log_path, "", 0, 0, "", "", label=label)
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
