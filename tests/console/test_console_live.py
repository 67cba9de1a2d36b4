"""The console's live calls with a real pjsua2 caller, in headless Chromium: the operator
signs in, creates a meeting and an attendee in the page, a pjsua2 caller joins with that
attendee's join token over TLS and SRTP playing a tone; the live calls page shows the call
with its codec, SRTP suite and a speaking level; the operator hangs it up from the page,
which ends the pjsua2 call with a BYE whose Reason names the operator; the call's record
is then found on the call records page. The admin endpoints behind it are SigV4-signed:
unsigned is refused, an unknown call is a NotFound naming it."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from console_driver import ConsoleDriver
from vctest.server import CALLER, serve
from vctest.sip_suite import wait_for

HERE = Path(__file__).resolve().parent
SUITE = "AES_CM_128_HMAC_SHA1_80"
SHOTS = os.environ.get("VC_CONSOLE_SCREENSHOTS")


def pj_module():
    """tests/pjsua2/conftest.py as a module, for its caller runner (registered in
    sys.modules first: its dataclasses look their module up there)."""
    name = "vc_pjsua2_callers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE.parent / "pjsua2" / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        pytest.fail("pjsua2 is not installed (PyPI pjsua2-python); run scripts/setup-deps")
    yield from serve(tmp_path_factory.mktemp("vc-console-live"), label="live", rtp_size=40)


def signed(server, method: str, path: str):
    """A SigV4-signed admin request without a body: (status, JSON text)."""
    url = server.api_url + path
    req = AWSRequest(method=method, url=url)
    SigV4Auth(Credentials(server.key_id, server.secret), "chime", "us-east-1").add_auth(req)
    prepared = urllib.request.Request(url, headers=dict(req.headers.items()), method=method)
    try:
        with urllib.request.urlopen(prepared, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_live_call_shown_and_hung_up_from_the_console(live_server, tmp_path):
    server = live_server
    vc_id, host = server.create_connector(require_encryption=True)
    voice = server.client("chime-sdk-voice")
    voice.put_voice_connector_logging_configuration(
        VoiceConnectorId=vc_id, LoggingConfiguration={"EnableSIPLogs": True},
    )
    tone = tmp_path / "tone.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-b", "16", "-c", "1", str(tone), "synth", "30", "sine", "440", "vol", "0.5"],
        check=True, timeout=30,
    )
    shots = Path(SHOTS).resolve() if SHOTS else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)

    with ConsoleDriver(tmp_path, server.api_url + "/console") as ui:
        assert ui.call("signin", keyId=server.key_id, secret=server.secret)["signedIn"]
        made = ui.call("createMeeting", externalId=f"live-{vc_id}")
        assert made["errors"] is None, made
        meeting_id = re.fullmatch(r"#/meetings/([0-9a-f-]+)", made["hash"]).group(1)
        att = ui.call("createAttendee", userId=CALLER, connectorHost=host)
        assert att["errors"] is None, att

        long_call = 30.0
        caller = pj_module().PjCallers(server, tmp_path).start(
            host, att["joinToken"], "tls", suites=[SUITE], play=tone, duration=long_call, name="live",
        )
        caller.wait_media()

        # The page shows the call with its codec, suite and a level from the tone.
        live = ui.call("liveCall", **{"from": CALLER, "minDb": -40})
        [row] = [r for r in live["rows"] if r["cells"][2].startswith(f"{CALLER} ")]
        cells = row["cells"]
        assert cells[1].startswith(f"meeting {meeting_id} · attendee "), cells
        assert cells[4] == SUITE, cells
        assert -40 < int(row["level"]) <= 0, row
        # The same call as the signed endpoint lists it for this meeting.
        [call] = server.signed_get("/admin/calls", {"meeting-id": meeting_id})["Calls"]
        assert call["CallId"] == row["callId"] and call["Codec"] == cells[3], (call, row)
        assert call["SrtpSuite"] == SUITE and call["VoiceConnectorId"] == vc_id and call["From"] == CALLER, call
        assert call["Transport"].upper() == "TLS" and call["State"] == "Active", call
        assert call["PacketsReceived"] > 0 and call["LossPercent"] == 0.0, call
        assert server.signed_get("/admin/calls", {"voice-connector-id": "none"})["Calls"] == []
        ui.call("screenshot", file=str(shots / "live-calls.png"))

        # Hang it up from the page: its row goes, the caller gets a BYE naming the operator.
        hung = ui.call("hangUp", **{"from": CALLER})
        assert hung["error"] is None and CALLER in hung["said"], hung
        res = caller.result()
        assert res["confirmed"], res
        assert res["codec"].split("/")[0].lower() in call["Codec"].lower(), (res["codec"], call)
        bye = res["remote_bye"]
        assert bye, f"the call did not end with the server's BYE: {res['log_file']}"
        reason = next(l for l in bye.splitlines() if l.lower().startswith("reason:"))
        assert f"hung up by operator {server.key_id}" in reason, reason
        end = [s for s in res["snapshots"] if s["label"] == "end"]
        assert end and end[0]["at"] < long_call - 5, res["snapshots"]

        # The SIP log has our BYE with that Reason, then the caller's 200 to it (which
        # comes after the call ended).
        def ending():
            got = server.signed_get("/admin/sip-messages", {"voice-connector-id": vc_id, "call-id": call["CallId"]})
            first = [m["Message"].split("\r\n", 1)[0] for m in got["Messages"]]
            ends = len(first) >= 2 and first[-2].startswith("BYE ") and first[-1].startswith("SIP/2.0 200")
            return got["Messages"] if ends else None

        messages = wait_for(ending, 10, "the BYE and its 200 in the SIP log")
        assert [m["Direction"] for m in messages[-2:]] == ["Outbound", "Inbound"], messages[-2:]
        assert f"hung up by operator {server.key_id}" in messages[-2]["Message"], messages[-2]
        assert "CSeq:" in messages[-1]["Message"] and " BYE" in messages[-1]["Message"], messages[-1]

        # Its record, on the call records page.
        wait_for(lambda: [r for r in server.call_records(vc_id) if r["Status"] == "Completed"], 10, "the call's record")
        found = ui.call("records", filter={"voice-connector-id": vc_id, "status": "Completed"})
        [rows] = found["tables"]
        assert len(rows) == 2 and rows[1][3] == CALLER, rows
        seen = ui.call("report")

    assert seen["pageErrors"] == [] and seen["failedRequests"] == [] and seen["httpErrors"] == [], seen


def test_live_calls_endpoints_are_signed_and_name_what_is_wrong(live_server):
    server = live_server
    import requests

    unsigned = requests.get(server.api_url + "/admin/calls", timeout=10)
    assert unsigned.status_code == 403 and unsigned.json()["Code"], unsigned.text
    unsigned = requests.delete(server.api_url + "/admin/calls/abc", timeout=10)
    assert unsigned.status_code == 403, unsigned.text
    status, body = signed(server, "DELETE", "/admin/calls/no-such-call%40127.0.0.1")
    assert status == 404 and "no-such-call@127.0.0.1" in body, body
    with pytest.raises(urllib.error.HTTPError) as bad:
        server.signed_get("/admin/calls", {"meetingId": "x"})
    text = bad.value.read().decode()
    assert bad.value.code == 400 and "meetingId" in text, text


def carriers_cli(server) -> dict:
    """`admin carriers list --json`: the carriers by name, as the admin CLI shows them."""
    from vctest.server import find_binary

    out = subprocess.run(
        [str(find_binary()), "admin", "carriers", "list", "--json", "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return {c["Name"]: c for c in (json.loads(l) for l in out.splitlines() if l.strip())}


def test_carriers_added_changed_and_removed_from_the_console(live_server, tmp_path):
    """Carrier editing in the page: what the admin CLI then lists; a bad prefix is shown
    beside its field; the password is stored (HasPassword) and never shown."""
    server = live_server
    secret = "Tr-unk-p4ss-" + uuid.uuid4().hex[:6]
    with ConsoleDriver(tmp_path, server.api_url + "/console") as ui:
        assert ui.call("signin", keyId=server.key_id, secret=server.secret)["signedIn"]
        ui.call("open", hash="#/carriers")
        values = {"Name": "trunk-1", "Addresses": "127.0.0.1:5099\n127.0.0.2:5099", "Transport": "tcp",
                  "Prefixes": "+44\n+33", "Priority": "2", "Weight": "5", "Username": "acct", "Password": secret}
        added = ui.call("form", form="Add a carrier", values=values)
        assert added["errors"] is None, added
        c = carriers_cli(server)["trunk-1"]
        assert [c["Transport"].lower(), sorted(c["Prefixes"]), c["Priority"], c["Weight"]] == ["tcp", ["+33", "+44"], 2, 5], c
        assert c["Username"] == "acct" and c["HasPassword"] is True, c
        assert any(row[0] == "trunk-1" and "127.0.0.2:5099" in row[3] for row in added["tables"][0]), added
        assert secret not in added["text"], added

        bad = ui.call("form", form="Add a carrier", values={**values, "Name": "trunk-2", "Prefixes": "44x"})
        assert bad["errors"]["fields"]["Prefixes"].startswith("BadRequestException: Prefixes: "), bad
        assert "trunk-2" not in carriers_cli(server)

        edit = ui.call("open", hash="#/carriers/trunk-1")
        assert edit["heading"] == "Carrier trunk-1" and secret not in edit["text"], edit
        changed = ui.call("form", form="Update carrier trunk-1", values={"Weight": "9", "Prefixes": "+4420"})
        assert changed["errors"] is None and changed["hash"] == "#/carriers", changed
        c = carriers_cli(server)["trunk-1"]
        assert c["Weight"] == 9 and c["Prefixes"] == ["+4420"] and c["HasPassword"] is True, c

        gone = ui.call("press", text="Remove trunk-1")
        assert gone["error"] is None and not any(r and r[0] == "trunk-1" for t in gone["tables"] for r in t), gone
        assert "trunk-1" not in carriers_cli(server)
        seen = ui.call("report")
    assert seen["pageErrors"] == [] and seen["failedRequests"] == [], seen
    assert {(e["method"], e["path"], e["status"]) for e in seen["httpErrors"]} == {("POST", "/admin/carriers", 400)}, seen


def test_carrier_writes_are_signed_over_the_body(live_server):
    import requests

    server = live_server
    refused = requests.post(server.api_url + "/admin/carriers", json={"Name": "x"}, timeout=10)
    assert refused.status_code == 403, refused.text
    # Signed for one body, sent with another: refused.
    url = server.api_url + "/admin/carriers"
    req = AWSRequest(method="POST", url=url, data=b'{"Name":"a","Addresses":["127.0.0.1:5060"]}',
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(server.key_id, server.secret), "chime", "us-east-1").add_auth(req)
    tampered = requests.post(url, data=b'{"Name":"b","Addresses":["127.0.0.1:5060"]}', headers=dict(req.headers.items()), timeout=10)
    assert tampered.status_code == 403, tampered.text
    assert "a" not in carriers_cli(server) and "b" not in carriers_cli(server)
    status, body = signed(server, "DELETE", "/admin/carriers/no-such-trunk")
    assert status == 404 and "no-such-trunk" in body, body
