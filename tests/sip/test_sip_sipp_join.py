"""SIPp against the real voice-connector binary (GitHub issue 5, meeting join over SIP):
the refusals of a join not covered by test_sip_sipp.py (no common codec, unknown SRTP
suite, digest credentials, termination disabled, PSTN destination outside CallingRegions,
CpsLimit, a deleted meeting), each with its exact status and `Warning: 399
voice-connector "..."` text; CANCEL before the answer (from a plain UDP socket: SIPp
spaces its steps too far apart now that the server answers a join in well under a
millisecond); and a second join of one attendee, which ends the first call with an RFC 3326
Reason.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import uuid

import pytest

#: E.164 caller id for From.
CALLER = "+12065550100"


def assert_one_successful_call(result) -> None:
    assert result.returncode == 0, result.describe()
    assert result.stats, "SIPp wrote no -stf statistics\n" + result.describe()
    assert result.counter("SuccessfulCall") == 1, result.describe()
    assert result.counter("FailedCall") == 0, result.describe()


def logged(result, name: str) -> str:
    """The value a scenario wrote to its -log_file as `<name>=<value>` (up to the line's end)."""
    m = re.search(rf"{name}=(.*)", result.log)
    assert m, f"no {name}= in the SIPp log\n" + result.describe()
    return m.group(1).strip()


def join_keys(host: str, token: str, rtp_port: int | str = 40000) -> dict[str, str]:
    return {"vc_host": host, "token": token, "from_user": CALLER, "rtp_port": str(rtp_port)}


# ---------------------------------------------------------------------------------------
# Refusals of the offer (488)


def test_no_common_codec_is_refused_with_488(sip_server, sip_sipp):
    """An offer with only GSM/8000: 488, and the Warning names what was offered and what we
    accept (RFC 3264 §6: no common format)."""
    p = sip_server.provision()
    keys = join_keys(p.host, p.token) | {
        "proto": "RTP/AVP", "fmts": "3", "attr1": "rtpmap:3 GSM/8000", "attr2": "sendrecv",
    }
    result = sip_sipp("join_refused_488.xml", keys)
    assert_one_successful_call(result)
    assert logged(result, "warning") == "no common codec: offered GSM/8000; we accept opus, G722, PCMU, PCMA"
    # The refused offer joined nobody and spent no media port.
    assert not re.search(r"joined meeting [^\n]*meeting=" + re.escape(p.meeting_id), sip_server.log())


def test_unknown_srtp_suite_is_refused_with_488(sip_server, sip_sipp):
    """RTP/SAVP whose only a=crypto names a suite we do not know (RFC 4568 §6.2): 488, and
    the Warning says which line was skipped and which suites we accept."""
    p = sip_server.provision()
    key = "WVNfX19zZWNyZXRfX19rZXlfX19fX19fX19fX19fXw"  # 30 bytes of base64, never used
    keys = join_keys(p.host, p.token) | {
        "proto": "RTP/SAVP", "fmts": "0", "attr1": "rtpmap:0 PCMU/8000",
        "attr2": f"crypto:1 FOO_BAR inline:{key}",
    }
    result = sip_sipp("join_refused_488.xml", keys)
    assert_one_successful_call(result)
    warning = logged(result, "warning")
    assert warning == (
        "no usable SRTP crypto: tag 1 FOO_BAR: unknown crypto suite 'FOO_BAR'; we accept "
        "AEAD_AES_256_GCM, AEAD_AES_256_GCM_8, AES_256_CM_HMAC_SHA1_80, AES_256_CM_HMAC_SHA1_32, "
        "AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32"
    ), warning
    assert key not in warning  # no key material in a Warning
    assert not re.search(r"joined meeting [^\n]*meeting=" + re.escape(p.meeting_id), sip_server.log())


# ---------------------------------------------------------------------------------------
# Termination credentials (407)


def _connector_with_credentials(sip_server) -> tuple[str, str, str, str]:
    vc_id, host = sip_server.create_connector()
    username, password = "pbx-" + uuid.uuid4().hex[:6], "pw-" + uuid.uuid4().hex
    sip_server.client("chime-sdk-voice").put_voice_connector_termination_credentials(
        VoiceConnectorId=vc_id, Credentials=[{"Username": username, "Password": password}]
    )
    return vc_id, host, username, password


def _challenge(sip_server, sip_sipp, host: str, token: str) -> dict[str, dict[str, str]]:
    """Sends an INVITE without credentials, checks the 407 and returns its challenges by
    algorithm: {"SHA-256": {"realm": ..., "nonce": ..., "qop": ...}, "MD5": {...}}."""
    result = sip_sipp("join_refused_407.xml", join_keys(host, token), tag="challenge")
    assert_one_successful_call(result)
    assert logged(result, "warning") == "credentials required"
    response = result.messages[result.messages.index("SIP/2.0 407"):]
    headers = re.findall(r"^Proxy-Authenticate: Digest (.*?)\r?$", re.split(r"\r?\n\r?\n", response)[0], re.M)
    challenges = {}
    for h in headers:
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', h))
        challenges[params["algorithm"]] = params
    # One challenge per algorithm, most preferred first, sharing one nonce (RFC 8760 §2.4),
    # for the connector's host name as realm, qop=auth (RFC 7616 §3.3).
    assert [re.search(r"algorithm=([\w-]+)", h).group(1) for h in headers] == ["SHA-256", "MD5"], headers
    assert {c["realm"] for c in challenges.values()} == {host}, headers
    assert len({c["nonce"] for c in challenges.values()}) == 1, headers
    assert {c["qop"] for c in challenges.values()} == {"auth"}, headers
    return challenges


def _digest(algorithm: str, challenge: dict[str, str], username: str, password: str, uri: str) -> str:
    """A Proxy-Authorization value for an INVITE to `uri` (RFC 7616 §3.4.1, qop=auth, the
    first use of the nonce)."""
    h = (lambda s: hashlib.md5(s.encode()).hexdigest()) if algorithm == "MD5" else (
        lambda s: hashlib.sha256(s.encode()).hexdigest())
    realm, nonce, nc, cnonce = challenge["realm"], challenge["nonce"], "00000001", uuid.uuid4().hex[:16]
    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"INVITE:{uri}")
    response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="{cnonce}"')


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_credentials_challenge_then_join(sip_server, sip_sipp, sip_rtp_peer, algorithm):
    """A connector with termination credentials: the first INVITE gets 407 with SHA-256 and
    MD5 challenges; an INVITE with digest credentials for that nonce is answered 200 and the
    caller joins."""
    _, host, username, password = _connector_with_credentials(sip_server)
    meeting_id, attendee_id, token = sip_server.create_attendee()
    challenges = _challenge(sip_server, sip_sipp, host, token)
    uri = f"sip:+17035550122@{host};X-chime-join-token={token}"
    keys = join_keys(host, token, sip_rtp_peer.port) | {
        "authorization": _digest(algorithm, challenges[algorithm], username, password, uri)
    }
    result = sip_sipp("join_auth_uac.xml", keys, extra=["-d", "500"], tag="credentials")
    assert_one_successful_call(result)
    assert re.search(r"^outcome=answered port=\d+$", result.log, re.M), result.describe()
    joined = sip_server.wait_for_log(r"joined meeting [^\n]*meeting=" + re.escape(meeting_id) + r"[^\n]*")
    assert f"attendee={attendee_id}" in joined.group(0)
    assert sip_server.call_ended(meeting_id)["Reason"] == "RemoteBye"
    assert password not in sip_server.log()


def test_wrong_password_is_challenged_again(sip_server, sip_sipp):
    _, host, username, _ = _connector_with_credentials(sip_server)
    meeting_id, _, token = sip_server.create_attendee()
    challenges = _challenge(sip_server, sip_sipp, host, token)
    uri = f"sip:+17035550122@{host};X-chime-join-token={token}"
    keys = join_keys(host, token) | {
        "authorization": _digest("MD5", challenges["MD5"], username, "wrong-password", uri)
    }
    result = sip_sipp("join_auth_uac.xml", keys, tag="credentials")
    assert_one_successful_call(result)
    assert logged(result, "outcome") == "challenged warning=credentials refused"
    # Challenged afresh: a new nonce, both algorithms again.
    again = re.split(r"\r?\n\r?\n", result.messages[result.messages.index("SIP/2.0 407"):])[0]
    assert re.findall(r"algorithm=([\w-]+)", again) == ["SHA-256", "MD5"], again
    assert challenges["MD5"]["nonce"] not in again, again
    assert not re.search(r"joined meeting [^\n]*meeting=" + re.escape(meeting_id), sip_server.log())


# ---------------------------------------------------------------------------------------
# Termination policy (403, 503) and the join token (403)


def test_termination_disabled_is_refused_with_403(sip_server, sip_sipp):
    vc_id, host = sip_server.create_connector()
    sip_server.put_termination(vc_id, Disabled=True)
    _, _, token = sip_server.create_attendee()
    result = sip_sipp("join_refused_403.xml", join_keys(host, token))
    assert_one_successful_call(result)
    assert logged(result, "warning") == f"termination is disabled on voice connector {vc_id}"


def test_pstn_destination_outside_calling_regions_is_refused(sip_server, sip_sipp):
    """No join token: a PSTN call. +44 20 7946 0000 is GB; CallingRegions is US only."""
    vc_id, host = sip_server.create_connector()
    keys = {"vc_host": host, "to_user": "+442079460000", "from_user": CALLER, "rtp_port": "40000"}
    result = sip_sipp("pstn_refused_403.xml", keys)
    assert_one_successful_call(result)
    assert logged(result, "warning") == (
        f"destination +442079460000 (GB) is not in the CallingRegions of voice connector {vc_id}"
    )


def test_over_cps_limit_is_refused_with_503(sip_server, sip_sipp):
    """CpsLimit 1: of four INVITEs sent back to back (SIPp at 100 calls/s) to a new
    connector, the one-second window admits one, which then fails on its forged join
    token (403, so no call stays up); the others get 503 with Retry-After."""
    vc_id, host = sip_server.create_connector()
    sip_server.put_termination(vc_id, CpsLimit=1)
    p_token = sip_server.create_attendee()[2]
    forged = p_token[:-4] + ("AAAA" if not p_token.endswith("AAAA") else "BBBB")
    calls = 4
    extra = ["-m", str(calls), "-l", str(calls), "-r", "100"]
    result = sip_sipp("join_refused_503.xml", join_keys(host, forged), extra=extra)
    assert result.returncode == 0, result.describe()
    assert result.counter("SuccessfulCall") == calls, result.describe()
    refused = re.findall(r"^warning=(.*) retry_after=(.*)$", result.log, re.M)
    admitted = re.findall(r"^forbidden=(.*)$", result.log, re.M)
    assert len(refused) + len(admitted) == calls, result.log
    assert len(refused) >= calls - 1, result.log
    for warning, retry_after in refused:
        assert warning == f"over the CpsLimit of 1 calls per second on voice connector {vc_id}"
        assert retry_after == "1"
    assert all(w == "invalid join token" for w in admitted), admitted


def test_token_of_deleted_meeting_is_refused(sip_server, sip_sipp):
    """DeleteMeeting removes its attendees with it, so the old join token names nobody:
    403 invalid join token (not 404 meeting ended, which needs a live attendee)."""
    p = sip_server.provision()
    sip_server.client("chime-sdk-meetings").delete_meeting(MeetingId=p.meeting_id)
    result = sip_sipp("join_refused_403.xml", join_keys(p.host, p.token))
    assert_one_successful_call(result)
    assert logged(result, "warning") == "invalid join token"
    assert p.token not in result.log


def test_token_of_deleted_attendee_is_refused(sip_server, sip_sipp):
    p = sip_server.provision()
    sip_server.client("chime-sdk-meetings").delete_attendee(MeetingId=p.meeting_id, AttendeeId=p.attendee_id)
    result = sip_sipp("join_refused_403.xml", join_keys(p.host, p.token))
    assert_one_successful_call(result)
    assert logged(result, "warning") == "invalid join token"


# ---------------------------------------------------------------------------------------
# CANCEL before the answer


#: Attempts at cancelling before the server answers.
CANCEL_ATTEMPTS = 5

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
)


def _cancel_race(server, host: str, token: str) -> tuple[str, list[tuple[str, str]]]:
    """INVITE and CANCEL in two datagrams sent back to back (microseconds apart: SIPp
    schedules its steps a millisecond or more apart, by which time the server has often
    answered). Returns ("cancelled" | "answered", [(status, CSeq method), ...] received),
    having completed the exchange either way (ACK for the 487; or ACK and BYE for a 200)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    port = sock.getsockname()[1]
    dest = ("127.0.0.1", server.sip_port)
    ruri = f"sip:+17035550122@{host};X-chime-join-token={token}"
    branch, tag, call_id = "z9hG4bK" + uuid.uuid4().hex, uuid.uuid4().hex[:10], uuid.uuid4().hex
    via = f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport"
    common = (f"From: <sip:{CALLER}@127.0.0.1>;tag={tag}\r\nCall-ID: {call_id}\r\n"
              "Max-Forwards: 70\r\n")
    to = f"To: <sip:+17035550122@{host}>"
    invite = (f"INVITE {ruri} SIP/2.0\r\n{via}\r\n{common}{to}\r\nCSeq: 1 INVITE\r\n"
              f"Contact: <sip:{CALLER}@127.0.0.1:{port}>\r\nContent-Type: application/sdp\r\n"
              f"Content-Length: {len(OFFER)}\r\n\r\n{OFFER}")
    cancel = (f"CANCEL {ruri} SIP/2.0\r\n{via}\r\n{common}{to}\r\nCSeq: 1 CANCEL\r\n"
              "Content-Length: 0\r\n\r\n")
    sock.sendto(invite.encode(), dest)
    sock.sendto(cancel.encode(), dest)
    got: list[tuple[str, str]] = []
    final = None
    try:
        while final is None or ("200", "CANCEL") not in got:
            data = sock.recv(65535).decode(errors="replace")
            status = re.match(r"SIP/2\.0 (\d{3})", data)
            cseq = re.search(r"^CSeq: *\d+ +(\w+)", data, re.M)
            if not (status and cseq):
                continue
            got.append((status.group(1), cseq.group(1)))
            if cseq.group(1) == "INVITE" and status.group(1) >= "200":
                final = data
        resp_to = re.search(r"^To: *(.*)$", final, re.M).group(1).strip()
        if final.startswith("SIP/2.0 487"):
            # §17.1.1.3: the ACK for a non-2xx final shares the INVITE's branch.
            sock.sendto((f"ACK {ruri} SIP/2.0\r\n{via}\r\n{common}To: {resp_to}\r\n"
                         "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode(), dest)
            return "cancelled", got
        # Answered first: confirm the dialog and end it.
        contact = re.search(r"^Contact: *<([^>]+)>", final, re.M).group(1)
        ack_via = f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex};rport"
        sock.sendto((f"ACK {contact} SIP/2.0\r\n{ack_via}\r\n{common}To: {resp_to}\r\n"
                     "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode(), dest)
        bye_via = f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex};rport"
        sock.sendto((f"BYE {contact} SIP/2.0\r\n{bye_via}\r\n{common}To: {resp_to}\r\n"
                     "CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").encode(), dest)
        while True:
            data = sock.recv(65535).decode(errors="replace")
            if re.search(r"^CSeq: *2 BYE", data, re.M) and data.startswith("SIP/2.0 200"):
                return "answered", got
    finally:
        sock.close()


def test_cancel_before_answer_gets_487(sip_private_server):
    """INVITE and CANCEL back to back: 200 for the CANCEL, 487 for the INVITE (RFC 3261
    §9.2), the call record says Cancelled (487), and the server keeps no leg or RTP port.
    A run the server answered first (200 for the INVITE) is ended with ACK+BYE and retried.
    Runs on a server of its own: it asserts the server's global media state."""
    server = sip_private_server
    vc_id, host = server.create_connector()
    outcomes = []
    for _ in range(CANCEL_ATTEMPTS):
        meeting_id, attendee_id, token = server.create_attendee()
        outcome, responses = _cancel_race(server, host, token)
        outcomes.append(outcome)
        if outcome == "cancelled":
            break
        assert server.call_ended(meeting_id)["Reason"] == "RemoteBye"
    assert outcomes[-1] == "cancelled", f"the server answered every INVITE before its CANCEL: {outcomes}"
    # 200 for the CANCEL and 487 for the INVITE (a 100 Trying may come first).
    assert [r for r in responses if r[0] != "100"] == [("200", "CANCEL"), ("487", "INVITE")], responses
    # The server: no leg and no RTP port left, and the call ended as Cancelled.
    legs, held = server.wait_media_idle(timeout=5)
    assert (legs, held) == (0, set()), (legs, held, server.log()[-3000:])
    rec = server.call_ended(meeting_id)
    assert (rec["Reason"], rec["Status"], rec["StatusCode"]) == ("Cancelled", "Cancelled", 487), rec


# ---------------------------------------------------------------------------------------
# The same attendee joining twice


def test_second_join_of_attendee_ends_first_call(sip_server, sip_sipp, sip_tools):
    """Call A joins with token T; call B joins with T too: the server ends A with a BYE
    whose RFC 3326 Reason says "joined from another device" (A answers it 200), and B stays
    up until its own BYE."""
    p = sip_server.provision()
    results = {}
    with sip_tools.RtpPeer() as peer_a, sip_tools.RtpPeer() as peer_b:
        call_a = threading.Thread(target=lambda: results.update(a=sip_sipp(
            "join_until_bye.xml", join_keys(p.host, p.token, peer_a.port), tag="A", timeout_s=20)))
        call_a.start()
        try:
            sip_server.wait_for_log(r"joined meeting [^\n]*meeting=" + re.escape(p.meeting_id), timeout=15)
            b = sip_sipp("join_uac.xml", join_keys(p.host, p.token, peer_b.port), extra=["-d", "2000"], tag="B")
        finally:
            call_a.join(timeout=40)
        received_by_b = peer_b.rtp()
    a = results.get("a")
    assert a is not None, "call A's SIPp did not finish"
    assert_one_successful_call(a)
    m = re.search(r"^reason=\s*(.*) text=(.*)$", a.log, re.M)
    assert m, a.describe()
    reason, text = m.group(1).strip(), m.group(2).strip()
    assert text == "joined from another device", a.log
    assert re.fullmatch(r'SIP\s*;\s*cause=200\s*;\s*text="joined from another device"', reason), reason
    # B: answered, never sent a BYE by the server (SIPp would count it unexpected), its own
    # BYE answered 200 after the 2 s call, with the server's RTP flowing to it meanwhile.
    assert_one_successful_call(b)
    assert b.counter("FailedUnexpectedMessage") == 0, b.describe()
    assert received_by_b, "no RTP reached call B"
    # The server's call records (told apart by SIP Call-ID): A ended by its own BYE, B by
    # the caller's.
    call_ids = {name: re.search(r"^Call-ID: *(\S+)", r.messages, re.M | re.I) for name, r in (("A", a), ("B", b))}
    assert all(call_ids.values()), (a.messages[-2000:], b.messages[-2000:])
    recs = sip_server.wait_call_records(n=2, meeting_id=p.meeting_id, attendee_id=p.attendee_id)
    ended = {r["CallId"]: (r["Status"], r["Reason"]) for r in recs}
    assert len(recs) == 2 and ended == {
        call_ids["A"].group(1): ("Completed", "LocalBye"),
        call_ids["B"].group(1): ("Completed", "RemoteBye"),
    }, recs
