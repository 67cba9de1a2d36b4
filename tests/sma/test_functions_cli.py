"""`voice-connector admin functions add|list|remove` (issue 13) on the real binary, against
a temporary data dir (SQLite) and, when VC_TEST_DATABASE_URL is set, a fresh PostgreSQL
database: the function registry that maps a SIP media application's Lambda ARN to the HTTP
endpoint that runs it. Bad input exits 2 and names the argument."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ARN = "arn:aws:lambda:us-east-1:123456789012:function:ivr"
ARN_PROD = "arn:aws:lambda:us-west-2:123456789012:function:ivr:prod"


class Cli:
    def __init__(self, binary: Path, data_dir: Path, database_url: str | None):
        self.binary = binary
        self.args = ["--data-dir", str(data_dir)]
        if database_url:
            self.args += ["--database-url", database_url]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.binary), "admin", "functions", args[0], *self.args, *args[1:]]
        env = dict(os.environ, NO_COLOR="1")
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)

    def ok(self, *args: str) -> str:
        p = self.run(*args)
        assert p.returncode == 0, f"{args} failed ({p.returncode}):\n{p.stderr}"
        return p.stdout

    def refused(self, *args: str) -> str:
        p = self.run(*args)
        assert p.returncode == 2, f"{args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
        assert "panicked" not in p.stderr
        return p.stderr

    def listed(self) -> dict[str, dict]:
        return {f["LambdaArn"]: f for f in map(json.loads, self.ok("list", "--json").splitlines())}


@pytest.fixture
def cli(vc_binary, tmp_path, backend, pg_databases) -> Cli:
    url = pg_databases.fresh() if backend == "postgres" else None
    return Cli(vc_binary, tmp_path / "data", url)


def test_add_list_replace_remove(cli):
    assert cli.listed() == {}
    out = cli.ok("add", ARN, "http://127.0.0.1:9000/hooks/ivr")
    assert f"added function {ARN} -> http://127.0.0.1:9000/hooks/ivr (webhook)" in out
    cli.ok("add", ARN_PROD, "http://localhost:9001", "--style", "invoke")
    assert cli.listed() == {
        ARN: {"LambdaArn": ARN, "Url": "http://127.0.0.1:9000/hooks/ivr", "Style": "webhook"},
        ARN_PROD: {"LambdaArn": ARN_PROD, "Url": "http://localhost:9001", "Style": "invoke"},
    }
    header, *rows = cli.ok("list").splitlines()
    assert header.split() == ["ARN", "STYLE", "URL"]
    assert [r.split() for r in rows] == [
        [ARN, "webhook", "http://127.0.0.1:9000/hooks/ivr"],
        [ARN_PROD, "invoke", "http://localhost:9001"],
    ]

    # add on a registered ARN re-points it.
    assert "updated function" in cli.ok("add", ARN, "http://127.0.0.1:9002/", "--style", "INVOKE")
    assert cli.listed()[ARN] == {"LambdaArn": ARN, "Url": "http://127.0.0.1:9002/", "Style": "invoke"}

    assert f"removed function {ARN}" in cli.ok("remove", ARN)
    assert list(cli.listed()) == [ARN_PROD]
    assert "ARN" in cli.refused("remove", ARN)


@pytest.mark.parametrize("args, names", [
    (("arn:aws:s3:::bucket", "http://127.0.0.1:9000"), "ARN"),
    (("arn:aws:lambda:us-east-1:1234:function:f", "http://127.0.0.1:9000"), "ARN"),
    ((ARN, "https://user:pw@127.0.0.1:9000"), "URL"),
    ((ARN, "ftp://127.0.0.1"), "URL"),
    ((ARN, "http://user:pw@127.0.0.1:9000"), "URL"),
    ((ARN, "http://127.0.0.1:99999"), "URL"),
    ((ARN, "http:///nohost"), "URL"),
    ((ARN, "http://127.0.0.1:9000", "--style", "soap"), "--style"),
])
def test_bad_input_exits_2_naming_the_argument(cli, args, names):
    err = cli.refused("add", *args)
    assert err.startswith(f"error: {names}: "), err
    # Credentials in a refused URL are not echoed back.
    assert "pw@" not in err
    assert cli.listed() == {}
