"""A delayed-offer call (an INVITE without SDP; our offer in the 200, the answer in the
ACK) is streamed too: its leg enters the meeting's mixer only when the ACK comes, and the
stream begins then. SIPp (tests/sip/scenarios/join_delayed_uac.xml) places the call; the
RTP peer of the SIP suite answers our packets with a 440 Hz tone in PCMU.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from test_streaming import streaming_on

_spec = importlib.util.spec_from_file_location(
    "sip_fixtures_for_streaming", Path(__file__).resolve().parent.parent / "sip" / "conftest.py")
sip = importlib.util.module_from_spec(_spec)
sys.modules["sip_fixtures_for_streaming"] = sip
_spec.loader.exec_module(sip)


def test_delayed_offer_call_is_streamed(st_server, st_tools, tmp_path):
    join = st_server.provision(require_encryption=False)
    pcmu = tmp_path / "tone440.ul"  # 1 s of 440 Hz, raw PCMU, made with sox
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw", str(pcmu), "synth", "1",
                    "sine", "440", "vol", "0.5"], check=True, timeout=30)
    with st_tools.Sink() as sink, sip.RtpPeer(reply_audio=pcmu.read_bytes()) as peer:
        streaming_on(st_server, join.voice_connector_id, "--url", sink.url)
        keys = {"vc_host": join.host, "token": join.token, "from_user": "+12065550100",
                "rtp_port": str(peer.port)}
        result = sip.run_sipp(st_server, "join_delayed_uac.xml", keys, tmp_path, extra=["-d", "3000"])
        assert result.returncode == 0, result.describe()
        stream = sink.wait_stop()
    joined = st_server.wait_for_log(r"joined meeting [^\n]*meeting=" + join.meeting_id + r"[^\n]*")
    assert "delayed_offer=true" in joined.group(0), joined.group(0)
    start = stream.start
    assert start["voiceConnectorId"] == join.voice_connector_id
    assert start["sampleRate"] == 8000, start  # PCMU, as the ACK's answer says
    assert [t["name"] for t in start["tracks"]] == ["caller", "meeting"]
    headers = {h["name"].lower(): h["value"] for h in start["sipHeaders"]}
    assert headers["call-id"] == start["callId"], headers
    assert stream.frames[0] == stream.frames[1] > 50, stream.frames
    assert st_tools.level_db(stream.tracks[0][4000:], 8000, 440) > -30, "the caller's tone is not on its track"
    assert stream.stop["framesSent"] == stream.frames[0] + stream.frames[1], stream.stop
