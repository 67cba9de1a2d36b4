"""A forged BYE cannot end someone else's call (GitHub issue 14, Lows: in-dialog requests
were matched by Call-ID and tags alone, with no source check).

A real caller (SIPp, join_uac.xml, from 127.0.0.1, with an RTP peer) joins a meeting.
Mid-call a third party on 127.0.0.5 that learned the dialog's identifiers (Call-ID, both
tags: here read from the caller's own message trace, as a tap on the path would) sends a
BYE, and then a re-INVITE, from a raw UDP socket. Asserted:
- the server answers each 403 with a Warning saying the request is not from the dialog's
  peer, counts them in vc_sip_foreign_source_total and logs them;
- the call stays up (one active leg) and the caller's own BYE, later, gets 200 and ends it
  (SIPp completes its scenario; the call record says RemoteBye);
- the server's To tag is 128 random bits, not a counter.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest

from vctest import sip_suite
from vctest.server import MeetingServer, serve

CALLER = "+12065550100"
#: The caller's call length (SIPp -d, ms): the forgeries happen well inside it.
CALL_MS = 5000
#: The third party's address (all of 127.0.0.0/8 is loopback on Linux).
FORGER_IP = "127.0.0.5"

SIP = sip_suite.helpers()
wait_for = sip_suite.wait_for


@pytest.fixture(scope="module")
def spoof_server(tmp_path_factory) -> MeetingServer:
    yield from serve(tmp_path_factory.mktemp("vc-dialog-spoof"), label="sec")


def dialog_ids(trace: Path) -> dict[str, str] | None:
    """From, To (with the server's tag), Call-ID and the server's Contact of the 200 to the
    caller's INVITE, read from SIPp's message trace; None until it is there."""
    if not trace.exists():
        return None
    text = trace.read_text(errors="replace")
    for block in re.split(r"\n-{10,}", text):
        i = block.find("SIP/2.0 200")
        if i < 0 or not re.search(r"^CSeq:\s*1 INVITE", block[i:], re.M | re.I):
            continue
        msg = block[i:]
        get = lambda name: re.search(rf"^{name}:\s*(.+?)\r?$", msg, re.M | re.I).group(1)
        return {"from": get("From"), "to": get("To"), "call_id": get("Call-ID"), "contact": get("Contact")}
    return None


def forge(server: MeetingServer, method: str, ids: dict[str, str], cseq: int) -> tuple[int, str, str]:
    """Sends `method` inside the caller's dialog from FORGER_IP; returns (status, Warning,
    the whole answer)."""
    target = re.search(r"<([^>]+)>", ids["contact"]).group(1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((FORGER_IP, 0))
        s.settimeout(1.0)
        port = s.getsockname()[1]
        body = ""
        extra = ""
        if method == "INVITE":
            body = ("v=0\r\no=- 1 2 IN IP4 127.0.0.5\r\ns=-\r\nc=IN IP4 127.0.0.5\r\nt=0 0\r\n"
                    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
            extra = f"Contact: <sip:x@{FORGER_IP}:{port}>\r\nContent-Type: application/sdp\r\n"
        msg = (
            f"{method} {target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {FORGER_IP}:{port};branch=z9hG4bKforged{method}{cseq};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: {ids['from']}\r\nTo: {ids['to']}\r\nCall-ID: {ids['call_id']}\r\n"
            f"CSeq: {cseq} {method}\r\n{extra}Content-Length: {len(body)}\r\n\r\n{body}"
        ).encode()
        # Like any UDP client, resend until an answer comes (Timer E/A); the server holds
        # a larger answer to an unverified source until a resend brings the credit.
        for _ in range(8):
            s.sendto(msg, ("127.0.0.1", server.sip_port))
            try:
                data, _ = s.recvfrom(65535)
            except socket.timeout:
                continue
            text = data.decode(errors="replace")
            status = int(text.split(" ", 2)[1])
            if status < 200:
                continue
            warning = re.search(r"^Warning:\s*(.+?)\r?$", text, re.M | re.I)
            return status, warning.group(1) if warning else "", text
    pytest.fail(f"no final answer to the forged {method}")


def test_a_forged_bye_from_another_address_does_not_end_the_call(spoof_server, tmp_path):
    server = spoof_server
    p = server.provision()
    keys = {"vc_host": p.host, "token": p.token, "from_user": CALLER}
    outcome: dict = {}
    before = server.metrics().get("vc_sip_foreign_source_total", 0.0)

    with SIP.RtpPeer() as peer:
        keys["rtp_port"] = str(peer.port)

        def call() -> None:
            outcome["sipp"] = SIP.run_sipp(server, "join_uac.xml", keys, tmp_path,
                                           extra=["-d", str(CALL_MS)], timeout_s=30)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        try:
            trace = tmp_path / "join_uac-u1.messages"
            ids = wait_for(lambda: dialog_ids(trace), 10, "the 200 to the caller's INVITE")
            wait_for(lambda: server.metrics().get("vc_active_legs") == 1.0, 10, "the call's leg")
            to_tag = re.search(r"tag=([^;>\s]+)", ids["to"]).group(1)
            assert re.fullmatch(r"[0-9a-f]{32}", to_tag), f"the To tag is 128 random bits: {to_tag}"

            bye = forge(server, "BYE", ids, 50)
            reinvite = forge(server, "INVITE", ids, 51)
            for status, warning, text in (bye, reinvite):
                assert status == 403, text
                assert "not from this dialog's peer" in warning, text
            time.sleep(0.3)
            assert server.metrics().get("vc_active_legs") == 1.0, "the call is still up"
        finally:
            caller.join(timeout=60)

    result = outcome.get("sipp")
    assert result is not None, "SIPp did not finish"
    # The caller's own BYE (CSeq 2: the forged CSeq 50 did not count) got its 200.
    assert result.returncode == 0, result.describe()
    assert result.counter("SuccessfulCall") == 1, result.describe()
    rec = server.call_ended(p.meeting_id)
    assert rec["Status"] == "Completed", rec
    assert rec["Reason"] == "RemoteBye", rec
    metrics = server.metrics()
    assert metrics.get("vc_sip_foreign_source_total", 0.0) - before == 2, metrics
    assert server.wait_media_idle() == (0.0, set())
    log = server.log()
    assert f"source={FORGER_IP}" in log and "not its peer" in log, log[-3000:]
