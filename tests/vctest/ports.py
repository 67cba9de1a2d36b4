"""Free loopback ports for servers and clients under test (bound and released at once, so
another process could still take one: callers retry or pick ranges where that is unlikely)."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIPp listens on both with -t t1)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free for both UDP and TCP")


def _all_free(ports: list[tuple[int, int]]) -> bool:
    """Whether every (port, socket kind) can be bound on 127.0.0.1 right now."""
    socks = []
    try:
        for port, kind in ports:
            sock = socket.socket(socket.AF_INET, kind)
            socks.append(sock)
            sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for sock in socks:
            sock.close()


def _udp(low: int, size: int) -> list[tuple[int, int]]:
    return [(p, socket.SOCK_DGRAM) for p in range(low, low + size)]


def free_rtp_range(size: int = 200) -> tuple[int, int]:
    """An even-aligned UDP port range of `size` ports that is free right now, so parallel
    test runs of other suites (which may use fixed ranges) do not collide with ours.

    Taken below the kernel's ephemeral range (and below 30000, where other suites pick
    theirs), so that no socket bound to port 0 (SIPp, the RTP peers, other programs) can land
    in it while the server runs: a port the server finds taken is then its own doing."""
    rng = random.Random()
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    top = min(ephemeral_low, 30000)
    lowest = 10000 if top - size > 10000 else 30000
    highest = top - size if lowest == 10000 else 60000 - size
    for _ in range(50):
        low = rng.randrange(lowest, highest, 2)
        if _all_free(_udp(low, size)):
            return low, low + size - 1
    raise RuntimeError("no free RTP port range")


def free_baresip_sip_port() -> int:
    """A port for baresip's sip_listen: it binds UDP and TCP there and TLS on the port above."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        tcp = socket.SOCK_STREAM
        if port < 65534 and _all_free([(port, socket.SOCK_DGRAM), (port, tcp), (port + 1, tcp)]):
            return port
    raise RuntimeError("no free port pair for baresip")


def free_udp_range(size: int) -> tuple[int, int]:
    """An even-aligned range of `size` UDP ports free right now (e.g. a client's RTP ports)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            low = s.getsockname()[1] & ~1
        if low + size <= 65535 and _all_free(_udp(low, size)):
            return low, low + size - 1
    raise RuntimeError("no free UDP range")
