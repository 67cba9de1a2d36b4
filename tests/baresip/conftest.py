"""Fixtures for the baresip codec-mix test (GitHub issue 5): one real `voice-connector serve`
on 127.0.0.1 for the tests of a module, provisioning through its AWS-compatible API (boto3),
and baresip 1.0.0 callers over SIP/TLS with SDES-SRTP, each restricted to one audio codec.

Names are `bs_*` / `Bs*` so this file can sit beside tests/conftest.py and tests/sip/conftest.py
(nothing is imported across conftests: pytest's `conftest` module name would clash; shared
helpers live in tests/vctest).
"""

from __future__ import annotations

import math
import random
import re
import shutil
import signal
import subprocess
import wave
from pathlib import Path
from types import SimpleNamespace

import pytest

from vctest.ports import free_baresip_sip_port, free_udp_range
from vctest.server import MeetingServer as BsServer
from vctest.server import serve

#: Safety net only: baresip quits on its own after this many seconds (`-t`).
BARESIP_MAX_SECONDS = 25


@pytest.fixture(scope="module")
def bs_server(tmp_path_factory) -> BsServer:
    """A real `voice-connector serve` on 127.0.0.1 (kernel-chosen SIP, TLS and API ports read
    back from its log), stopped with SIGTERM afterwards; a panic in its log fails the test."""
    yield from serve(tmp_path_factory.mktemp("vc-baresip"), label="bs")


# ---------------------------------------------------------------------------------------
# baresip


#: baresip codec module and account `audio_codecs` entry per codec. The audio source and
#: player run at the codec's own rate and channel count (no audio_srate/audio_channels in
#: the config), so the tone WAV is made in that format.
BARESIP_CODECS = {
    # RFC 7587: opus/48000/2 in SDP whatever is really sent.
    "opus": SimpleNamespace(module="opus.so", codec="opus/48000/2", rate=48000, channels=2),
    # RFC 3551 §4.5.2: G722/8000 in SDP, sampled at 16 kHz.
    "g722": SimpleNamespace(module="g722.so", codec="G722/8000/1", rate=16000, channels=1),
    "pcmu": SimpleNamespace(module="g711.so", codec="PCMU/8000/1", rate=8000, channels=1),
}


class BsBaresip:
    """One baresip process with its own config directory placing one call over TLS with
    mandatory SDES-SRTP, with exactly one audio codec module loaded and offered."""

    def __init__(self, workdir: Path, server: BsServer, codec: str, tone_hz: int, seconds: float):
        if shutil.which("baresip") is None:
            pytest.fail("baresip is not installed; run scripts/setup-deps")
        if shutil.which("sox") is None:
            pytest.fail("sox is not installed; run scripts/setup-deps")
        spec = BARESIP_CODECS[codec]
        self.codec = codec
        self.tone_hz = tone_hz
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "baresip.log"
        wav = self.dir / f"tone{tone_hz}.wav"
        subprocess.run(
            ["sox", "-n", "-r", str(spec.rate), "-c", str(spec.channels), "-b", "16", str(wav),
             "synth", str(seconds), "sine", str(tone_hz), "vol", "0.4"],
            check=True, timeout=30,
        )
        sip_port = free_baresip_sip_port()
        rtp_low, rtp_high = free_udp_range(20)
        (self.dir / "config").write_text(
            "\n".join(
                [
                    "poll_method\t\tepoll",
                    f"sip_listen\t\t127.0.0.1:{sip_port}",
                    f"sip_cafile\t\t{server.ca_pem}",
                    "call_local_timeout\t30",
                    "call_max_calls\t\t1",
                    "audio_player\t\taubridge,speaker",
                    f"audio_source\t\taufile,{wav}",
                    "audio_alert\t\taubridge,speaker",
                    f"rtp_ports\t\t{rtp_low}-{rtp_high}",
                    "rtp_stats\t\tyes",
                    "net_interface\t\t127.0.0.1",
                    "module_path\t\t/usr/lib/baresip/modules",
                    f"module\t\t\t{spec.module}",
                    "module\t\t\taufile.so",
                    "module\t\t\taubridge.so",
                    "module\t\t\tsndfile.so",
                    "module\t\t\tsrtp.so",
                    "module\t\t\tmenu.so",
                    "module\t\t\taccount.so",
                    f"snd_path\t\t{self.dir}",
                    "",
                ]
            )
        )
        # regint=0: no REGISTER (the connector authorises by source address). outbound=:
        # everything goes to the server's TLS port, no DNS for the connector host name.
        (self.dir / "accounts").write_text(
            f"<sip:+1206555{random.randrange(1000, 9999)}@127.0.0.1;transport=tls>;regint=0;mediaenc=srtp-mand;"
            f'outbound="sip:127.0.0.1:{server.tls_port};transport=tls";audio_codecs={spec.codec}\n'
        )
        (self.dir / "contacts").write_text("")
        self.proc: subprocess.Popen | None = None
        self._log = None

    def dial(self, uri: str) -> None:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["baresip", "-f", str(self.dir), "-s", "-t", str(BARESIP_MAX_SECONDS), "-e", f"/dial {uri}"],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return re.sub(r"\x1b\[[0-9;]*m", "", self.log_path.read_text(errors="replace"))

    def established(self) -> bool:
        return "Call established" in self.log()

    def ended(self) -> bool:
        return bool(re.search(r"terminated \(duration|session closed|Call failed|call: terminate", self.log()))

    def hang_up(self) -> int:
        """Stops baresip with SIGTERM (a clean `ua: stop all`, which sends BYE), SIGKILL if it
        lingers; returns its exit status."""
        if self.proc is None:
            return -1
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc

    def decoded_wav(self) -> Path | None:
        dumps = sorted(self.dir.glob("dump-*-dec.wav"))
        return dumps[-1] if dumps else None


# ---------------------------------------------------------------------------------------
# tone analysis


def bs_read_wav(path: Path) -> tuple[list[float], int]:
    """The first channel of a 16-bit PCM WAV as floats in [-1, 1), and its sample rate."""
    import struct

    with wave.open(str(path)) as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    assert width == 2, f"{path}: {width * 8}-bit samples"
    count = len(raw) // 2
    samples = struct.unpack(f"<{count}h", raw[: count * 2])
    return [s / 32768.0 for s in samples[::channels]], rate


def bs_goertzel_db(samples: list[float], rate: int, freq: float) -> float:
    """Power of `freq` over `samples` (Goertzel, Hann window), in dB relative to a full-scale
    sine; -200 for silence."""
    n = len(samples)
    if n == 0:
        return -200.0
    k = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for i, x in enumerate(samples):
        w = 0.5 - 0.5 * math.cos(2.0 * math.pi * i / (n - 1)) if n > 1 else 1.0
        s0 = x * w + k * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    # A full-scale sine through a Hann window gives an amplitude of n/4 at its bin.
    ref = (n / 4.0) ** 2
    return 10.0 * math.log10(power / ref) if power > 0 else -200.0


def bs_tone_levels(samples: list[float], rate: int, freqs: list[int], block_s: float = 0.1) -> dict[int, list[float]]:
    """Per `block_s` block, the Goertzel level (dBFS) of each frequency in `freqs`."""
    block = int(rate * block_s)
    out: dict[int, list[float]] = {f: [] for f in freqs}
    for start in range(0, len(samples) - block + 1, block):
        chunk = samples[start : start + block]
        for f in freqs:
            out[f].append(bs_goertzel_db(chunk, rate, f))
    return out


@pytest.fixture(scope="session")
def bs_tools():
    """Helpers for the test modules (through a fixture: `import conftest` could pick up
    another folder's conftest)."""
    return SimpleNamespace(
        Baresip=BsBaresip,
        read_wav=bs_read_wav,
        goertzel_db=bs_goertzel_db,
        tone_levels=bs_tone_levels,
    )
