"""Fixtures of the browser tests: the test page built once, and a running server whose SIP
edge a pjsua2 caller can reach over UDP (see phone.py)."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

import harness


@pytest.fixture(scope="session")
def browser_bundle() -> Path:
    """The test page, built (npm ci + esbuild) once per session; Chromium must be there."""
    try:
        harness.find_chromium()
        return harness.build_page()
    except RuntimeError as e:
        pytest.fail(str(e))


@pytest.fixture
def browser_env(start_server, browser_bundle):
    """A running server, its SIP/UDP port, and a voice connector whose termination allows
    127.0.0.1 (plain RTP over UDP: RequireEncryption false)."""
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        pytest.fail("pjsua2 is not installed (PyPI pjsua2-python); run scripts/setup-deps")
    # Browser legs share one UDP port; on 127.0.0.1 its ICE host candidate is loopback.
    server = start_server(extra_args=["--webrtc-udp", "127.0.0.1:0"])
    deadline = time.monotonic() + 10
    while not (m := re.search(r'SIP listening transport="udp" addr=127\.0\.0\.1:(\d+)', server.log())):
        assert time.monotonic() < deadline and server.alive(), f"no SIP/UDP listener:\n{server.log()[-3000:]}"
        time.sleep(0.05)
    voice = server.voice
    vc = voice.create_voice_connector(Name="browser-" + uuid.uuid4().hex[:8], RequireEncryption=False)[
        "VoiceConnector"
    ]
    voice.put_voice_connector_termination(
        VoiceConnectorId=vc["VoiceConnectorId"],
        Termination={"CidrAllowedList": ["127.0.0.1/32"], "CallingRegions": ["US"], "CpsLimit": 100},
    )
    yield server, int(m.group(1)), vc["OutboundHostName"]
    server.assert_healthy()
