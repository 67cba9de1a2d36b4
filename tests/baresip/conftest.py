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
import shutil
import subprocess
import wave
from pathlib import Path
from types import SimpleNamespace

import pytest

from vctest.baresip import CODECS as BARESIP_CODEC_SPECS
from vctest.baresip import Baresip
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


#: baresip codec module and SDP entry per codec (the audio source and player run at the
#: codec's own rate and channel count, so the tone WAV is made in that format).
BARESIP_CODECS = BARESIP_CODEC_SPECS


class BsBaresip(Baresip):
    """One baresip placing one call over TLS with mandatory SDES-SRTP, with exactly one
    audio codec module loaded and offered, playing a `tone_hz` sine for `seconds`."""

    def __init__(self, workdir: Path, server: BsServer, codec: str, tone_hz: int, seconds: float):
        if shutil.which("sox") is None:
            pytest.fail("sox is not installed; run scripts/setup-deps")
        spec = BARESIP_CODECS[codec]
        self.codec = codec
        self.tone_hz = tone_hz
        workdir.mkdir(parents=True, exist_ok=True)
        wav = workdir / f"tone{tone_hz}.wav"
        subprocess.run(
            ["sox", "-n", "-r", str(spec.rate), "-c", str(spec.channels), "-b", "16", str(wav),
             "synth", str(seconds), "sine", str(tone_hz), "vol", "0.4"],
            check=True, timeout=30,
        )
        super().__init__(workdir, server, wav, codec=codec, mediaenc="srtp-mand",
                         caller=f"+1206555{random.randrange(1000, 9999)}",
                         max_seconds=BARESIP_MAX_SECONDS)


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
