"""Control-plane fixtures: start the real `voice-connector serve` binary on free ports with a
temporary data directory, read the API credentials it generated, and hand out boto3 clients
and SigV4-signed raw requests.

The binary is $VC_BIN (set by scripts/test), else target/{release,debug}/voice-connector
under $CARGO_TARGET_DIR or the workspace's target directory.

PostgreSQL: when $VC_TEST_DATABASE_URL names a server (scripts/test starts a throwaway one),
`backend` also runs as "postgres", and every server started on it gets a fresh database
`vc_<random>` created through psql (dropped at the end of the session), so runs and tests
never see each other's rows. Without the variable the PostgreSQL cases are skipped with a
reason that says so.

Fixture names here are generic (`start_server`, `server`, `backend`); the SIP suite under
tests/sip uses `sip_*` names of its own.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import signal
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 30.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
REGION = "us-east-1"


def find_binary() -> Path:
    env = os.environ.get("VC_BIN")
    if env:
        path = Path(env)
        if not path.is_file():
            pytest.exit(f"VC_BIN={env} does not exist", returncode=2)
        return path
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("release", "debug"):
        candidate = target / profile / "voice-connector"
        if candidate.is_file():
            return candidate
    pytest.exit(
        "no voice-connector binary: run scripts/test, set VC_BIN, or `cargo build -p voice-connector`",
        returncode=2,
    )


# ---------------------------------------------------------------------------------------
# PostgreSQL: one fresh database per server data set.


class PgDatabases:
    """Creates `vc_<session>_<n>` databases on the $VC_TEST_DATABASE_URL server and drops
    them when the session ends."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.session = secrets.token_hex(4)
        self.created: list[str] = []

    def _psql(self, sql: str) -> None:
        subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.admin_url, "-c", sql],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def fresh(self) -> str:
        name = f"vc_{self.session}_{len(self.created)}"
        self._psql(f"CREATE DATABASE {name}")
        self.created.append(name)
        u = urllib.parse.urlsplit(self.admin_url)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))

    def drop_all(self) -> None:
        """Drops every database, in parallel: each DROP DATABASE waits for a checkpoint, and
        concurrent ones share it."""
        from concurrent.futures import ThreadPoolExecutor

        def drop(name: str) -> None:
            try:
                self._psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                pass

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(drop, self.created))


@pytest.fixture(scope="session")
def pg_databases():
    url = os.environ.get("VC_TEST_DATABASE_URL")
    if not url:
        yield None
        return
    dbs = PgDatabases(url)
    yield dbs
    dbs.drop_all()


# ---------------------------------------------------------------------------------------
# The server process.


@dataclass
class Server:
    binary: Path
    data_dir: Path
    database_url: str | None
    extra_args: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None
    endpoint: str = ""
    key_id: str = ""
    secret: str = ""
    _clients: dict = field(default_factory=dict)

    # -- lifecycle ------------------------------------------------------------------------

    def common_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        return args

    def start(self) -> "Server":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._clients.clear()
        log = open(self.log_path, "ab")
        offset = self.log_path.stat().st_size
        env = dict(os.environ, VC_LOG=os.environ.get("VC_LOG", "info"), NO_COLOR="1")
        env.pop("VC_ACCESS_KEY_ID", None)
        env.pop("VC_SECRET_ACCESS_KEY", None)
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", *self.common_args(),
             "--http", "127.0.0.1:0", "--sip", "127.0.0.1:0", "--sip-tls", "127.0.0.1:0",
             *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        rx = re.compile(r"voice-connector started.*?api=(127\.0\.0\.1:\d+)")
        while True:
            m = rx.search(self.log()[offset:])
            if m:
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"voice-connector exited ({self.proc.returncode}):\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"voice-connector did not start:\n{self.log()[-4000:]}")
            time.sleep(0.02)
        self.endpoint = f"http://{m.group(1)}"
        lines = (self.data_dir / "api-credentials").read_text().splitlines()
        self.key_id, self.secret = lines[0].strip(), lines[1].strip()
        return self

    def kill9(self) -> None:
        """SIGKILL: no graceful shutdown, no flushing beyond what each write already did."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return ANSI.sub("", self.log_path.read_text(errors="replace"))

    def assert_healthy(self) -> None:
        """The process still runs and never panicked."""
        text = self.log()
        assert "panicked" not in text, text[-4000:]
        assert self.alive(), f"server exited ({self.proc.returncode}):\n{text[-4000:]}"

    def admin(self, *args: str) -> subprocess.CompletedProcess:
        """Runs `voice-connector admin ...` on this server's data dir / database."""
        cmd = [str(self.binary), "admin", args[0], *self.common_args(), *args[1:]]
        env = dict(os.environ, NO_COLOR="1")
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=True)

    # -- clients --------------------------------------------------------------------------

    def client(self, service: str, *, key_id: str | None = None, secret: str | None = None):
        cache_key = (service, key_id, secret)
        if cache_key not in self._clients:
            self._clients[cache_key] = boto3.client(
                service,
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id=key_id or self.key_id,
                aws_secret_access_key=secret or self.secret,
                config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
            )
        return self._clients[cache_key]

    @property
    def voice(self):
        return self.client("chime-sdk-voice")

    @property
    def meetings(self):
        return self.client("chime-sdk-meetings")

    def aws_env(self) -> dict[str, str]:
        """Environment for the aws CLI."""
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=self.key_id,
            AWS_SECRET_ACCESS_KEY=self.secret,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            AWS_PAGER="",
        )
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)
        return env

    def aws_cli(self, service: str, *args: str):
        """Runs `aws SERVICE ARGS…` against this server (only --endpoint-url changed); asserts
        success and returns the parsed JSON output (None when there is none)."""
        import json
        p = subprocess.run(["aws", service, *args, "--endpoint-url", self.endpoint, "--output", "json"],
                           capture_output=True, text=True, env=self.aws_env(), timeout=120)
        assert p.returncode == 0, f"aws {service} {' '.join(args)} failed ({p.returncode}):\n{p.stderr}"
        return json.loads(p.stdout) if p.stdout.strip() else None

    def signed(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        *,
        headers: dict | None = None,
        sign: bool = True,
        secret: str | None = None,
        signed_at: datetime.datetime | None = None,
    ) -> requests.Response:
        """Sends a raw request, SigV4-signed with botocore's signer unless `sign` is false
        (`signed_at` signs as of another time)."""
        url = self.endpoint + path
        data = body.encode() if isinstance(body, str) else body
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        req = AWSRequest(method=method, url=url, data=data, headers=hdrs)
        if sign:
            creds = Credentials(self.key_id, secret or self.secret)
            if signed_at is None:
                SigV4Auth(creds, "chime", REGION).add_auth(req)
            else:
                with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at):
                    SigV4Auth(creds, "chime", REGION).add_auth(req)
        prepared = req.prepare()
        return requests.request(
            method, prepared.url, data=data, headers=dict(prepared.headers), timeout=30
        )


@pytest.fixture(scope="session")
def vc_binary() -> Path:
    return find_binary()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, pg_databases) -> str:
    if request.param == "postgres" and pg_databases is None:
        pytest.skip("skipped PostgreSQL: VC_TEST_DATABASE_URL is not set (scripts/test sets it)")
    return request.param


class ServerFactory:
    """Starts servers on fresh data dirs (and, for postgres, fresh databases) and stops them
    all at teardown."""

    def __init__(self, binary: Path, tmp_path_factory, pg: PgDatabases | None):
        self.binary = binary
        self.tmp = tmp_path_factory
        self.pg = pg
        self.started: list[Server] = []

    def __call__(self, backend: str = "sqlite", extra_args: list[str] | None = None) -> Server:
        data_dir = self.tmp.mktemp("vc-data")
        url = None
        if backend == "postgres":
            if self.pg is None:
                pytest.skip("skipped PostgreSQL: VC_TEST_DATABASE_URL is not set")
            url = self.pg.fresh()
        s = Server(
            binary=self.binary,
            data_dir=data_dir,
            database_url=url,
            extra_args=list(extra_args or []),
            log_path=data_dir / "server.log",
        )
        self.started.append(s)
        return s.start()

    def stop_all(self) -> None:
        for s in self.started:
            s.stop()


@pytest.fixture
def start_server(vc_binary, tmp_path_factory, pg_databases):
    """Factory: `start_server(backend="sqlite", extra_args=[...])` starts a server; all are
    stopped when the test ends."""
    f = ServerFactory(vc_binary, tmp_path_factory, pg_databases)
    yield f
    f.stop_all()


@pytest.fixture(scope="module")
def start_module_server(vc_binary, tmp_path_factory, pg_databases):
    """Like `start_server`, for servers shared by a whole test module."""
    f = ServerFactory(vc_binary, tmp_path_factory, pg_databases)
    yield f
    f.stop_all()


@pytest.fixture
def server(start_server, backend) -> Server:
    """A running server on `backend` (SQLite, and PostgreSQL when available)."""
    return start_server(backend)
