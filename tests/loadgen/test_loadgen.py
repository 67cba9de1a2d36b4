"""vc-loadgen against the real server: two meetings of three SIP legs each with SDES-SRTP
(AES_CM_128_HMAC_SHA1_80) and PCMU. Every leg must receive the server's mix as
authenticated SRTP, and the loss accounting must add up: expected = received + lost per
leg, and packets dropped on purpose before accounting (`--rx-drop-every`) show up as lost.

The generator binary is $VC_LOADGEN_BIN, else target/{release,debug}/vc-loadgen beside the
server binary (built with cargo into that target directory when missing).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loadgen_binary(vc_binary) -> Path:
    env = os.environ.get("VC_LOADGEN_BIN")
    if env:
        return Path(env)
    profile_dir = Path(vc_binary).parent  # <target>/<profile>
    candidate = profile_dir / "vc-loadgen"
    if not candidate.is_file():
        cmd = ["cargo", "build", "-p", "vc-loadgen"]
        if profile_dir.name == "release":
            cmd.append("--release")
        subprocess.run(cmd, cwd=ROOT, check=True, timeout=900,
                       env=dict(os.environ, CARGO_TARGET_DIR=str(profile_dir.parent)))
    return candidate


def sip_udp_addr(server) -> str:
    m = re.search(r'SIP listening transport="?udp"? addr=(127\.0\.0\.1:\d+)', server.log())
    assert m, server.log()[-2000:]
    return m.group(1)


def joins(server, meetings: int, size: int) -> dict:
    vc = server.voice.create_voice_connector(Name="loadgen", RequireEncryption=False)["VoiceConnector"]
    server.voice.put_voice_connector_termination(
        VoiceConnectorId=vc["VoiceConnectorId"],
        Termination={"CidrAllowedList": ["127.0.0.1/32"], "CallingRegions": ["US"], "CpsLimit": 100})
    out = []
    for i in range(meetings):
        mid = server.meetings.create_meeting(ClientRequestToken=f"lg-{i}-{os.urandom(4).hex()}",
                                             MediaRegion="us-east-1",
                                             ExternalMeetingId=f"lg-{i}")["Meeting"]["MeetingId"]
        resp = server.meetings.batch_create_attendee(
            MeetingId=mid, Attendees=[{"ExternalUserId": f"lg-{i}-{k}"} for k in range(size)])
        out.append({"legs": [f"sip:+17035550122@{vc['OutboundHostName']};X-chime-join-token={a['JoinToken']}"
                             for a in resp["Attendees"]]})
    return {"server": sip_udp_addr(server), "meetings": out}


def run(binary: Path, tmp_path: Path, plan: dict, *extra: str) -> dict:
    jf = tmp_path / f"joins-{os.urandom(3).hex()}.json"
    jf.write_text(json.dumps(plan))
    p = subprocess.run([str(binary), "--joins", str(jf), "--codec", "pcmu", "--duration", "3",
                        "--warmup", "1", "--per-leg", *extra],
                       capture_output=True, text=True, timeout=45)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_every_leg_receives_the_authenticated_mix(start_server, loadgen_binary, tmp_path):
    server = start_server()
    rep = run(loadgen_binary, tmp_path, joins(server, 2, 3))
    assert rep["calls"]["attempted"] == 6 and rep["calls"]["answered"] == 6, rep["calls"]
    assert len(rep["legs"]) == 6
    assert sorted((leg["meeting"], leg["position"]) for leg in rep["legs"]) == \
        [(m, p) for m in range(2) for p in range(3)]
    for leg in rep["legs"]:
        assert leg["received"] > 0, leg
        assert leg["srtp_failures"] == 0, leg
        assert leg["expected"] == leg["received"] + leg["lost"], leg
    rx = rep["rx"]
    assert rx["legs_without_packets"] == 0 and rx["srtp_failures"] == 0
    assert rx["received"] == sum(leg["received"] for leg in rep["legs"])
    assert rx["lost"] == sum(leg["lost"] for leg in rep["legs"])
    # Loopback with six legs: the server loses nothing.
    assert rx["lost"] == 0, rx
    assert rep["tx"]["sent"] > 0 and rep["tx"]["send_errors"] == 0
    server.assert_healthy()


def test_dropped_packets_are_counted_as_lost(start_server, loadgen_binary, tmp_path):
    server = start_server()
    rep = run(loadgen_binary, tmp_path, joins(server, 2, 3), "--rx-drop-every", "10")
    assert rep["calls"]["answered"] == 6
    for leg in rep["legs"]:
        dropped = leg["dropped_by_test"]
        assert dropped > 0, leg
        # A drop before the first or after the last counted packet is not a visible gap.
        assert dropped - 2 <= leg["lost"] <= dropped, leg
        assert leg["expected"] == leg["received"] + leg["lost"], leg
    assert rep["rx"]["dropped_by_test"] == sum(leg["dropped_by_test"] for leg in rep["legs"])
    server.assert_healthy()
