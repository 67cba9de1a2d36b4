"""SIP message logs: a connector with EnableSIPLogs gets every message of its calls, in and
out, redacted, in <data-dir>/logs/<voice-connector-id>/sip-messages.jsonl; one without gets
none."""

from __future__ import annotations

import json
import time

CALLER = "+12065550100"


def _lines(path, n: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_enable_sip_logs_records_the_call_redacted(sip_server, sip_sipp, sip_rtp_peer):
    p = sip_server.provision()
    voice = sip_server.client("chime-sdk-voice")
    voice.put_voice_connector_logging_configuration(
        VoiceConnectorId=p.voice_connector_id, LoggingConfiguration={"EnableSIPLogs": True}
    )
    keys = {"vc_host": p.host, "token": p.token, "from_user": CALLER, "rtp_port": str(sip_rtp_peer.port)}
    result = sip_sipp("join_uac.xml", keys, "u1", extra=["-d", "1000"])
    assert result.returncode == 0, result.describe()
    sip_server.call_ended(p.meeting_id)

    log = sip_server.data_dir / "logs" / p.voice_connector_id / "sip-messages.jsonl"
    lines = _lines(log, 5)
    firsts = [(l["Direction"], l["Message"].split("\r\n", 1)[0]) for l in lines]
    starts = [f for _, f in firsts]
    assert any(s.startswith("INVITE ") for s in starts), firsts
    assert any(d == "Outbound" and s.startswith("SIP/2.0 200") for d, s in firsts), firsts
    assert any(s.startswith("ACK ") for s in starts), firsts
    assert any(s.startswith("BYE ") for s in starts), firsts
    assert {l["VoiceConnectorId"] for l in lines} == {p.voice_connector_id}
    assert all(l["CallId"] for l in lines)
    assert p.token not in log.read_text(), "the join token is redacted from the log"


def test_connectors_without_sip_logs_write_none(sip_server, sip_sipp, sip_rtp_peer):
    p = sip_server.provision()
    keys = {"vc_host": p.host, "token": p.token, "from_user": CALLER, "rtp_port": str(sip_rtp_peer.port)}
    result = sip_sipp("join_uac.xml", keys, "u1", extra=["-d", "500"])
    assert result.returncode == 0, result.describe()
    sip_server.call_ended(p.meeting_id)
    assert not (sip_server.data_dir / "logs" / p.voice_connector_id).exists()
