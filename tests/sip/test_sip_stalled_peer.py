"""A TLS peer that stalls must not stall the SIP edge (issue #14, finding H1).

A caller joins over TLS and drops its connection; on its address a listener then takes TCP
connections and never answers a TLS ClientHello. DeleteAttendee makes the server send a BYE
there (RFC 3261 §18.2.2: a new connection to where the call came from), whose TLS handshake
never completes. Before the fix
the user agent's task awaited that connect and handshake inline (10 s each), and every other
SIP message waited too: an unrelated OPTIONS from 127.0.0.6 was answered after ~10-30 s. Now
the send waits in its own destination queue and the OPTIONS is answered at once.
"""

from __future__ import annotations

import re
import secrets
import socket
import ssl
import time

CALLER = "+12065550100"
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def read_response(tls: ssl.SSLSocket, status: int, deadline: float) -> str:
    """Reads SIP messages off the stream until a response with `status`."""
    buf = b""
    while time.monotonic() < deadline:
        tls.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = tls.recv(65536)
        if not chunk:
            break
        buf += chunk
        for msg in re.split(rb"\r\n\r\n", buf):
            if msg.startswith(b"SIP/2.0 %d" % status):
                return msg.decode(errors="replace")
    raise AssertionError(f"no {status} in {buf!r}")


def test_a_stalled_tls_peer_does_not_stall_other_calls(sip_server):
    p = sip_server.provision()
    ctx = ssl.create_default_context(cafile=str(sip_server.ca_pem))
    ctx.check_hostname = False
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    raw.bind(("127.0.0.1", 0))
    raw.settimeout(10)
    raw.connect(("127.0.0.1", sip_server.tls_port))
    tls = ctx.wrap_socket(raw)
    local_port = tls.getsockname()[1]
    call_id = secrets.token_hex(8)
    invite = (
        f"INVITE sip:+17035550122@{p.host};transport=tls;X-chime-join-token={p.token} SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS 127.0.0.1:{local_port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{CALLER}@127.0.0.1>;tag=pbx1\r\n"
        f"To: <sip:+17035550122@{p.host}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:pbx@127.0.0.1:{local_port};transport=tls>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP)}\r\n\r\n{SDP}"
    )
    tls.sendall(invite.encode())
    ok = read_response(tls, 200, time.monotonic() + 10)
    to = re.search(r"(?im)^To:\s*(.+)$", ok).group(1).strip()
    ack = (
        f"ACK sip:+17035550122@{p.host};transport=tls SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS 127.0.0.1:{local_port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{CALLER}@127.0.0.1>;tag=pbx1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    )
    tls.sendall(ack.encode())
    time.sleep(0.3)
    tls.close()
    # The staller takes the caller's address: TCP connects complete in the kernel's
    # backlog, TLS never starts.
    staller = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    staller.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    staller.bind(("127.0.0.1", local_port))
    staller.listen(16)

    # The server's BYE goes to the staller.
    sip_server.client("chime-sdk-meetings").delete_attendee(
        MeetingId=p.meeting_id, AttendeeId=p.attendee_id
    )
    deadline = time.monotonic() + 5
    staller.settimeout(5)
    try:
        conn, _ = staller.accept()  # the server's TLS connection attempt arrived
    except TimeoutError:
        raise AssertionError(sip_server.log()[-3000:])
    assert time.monotonic() < deadline

    # Meanwhile an unrelated OPTIONS over UDP from another address is answered.
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.6", 0))
    port = udp.getsockname()[1]
    options = (
        f"OPTIONS sip:{p.host} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.6:{port};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@127.0.0.6>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{p.host}>\r\n"
        f"Call-ID: {secrets.token_hex(8)}\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    # Sent as a UDP client does (RFC 3261 §17.1.2.2, Timer E from 500 ms): the server's
    # reflection guard holds an answer larger than a first request from an unverified
    # source until the request comes again.
    sent = time.monotonic()
    answer = b""
    while not answer and time.monotonic() - sent < 8:
        udp.sendto(options.encode(), ("127.0.0.1", sip_server.sip_port))
        udp.settimeout(0.5)
        try:
            answer, _ = udp.recvfrom(65536)
        except TimeoutError:
            pass
    waited = time.monotonic() - sent
    assert answer.startswith(b"SIP/2.0 "), answer
    # The stalled handshake lasts seconds (the per-message deadline is 5 s); the OPTIONS
    # must not wait for it. 2 s is a bound a loaded CI machine keeps with a wide margin.
    assert waited < 2.0, f"OPTIONS answered after {waited:.1f} s while a TLS peer stalled"
    conn.close()
    staller.close()
    udp.close()
