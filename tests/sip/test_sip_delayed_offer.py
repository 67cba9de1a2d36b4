"""Delayed offer (RFC 3261 §13.2.1, RFC 3264): a PBX that sends its INVITE without SDP gets
our offer in the 200 and answers in the ACK; media then flows to the address in that answer."""

from __future__ import annotations

import pytest

CALLER = "+12065550100"


@pytest.mark.parametrize("transport", [pytest.param("u1", id="udp"), pytest.param("t1", id="tcp")])
def test_delayed_offer_join(sip_server, sip_sipp, sip_rtp_peer, transport):
    p = sip_server.provision()
    keys = {"vc_host": p.host, "token": p.token, "from_user": CALLER, "rtp_port": str(sip_rtp_peer.port)}
    result = sip_sipp("join_delayed_uac.xml", keys, transport, extra=["-d", "2000"])
    assert result.returncode == 0, result.describe()
    assert result.counter("SuccessfulCall") == 1, result.describe()
    # Our offer in the 200 lists PCMU among the codecs (the scenario checks it with an ereg).
    assert "m=audio" in result.messages

    joined = sip_server.wait_for_log(r"joined meeting [^\n]*meeting=" + p.meeting_id + r"[^\n]*")
    assert "delayed_offer=true" in joined.group(0), joined.group(0)
    rec = sip_server.call_ended(p.meeting_id)
    assert rec["Reason"] == "RemoteBye", rec

    # Media went to the port the ACK's answer named, as PCMU (payload type 0).
    rtp = sip_rtp_peer.rtp()
    assert rtp, "no RTP after the ACK's answer"
    assert {pkt["pt"] for pkt in rtp} == {0}, {pkt["pt"] for pkt in rtp}
    assert rec["Media"]["PacketsSent"] >= len(rtp), rec
