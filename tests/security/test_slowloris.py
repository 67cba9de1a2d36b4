"""SIP over TCP, slowloris (GitHub issue 14, Lows): the idle timer restarted on every byte,
so a peer dribbling one byte a second held a connection (and its buffer) for as long as it
liked. Now a whole message must arrive within 10 s of its first byte.

Against the real server: a client on 127.0.0.9 sends an OPTIONS one byte every 0.4 s (the
whole would take about 90 s); the server closes the connection 10 s after the first byte
(asserted between 8 and 20 s, before the message is whole). Meanwhile an honest client
opening its own connection is answered at once, and keep-alives on a quiet connection
start no clock.
"""

from __future__ import annotations

import socket
import time

import pytest

from vctest.server import MeetingServer, serve

#: Limits::message_timeout as shipped.
MESSAGE_TIMEOUT_S = 10.0
#: One byte every DRIBBLE_S seconds; the dribble stops by itself after MAX_DRIBBLE_S.
DRIBBLE_S = 0.4
MAX_DRIBBLE_S = 30.0


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory) -> MeetingServer:
    yield from serve(tmp_path_factory.mktemp("vc-slowloris"), label="sec")


def options(n: int) -> bytes:
    return (f"OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKslow{n}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:probe@127.0.0.1>;tag=s{n}\r\nTo: <sip:ping@127.0.0.1>\r\n"
            f"Call-ID: slowloris-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def answered(server: MeetingServer, msg: bytes) -> str:
    with socket.create_connection(("127.0.0.1", server.sip_port), timeout=5) as c:
        c.sendall(msg)
        return c.recv(65535).decode(errors="replace")


def test_a_dribbled_message_is_closed_at_its_deadline(slow_server):
    msg = options(1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as c:
        c.bind(("127.0.0.9", 0))
        c.connect(("127.0.0.1", slow_server.sip_port))
        c.settimeout(DRIBBLE_S)
        start = time.monotonic()
        sent = 0
        closed_at = None
        honest = None
        while time.monotonic() - start < MAX_DRIBBLE_S and sent < len(msg):
            try:
                c.sendall(msg[sent:sent + 1])
            except OSError:
                closed_at = time.monotonic() - start
                break
            sent += 1
            try:
                if c.recv(65535) == b"":
                    closed_at = time.monotonic() - start
                    break
            except socket.timeout:
                pass
            except OSError:
                closed_at = time.monotonic() - start
                break
            if honest is None and time.monotonic() - start > 2:
                honest = answered(slow_server, options(2))
    assert closed_at is not None, f"still open after {sent} of {len(msg)} bytes"
    assert sent < len(msg)
    assert MESSAGE_TIMEOUT_S - 2 <= closed_at <= MESSAGE_TIMEOUT_S + 10, closed_at
    assert honest is not None and honest.startswith("SIP/2.0 "), honest
    slow_server.wait_for_log(r"message not complete within message_timeout[^\n]*remote=127\.0\.0\.9", 5)


def test_keepalives_on_a_quiet_connection_start_no_clock(slow_server):
    with socket.create_connection(("127.0.0.1", slow_server.sip_port), timeout=5) as c:
        c.sendall(options(3))
        assert c.recv(65535).startswith(b"SIP/2.0 ")
        # RFC 5626 pings across more than the message deadline: each is answered, the
        # connection stays, and a message after them is answered too.
        deadline = time.monotonic() + MESSAGE_TIMEOUT_S + 2
        while time.monotonic() < deadline:
            c.sendall(b"\r\n\r\n")
            assert c.recv(2) == b"\r\n"
            time.sleep(1.0)
        c.sendall(options(4))
        assert c.recv(65535).startswith(b"SIP/2.0 ")
