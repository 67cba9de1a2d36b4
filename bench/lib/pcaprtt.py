"""INVITE->200 response times from packet timestamps (GitHub issue 17).

SIPp's own -trace_rtt reads its clock once per scheduler loop in whole milliseconds, so its
response times move in ~4 ms steps under load and cannot show a 5 ms p99. Here dumpcap
(Debian tshark) captures the SIP packets between the load generator's ports and the
target's port on the loopback interface, with a BPF capture filter so only those packets
are copied, and the kernel's capture timestamps (µs, taken as each packet passes the
loopback device) give, per Call-ID, the first INVITE sent to the target and the first
200 for that INVITE the target sent back. Retransmissions do not count twice; a call whose
INVITE or 200 is missing from the capture is left out and counted.

Bounded: the capture runs for one step and is stopped by its own pid; the file is parsed
once, in one pass.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

from procs import stop

CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", re.I | re.M)
CSEQ = re.compile(rb"^cseq[ \t]*:[ \t]*\d+[ \t]+(\w+)", re.I | re.M)


class Capture:
    """dumpcap on `lo` for UDP between `target_port` and any of `peer_ports`."""

    def __init__(self, path: Path, target_port: int, peer_ports: list[int]):
        self.path, self.target_port, self.peer_ports = path, target_port, peer_ports
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if shutil.which("dumpcap") is None:
            raise RuntimeError("dumpcap is not installed (apt-get install tshark)")
        peers = " or ".join(f"port {p}" for p in self.peer_ports)
        filt = f"udp and port {self.target_port} and ({peers})"
        # -P: classic pcap; -B: a 64 MiB kernel buffer so bursts are not dropped.
        self.proc = subprocess.Popen(
            ["dumpcap", "-q", "-i", "lo", "-f", filt, "-P", "-B", "64", "-w", str(self.path)],
            stdout=subprocess.DEVNULL, stderr=open(self.path.with_suffix(".err"), "wb"),
            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (self.path.exists() and self.path.stat().st_size >= 24):
            if self.proc.poll() is not None:
                raise RuntimeError(f"dumpcap exited rc={self.proc.returncode}: "
                                   f"{self.path.with_suffix('.err').read_text(errors='replace')[-300:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        time.sleep(0.3)  # the last 200s are in flight
        stop(self.proc, "dumpcap")

    def response_times_ms(self) -> tuple[list[float], int]:
        return response_times_ms(self.path, self.target_port)


def packets(path: Path):
    """(timestamp s, src port, dst port, UDP payload) of each IPv4/UDP packet of a pcap file
    (Ethernet or Linux cooked link layer, µs or ns timestamps)."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        end = "<"
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        end = ">"
    else:
        raise ValueError(f"{path}: not a pcap file (magic {magic:#x})")
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    link = struct.unpack(end + "I", data[20:24])[0]
    l2 = {1: 14, 113: 16}.get(link)
    if l2 is None:
        raise ValueError(f"{path}: link type {link} not handled")
    off = 24
    rec = struct.Struct(end + "IIII")
    while off + 16 <= len(data):
        sec, frac, incl, _ = rec.unpack_from(data, off)
        off += 16
        pkt = data[off:off + incl]
        off += incl
        ip = pkt[l2:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        sport, dport = struct.unpack_from("!HH", ip, ihl)
        yield sec + frac / (1e9 if nano else 1e6), sport, dport, ip[ihl + 8:]


def response_times_ms(path: Path, target_port: int) -> tuple[list[float], int]:
    """INVITE->200 times (ms) per call, and how many INVITEs had no 200 in the capture."""
    invites: dict[bytes, float] = {}
    oks: dict[bytes, float] = {}
    for ts, sport, dport, payload in packets(path):
        head = payload[:12]
        if dport == target_port and head.startswith(b"INVITE "):
            m = CALL_ID.search(payload)
            if m:
                invites.setdefault(m.group(1), ts)
        elif sport == target_port and head.startswith(b"SIP/2.0 200"):
            c, m = CSEQ.search(payload), CALL_ID.search(payload)
            if c and m and c.group(1).upper() == b"INVITE":
                oks.setdefault(m.group(1), ts)
    times = [1000 * (oks[k] - t) for k, t in invites.items() if k in oks and oks[k] >= t]
    return times, len(invites) - len(times)
