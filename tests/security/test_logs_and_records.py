"""What the server writes down (GitHub issue 14, findings M3 and M4): no join token, digest
response or DTMF digit in any log, and no durable write per unauthenticated INVITE.

Against the real binary ($VC_BIN):

- a meeting join with SIP message logging on (PutVoiceConnectorLoggingConfiguration
  EnableSIPLogs), for every token form the server accepts (URI parameter X-chime-join-token,
  URI parameter X-joinToken, header X-chime-join-token in two spellings): the token is in no
  file under the data dir and not in the server's stderr log (run at debug level for the SIP
  crates), while the call worked and the SIP log has its messages;
- RFC 4733 digits sent in a call are counted and logged as "a digit arrived", never which;
- 1,000 INVITEs from a source outside the CidrAllowedList (SIPp from 127.0.0.2) leave no
  call record, a handful of sampled log lines and `vc_calls_refused_total{reason=
  "source_not_allowed"} 1000`; a refusal of an allowlisted source keeps its record;
- the data dir is 0700, the database and log files 0600;
- call records past `--call-record-retention-days` are deleted by the sweep at start.

The SIP client of the token and DTMF tests is a small UDP user agent written here, so that
the token can be put anywhere (Request-URI, To, header) and the RTP carries telephone-events.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import stat
import struct
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from vctest.ports import free_udp_port, free_udp_tcp_port
from vctest.server import CALLER, MEETING_NUMBER, serve

SIPP_SCENARIOS = Path(__file__).resolve().parents[1] / "sip" / "scenarios"
#: Debug for the server and its SIP crates: what they log there must be clean too.
DEBUG_LOG = "info,voice_connector=debug,sip=debug,sip_transport=debug,calls=debug,engine=debug"


@pytest.fixture(scope="module")
def sec_server(tmp_path_factory):
    """A server of this module's own, started with the SIP crates logging at debug."""
    gen = serve(tmp_path_factory.mktemp("vc-sec"), label="sec")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VC_LOG", DEBUG_LOG)
        server = next(gen)
    yield server
    with contextlib.suppress(StopIteration):
        next(gen)


# ---------------------------------------------------------------------------------------
# A minimal SIP UAC over UDP (RFC 3261 §8.1, §13.2, §15.1): INVITE, ACK, BYE.


@dataclass
class SipMessage:
    start: str
    headers: list[tuple[str, str]]
    body: str

    @property
    def status(self) -> int:
        return int(self.start.split()[1]) if self.start.startswith("SIP/2.0 ") else 0

    def header(self, *names: str) -> str | None:
        wanted = {n.lower() for n in names}
        return next((v for n, v in self.headers if n.lower() in wanted), None)

    @property
    def cseq_method(self) -> str:
        return (self.header("CSeq") or " ").split()[-1]


def parse_sip(data: bytes) -> SipMessage:
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return SipMessage(lines[0], headers, body)


def rfc4733_event(digit: str) -> int:
    return "0123456789*#ABCD".index(digit)


class UdpUac:
    """One call from 127.0.0.1 to the server's UDP port, with plain RTP (PCMU and
    telephone-event) from a socket of its own."""

    def __init__(self, server_port: int):
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", 0))
        self.port = self.sip.getsockname()[1]
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp_port = self.rtp.getsockname()[1]
        self.dest = ("127.0.0.1", server_port)
        self.call_id = uuid.uuid4().hex + "@127.0.0.1"
        self.from_hdr = f"<sip:{CALLER}@127.0.0.1>;tag={uuid.uuid4().hex[:10]}"
        self.to_hdr = ""
        self.target = ""
        self.media: tuple[str, int] | None = None
        self.dtmf_pt = 101
        self.seq = random.randrange(1 << 16)
        self.ts = random.randrange(1 << 32)
        self.ssrc = random.randrange(1, 1 << 32)

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()

    def _via(self) -> str:
        return f"SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport"

    def _transact(self, text: str, method: str, timeout: float = 10.0) -> SipMessage:
        """Sends a request (again every 0.5 s until something answers it) and returns its
        final response, skipping provisional ones and retransmitted earlier answers."""
        deadline = time.monotonic() + timeout
        answered = False
        last_sent = 0.0
        while time.monotonic() < deadline:
            if not answered and time.monotonic() - last_sent > 0.5:
                self.sip.sendto(text.encode(), self.dest)
                last_sent = time.monotonic()
            self.sip.settimeout(0.1)
            try:
                data, _ = self.sip.recvfrom(65535)
            except socket.timeout:
                continue
            msg = parse_sip(data)
            if msg.status == 0 or msg.cseq_method != method:
                continue
            answered = True
            if msg.status >= 200:
                return msg
        pytest.fail(f"no final answer to {method} within {timeout} s")

    def invite(self, ruri: str, to_uri: str, extra_headers: str = "") -> SipMessage:
        sdp = (
            "v=0\r\n"
            f"o=- {random.randrange(1 << 30)} 1 IN IP4 127.0.0.1\r\n"
            "s=-\r\n"
            "c=IN IP4 127.0.0.1\r\n"
            "t=0 0\r\n"
            f"m=audio {self.rtp_port} RTP/AVP 0 101\r\n"
            "a=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\n"
            "a=fmtp:101 0-16\r\n"
            "a=sendrecv\r\n"
        )
        text = (
            f"INVITE {ruri} SIP/2.0\r\n"
            f"Via: {self._via()}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: {self.from_hdr}\r\n"
            f"To: <{to_uri}>\r\n"
            f"Call-ID: {self.call_id}\r\n"
            "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:{CALLER}@127.0.0.1:{self.port}>\r\n"
            f"{extra_headers}"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
        )
        answer = self._transact(text, "INVITE")
        if answer.status == 200:
            self.to_hdr = answer.header("To", "t") or ""
            contact = re.search(r"<([^>]+)>", answer.header("Contact", "m") or "")
            self.target = contact.group(1) if contact else ruri
            port = re.search(r"^m=audio (\d+) ", answer.body, re.M)
            addr = re.search(r"^c=IN IP4 (\S+)", answer.body, re.M)
            assert port and addr, answer.body
            self.media = (addr.group(1), int(port.group(1)))
            pt = re.search(r"^a=rtpmap:(\d+) telephone-event/8000", answer.body, re.M)
            if pt:
                self.dtmf_pt = int(pt.group(1))
            self._send_in_dialog("ACK", 1)
        else:
            # RFC 3261 §17.1.1.3: a non-2xx final answer is acknowledged in its transaction.
            via = answer.header("Via", "v")
            self.sip.sendto(
                (
                    f"ACK {ruri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {self.from_hdr}\r\n"
                    f"To: {answer.header('To', 't')}\r\nCall-ID: {self.call_id}\r\nCSeq: 1 ACK\r\n"
                    "Content-Length: 0\r\n\r\n"
                ).encode(),
                self.dest,
            )
        return answer

    def _send_in_dialog(self, method: str, cseq: int) -> str:
        text = (
            f"{method} {self.target} SIP/2.0\r\n"
            f"Via: {self._via()}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: {self.from_hdr}\r\n"
            f"To: {self.to_hdr}\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        if method == "ACK":
            self.sip.sendto(text.encode(), self.dest)
        return text

    def bye(self) -> SipMessage:
        return self._transact(self._send_in_dialog("BYE", 2), "BYE")

    def _rtp(self, pt: int, payload: bytes, marker: bool = False, advance: int = 160) -> None:
        header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, self.seq, self.ts, self.ssrc)
        self.rtp.sendto(header + payload, self.media)
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + advance) & 0xFFFFFFFF

    def audio(self, packets: int) -> None:
        for _ in range(packets):
            self._rtp(0, b"\xff" * 160)
            time.sleep(0.02)

    def dtmf(self, digits: str) -> None:
        """Each digit as one RFC 4733 event: three updates, then the end packet three times
        (§2.5.1.4), all with the event's start timestamp."""
        for digit in digits:
            event = rfc4733_event(digit)
            for n, duration in enumerate((160, 320, 480)):
                self._rtp(self.dtmf_pt, struct.pack("!BBH", event, 10, duration), marker=n == 0, advance=0)
                time.sleep(0.02)
            for _ in range(3):
                self._rtp(self.dtmf_pt, struct.pack("!BBH", event, 0x80 | 10, 640), advance=0)
            self.ts = (self.ts + 640) & 0xFFFFFFFF
            self.audio(5)


# ---------------------------------------------------------------------------------------
# Helpers.


def enable_sip_logs(server, vc_id: str) -> None:
    server.client("chime-sdk-voice").put_voice_connector_logging_configuration(
        VoiceConnectorId=vc_id, LoggingConfiguration={"EnableSIPLogs": True}
    )


def files_containing(root: Path, needle: str) -> list[str]:
    """Every file under `root` whose bytes contain `needle`."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            with contextlib.suppress(OSError):
                if needle.encode() in path.read_bytes():
                    hits.append(str(path.relative_to(root)))
    return hits


def sip_log_lines(server, vc_id: str, call_id: str, want: str, timeout: float = 10.0) -> list[dict]:
    """The SIP message-log lines of one call, once one of them starts with `want`."""
    path = server.data_dir / "logs" / vc_id / "sip-messages.jsonl"
    deadline = time.monotonic() + timeout
    while True:
        lines = []
        if path.exists():
            lines = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
        lines = [l for l in lines if l["CallId"] == call_id]
        if any(l["Message"].startswith(want) for l in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def join(server, token_form: str, token: str, host: str, digits: str = "") -> tuple[UdpUac, SipMessage]:
    """One call into a meeting with the token in `token_form`; `digits` are sent as
    RFC 4733 events during it. Returns the UAC (closed) and the INVITE's final answer."""
    base = f"sip:{MEETING_NUMBER}@{host}"
    forms = {
        "uri-x-chime-join-token": (f"{base};X-chime-join-token={token}", ""),
        "uri-x-joinToken": (f"{base};X-joinToken={token}", ""),
        "header-x-chime-join-token": (base, f"X-chime-join-token: {token}\r\n"),
        "header-lowercase": (base, f"x-chime-join-token: {token}\r\n"),
    }
    ruri, headers = forms[token_form]
    uac = UdpUac(server.sip_port)
    try:
        # A PBX often repeats the Request-URI, token and all, in To.
        answer = uac.invite(ruri, ruri, headers)
        if answer.status == 200:
            uac.audio(10)
            if digits:
                uac.dtmf(digits)
            bye = uac.bye()
            assert bye.status == 200, bye
    finally:
        uac.close()
    return uac, answer


TOKEN_FORMS = ["uri-x-chime-join-token", "uri-x-joinToken", "header-x-chime-join-token", "header-lowercase"]


# ---------------------------------------------------------------------------------------
# M3: no tokens, digests or digits in logs.


@pytest.mark.parametrize("token_form", TOKEN_FORMS)
def test_join_token_is_in_no_log(sec_server, token_form):
    server = sec_server
    vc_id, host = server.create_connector()
    enable_sip_logs(server, vc_id)
    meeting_id, attendee_id, token = server.create_attendee()

    uac, answer = join(server, token_form, token, host)
    assert answer.status == 200, f"{answer.start}\n{server.log()[-3000:]}"
    rec = server.call_ended(meeting_id)
    assert rec["AttendeeId"] == attendee_id and rec["Reason"] == "RemoteBye", rec

    # The call is in the SIP message log, redacted.
    lines = sip_log_lines(server, vc_id, uac.call_id, "BYE ")
    starts = [l["Message"].split("\r\n", 1)[0] for l in lines]
    assert any(s.startswith("INVITE ") for s in starts), starts
    assert any(s.startswith("BYE ") for s in starts), starts
    invite = next(l["Message"] for l in lines if l["Message"].startswith("INVITE "))
    assert "<redacted>" in invite, invite

    # The token is nowhere: no log, no record, no database page, not on stderr.
    assert files_containing(server.data_dir, token) == []
    assert token not in server.log()
    assert token not in json.dumps(server.call_records(vc_id))


def test_a_refused_token_is_in_no_log_either(sec_server):
    """A token refused for a reason after the allowlist (the meeting has ended) is kept out
    of the log line and of the call record that the refusal still gets."""
    server = sec_server
    vc_id, host = server.create_connector()
    enable_sip_logs(server, vc_id)
    meeting_id, _, token = server.create_attendee()
    server.client("chime-sdk-meetings").delete_meeting(MeetingId=meeting_id)
    _, answer = join(server, "header-x-chime-join-token", token, host)
    assert answer.status in (403, 404), answer.start
    recs = server.wait_call_records(vc_id, 1)
    assert [r["Status"] for r in recs] == ["Refused"], recs
    assert token not in json.dumps(recs)
    assert files_containing(server.data_dir, token) == []
    assert token not in server.log()


def test_dtmf_digits_are_counted_not_logged(sec_server):
    server = sec_server
    vc_id, host = server.create_connector()
    enable_sip_logs(server, vc_id)
    meeting_id, _, token = server.create_attendee()
    before = server.metrics().get("vc_dtmf_events_total", 0)
    start = len(server.log())

    digits = "4711#"
    _, answer = join(server, "uri-x-chime-join-token", token, host, digits=digits)
    assert answer.status == 200, answer.start
    server.call_ended(meeting_id)

    deadline = time.monotonic() + 10
    while server.metrics().get("vc_dtmf_events_total", 0) - before < len(digits) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.metrics().get("vc_dtmf_events_total", 0) - before == len(digits)
    lines = [l for l in server.log()[start:].splitlines() if "DTMF" in l]
    assert len(lines) == len(digits), lines
    # That a digit came, with its duration; never which one.
    for line in lines:
        assert "digit=" not in line, line
        fields = re.sub(r"^.*DTMF digit received", "", line)
        assert re.fullmatch(r"( meeting=\S+| leg=\S+| duration_ms=\d+)*", fields), line


# ---------------------------------------------------------------------------------------
# M4: unauthenticated traffic is counted, not stored.


def run_sipp(server, scenario: str, keys: dict[str, str], tmp: Path, source_ip: str, calls: int, rate: int,
             timeout_s: int = 60) -> tuple[int, dict[str, str], str]:
    """SIPp `scenario` for `calls` calls at `rate` calls/s from `source_ip`: (exit code,
    final cumulative statistics, output)."""
    if shutil.which("sipp") is None:
        pytest.fail("sipp (Debian sip-tester) is not installed; run scripts/setup-deps")
    stf = tmp / f"{Path(scenario).stem}-{source_ip}.stat.csv"
    cmd = [
        "sipp", "-sf", str(SIPP_SCENARIOS / scenario), "-t", "u1",
        "-i", source_ip, "-p", str(free_udp_tcp_port()), "-mi", source_ip, "-mp", str(free_udp_port()),
        "-nostdin", "-timeout", f"{timeout_s}s", "-timeout_error",
        "-m", str(calls), "-r", str(rate), "-trace_stat", "-stf", str(stf),
    ]
    for k, v in keys.items():
        cmd += ["-key", k, v]
    cmd.append(f"127.0.0.1:{server.sip_port}")
    proc = subprocess.run(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, timeout=timeout_s + 15)
    stats: dict[str, str] = {}
    if stf.exists():
        rows = [l for l in stf.read_text(errors="replace").splitlines() if l.strip()]
        if len(rows) >= 2:
            stats = dict(zip(rows[0].rstrip(";").split(";"), rows[-1].rstrip(";").split(";")))
    return proc.returncode, stats, proc.stdout.decode(errors="replace")[-3000:]


def test_thousand_refusals_from_outside_the_allowlist_write_no_records(sec_server, tmp_path):
    server = sec_server
    vc_id, host = server.create_connector(cidrs=("127.0.0.1/32",))
    _, _, token = server.create_attendee()
    series = 'vc_calls_refused_total{reason="source_not_allowed"}'
    before = server.metrics().get(series, 0)
    start = len(server.log())

    calls = 1000
    keys = {"vc_host": host, "token": token, "from_user": CALLER, "rtp_port": "40000"}
    rc, stats, out = run_sipp(server, "join_refused_403.xml", keys, tmp_path, "127.0.0.2", calls, 200)
    assert rc == 0, out
    assert int(stats["SuccessfulCall(C)"]) == calls, (stats, out)

    assert server.metrics().get(series, 0) - before == calls
    # Sampled: one INFO line per source per 10 s (SIPp needs about 5 s for these).
    refused = [l for l in server.log()[start:].splitlines() if "call refused" in l and "127.0.0.2" in l]
    assert 1 <= len(refused) <= 3, refused
    assert "suppressed=0" in refused[0] and "CidrAllowedList" in refused[0], refused[0]

    # A refusal of an allowlisted source (a forged token, from 127.0.0.1) keeps its record;
    # once it is stored, the 1,000 above would have been too.
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    rc, stats, out = run_sipp(server, "join_refused_403.xml", dict(keys, token=forged), tmp_path, "127.0.0.1", 1, 10)
    assert rc == 0, out
    recs = server.wait_call_records(vc_id, 1)
    time.sleep(0.5)
    recs = server.call_records(vc_id)
    assert len(recs) == 1, f"{len(recs)} records, e.g. {recs[:2]}"
    assert recs[0]["Status"] == "Refused" and recs[0]["StatusCode"] == 403, recs[0]
    assert "invalid join token" in recs[0]["Reason"] and recs[0]["SourceAddress"].startswith("127.0.0.1:"), recs[0]
    assert token not in server.log() and forged not in server.log()


def test_unknown_hosts_are_counted(sec_server, tmp_path):
    server = sec_server
    series = 'vc_calls_refused_total{reason="unknown_host"}'
    before = server.metrics().get(series, 0)
    keys = {"vc_host": "nosuchconnector0000000.voiceconnector.localhost", "token": "x", "from_user": CALLER,
            "rtp_port": "40000"}
    rc, stats, out = run_sipp(server, "join_refused_404.xml", keys, tmp_path, "127.0.0.3", 20, 100)
    assert rc == 0, out
    assert server.metrics().get(series, 0) - before == 20
    refused = [l for l in server.log().splitlines() if "call refused" in l and "127.0.0.3" in l]
    assert 1 <= len(refused) <= 2, refused


# ---------------------------------------------------------------------------------------
# Lows: file modes; M4: retention.


def test_data_dir_database_and_logs_are_private(sec_server):
    server = sec_server
    vc_id, host = server.create_connector()
    enable_sip_logs(server, vc_id)
    meeting_id, _, token = server.create_attendee()
    uac, answer = join(server, "uri-x-chime-join-token", token, host)
    assert answer.status == 200, answer.start
    server.call_ended(meeting_id)
    assert sip_log_lines(server, vc_id, uac.call_id, "BYE ")

    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
    data = server.data_dir
    assert mode(data) == 0o700, oct(mode(data))
    db = data / "voice-connector.db"
    assert db.is_file()
    for f in (db, data / "voice-connector.db-wal", data / "voice-connector.db-shm", data / "api-credentials",
              data / "token.key"):
        if f.exists():
            assert mode(f) == 0o600, (f.name, oct(mode(f)))
    logs = data / "logs"
    deadline = time.monotonic() + 10
    while not (logs / vc_id / "sip-messages.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (logs / vc_id / "sip-messages.jsonl").exists()
    for p in [logs, *logs.rglob("*")]:
        want = 0o700 if p.is_dir() else 0o600
        assert mode(p) == want, (str(p.relative_to(data)), oct(mode(p)))


def test_call_records_past_retention_are_deleted(start_server):
    """Records older than --call-record-retention-days go at the sweep that runs at start;
    younger ones stay."""
    server = start_server("sqlite")
    vc = server.voice.create_voice_connector(Name="retention", RequireEncryption=False)["VoiceConnector"]
    vc_id = vc["VoiceConnectorId"]
    server.stop()
    now_ms = int(time.time() * 1000)
    day = 86_400_000
    with contextlib.closing(sqlite3.connect(server.data_dir / "voice-connector.db")) as db:
        for rid, age_days in (("old-record", 31), ("young-record", 29)):
            body = {"TransactionId": rid, "VoiceConnectorId": vc_id, "Status": "Completed"}
            db.execute("INSERT INTO call_records (id, vc_id, start_ms, body) VALUES (?, ?, ?, ?)",
                       (rid, vc_id, now_ms - age_days * day, json.dumps(body)))
        db.commit()
    server.extra_args = ["--call-record-retention-days", "30"]
    offset = len(server.log())
    server.start()
    deadline = time.monotonic() + 15
    while "call records past their retention deleted" not in server.log()[offset:]:
        assert time.monotonic() < deadline, server.log()[-3000:]
        time.sleep(0.1)
    assert re.search(r"call records past their retention deleted deleted=1 days=30", server.log()[offset:])
    resp = server.signed("GET", f"/admin/call-records?voice-connector-id={vc_id}")
    assert resp.status_code == 200, resp.text
    assert [r["TransactionId"] for r in resp.json()["CallRecords"]] == ["young-record"]
    server.assert_healthy()
