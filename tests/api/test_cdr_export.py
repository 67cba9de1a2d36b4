"""Call detail records shipped to the account's CDR bucket (issue 18): once
UpdateGlobalSettings sets VoiceConnector.CdrBucket, a call's final record (SIPp joining a
meeting through a voice connector) is written as AWS's voice connector CDR: the key
`Amazon-Chime-Voice-Connector-CDRs/json/<VoiceConnectorId>/<yyyy>/<mm>/<dd>/<HH.MM.SS.mmm>_<TransactionId>`
and the JSON document. With --s3-endpoint the bucket is on moto's S3 server; without one the
object is a file under <data-dir>/cdr/<bucket>/. Without a bucket nothing is shipped. Runs on
SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from vctest.server import CALLER, MEETING_NUMBER, serve
from vctest.sip_suite import helpers, wait_for

KEY_RE = re.compile(
    r"Amazon-Chime-Voice-Connector-CDRs/json/(?P<vc>[a-z0-9]+)/(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)/"
    r"(?P<H>\d\d)\.(?P<M>\d\d)\.(?P<S>\d\d)\.(?P<ms>\d{3})_(?P<tx>[0-9a-f-]{36})")


def flowlab():
    """tests/sma/flowlab.py (moto's S3 server), loaded by path."""
    name = "vctest_sma_flowlab"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "sma" / "flowlab.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(params=["sqlite", "postgres"])
def db_args(request, pg_databases) -> tuple[str, ...]:
    if request.param == "sqlite":
        return ()
    if pg_databases is None:
        pytest.skip("skipped PostgreSQL: VC_TEST_DATABASE_URL is not set (scripts/test sets it)")
    return ("--database-url", pg_databases.fresh())


@contextlib.contextmanager
def running(tmp_path: Path, args: tuple[str, ...]):
    gen = serve(tmp_path / "vc", args, label="cdr")
    (tmp_path / "vc").mkdir(exist_ok=True)
    server = next(gen)
    try:
        yield server
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


def one_call(server, tmp_path: Path) -> dict:
    """A SIPp caller joins a meeting through a new voice connector for a second; the call's
    final record."""
    p = server.provision()
    sip = helpers()
    with sip.RtpPeer() as peer:
        keys = {"vc_host": p.host, "token": p.token, "from_user": CALLER, "rtp_port": str(peer.port)}
        call = sip.run_sipp(server, "join_uac.xml", keys, tmp_path, extra=["-d", "1000"])
    assert call.returncode == 0, call.describe()
    [record] = wait_for(lambda: [r for r in server.call_records(p.voice_connector_id)
                                 if r["Status"] == "Completed"], 10, "the call's record")
    return record


def check_cdr(key: str, body: bytes, record: dict) -> None:
    m = KEY_RE.fullmatch(key)
    assert m, key
    assert m["vc"] == record["VoiceConnectorId"] and m["tx"] == record["TransactionId"], key
    start = datetime.fromisoformat(record["StartTime"].replace("Z", "+00:00")).astimezone(timezone.utc)
    assert (int(m["y"]), int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"]), int(m["S"])) == (
        start.year, start.month, start.day, start.hour, start.minute, start.second), (key, record)
    cdr = json.loads(body)
    assert cdr["TransactionId"] == record["TransactionId"]
    assert cdr["CallId"] == record["CallId"]
    assert cdr["VoiceConnectorId"] == record["VoiceConnectorId"]
    assert cdr["Status"] == "Completed"
    assert cdr["SourcePhoneNumber"] == CALLER and cdr["DestinationPhoneNumber"] == MEETING_NUMBER
    assert cdr["SourceCountry"] == "US" and cdr["DestinationCountry"] == "US"
    assert cdr["Direction"] == record["Direction"]
    assert cdr["BillableDurationSeconds"] == record["BillableDurationSeconds"] >= 1
    assert cdr["StartTimeEpochSeconds"] == record["StartTimeEpochSeconds"]
    assert cdr["EndTimeEpochSeconds"] == record["EndTimeEpochSeconds"]
    assert cdr["SchemaVersion"] == "2.0" and cdr["ServiceCode"] == "AmazonChimeVoiceConnector"
    assert cdr["Region"] == "us-east-1" and cdr["AwsAccountId"] == "000000000000"
    assert cdr["UsageType"] == f"USE1-US-US-{record['Direction'].lower()}-minutes"


def test_cdrs_go_to_the_bucket_on_the_s3_server(tmp_path, db_args):
    moto = flowlab().Moto(tmp_path / "moto.log")
    try:
        moto.s3.create_bucket(Bucket="vc-cdrs")
        with running(tmp_path, (*moto.server_flags(), *db_args)) as server:
            voice = server.client("chime-sdk-voice")
            # No bucket yet: nothing is shipped.
            one_call(server, tmp_path)
            voice.update_global_settings(VoiceConnector={"CdrBucket": "vc-cdrs"})
            assert voice.get_global_settings()["VoiceConnector"] == {"CdrBucket": "vc-cdrs"}
            record = one_call(server, tmp_path)
            keys = wait_for(lambda: [o["Key"] for o in
                                     moto.s3.list_objects_v2(Bucket="vc-cdrs").get("Contents", [])],
                            10, "the CDR object")
            assert len(keys) == 1, keys
            body = moto.s3.get_object(Bucket="vc-cdrs", Key=keys[0])["Body"].read()
            check_cdr(keys[0], body, record)
    finally:
        moto.close()


def test_cdrs_go_to_the_data_dir_without_an_s3_server(tmp_path, db_args):
    with running(tmp_path, db_args) as server:
        voice = server.client("chime-sdk-voice")
        voice.update_global_settings(VoiceConnector={"CdrBucket": "local-cdrs"})
        record = one_call(server, tmp_path)
        root = server.data_dir / "cdr" / "local-cdrs"
        files = wait_for(lambda: [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else [],
                         10, "the CDR file")
        assert len(files) == 1, files
        check_cdr(files[0].relative_to(root).as_posix(), files[0].read_bytes(), record)
        # Turned off: the next call is not shipped.
        voice.update_global_settings(VoiceConnector={})
        record2 = one_call(server, tmp_path)
        assert record2["TransactionId"] != record["TransactionId"]
        assert [p for p in root.rglob("*") if p.is_file()] == files
