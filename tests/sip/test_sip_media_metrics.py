"""Media metric logs: a connector with EnableMediaMetricLogs gets a record per interval for
each call (packets, loss, jitter, RTT, MOS estimate) in
<data-dir>/logs/<voice-connector-id>/media-metrics.jsonl. The interval is shortened here with
VC_MEDIA_METRICS_INTERVAL (60 s by default)."""

from __future__ import annotations

import json
import time

import pytest

CALLER = "+12065550100"

#: Interarrival jitter (RFC 3550 A.8, as the server reports it) a loopback call may show: the
#: RTP peer answers each of the server's packets at once, so its packets arrive at the server's
#: own 20 ms send cadence, off only by scheduling; one packet time is a generous bound.
JITTER_MAX_MS = 20
#: The MOS of a clean call: domain::quality::mos_estimate with no loss and no RTT (the peer
#: sends no RTCP, so there is no RTT; the server counts it as 0) is 4.40 at 0 ms jitter and
#: 4.38 at JITTER_MAX_MS; 1 % loss alone brings it to 4.32, 2 % to 4.22.
CLEAN_MOS_MIN = 4.35
#: Packets a full 1 s interval carries at least, each way (the server sends 50 a second).
FULL_INTERVAL_MIN = 40


@pytest.fixture
def one_second_metrics(monkeypatch):
    monkeypatch.setenv("VC_MEDIA_METRICS_INTERVAL", "1")


def test_media_metrics_every_interval(one_second_metrics, sip_private_server, sip_tools, sip_rtp_peer, tmp_path):
    """A clean loopback call (SIPp signalling, the RTP peer answering every packet with one
    of its own, in sequence): every interval's record shows no loss, low jitter, a high MOS
    and packet counts that add up."""
    server = sip_private_server
    p = server.provision()
    voice = server.client("chime-sdk-voice")
    voice.put_voice_connector_logging_configuration(
        VoiceConnectorId=p.voice_connector_id, LoggingConfiguration={"EnableMediaMetricLogs": True}
    )
    keys = {"vc_host": p.host, "token": p.token, "from_user": CALLER, "rtp_port": str(sip_rtp_peer.port)}
    result = sip_tools.run_sipp(server, "join_uac.xml", keys, tmp_path, "u1", extra=["-d", "3500"])
    assert result.returncode == 0, result.describe()
    call = server.call_ended(p.meeting_id)["Media"]

    path = server.data_dir / "logs" / p.voice_connector_id / "media-metrics.jsonl"
    deadline = time.monotonic() + 5
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    records = [json.loads(l) for l in path.read_text().splitlines()]
    assert 2 <= len(records) <= 5, records
    for r in records:
        assert r["MeetingId"] == p.meeting_id and r["IntervalSeconds"] == 1
        assert r["PacketsLost"] == 0 and r["LossPercent"] == 0, r
        assert r["RoundTripTimeMs"] is None, r
        assert r["JitterMs"] <= JITTER_MAX_MS, r
        assert r["MosEstimate"] >= CLEAN_MOS_MIN, r
    # The peer only answers what the server sent, so up to any interval's end the server
    # cannot have received more than it sent.
    sent = received = 0
    for r in records:
        sent, received = sent + r["PacketsSent"], received + r["PacketsReceived"]
        assert received <= sent, records
    # A full interval carries about a second's packets each way (the first and the last
    # may be partial).
    assert max(r["PacketsSent"] for r in records) >= FULL_INTERVAL_MIN, records
    assert max(r["PacketsReceived"] for r in records) >= FULL_INTERVAL_MIN, records

    # The intervals are part of the call: its record counts at least as much, and every
    # packet the server sent reached the peer, which answered each with one.
    rtp = sip_rtp_peer.rtp()
    assert sent <= call["PacketsSent"] and received <= call["PacketsReceived"], (call, records)
    assert call["PacketsSent"] >= len(rtp) >= call["PacketsReceived"], (call, len(rtp))
    assert call["PacketsLost"] == 0 and call["JitterMs"] <= JITTER_MAX_MS, call
