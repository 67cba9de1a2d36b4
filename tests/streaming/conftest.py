"""Fixtures for the live call stream tests (issue 19): one real `voice-connector serve` for
the session, a Python `websockets` server as the stream's consumer, an HTTP endpoint that
collects the streaming status events, and pjsua2 phones (tests/pjsua2/caller.py, run by
the pjsua2 suite's runner).

Every fixture here is named `st_*`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vctest.server import serve

_spec = importlib.util.spec_from_file_location(
    "pjsua2_fixtures", Path(__file__).resolve().parent.parent / "pjsua2" / "conftest.py")
pj = importlib.util.module_from_spec(_spec)
sys.modules["pjsua2_fixtures"] = pj
_spec.loader.exec_module(pj)

# The openssl-made test certificates of the SIP media application tests (tests/sma/flowlab.py).
_spec = importlib.util.spec_from_file_location(
    "flowlab_for_streaming", Path(__file__).resolve().parent.parent / "sma" / "flowlab.py")
flowlab = importlib.util.module_from_spec(_spec)
sys.modules["flowlab_for_streaming"] = flowlab
_spec.loader.exec_module(flowlab)


@pytest.fixture(scope="session")
def st_cert(tmp_path_factory):
    """A certificate for 127.0.0.1 from a test CA that the server trusts (--sma-ca-file):
    the wss:// consumer's and the https notify endpoint's."""
    return flowlab.Certificate(tmp_path_factory.mktemp("st-certs"), "stream", "IP:127.0.0.1,DNS:localhost")


@pytest.fixture(scope="session")
def st_server(tmp_path_factory, st_cert):
    try:
        import pjsua2  # noqa: F401
        import websockets  # noqa: F401
    except ImportError as e:
        pytest.fail(f"{e.name} is not installed; run scripts/setup-deps")
    # Retained audio is swept every second (tests/streaming/test_retention.py).
    yield from serve(tmp_path_factory.mktemp("vc-streaming"),
                     ("--stream-retention-sweep-secs", "1", "--sma-ca-file", str(st_cert.ca)),
                     label="st", rtp_size=60)


@pytest.fixture(scope="session")
def st_tones(tmp_path_factory) -> dict[int, Path]:
    """Sine WAVs (16-bit mono 16 kHz, -6 dBFS, 20 s) made with sox, keyed by frequency."""
    d = tmp_path_factory.mktemp("st-tones")
    out = {}
    for hz in (440, 1000):
        path = d / f"tone{hz}.wav"
        subprocess.run(["sox", "-n", "-r", "16000", "-b", "16", "-c", "1", str(path), "synth", "20",
                        "sine", str(hz), "vol", "0.5"], check=True, timeout=30)
        out[hz] = path
    return out


@pytest.fixture
def st_callers(st_server, tmp_path):
    return pj.PjCallers(st_server, tmp_path)


def sine(hz: float, rate: int, seconds: float, amplitude: float = 0.5) -> list[int]:
    import math
    n = int(rate * seconds)
    return [int(amplitude * 32767 * math.sin(2 * math.pi * hz * i / rate)) for i in range(n)]


def level_db(samples: list[int], rate: int, hz: float) -> float:
    """Mean level of `hz` over 100 ms blocks, dB relative to a full-scale sine."""
    import math
    block = rate // 10
    blocks = [samples[i:i + block] for i in range(0, len(samples) - block + 1, block)]
    if not blocks:
        return -200.0
    ref = 0.25 * 32768.0 * 32768.0
    mean = sum(pj.goertzel_power(b, rate, hz) / ref for b in blocks) / len(blocks)
    return 10.0 * math.log10(mean) if mean > 0 else -200.0


@dataclass
class Stream:
    """What one stream's socket brought."""

    start: dict | None = None
    stop: dict | None = None
    tracks: dict[int, list[int]] = field(default_factory=lambda: {0: [], 1: []})
    frames: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0})
    other: list = field(default_factory=list)


class Sink:
    """A `websockets` server on 127.0.0.1 that records every stream and, when `talk_back`
    is set, answers a start message with that coroutine (given the socket and the start).
    With `stall` it reads nothing for that many seconds after the start message (a small
    receive buffer and message queue, so the server's writes back up at once). With `tls`
    (a flowlab Certificate) it serves wss://."""

    def __init__(self, talk_back=None, stall: float = 0.0, tls=None):
        self.talk_back = talk_back
        self.stall = stall
        self.tls = tls
        self.streams: list[Stream] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Future | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        from websockets.asyncio.server import serve as ws_serve
        self._stop = self._loop.create_future()
        sock = socket.socket()
        if self.stall:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind(("127.0.0.1", 0))
        queue = 1 if self.stall else 16
        async with ws_serve(self._handle, sock=sock, max_size=None, max_queue=queue,
                            ssl=server_context(self.tls)) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop

    async def _handle(self, ws) -> None:
        s = Stream()
        self.streams.append(s)
        tasks = []
        try:
            async for msg in ws:
                if isinstance(msg, str):
                    doc = json.loads(msg)
                    if doc.get("event") == "start":
                        s.start = doc
                        if self.talk_back is not None:
                            tasks.append(asyncio.ensure_future(self.talk_back(ws, doc)))
                        if self.stall:
                            await asyncio.sleep(self.stall)
                    elif doc.get("event") == "stop":
                        s.stop = doc
                    else:
                        s.other.append(doc)
                else:
                    track = msg[0]
                    samples = array("h", msg[1:])
                    samples.byteswap()  # network byte order on the wire
                    s.tracks.setdefault(track, []).extend(samples)
                    s.frames[track] = s.frames.get(track, 0) + 1
        except Exception as e:  # a broken socket ends the stream; the test looks at what came
            s.other.append({"error": repr(e)})
        for t in tasks:
            t.cancel()

    def __enter__(self) -> "Sink":
        self._thread.start()
        assert self._ready.wait(10), "the sink did not start"
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/calls"

    def wait_stop(self, timeout: float = 15.0) -> Stream:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [s for s in self.streams if s.stop is not None]
            if done:
                return done[0]
            time.sleep(0.05)
        pytest.fail(f"no stop message within {timeout} s: {[(s.start, s.frames, s.other) for s in self.streams]}")


class Events:
    """An HTTP endpoint on 127.0.0.1 that keeps every JSON body POSTed to it; https with
    `tls` (a flowlab Certificate)."""

    def __init__(self, tls=None):
        self.tls = tls
        events = self.events = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                events.append(json.loads(self.rfile.read(n)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = server_context(tls).wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "Events":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.httpd.server_address[1]}/events"

    def statuses(self) -> list[str]:
        return [e["detail"]["streamingStatus"] for e in self.events]

    def wait_for(self, status: str, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if e["detail"]["streamingStatus"] == status:
                    return e
            time.sleep(0.05)
        pytest.fail(f"no {status} event within {timeout} s: {self.events}")


def server_context(cert):
    """A TLS server context serving `cert` (a flowlab Certificate), or None."""
    if cert is None:
        return None
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert.cert), str(cert.key))
    return context


def refused_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def st_tools():
    return type("Tools", (), {
        "Sink": Sink, "Events": Events, "sine": staticmethod(sine), "level_db": staticmethod(level_db),
        "refused_port": staticmethod(refused_port), "tone_levels": staticmethod(pj.tone_levels),
        "read_wav": staticmethod(pj.read_wav), "Certificate": flowlab.Certificate,
    })
