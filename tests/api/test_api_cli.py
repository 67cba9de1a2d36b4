"""The aws CLI against the real binary, with only --endpoint-url changed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("aws") is None, reason="aws CLI is not installed (scripts/setup-deps installs it)")


@pytest.fixture(scope="module")
def srv(start_module_server):
    return start_module_server("sqlite")


def aws(srv, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(
        ["aws", *args, "--endpoint-url", srv.endpoint, "--output", "json"],
        capture_output=True, text=True, env=srv.aws_env(), timeout=120,
    )
    if check:
        assert p.returncode == 0, f"aws {' '.join(args)} failed ({p.returncode}):\n{p.stderr}"
    return p


def test_cli_voice_connector(srv):
    out = json.loads(aws(srv, "chime-sdk-voice", "create-voice-connector",
                         "--name", "cli-pbx", "--require-encryption").stdout)
    vc = out["VoiceConnector"]
    assert re.fullmatch(r"[a-z0-9]{22}", vc["VoiceConnectorId"])
    assert vc["OutboundHostName"] == f"{vc['VoiceConnectorId']}.voiceconnector.localhost"
    assert vc["RequireEncryption"] is True and vc["Name"] == "cli-pbx"

    out = json.loads(aws(srv, "chime-sdk-voice", "put-voice-connector-termination",
                         "--voice-connector-id", vc["VoiceConnectorId"],
                         "--termination", json.dumps({"CidrAllowedList": ["127.0.0.1/32"],
                                                      "CallingRegions": ["US"]})).stdout)
    assert out["Termination"]["CidrAllowedList"] == ["127.0.0.1/32"]

    listed = json.loads(aws(srv, "chime-sdk-voice", "list-voice-connectors").stdout)
    assert vc["VoiceConnectorId"] in [v["VoiceConnectorId"] for v in listed["VoiceConnectors"]]

    # Errors surface as the CLI shows AWS errors: exit 254 and the exception name.
    bad = aws(srv, "chime-sdk-voice", "get-voice-connector", "--voice-connector-id", "b" * 22, check=False)
    assert bad.returncode != 0
    assert "NotFoundException" in bad.stderr, bad.stderr


def test_cli_meeting(srv):
    out = json.loads(aws(srv, "chime-sdk-meetings", "create-meeting",
                         "--client-request-token", "cli-token-1",
                         "--media-region", "us-east-1",
                         "--external-meeting-id", "cli-meeting").stdout)
    m = out["Meeting"]
    assert m["ExternalMeetingId"] == "cli-meeting" and m["MediaRegion"] == "us-east-1"
    att = json.loads(aws(srv, "chime-sdk-meetings", "create-attendee",
                         "--meeting-id", m["MeetingId"], "--external-user-id", "cli-user").stdout)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", att["Attendee"]["JoinToken"])
    got = json.loads(aws(srv, "chime-sdk-meetings", "get-meeting", "--meeting-id", m["MeetingId"]).stdout)
    assert got["Meeting"]["MeetingId"] == m["MeetingId"]
    aws(srv, "chime-sdk-meetings", "delete-meeting", "--meeting-id", m["MeetingId"])
    gone = aws(srv, "chime-sdk-meetings", "get-meeting", "--meeting-id", m["MeetingId"], check=False)
    assert gone.returncode != 0 and "NotFoundException" in gone.stderr
