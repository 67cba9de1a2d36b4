"""SIPp against the real voice-connector binary (GitHub issue 3, SIP core): OPTIONS, a full
meeting join INVITE/ACK/BYE with RTP, and refused joins, over UDP and over TCP.

SIPp sends to 127.0.0.1:<sip port> as its outbound proxy while the Request-URI names the
voice connector's outbound host name, as a PBX does with a static route.
"""

from __future__ import annotations

import json
import re

import pytest

#: E.164 caller id for From (the spec: the connector recognises only E.164 numbers).
CALLER = "+12065550100"

TRANSPORTS = [pytest.param("u1", id="udp"), pytest.param("t1", id="tcp")]

#: How long SIPp holds the call before its BYE (SIPp `-d`, milliseconds).
CALL_MS = 2000


def assert_one_successful_call(result) -> None:
    assert result.returncode == 0, result.describe()
    assert result.stats, "SIPp wrote no -stf statistics\n" + result.describe()
    assert result.counter("SuccessfulCall") == 1, result.describe()
    assert result.counter("FailedCall") == 0, result.describe()
    assert result.counter("FailedUnexpectedMessage") == 0, result.describe()
    assert result.counter("FailedRegexpDoesntMatch") == 0, result.describe()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_options_to_connector_host(sip_server, sip_sipp, transport):
    _, host = sip_server.create_connector()
    result = sip_sipp("options.xml", {"vc_host": host}, transport)
    assert_one_successful_call(result)
    allow = re.search(r"allow=(.*)", result.log)
    assert allow, result.log
    methods = {m.strip() for m in allow.group(1).replace("Allow:", "").split(",")}
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"} <= methods, methods
    # The response really travelled over the transport we asked for (RFC 3261 §18.2.2).
    via_transport = "UDP" if transport == "u1" else "TCP"
    assert re.search(rf"SIP/2\.0 200 OK\r?\nVia: SIP/2\.0/{via_transport} ", result.messages), result.messages


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_meeting_join_call(sip_server, sip_sipp, sip_rtp_peer, transport):
    p = sip_server.provision()
    keys = {"vc_host": p.host, "token": p.token, "from_user": CALLER, "rtp_port": str(sip_rtp_peer.port)}
    result = sip_sipp("join_uac.xml", keys, transport, extra=["-d", str(CALL_MS)])
    assert_one_successful_call(result)

    # The SDP answer picked one of the offered audio codecs (RFC 3264 §6.1).
    answer = re.search(r"answer port=(\d+) pt=(\d+)", result.log)
    assert answer, result.log
    answer_port, answer_pt = int(answer.group(1)), int(answer.group(2))
    assert answer_port > 0
    assert answer_pt in (0, 8), answer_pt

    # The server joined the meeting and, after the BYE, ended the call.
    joined = sip_server.wait_for_log(r"joined meeting [^\n]*meeting=" + re.escape(p.meeting_id) + r"[^\n]*")
    assert f"attendee={p.attendee_id}" in joined.group(0), joined.group(0)
    rec = sip_server.call_ended(p.meeting_id)
    assert rec["Reason"] == "RemoteBye", rec

    # RTP arrived at the offered address: one stream, version 2, the answered payload
    # type, from the port in the SDP answer, with consecutive sequence numbers.
    rtp = sip_rtp_peer.rtp()
    assert rtp, "no RTP from the server during the call"
    assert {pkt["ssrc"] for pkt in rtp} == {rtp[0]["ssrc"]}
    assert {pkt["pt"] for pkt in rtp} <= {answer_pt, 101}, {pkt["pt"] for pkt in rtp}
    assert {pkt["from"] for pkt in rtp} == {("127.0.0.1", answer_port)}
    audio = [pkt for pkt in rtp if pkt["pt"] == answer_pt]
    assert all(pkt["len"] == 12 + 160 for pkt in audio), {pkt["len"] for pkt in audio}
    seqs = [pkt["seq"] for pkt in rtp]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:])), seqs[:20]

    # The server counted what it sent and what our peer sent back.
    media = rec["Media"]
    assert media["PacketsSent"] >= len(rtp), rec
    assert media["PacketsReceived"] > 0, rec
    assert media["SrtpFailures"] == 0, rec


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_host_is_refused_with_404(sip_server, sip_sipp, transport):
    _, _, token = sip_server.create_attendee()
    host = "nosuchconnector0000000.voiceconnector.localhost"
    keys = {"vc_host": host, "token": token, "from_user": CALLER, "rtp_port": "40000"}
    result = sip_sipp("join_refused_404.xml", keys, transport)
    assert_one_successful_call(result)
    warning = re.search(r"warning=(.*)", result.log)
    assert warning, result.log
    assert host in warning.group(1), warning.group(1)
    assert "not a voice connector" in warning.group(1), warning.group(1)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_join_token_is_refused_with_403(sip_server, sip_sipp, transport):
    p = sip_server.provision()
    # A token of the right shape that the server never issued.
    forged = p.token[:-4] + ("AAAA" if not p.token.endswith("AAAA") else "BBBB")
    keys = {"vc_host": p.host, "token": forged, "from_user": CALLER, "rtp_port": "40000"}
    result = sip_sipp("join_refused_403.xml", keys, transport)
    assert_one_successful_call(result)
    warning = re.search(r"warning=(.*)", result.log)
    assert warning, result.log
    assert "join token" in warning.group(1), warning.group(1)
    assert p.token not in result.log
    # The server must not have joined anyone to the meeting.
    assert f"meeting={p.meeting_id}" not in re.sub(r"meeting created meeting=\S+", "", sip_server.log())


def test_options_to_unknown_host_is_404(sip_server, sip_sipp):
    result = sip_sipp("options_404.xml", {"vc_host": "nosuchconnector0000000.voiceconnector.localhost"})
    assert_one_successful_call(result)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_encrypted_connector_refuses_udp_and_tcp(sip_server, sip_sipp, transport):
    """RequireEncryption=true: only SIP over TLS may reach the connector."""
    vc_id, host = sip_server.create_connector(require_encryption=True)
    _, _, token = sip_server.create_attendee()
    keys = {"vc_host": host, "token": token, "from_user": CALLER, "rtp_port": "40000"}
    result = sip_sipp("join_refused_403.xml", keys, transport)
    assert_one_successful_call(result)
    warning = re.search(r"warning=(.*)", result.log)
    assert warning, result.log
    assert "requires encryption" in warning.group(1) and vc_id in warning.group(1), warning.group(1)
    assert "TLS" in warning.group(1), warning.group(1)


def test_source_outside_allow_list_is_refused(sip_server, sip_sipp):
    """Termination admits only the CidrAllowedList; 127.0.0.1 is not in 10.0.0.0/8."""
    vc_id, host = sip_server.create_connector(cidrs=("10.0.0.0/8",))
    _, _, token = sip_server.create_attendee()
    keys = {"vc_host": host, "token": token, "from_user": CALLER, "rtp_port": "40000"}
    result = sip_sipp("join_refused_403.xml", keys)
    assert_one_successful_call(result)
    warning = re.search(r"warning=(.*)", result.log)
    assert warning, result.log
    assert "127.0.0.1" in warning.group(1) and "CidrAllowedList" in warning.group(1), warning.group(1)


@pytest.mark.parametrize("from_user", ["alice", "2065550100", "+0123"])
def test_non_e164_caller_is_refused(sip_server, sip_sipp, from_user):
    """The spec: the connector recognises only E.164 numbers in From."""
    p = sip_server.provision()
    keys = {"vc_host": p.host, "token": p.token, "from_user": from_user, "rtp_port": "40000"}
    result = sip_sipp("join_refused_403.xml", keys)
    assert_one_successful_call(result)
    warning = re.search(r"warning=(.*)", result.log)
    assert warning, result.log
    assert "E.164" in warning.group(1) and from_user in warning.group(1), warning.group(1)


@pytest.mark.parametrize("transport", [pytest.param("u1", id="udp"), pytest.param("tn", id="tcp-per-call")])
def test_concurrent_meeting_joins(sip_server, sip_sipp, sip_rtp_peer, tmp_path, transport):
    """20 callers, each into its own meeting with its own token, up to 20 at once, each
    answered with its own RTP port and ended by BYE."""
    calls = 20
    _, host = sip_server.create_connector()
    meetings = [sip_server.create_attendee() for _ in range(calls)]
    inf = tmp_path / "joins.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(f"{host};{token};\n" for _, _, token in meetings))
    keys = {"from_user": CALLER, "rtp_port": str(sip_rtp_peer.port)}
    extra = ["-inf", str(inf), "-m", str(calls), "-l", str(calls), "-r", "20", "-d", "3000", "-max_socket", "100"]
    result = sip_sipp("join_uac_inf.xml", keys, transport, extra=extra)
    assert result.returncode == 0, result.describe()
    assert result.counter("SuccessfulCall") == calls, result.describe()
    assert result.counter("FailedCall") == 0, result.describe()

    ports = re.findall(r"answer port=(\d+)", result.log)
    assert len(ports) == calls, result.log
    assert len(set(ports)) == calls, sorted(ports)  # one media port per call (all overlap)
    for meeting_id, _, _ in meetings:
        rec = sip_server.call_ended(meeting_id)
        assert rec["Reason"] == "RemoteBye", rec
        assert rec["Media"]["PacketsSent"] > 0, rec
    # Every call's RTP reached the (shared) offered address.
    senders = {pkt["from"][1] for pkt in sip_rtp_peer.rtp()}
    assert senders == {int(p) for p in ports}, (senders, ports)


def test_source_outside_allow_list_meets_silence_when_configured(sip_dropping_server, sip_tools, tmp_path):
    """`serve --sip-drop-unallowed-sources`: an INVITE from outside the CidrAllowedList gets
    no answer at all (a scanner cannot tell the host exists); the drop is counted in
    vc_calls_refused_total, not stored as a call record (an outsider must not cause durable
    writes), and an allowlisted source is still answered, its refusal recorded."""
    server = sip_dropping_server
    series = 'vc_calls_refused_total{reason="source_not_allowed"}'
    before = server.metrics().get(series, 0)
    vc_id, host = server.create_connector(cidrs=("127.0.0.1/32",))
    _, _, token = server.create_attendee()
    keys = {"vc_host": host, "token": token, "from_user": CALLER, "rtp_port": "40000"}
    result = sip_tools.run_sipp(server, "join_unanswered.xml", keys, tmp_path, source_ip="127.0.0.2")
    assert_one_successful_call(result)
    assert not re.search(r"^SIP/2\.0 \d{3}", result.messages, re.M), result.describe()
    assert server.metrics().get(series, 0) - before == 1
    # The same server still answers the allowlisted source (here: 403 for a non-E.164 From).
    keys = {"vc_host": host, "token": token, "from_user": "alice", "rtp_port": "40000"}
    result = sip_tools.run_sipp(server, "join_refused_403.xml", keys, tmp_path)
    assert_one_successful_call(result)
    # Its record is the connector's only one: the drop left none.
    recs = server.wait_call_records(vc_id, 1)
    assert len(recs) == 1, recs
    assert recs[0]["Status"] == "Refused" and "E.164" in recs[0]["Reason"], recs[0]
    assert "127.0.0.2" not in json.dumps(recs), recs
