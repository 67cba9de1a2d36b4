"""M5 (issue 14): the API and the browsers' signaling over TLS.

With `--http-tls on` the server serves its API and WebSocket over HTTPS/WSS with the
certificate SIP over TLS uses (here the development CA's, `<data-dir>/tls/ca.pem`):

- boto3 reaches the API over https with `verify=<the CA file>`; without it the certificate
  is refused (it is not a public CA's), and plain http on the port gets no answer;
- CreateMeeting's MediaPlacement says `wss://` (SignalingUrl) and `https://`
  (EventIngestionUrl);
- two headless Chromiums running the unmodified amazon-chime-sdk-js join over `wss://` and
  hear each other (1 kHz and 440 Hz, each not its own), and the SDK's events reach the
  https EventIngestionUrl. Chromium trusts the development CA through its NSS store
  (`harness.nss_home`, certutil): no certificate error is ignored.

`--public-url https://HOST` (a TLS proxy in front of a plain listener) gives the same
`wss://`/`https://` URLs on that host.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.parse
import uuid
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

import harness

A_TONE_HZ = 1000
B_TONE_HZ = 440
#: Received-audio analysis blocks (~100 ms each) that must carry the other's tone.
TONE_BLOCKS = 10
#: Blocks in which one's own tone may come back (none should: the mix is N-1).
OWN_TONE_BLOCKS_MAX = 3


def https_client(server, service: str, ca: str):
    return boto3.client(
        service,
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.key_id,
        aws_secret_access_key=server.secret,
        verify=ca,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


@pytest.fixture
def tls_server(start_server):
    server = start_server(extra_args=["--webrtc-udp", "127.0.0.1:0", "--http-tls", "on"])
    deadline = time.monotonic() + 10
    while not (m := re.search(r"API listening url=(https://127\.0\.0\.1:\d+)", server.log())):
        assert time.monotonic() < deadline and server.alive(), f"no https listener:\n{server.log()[-3000:]}"
        time.sleep(0.05)
    server.endpoint = m.group(1)
    ca = server.data_dir / "tls" / "ca.pem"
    assert ca.is_file()
    yield server, str(ca)
    server.assert_healthy()


def test_boto3_over_https_trusting_the_development_ca(tls_server):
    server, ca = tls_server
    voice = https_client(server, "chime-sdk-voice", ca)
    vc = voice.create_voice_connector(Name="tls-" + uuid.uuid4().hex[:8], RequireEncryption=True)["VoiceConnector"]
    assert voice.get_voice_connector(VoiceConnectorId=vc["VoiceConnectorId"])["VoiceConnector"]["Name"] == vc["Name"]
    # Not a public CA: a client that does not trust the development CA refuses the server.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.endpoint + "/healthz", timeout=5)
    assert requests.get(server.endpoint + "/healthz", timeout=5, verify=ca).text == "ok\n"
    # Plain HTTP on the TLS port gets no HTTP answer.
    port = urllib.parse.urlsplit(server.endpoint).port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            answer = b""
    assert not answer.startswith(b"HTTP/1.1 200"), answer


def test_sdk_browsers_join_over_wss_and_hear_each_other(tls_server, browser_bundle, tmp_path):
    server, ca = tls_server
    meetings = https_client(server, "chime-sdk-meetings", ca)
    meeting = meetings.create_meeting(
        ClientRequestToken=uuid.uuid4().hex, MediaRegion="us-east-1", ExternalMeetingId="wss-" + uuid.uuid4().hex[:8]
    )["Meeting"]
    placement = meeting["MediaPlacement"]
    assert placement["SignalingUrl"] == f"wss://{server.endpoint.removeprefix('https://')}/control/{meeting['MeetingId']}"
    assert placement["EventIngestionUrl"].startswith("https://"), placement
    att_a = meetings.create_attendee(MeetingId=meeting["MeetingId"], ExternalUserId="wss-a")["Attendee"]
    att_b = meetings.create_attendee(MeetingId=meeting["MeetingId"], ExternalUserId="wss-b")["Attendee"]
    home = harness.nss_home(tmp_path / "home", Path(ca))
    mic_a = harness.tone_wav(tmp_path / "a-mic.wav", A_TONE_HZ)
    mic_b = harness.tone_wav(tmp_path / "b-mic.wav", B_TONE_HZ)
    tones = (B_TONE_HZ, A_TONE_HZ)
    with (
        harness.BrowserAttendee(
            tmp_path, {"Meeting": meeting, "Attendee": att_a}, fake_audio=mic_a, tones=tones, name="a", home=home
        ) as a,
        harness.BrowserAttendee(
            tmp_path, {"Meeting": meeting, "Attendee": att_b}, fake_audio=mic_b, tones=tones, name="b", home=home
        ) as b,
    ):
        a.wait(lambda s: s["phase"] == "started", 25, "A's session started over wss://")
        b.wait(lambda s: s["phase"] == "started", 25, "B's session started over wss://")
        heard_a = a.wait(lambda s: harness.tone_blocks(s, B_TONE_HZ) >= TONE_BLOCKS, 15, "B's 440 Hz in A's audio")
        heard_b = b.wait(lambda s: harness.tone_blocks(s, A_TONE_HZ) >= TONE_BLOCKS, 15, "A's 1 kHz in B's audio")
        assert harness.tone_blocks(heard_a, A_TONE_HZ) < OWN_TONE_BLOCKS_MAX, heard_a["audio"]
        assert harness.tone_blocks(heard_b, B_TONE_HZ) < OWN_TONE_BLOCKS_MAX, heard_b["audio"]
        # The SDK's events reach the https EventIngestionUrl.
        deadline = time.monotonic() + 15
        while True:
            text = requests.get(server.endpoint + "/metrics", timeout=5, verify=ca).text
            m = re.search(r"^vc_client_events_total(?:\{[^}]*\})? (\d+)", text, re.M)
            if m and int(m.group(1)) > 0:
                break
            assert time.monotonic() < deadline, f"no SDK event reached {placement['EventIngestionUrl']}\n{a.describe()}"
            time.sleep(0.2)
        assert a.state["errors"] == [] and b.state["errors"] == [], (a.state["errors"], b.state["errors"])


def test_public_url_puts_the_proxy_in_the_media_placement(start_server):
    server = start_server(extra_args=["--public-url", "https://vc.example.com:8443/"])
    meeting = server.meetings.create_meeting(
        ClientRequestToken=uuid.uuid4().hex, MediaRegion="us-east-1", ExternalMeetingId="proxy-" + uuid.uuid4().hex[:8]
    )["Meeting"]
    placement = meeting["MediaPlacement"]
    assert placement["SignalingUrl"] == f"wss://vc.example.com:8443/control/{meeting['MeetingId']}", placement
    assert placement["EventIngestionUrl"] == "https://vc.example.com:8443/client-events", placement
    # Behind the proxy the listener itself stays plain HTTP (the proxy speaks TLS).
    assert server.endpoint.startswith("http://")
