"""Several real `voice-connector serve` processes on one PostgreSQL database (issue 16): each
node has its own data directory, SIP, API and RTP ports on 127.0.0.1, and all share the
database, the join-token key and the API credentials (as the README's "Several nodes" says).

Without $VC_TEST_DATABASE_URL (scripts/test sets it) these tests are skipped, saying why:
SQLite is one node.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path
from unittest import mock

import pytest

from vctest.server import MeetingServer, serve

#: Seconds of silence after which a node is dead, for these tests (the default is 5).
DEAD_AFTER = 2


class Cluster:
    """Starts nodes on one database; stops them all at the end."""

    def __init__(self, work: Path, database_url: str):
        self.work = work
        self.database_url = database_url
        self.dead_after = DEAD_AFTER
        self.env = {
            "VC_TOKEN_KEY": secrets.token_hex(32),
            "VC_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
            "VC_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
        }
        self._gens: list = []
        self.nodes: dict[str, MeetingServer] = {}

    def start(self, node_id: str, *extra: str) -> MeetingServer:
        work = self.work / node_id
        (work / "data").mkdir(parents=True)
        # The nodes take their credentials from the environment; the harness reads them here.
        creds = work / "data" / "api-credentials"
        creds.write_text(f"{self.env['VC_ACCESS_KEY_ID']}\n{self.env['VC_SECRET_ACCESS_KEY']}\n")
        creds.chmod(0o600)
        args = ("--database-url", self.database_url, "--node-id", node_id,
                "--node-dead-after", str(DEAD_AFTER), "--drain-timeout", "1", *extra)
        with mock.patch.dict(os.environ, self.env):
            gen = serve(work, args, label=node_id, rtp_size=40)
            node = next(gen)
        self._gens.append(gen)
        self.nodes[node_id] = node
        return node

    def sql(self, query: str) -> list[list[str]]:
        """Rows of `query` on the cluster's database (psql, unaligned)."""
        out = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-F", "\t", self.database_url, "-c", query],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def stop(self) -> None:
        errors = []
        for gen in self._gens:
            try:
                next(gen)
            except StopIteration:
                pass
            except AssertionError as e:  # a panic in a node's log
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture
def cluster(tmp_path, pg_databases):
    if pg_databases is None:
        pytest.skip("several nodes need PostgreSQL: VC_TEST_DATABASE_URL is not set (scripts/test sets it)")
    c = Cluster(tmp_path, pg_databases.fresh())
    try:
        yield c
    finally:
        c.stop()
