#!/usr/bin/env python3
"""Mouth-to-ear delay the server adds (issues 5 and 7): two callers join one meeting over UDP
with plain RTP (PCMU); SIPp does the signalling, this script does the media on the ports the
offers name. Caller A sends silence with a 1 kHz burst every 500 ms; the delay of each burst is
the time from sending A's first loud packet to receiving the first loud packet at B. The
server's path: jitter buffer (adaptive, 40 ms minimum by default), one 20 ms mixer tick, encode.

    python3 bench/media/latency.py [--bin target/release/voice-connector] [--bursts 20]

Loopback only, bounded in count and time. Prints one line per burst and a summary."""

from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from vctest.ports import free_udp_port, free_udp_tcp_port  # noqa: E402

SCENARIO = ROOT / "tests" / "sip" / "scenarios" / "join_uac.xml"


def ulaw(sample: int) -> int:
    """ITU-T G.711 µ-law encoding of one 16-bit sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), clip) + bias
    exp = 7
    mask = 0x4000
    while exp > 0 and not sample & mask:
        exp -= 1
        mask >>= 1
    mant = (sample >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def ulaw_decode(b: int) -> int:
    b = ~b & 0xFF
    sign, exp, mant = b & 0x80, (b >> 4) & 7, b & 0x0F
    mag = ((mant << 3) + 0x84) << exp
    return -(mag - 0x84) if sign else mag - 0x84


SILENCE = bytes([ulaw(0)] * 160)


def tone_frame(n: int) -> bytes:
    return bytes(ulaw(int(12000 * math.sin(2 * math.pi * 1000 * (n * 160 + i) / 8000))) for i in range(160))


def rms(payload: bytes) -> float:
    return math.sqrt(sum(ulaw_decode(b) ** 2 for b in payload) / max(1, len(payload)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("VC_BIN", str(ROOT / "target" / "release" / "voice-connector")))
    ap.add_argument("--bursts", type=int, default=20)
    ap.add_argument("--json", help="append a result row (bench/lib/results.py) to this file")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vc-latency-"))
    http, sip = free_udp_tcp_port(), free_udp_tcp_port()
    server = subprocess.Popen(
        [args.bin, "serve", "--data-dir", str(work / "data"), "--http", f"127.0.0.1:{http}",
         "--sip", f"127.0.0.1:{sip}", "--sip-tls", "127.0.0.1:0", "--rtp-ports", "42000-42999"],
        stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "wb"))
    try:
        deadline = time.monotonic() + 20
        cred = work / "data" / "api-credentials"
        while not cred.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        key, secret = cred.read_text().split()[:2]
        kw = dict(endpoint_url=f"http://127.0.0.1:{http}", region_name="us-east-1",
                  aws_access_key_id=key, aws_secret_access_key=secret)
        voice, meetings = boto3.client("chime-sdk-voice", **kw), boto3.client("chime-sdk-meetings", **kw)
        vc = voice.create_voice_connector(Name="latency", RequireEncryption=False)["VoiceConnector"]
        voice.put_voice_connector_termination(VoiceConnectorId=vc["VoiceConnectorId"], Termination={
            "CidrAllowedList": ["127.0.0.1/32"], "CallingRegions": ["US"], "CpsLimit": 10})
        m = meetings.create_meeting(ClientRequestToken="latency", MediaRegion="us-east-1", ExternalMeetingId="latency")
        mid = m["Meeting"]["MeetingId"]
        tokens = [meetings.create_attendee(MeetingId=mid, ExternalUserId=f"caller-{i}")["Attendee"]["JoinToken"]
                  for i in range(2)]

        socks = []
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            socks.append(s)
        call_ms = int((args.bursts * 0.5 + 4) * 1000)
        sipps = [subprocess.Popen(
            ["sipp", "-sf", str(SCENARIO), "-key", "vc_host", vc["OutboundHostName"], "-key", "token", tok,
             "-key", "from_user", "+12065550100", "-key", "rtp_port", str(s.getsockname()[1]),
             "-i", "127.0.0.1", "-p", str(free_udp_port()), "-m", "1", "-d", str(call_ms), "-nostdin",
             "-timeout", f"{call_ms // 1000 + 20}s", f"127.0.0.1:{sip}"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for tok, s in zip(tokens, socks)]

        # Learn the server's RTP address of each leg from what it sends (symmetric RTP).
        remote = [None, None]
        deadline = time.monotonic() + 10
        while None in remote and time.monotonic() < deadline:
            for i, s in enumerate(socks):
                try:
                    _, addr = s.recvfrom(2048)
                    remote[i] = addr
                except BlockingIOError:
                    pass
            time.sleep(0.005)
        if None in remote:
            print("the server sent no RTP; see", work / "server.log", file=sys.stderr)
            return 1

        a, b = socks
        seq, ts, ssrc = 1, 0, 0x4C41540A
        start = time.monotonic()
        n = 0
        sent_at: list[float] = []   # when each burst's first loud packet left A
        heard_at: list[float] = []  # when B first received it
        while n < (args.bursts * 25 + 100):
            due = start + n * 0.020
            while True:
                now = time.monotonic()
                # Drain what arrived at B and A (A's own return is ignored).
                for s in socks:
                    while True:
                        try:
                            data, _ = s.recvfrom(2048)
                        except BlockingIOError:
                            break
                        if s is b and len(data) > 12 and sent_at and len(heard_at) < len(sent_at):
                            if rms(data[12:]) > 2000:
                                heard_at.append(now)
                if now >= due:
                    break
                time.sleep(0.0005)
            burst = n >= 100 and (n - 100) % 25 == 0 and len(sent_at) < args.bursts
            loud = burst or (n >= 100 and (n - 100) % 25 < 5)
            payload = tone_frame(n) if loud else SILENCE
            a.sendto(struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload, remote[0])
            if burst:
                sent_at.append(time.monotonic())
            b.sendto(struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc + 1) + SILENCE, remote[1])
            seq, ts, n = seq + 1, ts + 160, n + 1
        delays = [(h - s) * 1000 for s, h in zip(sent_at, heard_at)]
        for i, d in enumerate(delays):
            print(f"burst {i:2d}: {d:6.1f} ms")
        if not delays:
            print("no burst was heard at B", file=sys.stderr)
            return 1
        print(f"mouth-to-ear added by the server over loopback, {len(delays)} bursts: "
              f"median {statistics.median(delays):.1f} ms, min {min(delays):.1f}, max {max(delays):.1f}")
        if args.json:
            sys.path.insert(0, str(ROOT / "bench" / "lib"))
            import results

            results.emit(args.json, section="Meeting media latency",
                         figure="mouth-to-ear delay the server adds (PCMU, loopback, no network jitter)",
                         unit="ms", value=statistics.median(delays), value_min=min(delays),
                         value_max=max(delays), higher_is_better=False, goal="<= 40",
                         note=f"median of {len(delays)} bursts per run",
                         command=f"bench/media/latency.py --bursts {args.bursts}")
        for p in sipps:
            p.wait(timeout=call_ms / 1000 + 30)
        return 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
