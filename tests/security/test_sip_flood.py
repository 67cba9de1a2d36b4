"""H3 (issue 14): unauthenticated UDP must not fill the SIP transaction table.

A bounded flood of small requests (FLOOD datagrams in at most FLOOD_SECONDS, half INVITEs to
a host that is no voice connector, half OPTIONS) from 127.0.0.2 and 127.0.0.3 against the
real binary with its default settings, while the server's VmRSS (/proc/<pid>/status) is
sampled. Asserted: its RSS grows by at most RSS_GROWTH_MIB (48 MiB; measured: 36 MiB, from 20 to 56 MiB) over the idle server and stays
under RSS_BOUND_MIB, and an honest caller from 127.0.0.1 still joins a meeting (SIPp
join_uac.xml, as in tests/sip/test_sip_sipp.py) right after the flood, while the flood's
transactions (32 s each) are still live.

Why the bound holds: each source's budget (16,384 transactions / 16 MiB by default, an IPv6
source counted per /64) is well below the global caps (100,000 / 256 MiB), and a server
transaction keeps only the key and its last response once answered (the request, body
included, is dropped), about 1 KiB.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import sys
import time
from pathlib import Path

import pytest

from vctest.rss import RssSampler, vm_rss_kib
from vctest.server import CALLER, serve

#: Datagrams in the flood, over both attacking sources, and the most seconds it may take.
FLOOD = 20_000
FLOOD_SECONDS = 20.0
ATTACKERS = ("127.0.0.2", "127.0.0.3")
#: The stated bounds: growth of VmRSS over the idle server, and VmRSS at any time.
RSS_GROWTH_MIB = 48
RSS_BOUND_MIB = 128

ROOT = Path(__file__).resolve().parents[2]


def _sip_helpers():
    """tests/sip/conftest.py as a module of its own (RtpPeer, run_sipp): `import conftest`
    would find tests/conftest.py."""
    spec = importlib.util.spec_from_file_location("vc_sip_helpers_for_security", ROOT / "tests/sip/conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


SIP = _sip_helpers()


@pytest.fixture(scope="module")
def flood_server(tmp_path_factory):
    """A server of its own with the default budgets (the flood must not touch other tests)."""
    yield from serve(tmp_path_factory.mktemp("vc-flood"), label="sec")


def flood_datagram(i: int, src: str, port: int) -> bytes:
    """A small unauthenticated request: an INVITE without SDP to a host that is no voice
    connector (the expensive kind: admission runs for it), or an OPTIONS."""
    branch = f"z9hG4bKflood{src.replace('.', '')}x{i:07d}"
    host = "nosuchconnector0000000.voiceconnector.localhost"
    method = "INVITE" if i % 2 == 0 else "OPTIONS"
    return (
        f"{method} sip:+17035550122@{host} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src}:{port};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{CALLER}@{src}>;tag=f{i}\r\n"
        f"To: <sip:+17035550122@{host}>\r\n"
        f"Call-ID: flood-{i}@{src}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:{CALLER}@{src}:{port}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def run_flood(sip_port: int) -> tuple[int, int, float]:
    """Sends FLOOD datagrams round robin from ATTACKERS, paced to finish within
    FLOOD_SECONDS; returns (datagrams sent, bytes sent, seconds taken)."""
    socks = []
    for src in ATTACKERS:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        s.bind((src, 0))
        s.setblocking(False)
        socks.append(s)
    sent = nbytes = 0
    start = time.monotonic()
    # 1,250 datagrams/s: 20,000 in 16 s, under FLOOD_SECONDS with room to spare.
    per_second = FLOOD / (FLOOD_SECONDS * 0.8)
    try:
        for i in range(FLOOD):
            s = socks[i % len(socks)]
            src, port = s.getsockname()
            data = flood_datagram(i, src, port)
            try:
                s.sendto(data, ("127.0.0.1", sip_port))
                sent += 1
                nbytes += len(data)
            except BlockingIOError:
                pass
            if i % 250 == 0:
                # Drop whatever came back (the attackers do not read it).
                for r in socks:
                    try:
                        while r.recv(65536):
                            pass
                    except BlockingIOError:
                        pass
                ahead = start + i / per_second - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            if time.monotonic() - start > FLOOD_SECONDS:
                break
    finally:
        for s in socks:
            s.close()
    return sent, nbytes, time.monotonic() - start


def test_flood_from_two_sources_keeps_memory_bounded_and_an_honest_caller_joins(flood_server, tmp_path):
    server = flood_server
    p = server.provision()  # connector allowing 127.0.0.1, meeting, attendee
    pid = server.proc.pid
    time.sleep(1.0)
    idle_kib = vm_rss_kib(pid)
    with RssSampler(pid) as rss:
        sent, nbytes, took = run_flood(server.sip_port)
        # Let the server work through what it queued.
        time.sleep(3.0)
        # The honest caller, while the flood's transactions are still live (32 s each).
        with SIP.RtpPeer() as rtp:
            keys = {"vc_host": p.host, "token": p.token, "from_user": CALLER, "rtp_port": str(rtp.port)}
            result = SIP.run_sipp(server, "join_uac.xml", keys, tmp_path, extra=["-d", "1000"], timeout_s=30)
    after_kib = vm_rss_kib(pid)
    report = (f"flood: {sent} datagrams ({nbytes} bytes) in {took:.1f} s from {ATTACKERS}; VmRSS idle "
              f"{idle_kib / 1024:.1f} MiB, peak {rss.peak_kib / 1024:.1f} MiB ({rss.samples} samples), "
              f"after {after_kib / 1024:.1f} MiB")
    print(report)
    assert sent >= 0.95 * FLOOD and took <= FLOOD_SECONDS + 1, report
    assert rss.samples > 10, report
    assert rss.peak_kib - idle_kib <= RSS_GROWTH_MIB * 1024, report
    assert rss.peak_kib <= RSS_BOUND_MIB * 1024, report

    assert result.returncode == 0, result.describe()
    assert result.counter("SuccessfulCall") == 1, result.describe()
    assert result.counter("FailedCall") == 0, result.describe()
    joined = server.wait_for_log(r"joined meeting [^\n]*meeting=" + re.escape(p.meeting_id) + r"[^\n]*")
    assert f"attendee={p.attendee_id}" in joined.group(0), joined.group(0)
    # The server is still there for everyone else.
    assert server.proc.poll() is None
    assert os.path.exists(f"/proc/{pid}/status")
