"""Issue 15: TURN for locked-down networks.

The server runs with `--turn-uris` and `--turn-secret-file` naming a coturn (Debian's
`turnserver`, `use-auth-secret` with the same secret, TCP only: `no-udp`), so JOIN_ACK
carries time-limited credentials (`<expiry>:<AttendeeId>`, HMAC-SHA1 of the secret). The
unmodified amazon-chime-sdk-js then relays all its media through TURN (it sets
`iceTransportPolicy: 'relay'` when JOIN_ACK has credentials), and its only way to the
TURN server is TCP: two browsers join, each one's candidate pair is a relay candidate over
TCP, and each hears the other's tone through the server's mix. coturn's log shows the
allocations authenticated with the attendees' usernames.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time

import pytest

import harness
from vctest.ports import free_udp_range, free_udp_tcp_port

SECRET = "turn-test-secret-0123456789"


@pytest.fixture
def coturn(tmp_path):
    """coturn on 127.0.0.1, TCP only, with the shared secret; yields (port, log path)."""
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.fail("coturn is not installed (Debian coturn); run scripts/setup-deps")
    port = free_udp_tcp_port()
    low, high = free_udp_range(40)
    conf = tmp_path / "turnserver.conf"
    log = tmp_path / "turnserver.log"
    conf.write_text(
        "\n".join(
            [
                "listening-ip=127.0.0.1",
                "relay-ip=127.0.0.1",
                f"listening-port={port}",
                f"min-port={low}",
                f"max-port={high}",
                "no-udp",
                "no-tls",
                "no-dtls",
                "no-cli",
                "no-multicast-peers",
                # The test's media port is on loopback, which coturn refuses as a peer
                # unless told.
                "allow-loopback-peers",
                "use-auth-secret",
                f"static-auth-secret={SECRET}",
                "realm=voice-connector.test",
                "fingerprint",
                f"log-file={log}",
                "simple-log",
                "verbose",
                "pidfile=" + str(tmp_path / "turnserver.pid"),
                "userdb=" + str(tmp_path / "turndb"),
                "",
            ]
        )
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert proc.poll() is None, f"coturn exited:\n{log.read_text(errors='replace') if log.exists() else ''}"
                assert time.monotonic() < deadline, "coturn never listened"
                time.sleep(0.1)
        yield port, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_browsers_relay_through_turn_over_tcp(start_server, browser_bundle, coturn, tmp_path):
    turn_port, turn_log = coturn
    secret = tmp_path / "turn.secret"
    secret.write_text(SECRET + "\n")
    server = start_server(
        extra_args=[
            "--webrtc-udp",
            "127.0.0.1:0",
            "--turn-uris",
            f"turn:127.0.0.1:{turn_port}?transport=tcp",
            "--turn-secret-file",
            str(secret),
        ]
    )
    meeting, (att_a, att_b) = harness.meeting_with(server.meetings, "turn", "turn-a", "turn-b")
    mic_a = harness.tone_wav(tmp_path / "mic-a.wav", 1000)
    mic_b = harness.tone_wav(tmp_path / "mic-b.wav", 440)
    with (
        harness.BrowserAttendee(
            tmp_path, {"Meeting": meeting, "Attendee": att_a}, fake_audio=mic_a, name="a", tones=(440, 1000)
        ) as a,
        harness.BrowserAttendee(
            tmp_path, {"Meeting": meeting, "Attendee": att_b}, fake_audio=mic_b, name="b", tones=(440, 1000)
        ) as b,
    ):
        for br, other_hz in ((a, 440), (b, 1000)):
            br.wait(lambda s: s["phase"] == "started", 30, "the session started through TURN")
            st = br.wait(lambda s: harness.tone_blocks(s, other_hz) >= 10, 20, f"the other's {other_hz} Hz heard")
            pair = (st.get("stats") or {}).get("pair") or {}
            assert pair.get("localType") == "relay" and pair.get("relayProtocol") == "tcp", pair
            assert st["errors"] == [], st["errors"]
            assert not br.log_matches("missing TURN credentials"), "JOIN_ACK carried TURN credentials"

    text = turn_log.read_text(errors="replace")
    for att in (att_a, att_b):
        assert re.search(rf"user <\d+:{re.escape(att['AttendeeId'])}>", text), (
            f"no TURN allocation for {att['AttendeeId']}:\n{text[-3000:]}"
        )
    assert SECRET not in server.log(), "the TURN secret is never logged"
