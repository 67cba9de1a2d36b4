"""`voice-connector admin carriers add|list|update|remove` on the real binary, against a
temporary data dir (SQLite) and, when VC_TEST_DATABASE_URL is set, a fresh PostgreSQL
database; then the running server sees what the CLI wrote (one database, every node)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

SECRET = "pw-Never-Printed-42"


class Cli:
    def __init__(self, binary: Path, data_dir: Path, database_url: str | None):
        self.binary = binary
        self.args = ["--data-dir", str(data_dir)]
        if database_url:
            self.args += ["--database-url", database_url]

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        cmd = [str(self.binary), "admin", "carriers", args[0], *self.args, *args[1:]]
        full_env = {k: v for k, v in os.environ.items() if k != "VC_CARRIER_PASSWORD"}
        full_env.update(NO_COLOR="1", **(env or {}))
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=full_env)

    def ok(self, *args: str, **kw) -> str:
        p = self.run(*args, **kw)
        assert p.returncode == 0, f"{args} failed ({p.returncode}):\n{p.stderr}"
        assert SECRET not in p.stdout + p.stderr
        return p.stdout

    def listed(self) -> dict[str, dict]:
        out = self.ok("list", "--json")
        return {c["Name"]: c for c in map(json.loads, out.splitlines())}


@pytest.fixture
def cli(vc_binary, tmp_path, backend, pg_databases) -> Cli:
    url = pg_databases.fresh() if backend == "postgres" else None
    return Cli(vc_binary, tmp_path / "data", url)


def test_add_list_update_remove(cli):
    out = cli.ok("add", "telco-a", "--address", "127.0.0.40:5070", "--address", "127.0.0.41",
                 "--transport", "udp", "--prefix", "+1", "--prefix", "44", "--priority", "2",
                 "--weight", "3", "--source", "127.0.0.40/32", "--source", "127.0.0.41",
                 "--username", "trunk-a", "--password", SECRET, "--register",
                 "--srtp", "optional", "--codecs", "PCMU,pcma,G722,opus",
                 "--max-calls", "50", "--cps", "5")
    assert "added carrier telco-a" in out
    # The password can also come from the environment, out of the process list.
    cli.ok("add", "telco-b", "--address", "127.0.0.42:5061", "--transport", "tls",
           "--username", "trunk-b", env={"VC_CARRIER_PASSWORD": SECRET})

    got = cli.listed()
    a = got["telco-a"]
    assert [f"{x['host']}:{x['port']}" for x in a["Addresses"]] == ["127.0.0.40:5070", "127.0.0.41:5060"]
    assert a["Prefixes"] == ["+1", "+44"]
    assert a["Sources"] == ["127.0.0.40/32", "127.0.0.41/32"]
    assert (a["Priority"], a["Weight"], a["Register"], a["Srtp"]) == (2, 3, True, "Optional")
    assert a["Codecs"] == ["PCMU", "PCMA", "G722", "opus"]
    assert (a["MaxCalls"], a["Cps"], a["Enabled"]) == (50, 5, True)
    assert a["HasPassword"] is True and "Password" not in a
    assert a["Status"] == "unknown", "no keep-alive has run"
    assert a["Registration"] == "none" and a["RegistrationExpiresMs"] is None, "no REGISTER has run"
    b = got["telco-b"]
    assert b["Transport"] == "Tls" and b["HasPassword"] is True and b["Prefixes"] == []

    table = cli.ok("list")
    header, *rows = table.splitlines()
    assert header.split()[:4] == ["NAME", "STATUS", "ENABLED", "TRANSPORT"]
    assert header.split()[-1] == "REGISTRATION", header
    row_a = next(r for r in rows if r.startswith("telco-a "))
    for cell in ("unknown", "udp", "127.0.0.40:5070,127.0.0.41:5060", "+1,+44",
                 "trunk-a +register", "optional PCMU,PCMA,G722,opus", "calls 50 cps 5"):
        assert cell in row_a, (cell, row_a)

    # update changes only what it is given; a repeated flag replaces the list.
    cli.ok("update", "telco-a", "--prefix", "+1206", "--weight", "9", "--no-register", "--disable")
    a2 = cli.listed()["telco-a"]
    assert a2["Prefixes"] == ["+1206"] and a2["Weight"] == 9
    assert a2["Register"] is False and a2["Enabled"] is False
    assert a2["Id"] == a["Id"] and a2["Sources"] == a["Sources"] and a2["HasPassword"]
    cli.ok("update", "telco-a", "--clear-credentials", "--enable")
    a3 = cli.listed()["telco-a"]
    assert a3["HasPassword"] is False and "Username" not in a3 and a3["Enabled"] is True

    assert "removed carrier telco-b" in cli.ok("remove", "telco-b")
    assert set(cli.listed()) == {"telco-a"}


@pytest.mark.parametrize("args, flag", [
    (["--address", "127.0.0.1:99999"], "--address"),
    (["--address", "127.0.0.1:5060", "--transport", "sctp"], "--transport"),
    (["--address", "127.0.0.1:5060", "--prefix", "+1x"], "--prefix"),
    (["--address", "127.0.0.1:5060", "--source", "10.0.0.1/24"], "--source"),
    (["--address", "127.0.0.1:5060", "--srtp", "sometimes"], "--srtp"),
    (["--address", "127.0.0.1:5060", "--codecs", "PCMU,GSM"], "--codecs"),
    (["--address", "127.0.0.1:5060", "--register"], "--register"),
    (["--address", "127.0.0.1:5060", "--username", "u"], "--password"),
    (["--address", "127.0.0.1:5060", "--weight", "0"], "--weight"),
    (["--address", "127.0.0.1:5060", "--cps", "0"], "--cps"),
    ([], "--address"),
])
def test_bad_input_exits_2_naming_the_flag(cli, args, flag):
    p = cli.run("add", "bad-one", *args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.startswith(f"error: {flag}:"), p.stderr
    assert "panicked" not in p.stderr
    assert "bad-one" not in cli.listed(), "nothing stored"


def test_conflicts_and_missing_names_exit_2(cli):
    cli.ok("add", "dup", "--address", "127.0.0.43:5060")
    p = cli.run("add", "dup", "--address", "127.0.0.44:5060")
    assert p.returncode == 2 and "already exists" in p.stderr, p.stderr
    for cmd in (["update", "ghost", "--weight", "2"], ["remove", "ghost"]):
        p = cli.run(*cmd)
        assert p.returncode == 2 and 'no carrier named "ghost"' in p.stderr, p.stderr
    p = cli.run("add", "bad name", "--address", "127.0.0.43:5060")
    assert p.returncode == 2 and p.stderr.startswith("error: --name:"), p.stderr
    # A clap-level mistake is also 2.
    assert cli.run("add", "x", "--priority", "high").returncode == 2
    assert cli.listed()["dup"]["Addresses"][0]["host"] == "127.0.0.43"


def test_running_server_reads_what_the_cli_wrote(start_server, backend, vc_binary):
    srv = start_server(backend)
    cli = Cli(vc_binary, srv.data_dir, srv.database_url)
    cli.ok("add", "live", "--address", "127.0.0.45:5060", "--prefix", "+1")
    assert cli.listed()["live"]["Enabled"] is True
    srv.assert_healthy()
