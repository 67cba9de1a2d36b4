"""What the call-flow tests of SIP media applications share (issue 13): a webhook the
function runs behind (a real HTTP server in the test process, whose handler is the test's
own function), and a lab built on the PSTN tests' (tests/pstn/conftest.py): carriers,
pjsua2 phones and PBXs, tones and their analysis, the server on a data directory.

The phone network's side of a call is pjsua2 (`tests/pjsua2/caller.py`) bound to
PHONE_HOST, a carrier's source; PBXs joining meetings by token send from 127.0.0.1, which is
no carrier's, so their INVITEs are meeting joins.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
#: The carrier's source address: the phones of these tests call from here.
PHONE_HOST = "127.0.0.4"
#: The caller's number.
PHONE_NUMBER = "+12065550147"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:pin-dial-in"


def load_pstn():
    """tests/pstn/conftest.py as a plain module (its PstnLab, fixtures and helpers)."""
    name = "pstn_lab_for_sma"
    if name in sys.modules:
        return sys.modules[name]
    path = HERE.parent / "pstn" / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Webhook:
    """A function behind a webhook: every POST is an invocation event, answered with what
    `app(event)` returns (a dict sent as JSON, or bytes sent as they are). Events are kept
    in `events` in arrival order."""

    def __init__(self, app: Callable[[dict], object]):
        self.app = app
        self.events: list[dict] = []
        self.errors: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                try:
                    event = json.loads(body)
                    hook.events.append(event)
                    answer = hook.app(event)
                except Exception as e:  # the test's function failed: say so in the test
                    hook.errors.append(f"{type(e).__name__}: {e}")
                    self.send_response(500)
                    self.end_headers()
                    return
                if isinstance(answer, float):  # a delay in seconds: never answers in time
                    time.sleep(answer)
                    answer = {"SchemaVersion": "1.0", "Actions": []}
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/sma"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def kinds(self) -> list[str]:
        return [e["InvocationEventType"] for e in self.events]

    def wait_for(self, kind: str, timeout: float = 20.0) -> dict:
        end = time.time() + timeout
        while time.time() < end:
            for e in self.events:
                if e["InvocationEventType"] == kind:
                    return e
            time.sleep(0.05)
        raise AssertionError(f"no {kind} event within {timeout} s; got {self.kinds()} {self.errors}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def actions(*acts: dict, attributes: dict | None = None) -> dict:
    doc = {"SchemaVersion": "1.0", "Actions": list(acts)}
    if attributes is not None:
        doc["TransactionAttributes"] = attributes
    return doc


def s3(bucket: str, key: str) -> dict:
    return {"Type": "S3", "BucketName": bucket, "Key": key}


def tone_wav(path: Path, hz: int, seconds: float, rate: int = 8000) -> Path:
    """A sine WAV (16-bit mono) made with sox."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = f"sox -n -r {rate} -b 16 -c 1 {path} synth {seconds} sine {hz} vol 0.5"
    subprocess.run(cmd.split(), check=True, timeout=30)
    return path


def add_function(binary: Path, data_dir: Path, arn: str, url: str) -> None:
    """`voice-connector admin functions add ARN URL` on the data directory."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(binary), "admin", "functions", "add", arn, url, "--data-dir", str(data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}"


def add_numbers(binary: Path, data_dir: Path, *numbers: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(binary), "admin", "add-numbers", *numbers, "--data-dir", str(data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}"


def rule_for_number(voice, number: str, arn: str = ARN) -> tuple[str, str]:
    """A SIP media application on `arn` and an enabled ToPhoneNumber rule for `number`;
    returns (application id, rule id)."""
    app = voice.create_sip_media_application(
        AwsRegion="us-east-1", Name="sma-" + uuid.uuid4().hex[:8], Endpoints=[{"LambdaArn": arn}]
    )["SipMediaApplication"]
    rule = voice.create_sip_rule(
        Name="rule-" + uuid.uuid4().hex[:8], TriggerType="ToPhoneNumber", TriggerValue=number,
        TargetApplications=[{"SipMediaApplicationId": app["SipMediaApplicationId"], "Priority": 1,
                             "AwsRegion": "us-east-1"}],
    )["SipRule"]
    return app["SipMediaApplicationId"], rule["SipRuleId"]


def caller(lab, uri: str, name: str, *, bind_host: str = "127.0.0.1", from_number: str = PHONE_NUMBER,
           play: Path | None = None, record: Path | None = None, duration: float = 6.0,
           answer_timeout: float = 20.0, extra: tuple[str, ...] = ()):
    """caller.py (pjsua2) calling `uri` through the server (UDP, 127.0.0.1 as outbound
    proxy) from `bind_host`; a `CallerRun`."""
    pj = load_pstn().pj
    log_file = lab.tmp_path / f"{name}.pjsip.log"
    ready = lab.tmp_path / f"{name}.media"
    cmd = [
        sys.executable, str(pj.CALLER_SCRIPT), "--uri", uri,
        "--from-uri", f"sip:{from_number}@{bind_host}", "--bind-host", bind_host,
        "--proxy", f"sip:127.0.0.1:{lab.server.sip_port};lr", "--transport", "udp",
        "--duration", str(duration), "--timeout", str(answer_timeout),
        "--log-level", "5", "--log-file", str(log_file), "--ready-file", str(ready),
    ]
    if play is not None:
        cmd += ["--play", str(play)]
    if record is not None:
        cmd += ["--record", str(record)]
    cmd += extra
    return pj.CallerRun(cmd, log_file, ready, timeout=answer_timeout + duration + 25)


def phone(lab, number: str, name: str = "phone", **kw):
    """A phone on the carrier's side (PHONE_HOST) dialling `number`."""
    return caller(lab, f"sip:{number}@127.0.0.1:{lab.server.sip_port}", name, bind_host=PHONE_HOST, **kw)


class Moto:
    """moto's S3-compatible server (PyPI moto[server]) on a free port of 127.0.0.1, and a
    boto3 S3 client for it (moto takes any credentials until told to check them)."""

    KEY, SECRET = "testing", "testing"

    def __init__(self, log_file: Path, tls: Certificate | None = None):
        """`tls`: serve https with this certificate (moto_server -c/-k); the client trusts
        its CA."""
        import shutil
        import socket

        import boto3
        import pytest

        if shutil.which("moto_server") is None:
            pytest.fail("moto_server is not installed (PyPI moto[server]); run scripts/setup-deps")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(log_file, "wb")
        cmd = ["moto_server", "-H", "127.0.0.1", "-p", str(self.port)]
        if tls is not None:
            cmd += ["-c", str(tls.cert), "-k", str(tls.key)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.s3 = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                               aws_access_key_id=self.KEY, aws_secret_access_key=self.SECRET,
                               verify=str(tls.ca) if tls else None)
        end = time.time() + 30
        while True:
            try:
                self.s3.list_buckets()
                break
            except Exception:
                if self.proc.poll() is not None or time.time() > end:
                    raise AssertionError(f"moto_server did not start (see {log_file})")
                time.sleep(0.2)

    def server_flags(self) -> tuple[str, ...]:
        """The voice-connector serve flags that use this store."""
        return ("--s3-endpoint", self.url, "--s3-access-key-id", self.KEY,
                "--s3-secret-access-key", self.SECRET)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Certificate:
    """A server certificate made with the openssl CLI: `ca` (PEM) signs `cert` (PEM, key in
    `key`) for the subject alternative names `sans` (e.g. "IP:127.0.0.1,DNS:localhost").
    `ca` may be another Certificate's CA to sign with, or None for a new CA."""

    def __init__(self, folder: Path, name: str, sans: str, ca: "Certificate | None" = None):
        folder.mkdir(parents=True, exist_ok=True)

        def openssl(*args: str) -> None:
            proc = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, f"openssl {' '.join(args)}: {proc.stderr}"

        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        if ca is None:
            self.ca, self.ca_key = folder / f"{name}-ca.pem", folder / f"{name}-ca.key"
            openssl("req", "-x509", *ec, "-keyout", str(self.ca_key), "-out", str(self.ca),
                    "-days", "2", "-subj", f"/CN={name} test CA",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        else:
            self.ca, self.ca_key = ca.ca, ca.ca_key
        self.cert, self.key = folder / f"{name}.pem", folder / f"{name}.key"
        csr, ext = folder / f"{name}.csr", folder / f"{name}.ext"
        ext.write_text(f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
                       "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
        openssl("req", *ec, "-keyout", str(self.key), "-out", str(csr), "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key),
                "-CAcreateserial", "-out", str(self.cert), "-days", "2", "-extfile", str(ext))


class HttpsWebhook(Webhook):
    """A Webhook served over https with `cert` (a Certificate); `url` is https://."""

    def __init__(self, app: Callable[[dict], object], cert: Certificate):
        import ssl

        super().__init__(app)
        handler = self.httpd.RequestHandlerClass
        self.close()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert.cert), str(cert.key))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}/sma"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
