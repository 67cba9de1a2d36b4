"""The voice-connector binary as a benchmark target (bench/sip/run, bench/pstn/run): started
on free loopback ports in its own process group (with a nice value, like its peer), the API
credentials it writes read back, boto3 clients for it, and a voice connector with
termination created through the AWS API, as a PBX operator would.

    srv = VcServer(binary, work, extra=["--carrier-options-interval", "0"], nice=-10)
    srv.start()
    vc_id, host = srv.create_connector(cidrs=["127.0.0.0/24"])
    ...
    srv.stop()
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from vctest.ports import free_udp_tcp_port  # noqa: E402

from procs import preexec_nice, stop  # noqa: E402


class VcServer:
    """`voice-connector serve` on 127.0.0.1 with its data in `work`/data. Its RTP ports lie
    below the kernel's ephemeral range (32768-60999), where SIPp's and the generator's own
    ports come from: at a thousand calls a second a shared range made a SIPp UAC's media
    port taken by the server."""

    def __init__(self, binary: Path, work: Path, extra: list[str] | None = None, nice: int = 0,
                 rtp_ports: str = "20000-29999"):
        self.binary, self.work, self.extra, self.nice = binary, work, extra or [], nice
        self.rtp_ports = rtp_ports
        self.proc: subprocess.Popen | None = None
        self.log_file = None

    @property
    def data(self) -> Path:
        return self.work / "data"

    def start(self) -> None:
        import boto3
        from botocore.config import Config

        self.data.mkdir(parents=True, exist_ok=True)
        self.http, self.sip, self.tls = free_udp_tcp_port(), free_udp_tcp_port(), free_udp_tcp_port()
        self.cmd = [
            str(self.binary), "serve", "--data-dir", str(self.data),
            "--http", f"127.0.0.1:{self.http}", "--sip", f"127.0.0.1:{self.sip}",
            "--sip-tls", f"127.0.0.1:{self.tls}", "--rtp-ports", self.rtp_ports,
            "--api-rate-limit", "0", *self.extra,
        ]
        # The server's default log level (info: one line per join and per call end), as deployed.
        env = dict(os.environ, NO_COLOR="1", VC_LOG=os.environ.get("BENCH_VC_LOG", "info"))
        self.log_file = open(self.work / "server.log", "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=self.log_file,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                     preexec_fn=preexec_nice(self.nice))
        creds = self.data / "api-credentials"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited rc={self.proc.returncode}; see {self.work}/server.log")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=1).read()
                if creds.is_file() and len(creds.read_text().splitlines()) >= 2:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("server API did not come up in 30 s")
        key, secret = (l.strip() for l in creds.read_text().splitlines()[:2])
        self.client = lambda svc: boto3.client(
            svc, endpoint_url=f"http://127.0.0.1:{self.http}", region_name="us-east-1",
            aws_access_key_id=key, aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))

    def create_connector(self, cidrs: list[str], cps_limit: int = 100000) -> tuple[str, str]:
        """A voice connector without required encryption whose termination allows `cidrs`,
        calling region US, CpsLimit `cps_limit`: (id, outbound host name)."""
        voice = self.client("chime-sdk-voice")
        vc = voice.create_voice_connector(Name="bench-" + uuid.uuid4().hex[:8],
                                          RequireEncryption=False)["VoiceConnector"]
        voice.put_voice_connector_termination(
            VoiceConnectorId=vc["VoiceConnectorId"],
            Termination={"CidrAllowedList": cidrs, "CallingRegions": ["US"], "CpsLimit": cps_limit})
        return vc["VoiceConnectorId"], vc["OutboundHostName"]

    def sip_addr(self) -> str:
        return f"127.0.0.1:{self.sip}"

    def pgid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        stop(self.proc, "voice-connector")
        if self.log_file:
            self.log_file.close()
            self.log_file = None
        log = self.work / "server.log"
        if log.is_file() and "panicked" in log.read_text(errors="replace"):
            print(f"  !! the server log shows a panic ({log})", file=sys.stderr)
