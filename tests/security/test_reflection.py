"""M1 (issue 14): the server must not amplify spoofable UDP toward a victim.

The probe of the review: a 339-byte INVITE to a host that is no voice connector brought
back 11 retransmitted 404s (6,127 bytes, 18x): RFC 3261 §17.2.1 Timer G resends a non-2xx
final response until the ACK, which a spoofed victim never sends. Now the transaction
layer's reflection guard sends an unverified UDP source no more bytes than it received for
the same exchange (no Timer G toward it; a response larger than the request waits for the
request's retransmission; stateless answers only when no larger than what they answer), and
rate-limits per source (token bucket).

Here, from 127.0.0.4 (a source the server has never seen answer anything), against the real
binary: INVITEs to an unknown host, OPTIONS to an unknown host and junk datagrams, each sent
once, and everything the server sends back to that source is captured for OBSERVE_S seconds
(Timer G's first retransmissions would come at 0.5, 1.5, 3.5 and 7.5 s). Asserted: bytes out /
bytes in <= 1, and no request is answered more than once. Then a caller that retransmits its
INVITE as RFC 3261 §17.1.1.2 Timer A does still gets its 404 (with the Warning), once per copy
at most.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections import Counter

import pytest

from vctest.server import CALLER, serve

SOURCE = "127.0.0.4"
UNKNOWN_HOST = "nosuchconnector0000000.voiceconnector.localhost"
#: Requests of each kind sent once, and how long replies are collected.
COUNT = 40
OBSERVE_S = 8.0


@pytest.fixture(scope="module")
def reflection_server(tmp_path_factory):
    yield from serve(tmp_path_factory.mktemp("vc-reflection"), label="sec")


def invite(port: int, branch: str, host: str = UNKNOWN_HOST) -> bytes:
    """A small INVITE without SDP, like the review's 339-byte probe."""
    return (
        f"INVITE sip:+17035550122@{host} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {SOURCE}:{port};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{CALLER}@{SOURCE}>;tag={branch[-8:]}\r\n"
        f"To: <sip:+17035550122@{host}>\r\n"
        f"Call-ID: {branch}@{SOURCE}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:{CALLER}@{SOURCE}:{port}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def options(port: int, branch: str) -> bytes:
    return (
        f"OPTIONS sip:{UNKNOWN_HOST} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {SOURCE}:{port};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{CALLER}@{SOURCE}>;tag={branch[-8:]}\r\n"
        f"To: <sip:{UNKNOWN_HOST}>\r\n"
        f"Call-ID: {branch}@{SOURCE}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def junk(i: int) -> bytes:
    """Requests the parser refuses (a CSeq method that is not the request's; a bad line)."""
    if i % 2:
        return (f"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKj{i}\r\nFrom: <sip:x@y>;tag=1\r\n"
                f"To: <sip:a@b>\r\nCall-ID: j{i}\r\nCSeq: 1 INVITE\r\n\r\n").encode()
    return f"GARBAGE {i} \x00\x01 not sip at all\r\n\r\n".encode()


def branch() -> str:
    return "z9hG4bK" + uuid.uuid4().hex


def collect(sock: socket.socket, until: float) -> list[bytes]:
    out = []
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return out
        sock.settimeout(left)
        try:
            out.append(sock.recv(65536))
        except socket.timeout:
            return out


def branch_of(reply: bytes) -> str | None:
    m = re.search(rb"branch=(z9hG4bK[0-9a-zA-Z]+)", reply)
    return m.group(1).decode() if m else None


def test_spoofable_requests_are_not_amplified(reflection_server):
    server = reflection_server
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((SOURCE, 0))
        port = sock.getsockname()[1]
        sent: dict[str, bytes] = {}
        datagrams = []
        for _ in range(COUNT):
            b = branch()
            sent[b] = invite(port, b)
            datagrams.append(sent[b])
            b = branch()
            sent[b] = options(port, b)
            datagrams.append(sent[b])
        datagrams += [junk(i) for i in range(COUNT)]
        bytes_in = 0
        start = time.monotonic()
        for d in datagrams:
            sock.sendto(d, ("127.0.0.1", server.sip_port))
            bytes_in += len(d)
            time.sleep(0.005)
        replies = collect(sock, start + OBSERVE_S)
    bytes_out = sum(map(len, replies))
    per_request = Counter(branch_of(r) for r in replies)
    statuses = Counter(r.split(b"\r\n", 1)[0].decode(errors="replace") for r in replies)
    report = (f"in: {len(datagrams)} datagrams, {bytes_in} bytes; out: {len(replies)} datagrams, "
              f"{bytes_out} bytes (ratio {bytes_out / bytes_in:.2f}); {dict(statuses)}")
    print(report)
    assert bytes_out <= bytes_in, report
    # Each request is answered at most once (a 100 Trying and one final at most): Timer G
    # would have sent a final 4 times in 8 s.
    assert all(n <= 2 for b, n in per_request.items() if b is not None), per_request
    finals = Counter(branch_of(r) for r in replies if not r.startswith(b"SIP/2.0 1"))
    assert all(n == 1 for b, n in finals.items() if b is not None), finals
    assert server.proc.poll() is None


def test_a_retransmitting_caller_still_gets_its_refusal(reflection_server):
    """RFC 3261 §17.1.1.2: an INVITE client retransmits (T1 = 0.5 s, doubling) until a
    final response; the server answers each copy from its transaction, within the credit."""
    server = reflection_server
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((SOURCE, 0))
        port = sock.getsockname()[1]
        b = branch()
        req = invite(port, b)
        replies: list[bytes] = []
        bytes_in = 0
        start = time.monotonic()
        for at in (0.0, 0.5, 1.5, 3.5):
            replies += collect(sock, start + at)
            if any(r.startswith(b"SIP/2.0 404") for r in replies):
                break
            sock.sendto(req, ("127.0.0.1", server.sip_port))
            bytes_in += len(req)
        replies += collect(sock, time.monotonic() + 1.0)
    final = [r for r in replies if r.startswith(b"SIP/2.0 404")]
    assert len(final) == 1, replies
    assert re.search(rb'Warning: 399 voice-connector "[^"]*not a voice connector', final[0]), final[0]
    assert branch_of(final[0]) == b
    assert sum(map(len, replies)) <= bytes_in, (len(replies), bytes_in)
