"""baresip 1.0.0 as a SIP caller under test: one process with its own config directory,
placing one call over TLS through the server's TLS port as outbound proxy (no DNS for the
connector host name in the Request-URI), trusting the server's development CA.

No sound card: the microphone is the `aufile` source playing a WAV, the speaker an
`aubridge` device, and what baresip received is recorded by the `sndfile` filter, which
writes the decoded receive path to `dump-*-dec.wav` in the config directory.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from vctest.ports import free_baresip_sip_port, free_udp_range

#: baresip codec module and account `audio_codecs` entry per codec, with the rate and
#: channel count its audio source and player run at when the config does not force them.
CODECS = {
    # RFC 7587: opus/48000/2 in SDP whatever is really sent.
    "opus": SimpleNamespace(module="opus.so", codec="opus/48000/2", rate=48000, channels=2),
    # RFC 3551 §4.5.2: G722/8000 in SDP, sampled at 16 kHz.
    "g722": SimpleNamespace(module="g722.so", codec="G722/8000/1", rate=16000, channels=1),
    "pcmu": SimpleNamespace(module="g711.so", codec="PCMU/8000/1", rate=8000, channels=1),
}

#: Call end as baresip 1.0.0 logs it.
ENDED = re.compile(r"terminated \(duration|session closed|Call failed|call: terminate")


class Baresip:
    """One baresip placing one call. `mediaenc` is the account's media encryption
    ("srtp-mand", "srtp", or "" for plain RTP); `force_rate` pins the audio source and player
    to the codec's rate and channel count (audio_srate/audio_channels)."""

    def __init__(
        self,
        workdir: Path,
        server,
        source_wav: Path,
        codec: str = "pcmu",
        mediaenc: str = "srtp-mand",
        caller: str = "+12065550100",
        force_rate: bool = False,
        max_seconds: int = 25,
    ):
        if shutil.which("baresip") is None:
            pytest.fail("baresip is not installed; run scripts/setup-deps")
        spec = CODECS[codec]
        self.max_seconds = max_seconds
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "baresip.log"
        sip_port = free_baresip_sip_port()
        rtp_low, rtp_high = free_udp_range(20)
        rate = [f"audio_srate\t\t{spec.rate}", f"audio_channels\t\t{spec.channels}"] if force_rate else []
        (self.dir / "config").write_text(
            "\n".join(
                [
                    "poll_method\t\tepoll",
                    f"sip_listen\t\t127.0.0.1:{sip_port}",
                    f"sip_cafile\t\t{server.ca_pem}",
                    "call_local_timeout\t30",
                    "call_max_calls\t\t1",
                    "audio_player\t\taubridge,speaker",
                    f"audio_source\t\taufile,{source_wav}",
                    "audio_alert\t\taubridge,speaker",
                    *rate,
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
        # everything goes to the server's TLS port.
        (self.dir / "accounts").write_text(
            f"<sip:{caller}@127.0.0.1;transport=tls>;regint=0;"
            + (f"mediaenc={mediaenc};" if mediaenc else "")
            + f'outbound="sip:127.0.0.1:{server.tls_port};transport=tls";audio_codecs={spec.codec}\n'
        )
        (self.dir / "contacts").write_text("")
        self.proc: subprocess.Popen | None = None
        self._log = None

    def dial(self, uri: str) -> None:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["baresip", "-f", str(self.dir), "-s", "-t", str(self.max_seconds), "-e", f"/dial {uri}"],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        # Without the ANSI colours of baresip's SIP trace.
        return re.sub(r"\x1b\[[0-9;]*m", "", self.log_path.read_text(errors="replace"))

    def established(self) -> bool:
        return "Call established" in self.log()

    def ended(self) -> bool:
        return bool(ENDED.search(self.log()))

    def wait_for_call_end(self) -> int:
        """Waits for the call to end (or baresip to exit), then stops baresip and returns
        its exit status."""
        assert self.proc is not None
        deadline = time.monotonic() + self.max_seconds + 5
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.ended():
                # A moment to print its RTP statistics and finish the BYE.
                time.sleep(0.5)
                break
            time.sleep(0.1)
        return self.hang_up()

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
