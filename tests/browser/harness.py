"""Browser-attendee harness: headless Chromium runs the unmodified amazon-chime-sdk-js (npm)
in the test page of tests/browser/page, joins a meeting, and reports what it sees and
hears to a small HTTP server of this module, which a test asserts on.

    build_page()                                  # npm ci + esbuild, quick when built
    wav = tone_wav(tmp_path / "mic.wav", 1000)    # Chromium's fake microphone plays it
    with BrowserAttendee(tmp_path, join_info, fake_audio=wav) as browser:
        state = browser.wait(lambda s: s["phase"] == "started", 20, "the session started")

`join_info` is {"Meeting": <CreateMeeting response's Meeting>, "Attendee": <CreateAttendee
response's Attendee>}. The page's reports (see page/app.js for the fields) arrive several
times a second; `browser.state` is the latest (written to <tmp>/browser-state.json at
the end), `browser.logs` every log line so far (also written to <tmp>/browser-page.log),
and Chromium's own stderr is in <tmp>/browser-chromium.log.

Nothing here depends on pytest: a timeout raises `BrowserTimeout` (an AssertionError) whose
message carries the page's last state, its last log lines and Chromium's stderr tail.
Importable as `harness` from tests under tests/browser (pytest puts a test file's
directory on sys.path).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import uuid
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
PAGE_DIR = HERE / "page"
BUNDLE = PAGE_DIR / "dist" / "app.js"

#: Upper bound for `npm ci` + esbuild on a cold machine.
BUILD_TIMEOUT_S = 300.0
#: Upper bound for anything Chromium does at start or exit.
CHROMIUM_EXIT_TIMEOUT_S = 5.0

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserTimeout(AssertionError):
    """A wait on the page's reports ran out; the message says what the page last reported."""


def build_page() -> Path:
    """Runs tests/browser/build.sh (npm ci from package-lock.json, esbuild bundle) and
    returns the bundle's path."""
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed (Debian nodejs/npm); run scripts/setup-deps")
    proc = subprocess.run(
        ["bash", str(HERE / "build.sh")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if proc.returncode != 0 or not BUNDLE.is_file():
        raise RuntimeError(f"tests/browser/build.sh failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return BUNDLE


def find_chromium() -> str:
    """$CHROMIUM, else the first Chromium/Chrome on PATH."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("no Chromium found (Debian package chromium); run scripts/setup-deps")


# ---------------------------------------------------------------------------------------
# Trust


def nss_home(home: Path, ca_pem: Path) -> Path:
    """Makes `home` a $HOME whose NSS certificate store ($HOME/.pki/nssdb, the one Chromium
    on Linux reads) trusts `ca_pem` to identify web sites, with NSS's certutil (Debian
    libnss3-tools). Returns `home`, for `BrowserAttendee(home=...)`."""
    certutil = shutil.which("certutil")
    if certutil is None:
        raise RuntimeError("certutil is not installed (Debian libnss3-tools); run scripts/setup-deps")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    for args in (
        ["-N", "--empty-password"],
        ["-A", "-n", "voice-connector-dev-ca", "-t", "C,,", "-i", str(ca_pem)],
    ):
        subprocess.run([certutil, "-d", f"sql:{db}", *args], check=True, capture_output=True, timeout=30)
    return home


# ---------------------------------------------------------------------------------------
# Tones


def tone_wav(path: Path, hz: float, seconds: float = 10.0, rate: int = 48000, amplitude: float = 0.5) -> Path:
    """Writes a steady sine (16-bit mono PCM, `amplitude` of full scale: 0.5 is -6 dBFS).
    Chromium loops a fake-capture file, so a few seconds are enough; `seconds` is rounded to
    whole periods so the loop has no click."""
    periods = max(1, round(seconds * hz))
    n = round(periods * rate / hz)
    peak = amplitude * 32767.0
    frames = struct.pack(
        f"<{n}h", *(int(round(peak * math.sin(2.0 * math.pi * hz * i / rate))) for i in range(n))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def read_wav(path: Path) -> tuple[list[int], int]:
    """(16-bit samples of the first channel, sample rate)."""
    with wave.open(str(path), "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: {width * 8}-bit samples, expected 16")
    samples = struct.unpack(f"<{len(raw) // 2}h", raw[: len(raw) // 2 * 2])
    return list(samples[::channels]), rate


def goertzel_db(samples: list[int] | list[float], rate: int, hz: float, full_scale: float = 32768.0) -> float:
    """Level of `hz` in `samples` (Goertzel algorithm at exactly `hz`, Hann window) in dB
    relative to a full-scale sine."""
    n = len(samples)
    if n < 2:
        return -200.0
    w = 2.0 * math.pi * hz / rate
    coeff = 2.0 * math.cos(w)
    s1 = s2 = 0.0
    wsum = 0.0
    for i, x in enumerate(samples):
        win = 0.5 - 0.5 * math.cos(2.0 * math.pi * i / (n - 1))
        wsum += win
        s0 = x * win + coeff * s1 - s2
        s2, s1 = s1, s0
    power = max(s1 * s1 + s2 * s2 - coeff * s1 * s2, 0.0)
    amplitude = math.sqrt(power) / (wsum / 2.0) / full_scale
    return 20.0 * math.log10(amplitude) if amplitude > 0 else -200.0


def tone_blocks_in_wav(path: Path, hz: float, block_s: float = 0.1, present_db: float = -40.0) -> list[bool]:
    """Per `block_s` block of the recording, whether it carries `hz` above `present_db`."""
    samples, rate = read_wav(path)
    block = max(1, int(rate * block_s))
    return [goertzel_db(samples[i : i + block], rate, hz) > present_db for i in range(0, len(samples) - block + 1, block)]


def longest_false_run(flags: list[bool]) -> int:
    """The longest run of False in `flags`."""
    longest = run = 0
    for f in flags:
        run = 0 if f else run + 1
        longest = max(longest, run)
    return longest


def tone_presence(path: Path, freqs: tuple[float, ...], block_s: float = 0.1, present_db: float = -40.0) -> dict:
    """Per frequency, how many `block_s` blocks of the recording carry it above
    `present_db` (dB relative to a full-scale sine) and its highest level; plus the
    recording's length and block count."""
    samples, rate = read_wav(path)
    block = max(1, int(rate * block_s))
    blocks = [samples[i : i + block] for i in range(0, len(samples) - block + 1, block)]
    out: dict = {"seconds": len(samples) / rate if rate else 0.0, "blocks": len(blocks), "tones": {}}
    for hz in freqs:
        levels = [goertzel_db(b, rate, hz) for b in blocks]
        out["tones"][int(hz)] = {
            "present_blocks": sum(1 for db in levels if db > present_db),
            "max_db": max(levels) if levels else -200.0,
        }
    return out


# ---------------------------------------------------------------------------------------
# The page's HTTP server


class _PageServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class BrowserAttendee:
    """One headless Chromium running the test page against `join_info`.

    A context manager: entering starts the page's HTTP server on 127.0.0.1 and Chromium;
    leaving kills Chromium (its whole process group) and stops the server."""

    def __init__(
        self,
        work_dir: Path,
        join_info: dict,
        *,
        fake_audio: Path | None = None,
        tones: tuple[int, ...] = (440, 1000),
        report_interval_ms: int = 250,
        log_level: str = "INFO",
        name: str = "browser",
        extra_flags: tuple[str, ...] = (),
        home: Path | None = None,
        topics: tuple[str, ...] = (),
        coep: bool = False,
    ):
        self.work_dir = Path(work_dir)
        self.join_info = join_info
        self.fake_audio = fake_audio
        self.tones = tones
        self.report_interval_ms = report_interval_ms
        self.log_level = log_level
        self.name = name
        self.extra_flags = extra_flags
        #: $HOME for Chromium: its certificate store is $HOME/.pki/nssdb (see `nss_home`).
        self.home = home
        #: Data-message topics the page subscribes to.
        self.topics = topics
        #: Serve the page cross-origin isolated (COEP require-corp, COOP same-origin), as
        #: the SDK's demos are: every cross-origin answer it loads needs CORP or CORS.
        self.coep = coep
        self.page_log_path = self.work_dir / f"{name}-page.log"
        self.state_path = self.work_dir / f"{name}-state.json"
        self.chromium_log_path = self.work_dir / f"{name}-chromium.log"
        self.state: dict = {}
        self.logs: list[str] = []
        self.reports = 0
        self._commands: list[str] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server: _PageServer | None = None
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None
        self._profile: tempfile.TemporaryDirectory | None = None
        self._chromium_log = None
        self._page_log = None

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> "BrowserAttendee":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def page_url(self) -> str:
        tones = ",".join(str(t) for t in self.tones)
        return (
            f"{self.base_url}/?join=/join&report=/report&tones={tones}"
            f"&interval={self.report_interval_ms}&loglevel={self.log_level}"
            f"&topics={','.join(self.topics)}"
        )

    def start(self) -> None:
        if not BUNDLE.is_file():
            raise RuntimeError(f"{BUNDLE} is missing: call build_page() first")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._page_log = open(self.page_log_path, "a", encoding="utf-8")
        self._server = _PageServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"{self.name}-http", daemon=True)
        self._thread.start()
        self._profile = tempfile.TemporaryDirectory(prefix=f"{self.name}-profile-", dir=self.work_dir)
        flags = [
            "--headless=new",
            "--no-sandbox",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
            "--allow-loopback-in-peer-connection",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={self._profile.name}",
        ]
        if self.fake_audio is not None:
            flags.append(f"--use-file-for-fake-audio-capture={self.fake_audio}")
        flags += list(self.extra_flags)
        self._chromium_log = open(self.chromium_log_path, "ab")
        env = None if self.home is None else dict(os.environ, HOME=str(self.home))
        self._proc = subprocess.Popen(
            [find_chromium(), *flags, self.page_url],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._chromium_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def close(self) -> None:
        if self.state:
            with self._lock:
                self.state_path.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        if self._proc is not None and self._proc.poll() is None:
            # Chromium forks helpers (zygote, renderer, GPU, audio): end the whole group.
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self._proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self._proc.wait(timeout=CHROMIUM_EXIT_TIMEOUT_S)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)  # helpers left behind, if any
            except (ProcessLookupError, PermissionError):
                pass
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for f in (self._chromium_log, self._page_log):
            if f is not None:
                f.close()
        self._chromium_log = self._page_log = None
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- the page's requests ----------------------------------------------------------------

    def _handler_class(self):
        harness = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # quiet: the page logs what matters
                pass

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                if harness.coep:
                    self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
                    self.send_header("Cross-Origin-Opener-Policy", "same-origin")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                if path == "/":
                    self._send(200, (PAGE_DIR / "index.html").read_bytes(), "text/html; charset=utf-8")
                elif path == "/dist/app.js":
                    self._send(200, BUNDLE.read_bytes(), "text/javascript; charset=utf-8")
                elif path == "/join":
                    body = json.dumps(harness.join_info, default=str).encode()
                    self._send(200, body, "application/json")
                elif path == "/favicon.ico":
                    self._send(204, b"", "image/x-icon")
                else:
                    self._send(404, b"not found", "text/plain")

            def do_POST(self):
                path = self.path.split("?", 1)[0]
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if 0 < length <= 16 * 1024 * 1024 else b""
                if path != "/report":
                    self._send(404, b"not found", "text/plain")
                    return
                try:
                    msg = json.loads(body)
                except ValueError:
                    self._send(400, b"bad json", "text/plain")
                    return
                commands = harness._on_report(msg)
                self._send(200, json.dumps({"commands": commands}).encode(), "application/json")

        return Handler

    def _on_report(self, msg: dict) -> list[str]:
        logs = [str(line) for line in msg.get("logs") or []]
        with self._changed:
            state = msg.get("state")
            if isinstance(state, dict) and state.get("seq", 0) >= self.state.get("seq", 0):
                self.state = state
            self.logs.extend(logs)
            self.reports += 1
            commands, self._commands = self._commands, []
            self._changed.notify_all()
        if self._page_log is not None and logs:
            self._page_log.write("\n".join(logs) + "\n")
            self._page_log.flush()
        return commands

    # -- what tests call --------------------------------------------------------------------

    def command(self, name: str) -> None:
        """Queues a command for the page ("mute", "unmute", "stop", "camera-on",
        "camera-off", "send:<topic>:<text>", "burst:<topic>:<n>", "unload": the page goes),
        carried out at its next report."""
        with self._lock:
            self._commands.append(name)

    def wait(self, predicate: Callable[[dict], object], timeout: float, what: str) -> dict:
        """Waits until `predicate(state)` is truthy for a report of the page; returns that
        state. Raises BrowserTimeout after `timeout` seconds or if Chromium exits."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                state = self.state
                if state:
                    try:
                        if predicate(state):
                            return state
                    except (KeyError, TypeError, ValueError):
                        pass  # a field the predicate reads is not there yet
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not self.alive():
                    raise BrowserTimeout(f"Chromium exited while waiting for {what}\n{self.describe()}")
                self._changed.wait(timeout=min(left, 0.25))
        raise BrowserTimeout(f"no page report shows {what} within {timeout} s\n{self.describe()}")

    def log_matches(self, needle: str) -> list[str]:
        with self._lock:
            return [line for line in self.logs if needle in line]

    def describe(self, log_lines: int = 60) -> str:
        """The page's last state, its last log lines and Chromium's stderr tail."""
        with self._lock:
            state = dict(self.state)
            logs = self.logs[-log_lines:]
            reports = self.reports
        try:
            chromium = self.chromium_log_path.read_text(errors="replace")[-3000:]
        except OSError:
            chromium = ""
        return (
            f"--- page state after {reports} reports:\n{json.dumps(state, indent=1, sort_keys=True)[:6000]}\n"
            f"--- page log (last {len(logs)} lines, all in {self.page_log_path}):\n" + "\n".join(logs) + "\n"
            f"--- chromium stderr tail ({self.chromium_log_path}):\n{chromium}"
        )


# ---------------------------------------------------------------------------------------
# Meetings


def meeting_with(meetings, prefix: str, *external_user_ids: str) -> tuple[dict, list[dict]]:
    """CreateMeeting (ExternalMeetingId `prefix-<random>`) and one CreateAttendee per
    ExternalUserId: (the Meeting, the Attendees in order)."""
    meeting = meetings.create_meeting(
        ClientRequestToken=uuid.uuid4().hex, MediaRegion="us-east-1", ExternalMeetingId=f"{prefix}-{uuid.uuid4().hex[:8]}"
    )["Meeting"]
    attendees = [
        meetings.create_attendee(MeetingId=meeting["MeetingId"], ExternalUserId=e)["Attendee"] for e in external_user_ids
    ]
    return meeting, attendees


# ---------------------------------------------------------------------------------------
# Readers of the page's state


def roster_external_ids(state: dict) -> dict[str, str | None]:
    """attendeeId -> externalUserId of the attendees the page sees present."""
    return {a: e.get("externalUserId") for a, e in (state.get("roster") or {}).items() if e.get("present")}


def tone_blocks(state: dict, hz: int) -> int:
    """How many analysis blocks of the received audio carried `hz`."""
    return int(((state.get("audio") or {}).get("tones") or {}).get(str(hz), {}).get("presentBlocks") or 0)


def tone_absent_streak(state: dict, hz: int) -> int:
    """How many analysis blocks in a row, up to the latest, lacked `hz`."""
    return int(((state.get("audio") or {}).get("tones") or {}).get(str(hz), {}).get("absentStreak") or 0)


def volume_of(state: dict, attendee_id: str) -> dict:
    """The volume indicator the page last got for `attendee_id` ({} before any)."""
    return (state.get("volumes") or {}).get(attendee_id) or {}


def video_packets_sent(state: dict) -> int:
    """RTP packets of the local camera sent so far (getStats outbound-rtp, video)."""
    return int(((state.get("stats") or {}).get("video") or {}).get("packetsSent") or 0)


def chromium_console_lines(browser: "BrowserAttendee", needle: str) -> list[str]:
    """Lines of Chromium's stderr (its console messages among them) that contain `needle`."""
    try:
        text = browser.chromium_log_path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if needle in line]


def packets_received(state: dict) -> int:
    inbound = (state.get("stats") or {}).get("inbound") or {}
    return int(inbound.get("packetsReceived") or 0)
