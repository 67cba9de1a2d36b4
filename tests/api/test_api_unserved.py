"""Every operation of botocore's two models that we do not serve gets a clear answer: boto3
and the aws CLI see NotImplementedException naming the operation and why (never a bare
unknown-route error, never a retry), and the server stays healthy."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import botocore.exceptions
import pytest

UNSERVED = json.loads((Path(__file__).parents[2] / "crates/api/model/unserved.json").read_text())


@pytest.fixture(scope="module")
def srv(start_module_server):
    return start_module_server("sqlite", ["--api-rate-limit", "0"])


def fill(client, op_name: str) -> dict:
    """Minimal valid input for an operation: every required member, by its shape's type."""
    op = client.meta.service_model.operation_model(op_name)
    shape = op.input_shape
    if shape is None:
        return {}

    def value(s, name):
        t = s.type_name
        if t == "string":
            if s.enum:
                return s.enum[0]
            if "Arn" in name:
                return "arn:aws:chime:us-east-1:111122223333:vc/abcdefghijklmnopqrstu"
            if "PhoneNumber" in name or name in ("E164PhoneNumber",):
                return "+12065550100"
            lo = s.metadata.get("min", 1)
            return "a" * max(lo, 1) if lo <= 64 else "a" * lo
        if t in ("integer", "long"):
            return max(s.metadata.get("min", 1), 1)
        if t == "boolean":
            return False
        if t == "list":
            return [value(s.member, name)] * max(s.metadata.get("min", 1), 1)
        if t == "map":
            return {}
        if t == "structure":
            return {k: value(s.members[k], k) for k in s.required_members}
        if t == "timestamp":
            return "2026-01-01T00:00:00Z"
        if t == "blob":
            return b"x"
        return None

    return {k: value(shape.members[k], k) for k in shape.required_members}


def snake(name: str) -> str:
    return botocore.xform_name(name)


@pytest.mark.parametrize(
    "service,op_name",
    [("voice", n) for n in UNSERVED["voice"]] + [("meetings", n) for n in UNSERVED["meetings"]],
)
def test_unserved_operation_says_so(srv, service, op_name):
    client = srv.voice if service == "voice" else srv.meetings
    with pytest.raises(botocore.exceptions.ClientError) as e:
        getattr(client, snake(op_name))(**fill(client, op_name))
    err = e.value.response
    assert err["Error"]["Code"] == "NotImplementedException", err
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 501, err
    # One attempt: botocore does not retry 501.
    assert err["ResponseMetadata"].get("RetryAttempts", 0) == 0, err
    msg = err["Error"]["Message"]
    assert msg.startswith(f"{op_name} is not served"), msg
    assert UNSERVED[service][op_name]["reason"] in msg, msg


def test_a_served_operation_is_not_refused(srv):
    assert "VoiceConnectors" in srv.voice.list_voice_connectors()


@pytest.mark.skipif(shutil.which("aws") is None, reason="aws CLI is not installed (scripts/setup-deps installs it)")
def test_aws_cli_prints_the_reason(srv):
    p = subprocess.run(
        ["aws", "chime-sdk-voice", "list-proxy-sessions", "--voice-connector-id", "abcdefghijklmnopqrstu",
         "--endpoint-url", srv.endpoint, "--output", "json"],
        capture_output=True, text=True, env=srv.aws_env(), timeout=120,
    )
    assert p.returncode != 0
    assert "NotImplementedException" in p.stderr, p.stderr
    assert "ListProxySessions is not served" in p.stderr, p.stderr
    assert "proxy sessions" in p.stderr, p.stderr
    srv.assert_healthy()
