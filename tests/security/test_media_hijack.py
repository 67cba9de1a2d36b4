"""Media hijack on a connector without encryption (GitHub issue 14, finding H2).

A victim joins a meeting with SIPp (join_uac.xml, plain RTP/AVP from 127.0.0.1) and an RTP
peer that answers the server's stream. A third party on 127.0.0.3 that knows the victim's
server port sprays it for ATTACK_S seconds with valid RTP headers in the answered payload
type, under its own SSRC and under the victim's (with the victim's next sequence numbers),
plus RTCP receiver reports at the RTCP port. Before the fix the server answered the last
packet's source: the attacker took the victim's audio.

Asserted, on a server as shipped and on one run with --media-latch (where the victim's
first packet latched before the attack):
- the attacker receives nothing from the server, RTP or RTCP;
- the victim receives every packet the call record says the server sent (PacketsSent),
  with consecutive sequence numbers, and every packet the victim sent was taken;
- the call record's Media.ForeignSourcePackets and the vc_rtp_foreign_source_total metric
  count the attacker's packets.
"""

from __future__ import annotations

import random
import re
import socket
import struct
import threading
import time

import pytest

from vctest import sip_suite
from vctest.server import MeetingServer, serve

CALLER = "+12065550100"
#: How long the victim's call lasts (SIPp -d, ms); the attack fits well inside it.
CALL_MS = 6000
#: The attack: how long, how many packets per second, at most how many in all.
ATTACK_S = 3.0
ATTACK_PPS = 150
MAX_ATTACK_PACKETS = 600
#: The third party's address (all of 127.0.0.0/8 is the loopback interface on Linux).
ATTACKER_IP = "127.0.0.3"


SIP = sip_suite.helpers()


@pytest.fixture(scope="module")
def hijack_server(tmp_path_factory) -> MeetingServer:
    """A server as shipped (no --media-latch), for this module's calls alone."""
    yield from serve(tmp_path_factory.mktemp("vc-hijack"), label="sec")


@pytest.fixture(scope="module")
def hijack_latch_server(tmp_path_factory) -> MeetingServer:
    """A server run with --media-latch (symmetric-RTP latching for PBXs behind NAT)."""
    yield from serve(tmp_path_factory.mktemp("vc-hijack-latch"), ("--media-latch",), label="sec")


class SentLog:
    """Stands in for an RtpPeer's socket and keeps the RTP header of each packet it sends,
    so the test knows the victim's SSRC and sequence numbers (as an on-path attacker
    would)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.headers: list[bytes] = []

    def sendto(self, data: bytes, addr) -> int:
        # Logged once sent: on loopback the datagram is then in the server's socket queue,
        # so a spray that starts on seeing it comes after it (the latch test's premise).
        n = self.sock.sendto(data, addr)
        self.headers.append(bytes(data[:12]))
        return n

    def __getattr__(self, name):
        return getattr(self.sock, name)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def spray(server_port: int, victim_header: bytes, pt: int) -> tuple[int, list]:
    """Sends RTP (alternately under the attacker's SSRC and the victim's) to the server's
    RTP port and RTCP receiver reports to its RTCP port, from ATTACKER_IP, for ATTACK_S
    seconds at ATTACK_PPS (at most MAX_ATTACK_PACKETS), listening all along and 0.5 s
    after. Returns (packets sent, [(bytes, source) received])."""
    _, _, v_seq, v_ts, v_ssrc = struct.unpack("!BBHII", victim_header)
    own_ssrc = random.randrange(1, 1 << 32)
    streams = [[own_ssrc, random.randrange(1 << 16), random.randrange(1 << 32)],
               [v_ssrc, (v_seq + 1) & 0xFFFF, (v_ts + 160) & 0xFFFFFFFF]]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ATTACKER_IP, 0))
    sock.setblocking(False)
    received: list = []
    sent = 0

    def drain() -> None:
        while True:
            try:
                received.append(sock.recvfrom(4096))
            except BlockingIOError:
                return

    try:
        start = time.monotonic()
        while sent < MAX_ATTACK_PACKETS and time.monotonic() - start < ATTACK_S:
            if sent % 10 == 9:
                # RTCP RR (RFC 3550 §6.4.2) with one report block, about the victim's stream.
                rr = struct.pack("!BBHII", 0x81, 201, 7, own_ssrc, v_ssrc) + bytes(20)
                sock.sendto(rr, ("127.0.0.1", server_port + 1))
            else:
                s = streams[sent % 2]
                header = struct.pack("!BBHII", 0x80, pt, s[1], s[2], s[0])
                s[1], s[2] = (s[1] + 1) & 0xFFFF, (s[2] + 160) & 0xFFFFFFFF
                sock.sendto(header + bytes([0x55]) * 160, ("127.0.0.1", server_port))
            sent += 1
            drain()
            next_at = start + sent / ATTACK_PPS
            time.sleep(max(0.0, next_at - time.monotonic()))
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            drain()
            time.sleep(0.02)
    finally:
        sock.close()
    return sent, received


@pytest.mark.parametrize("latch", [False, True], ids=["as-shipped", "media-latch"])
def test_a_third_party_cannot_take_a_plain_rtp_call(request, latch, tmp_path):
    server = request.getfixturevalue("hijack_latch_server" if latch else "hijack_server")
    assert server.wait_media_idle() == (0.0, set()), "the module's server is idle"
    p = server.provision()
    victim = SIP.RtpPeer()
    log = SentLog(victim.sock)
    victim.sock = log
    outcome: dict = {}
    keys = {"vc_host": p.host, "token": p.token, "from_user": CALLER, "rtp_port": str(victim.port)}

    def call() -> None:
        outcome["sipp"] = SIP.run_sipp(server, "join_uac.xml", keys, tmp_path, extra=["-d", str(CALL_MS)],
                                           timeout_s=30)

    with victim:
        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        try:
            # The victim's server port: the pair the server holds in its RTP range.
            held = wait_for(lambda: server.media_state()[1], 10, "the call's RTP port pair")
            server_port = min(held)
            # The victim answers the server's first packet: its SSRC is known from then on.
            wait_for(lambda: log.headers, 10, "the victim's first RTP packet")
            sent, received = spray(server_port, log.headers[-1], pt=0)
        finally:
            caller.join(timeout=60)
        result = outcome.get("sipp")
        assert result is not None, "SIPp did not finish"
        assert result.returncode == 0, result.describe()
        assert result.counter("SuccessfulCall") == 1, result.describe()
        rec = server.call_ended(p.meeting_id)
        time.sleep(0.3)  # the last datagrams reach the victim's socket
        rtp = victim.rtp()
        victim_sent = len(log.headers)

    answer = re.search(r"answer port=(\d+) pt=(\d+)", result.log)
    assert answer and int(answer.group(1)) == server_port and answer.group(2) == "0", result.log

    assert received == [], f"the third party got {len(received)} packets, e.g. {received[:3]}"

    media = rec["Media"]
    assert rtp, "no RTP reached the victim"
    assert {pkt["from"] for pkt in rtp} == {("127.0.0.1", server_port)}
    seqs = [pkt["seq"] for pkt in rtp]
    gaps = [(a, b) for a, b in zip(seqs, seqs[1:]) if (b - a) & 0xFFFF != 1]
    assert gaps == [], f"sequence gaps at the victim (packets sent elsewhere): {gaps[:10]}"
    assert 0 <= media["PacketsSent"] - len(rtp) <= 2, (media, len(rtp))
    # Everything the victim sent was taken (the last one may cross the BYE).
    assert victim_sent - 2 <= media["PacketsReceived"] <= victim_sent, (media, victim_sent)
    assert media["InvalidPackets"] == 0, media

    foreign = media.get("ForeignSourcePackets")
    assert foreign is not None, rec
    assert sent // 2 <= foreign <= sent, (foreign, sent)
    assert server.metrics().get("vc_rtp_foreign_source_total", 0) >= foreign
