"""Media metric logs: a connector with EnableMediaMetricLogs gets a record per interval for
each call (packets, loss, jitter, RTT, MOS estimate) in
<data-dir>/logs/<voice-connector-id>/media-metrics.jsonl. The interval is shortened here with
VC_MEDIA_METRICS_INTERVAL (60 s by default)."""

from __future__ import annotations

import json
import time

import pytest

CALLER = "+12065550100"


@pytest.fixture
def one_second_metrics(monkeypatch):
    monkeypatch.setenv("VC_MEDIA_METRICS_INTERVAL", "1")


def test_media_metrics_every_interval(one_second_metrics, sip_private_server, sip_tools, sip_rtp_peer, tmp_path):
    server = sip_private_server
    p = server.provision()
    voice = server.client("chime-sdk-voice")
    voice.put_voice_connector_logging_configuration(
        VoiceConnectorId=p.voice_connector_id, LoggingConfiguration={"EnableMediaMetricLogs": True}
    )
    keys = {"vc_host": p.host, "token": p.token, "from_user": CALLER, "rtp_port": str(sip_rtp_peer.port)}
    result = sip_tools.run_sipp(server, "join_uac.xml", keys, tmp_path, "u1", extra=["-d", "3500"])
    assert result.returncode == 0, result.describe()
    server.call_ended(p.meeting_id)

    path = server.data_dir / "logs" / p.voice_connector_id / "media-metrics.jsonl"
    deadline = time.monotonic() + 5
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    records = [json.loads(l) for l in path.read_text().splitlines()]
    assert 2 <= len(records) <= 5, records
    for r in records:
        assert r["MeetingId"] == p.meeting_id and r["IntervalSeconds"] == 1
        assert 1.0 <= r["MosEstimate"] <= 4.5
        assert r["PacketsLost"] >= 0 and r["JitterMs"] >= 0
    # The server sends 50 packets a second; a full interval carries about that many.
    assert max(r["PacketsSent"] for r in records) >= 40, records
