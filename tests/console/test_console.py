"""The web console at /console, driven in headless Chromium (puppeteer-core) as an operator
would: sign in (a wrong secret first), create a voice connector with termination and an
origination route, associate a number, create a meeting and an attendee, join it with
SIPp using the SIP URI the console shows, find that call's record and export it as CSV,
see the carriers' state and the charts, end the meeting. Every change is checked with
boto3 (or the admin endpoint), and the page must have logged no errors beyond the API
answers the test provoked."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import uuid
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
import requests

from console_driver import ConsoleDriver
from vctest.server import find_binary, serve
from vctest.sip_suite import helpers, wait_for

ROOT = Path(__file__).resolve().parents[2]
CALLER = "+12065550100"
NUMBER = "+12065550199"
#: With VC_CONSOLE_SCREENSHOTS=DIR the test saves a screenshot of each page there
#: (docs/console holds the README's).
SHOTS = os.environ.get("VC_CONSOLE_SCREENSHOTS")


@pytest.fixture(scope="module")
def console_server(tmp_path_factory):
    work = tmp_path_factory.mktemp("vc-console")
    data = work / "data"
    data.mkdir()
    # A carrier at a port nobody listens on: its keep-alive OPTIONS fail, so it is down.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead = probe.getsockname()[1]
    probe.close()
    subprocess.run(
        [str(find_binary()), "admin", "carriers", "add", "telco", "--data-dir", str(data),
         "--address", f"127.0.0.1:{dead}", "--transport", "tcp", "--prefix", "+44"],
        check=True, capture_output=True, timeout=60,
    )
    subprocess.run(
        [str(find_binary()), "admin", "add-numbers", "--data-dir", str(data), NUMBER],
        check=True, capture_output=True, timeout=60,
    )
    yield from serve(work, ("--carrier-options-interval", "1"), label="console")


def test_console_is_served_embedded_with_a_self_only_policy(console_server):
    base = console_server.api_url
    page = requests.get(base + "/console", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html"), page.headers
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp, csp
    assert "unsafe" not in csp and "*" not in csp, csp
    script = requests.get(base + "/console/console.js", timeout=10)
    assert script.headers["Content-Type"].startswith("text/javascript"), script.headers
    # What the binary serves is the committed bundle.
    assert script.content == (ROOT / "console" / "dist" / "console.js").read_bytes()
    again = requests.get(base + "/console/console.js", headers={"If-None-Match": script.headers["ETag"]}, timeout=10)
    assert again.status_code == 304 and again.content == b"", again.headers


def test_operator_session(console_server, tmp_path):
    server = console_server
    voice = server.client("chime-sdk-voice")
    meetings = server.client("chime-sdk-meetings")
    name = f"console-{uuid.uuid4().hex[:8]}"
    shots = Path(SHOTS).resolve() if SHOTS else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)

    with ConsoleDriver(tmp_path, server.api_url + "/console") as ui:
        shot = lambda file, **kw: ui.call("screenshot", file=str(shots / file), **kw)

        # A wrong secret: the sign-in form says so, with the error the API wrote.
        wrong = ui.call("signin", keyId=server.key_id, secret="x" * 40)
        assert not wrong["signedIn"], wrong
        with pytest.raises(botocore.exceptions.ClientError) as boto_wrong:
            boto3.client(
                "chime-sdk-voice", endpoint_url=server.api_url, region_name="us-east-1",
                aws_access_key_id=server.key_id, aws_secret_access_key="x" * 40,
            ).list_voice_connectors()
        code = boto_wrong.value.response["Error"]["Code"]
        assert "Sign-in failed" in wrong["errors"]["form"] and code in wrong["errors"]["form"], wrong
        shot("sign-in-error.png")

        ok = ui.call("signin", keyId=server.key_id, secret=server.secret)
        assert ok["signedIn"] and ok["errors"] is None, ok
        # The keys are in this tab's sessionStorage and nowhere else.
        assert ok["storage"] == {"session": ["vc-console-credentials"], "local": []}, ok

        # Create a voice connector; boto3 sees it.
        created = ui.call("createConnector", name=name, encryption=False)
        assert created["errors"] is None, created
        vc_id = re.fullmatch(r"#/connectors/([a-z0-9]+)", created["hash"]).group(1)
        vc = voice.get_voice_connector(VoiceConnectorId=vc_id)["VoiceConnector"]
        assert vc["Name"] == name and vc["RequireEncryption"] is False, vc
        assert created["heading"] == f"Voice connector {name}", created

        # An invalid CIDR: the API's error is shown beside its field, and nothing is stored.
        bad = ui.call("form", form="Termination", values={"CidrAllowedList": "10.0.0.300/32", "CallingRegions": "US", "CpsLimit": "5"})
        assert bad["errors"] is not None and "CidrAllowedList" in bad["errors"]["fields"], bad
        assert bad["errors"]["fields"]["CidrAllowedList"].startswith("BadRequestException:"), bad
        with pytest.raises(voice.exceptions.NotFoundException):
            voice.get_voice_connector_termination(VoiceConnectorId=vc_id)
        shot("connector-field-error.png")

        good = ui.call(
            "form", form="Termination",
            values={"CidrAllowedList": "127.0.0.1/32\n10.24.34.0/24", "CallingRegions": "US", "CpsLimit": "5"},
        )
        assert good["errors"] is None, good
        t = voice.get_voice_connector_termination(VoiceConnectorId=vc_id)["Termination"]
        assert t["CidrAllowedList"] == ["127.0.0.1/32", "10.24.34.0/24"] and t["CpsLimit"] == 5, t
        assert t["CallingRegions"] == ["US"] and t["Disabled"] is False, t

        route = ui.call(
            "form", form="Add an origination route",
            values={"Host": "127.0.0.1", "Port": "5070", "Protocol": "UDP", "Priority": "1", "Weight": "10"},
        )
        assert route["errors"] is None, route
        o = voice.get_voice_connector_origination(VoiceConnectorId=vc_id)["Origination"]
        assert o["Routes"] == [{"Host": "127.0.0.1", "Port": 5070, "Protocol": "UDP", "Priority": 1, "Weight": 10}], o
        assert any(r[:5] == ["127.0.0.1", "5070", "UDP", "1", "10"] for t in route["tables"] for r in t), route
        # Digest credentials: boto3 lists the user name (the password is never shown).
        creds = ui.call("form", form="Add credentials", values={"Username": "pbx", "Password": "s3cret-Pass"})
        assert creds["errors"] is None and "s3cret" not in creds["text"], creds
        assert voice.list_voice_connector_termination_credentials(VoiceConnectorId=vc_id)["Usernames"] == ["pbx"]
        shot("connector.png")
        # ... and deleted again (SIPp below does not authenticate).
        ui.call("press", text="Delete pbx")
        assert voice.list_voice_connector_termination_credentials(VoiceConnectorId=vc_id)["Usernames"] == []

        # SIP message logs on, for the call's ladder below.
        logs = ui.call("form", form="Logging", values={"EnableSIPLogs": True})
        assert logs["errors"] is None, logs
        got = voice.get_voice_connector_logging_configuration(VoiceConnectorId=vc_id)["LoggingConfiguration"]
        assert got["EnableSIPLogs"] is True, got

        # The list shows it.
        listed = ui.call("open", hash="#/connectors")
        assert any(row[0] == name and row[1] == vc_id for row in listed["tables"][0]), listed
        shot("connectors.png")
        shot("connectors-phone.png", width=390, height=844)

        # Phone numbers: associate the inventory's number with the connector.
        numbers = ui.call("open", hash="#/numbers")
        assert any(row[0] == NUMBER for t in numbers["tables"] for row in t), numbers
        assoc = ui.call("form", form="Associate a number", values={"Number": NUMBER, "Target": f"vc:{vc_id}"})
        assert assoc["errors"] is None, assoc
        pn = voice.get_phone_number(PhoneNumberId=NUMBER)["PhoneNumber"]
        assert [(a["Name"], a["Value"]) for a in pn["Associations"]] == [("VoiceConnectorId", vc_id)], pn
        assert any(row[0] == NUMBER and f"connector {name}" in row[3] for row in assoc["tables"][0]), assoc
        shot("phone-numbers.png")

        # A meeting and an attendee; the SIP URI the console shows lets SIPp join.
        made = ui.call("createMeeting", externalId=f"standup-{name}")
        assert made["errors"] is None, made
        meeting_id = re.fullmatch(r"#/meetings/([0-9a-f-]+)", made["hash"]).group(1)
        assert meetings.get_meeting(MeetingId=meeting_id)["Meeting"]["ExternalMeetingId"] == f"standup-{name}"
        att = ui.call("createAttendee", userId=CALLER, connectorHost=vc["OutboundHostName"])
        assert att["errors"] is None, att
        [a] = meetings.list_attendees(MeetingId=meeting_id)["Attendees"]
        assert a["ExternalUserId"] == CALLER and a["JoinToken"] == att["joinToken"], (a, att)
        assert att["sipUri"] == (
            f"sip:+17035550122@{vc['OutboundHostName']};transport=tls;X-chime-join-token={att['joinToken']}"
        ), att
        shot("meeting.png")
        listed = ui.call("open", hash="#/meetings")
        assert any(row[1] == meeting_id for row in listed["tables"][0]), listed
        shot("meetings.png")

        sip = helpers()
        with sip.RtpPeer() as peer:
            keys = {"vc_host": vc["OutboundHostName"], "token": att["joinToken"], "from_user": CALLER,
                    "rtp_port": str(peer.port)}
            call = sip.run_sipp(server, "join_uac.xml", keys, tmp_path, extra=["-d", "1000"])
        assert call.returncode == 0, call.describe()
        [record] = wait_for(
            lambda: [r for r in server.call_records(vc_id) if r["Status"] == "Completed"], 10, "the call's record"
        )

        # Call records: the call, filtered by connector and status, and as CSV.
        found = ui.call("records", filter={"voice-connector-id": vc_id, "status": "Completed"})
        assert found["errors"] is None, found
        [rows] = found["tables"]
        assert len(rows) == 2 and rows[1][1] == "Completed 200" and rows[1][3] == CALLER, rows
        [row] = list(csv.DictReader(io.StringIO(found["csv"])))
        assert row["TransactionId"] == record["TransactionId"] and row["Status"] == "Completed", row
        assert row["AttendeeId"] == a["AttendeeId"] and row["Codec"] == record["Codec"], row
        assert int(row["Media.PacketsSent"]) == record["Media"]["PacketsSent"], row
        # Its SIP messages as a ladder: the caller's INVITE and ACK and BYE, our answers.
        sip_view = ui.call("ladder")
        assert sip_view["error"] is None, sip_view
        arrows = sip_view["arrows"]
        assert arrows[0] == "INVITE" and "200 OK" in arrows and "ACK" in arrows and "BYE" in arrows, sip_view
        assert arrows.index("200 OK") < arrows.index("ACK") < arrows.index("BYE"), sip_view
        # The call ends with our 200 to its BYE (logged after the BYE ended the call).
        assert arrows[arrows.index("BYE"):] == ["BYE", "200 OK"], sip_view
        assert sip_view["ends"][1] == "voice-connector" and att["joinToken"] not in sip_view["text"], sip_view
        shot("call-records.png")
        none = ui.call("records", filter={"voice-connector-id": vc_id, "status": "Refused"})
        assert none["tables"] == [] and "0 call records" in none["text"], none

        # Carriers: the state the admin CLI shows, once the keep-alive has decided it.
        def carrier_state():
            out = subprocess.run(
                [str(find_binary()), "admin", "carriers", "list", "--json", "--data-dir", str(server.data_dir)],
                capture_output=True, text=True, timeout=60, check=True,
            ).stdout
            [c] = [json.loads(line) for line in out.splitlines() if line.strip()]
            return c["Status"] if c["Status"] != "unknown" else None

        state = wait_for(carrier_state, 20, "the carrier's keep-alive state")
        carriers = ui.call("open", hash="#/carriers")
        assert carriers["tables"][0][1][:2] == ["telco", state], carriers
        shot("carriers.png")

        charts = ui.call("charts", samples=2)
        assert [c["title"] for c in charts] == [
            "Calls per second", "Active legs", "Refusals per second by status", "Inbound packet loss",
        ], charts
        assert charts[0]["points"] >= 2 and charts[0]["legend"].startswith("now: "), charts
        # The call above was answered: no refusals.
        assert charts[2]["legend"] == "None so far.", charts
        shot("charts.png")

        # End the meeting from its page.
        ui.call("open", hash=f"#/meetings/{meeting_id}")
        ended = ui.call("press", text="End meeting")
        assert ended["hash"] == "#/meetings", ended
        with pytest.raises(meetings.exceptions.NotFoundException):
            meetings.get_meeting(MeetingId=meeting_id)

        # Every stop of the keyboard's Tab order is a link, a button or a labelled field.
        ui.call("open", hash=f"#/connectors/{vc_id}")
        for stop in ui.call("keyboardOnly"):
            assert stop["tag"] in ("A", "BUTTON", "INPUT", "SELECT", "TEXTAREA", "BODY"), stop
            assert stop["tag"] == "BODY" or stop["label"], stop

        # Delete the connector from its page: refused while it has a number, with the
        # API's error beside the button; fine once the number is disassociated.
        refused = ui.call("press", text="Delete this voice connector")
        assert refused["error"].startswith("ConflictException: ") and "phone numbers" in refused["error"], refused
        ui.call("open", hash="#/numbers")
        freed = ui.call("press", text=f"Disassociate from connector {name}")
        assert freed["error"] is None, freed
        assert voice.get_phone_number(PhoneNumberId=NUMBER)["PhoneNumber"]["Associations"] == []
        ui.call("open", hash=f"#/connectors/{vc_id}")
        gone = ui.call("press", text="Delete this voice connector")
        assert gone["hash"] == "#/connectors" and not any(vc_id in row for t in gone["tables"] for row in t), gone
        with pytest.raises(voice.exceptions.NotFoundException):
            voice.get_voice_connector(VoiceConnectorId=vc_id)

        seen = ui.call("report")

    # No script errors, no CSP violations, no failed requests; the only error answers are
    # the ones provoked above (the wrong secret, the bad CIDR) and the NotFound of a new
    # connector's termination and origination before they were set.
    assert seen["pageErrors"] == [] and seen["failedRequests"] == [], seen
    noise = [e for e in seen["consoleErrors"] if not e["text"].startswith("Failed to load resource")]
    assert noise == [], seen
    provoked = sorted({(e["method"], e["path"], e["status"]) for e in seen["httpErrors"]})
    allowed = {
        ("GET", "/voice-connectors", 403),
        ("PUT", f"/voice-connectors/{vc_id}/termination", 400),
        ("GET", f"/voice-connectors/{vc_id}/termination", 404),
        ("GET", f"/voice-connectors/{vc_id}/origination", 404),
        ("DELETE", f"/voice-connectors/{vc_id}", 409),
    }
    assert set(provoked) <= allowed and ("PUT", f"/voice-connectors/{vc_id}/termination", 400) in provoked, provoked
    assert len(seen["consoleErrors"]) == len(seen["httpErrors"]), seen


def test_admin_reads_are_signed_and_keep_secrets(console_server):
    """The console's admin reads: unsigned is refused, signed lists meetings newest first
    (as CreateMeeting answers them) and carriers without credentials; a query parameter is
    a 400 naming the path."""
    server = console_server
    unsigned = requests.get(server.api_url + "/admin/meetings", timeout=10)
    assert unsigned.status_code == 403 and unsigned.json()["Code"], unsigned.text
    meetings = server.client("chime-sdk-meetings")
    made = [
        meetings.create_meeting(ClientRequestToken=uuid.uuid4().hex, MediaRegion="us-east-1", ExternalMeetingId=f"m{i}")
        ["Meeting"] for i in range(2)
    ]
    listed = server.signed_get("/admin/meetings", {})
    ids = [m["MeetingId"] for m in listed["Meetings"]]
    assert ids.index(made[1]["MeetingId"]) < ids.index(made[0]["MeetingId"]), ids
    [first] = [m for m in listed["Meetings"] if m["MeetingId"] == made[0]["MeetingId"]]
    assert {k: v for k, v in first.items() if k != "CreatedTimestamp"} == made[0], (first, made[0])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", first["CreatedTimestamp"]), first
    assert listed["Truncated"] is False

    [telco] = server.signed_get("/admin/carriers", {})["Carriers"]
    assert telco["Name"] == "telco" and telco["Transport"] == "tcp" and telco["Prefixes"] == ["+44"], telco
    assert telco["Status"] in ("up", "down", "unknown"), telco
    assert not any("assword" in k or "sername" in k for k in telco), telco

    with pytest.raises(urllib.error.HTTPError) as bad:
        server.signed_get("/admin/carriers", {"max-results": "5"})
    body = bad.value.read().decode()
    assert bad.value.code == 400 and "/admin/carriers takes no query parameters" in body, body
