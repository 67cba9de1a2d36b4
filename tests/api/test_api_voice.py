"""boto3 against the `chime-sdk-voice` API of the real binary: every operation served, with
the exception classes boto3 raises against AWS. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import re

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

VC_ID = re.compile(r"^[a-z0-9]{22}$")


def no_client_validation(server, service="chime-sdk-voice"):
    """A client that sends what it is given, so the server's own validation answers (boto3
    checks ranges such as Priority >= 1 before sending)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.key_id,
        aws_secret_access_key=server.secret,
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )


def test_connector_termination_and_outbound_host(server):
    voice = server.voice
    vc = voice.create_voice_connector(Name="pbx-east", RequireEncryption=False)["VoiceConnector"]
    vc_id = vc["VoiceConnectorId"]
    assert VC_ID.match(vc_id), vc_id
    assert vc["OutboundHostName"] == f"{vc_id}.voiceconnector.localhost"
    assert vc["Name"] == "pbx-east"
    assert vc["RequireEncryption"] is False
    assert vc["VoiceConnectorArn"].endswith(f":vc/{vc_id}")

    got = voice.get_voice_connector(VoiceConnectorId=vc_id)["VoiceConnector"]
    assert got["OutboundHostName"] == f"{vc_id}.voiceconnector.localhost"
    assert got["VoiceConnectorId"] == vc_id

    put = voice.put_voice_connector_termination(
        VoiceConnectorId=vc_id,
        Termination={"CidrAllowedList": ["127.0.0.1/32"], "CallingRegions": ["US"]},
    )["Termination"]
    assert put["CidrAllowedList"] == ["127.0.0.1/32"]
    assert put["CallingRegions"] == ["US"]
    assert put["CpsLimit"] == 1, "AWS's default CPS limit"
    assert put["Disabled"] is False
    t = voice.get_voice_connector_termination(VoiceConnectorId=vc_id)["Termination"]
    assert t == put

    # A second, distinct connector gets its own id and host.
    other = voice.create_voice_connector(Name="pbx-west", RequireEncryption=True)["VoiceConnector"]
    assert other["VoiceConnectorId"] != vc_id
    assert VC_ID.match(other["VoiceConnectorId"])
    server.assert_healthy()


def test_error_paths_raise_aws_exception_classes(server):
    voice = server.voice
    vc_id = voice.create_voice_connector(Name="errs", RequireEncryption=True)["VoiceConnector"][
        "VoiceConnectorId"
    ]

    with pytest.raises(voice.exceptions.BadRequestException) as bad_cidr:
        voice.put_voice_connector_termination(
            VoiceConnectorId=vc_id,
            Termination={"CidrAllowedList": ["10.0.0.300/32"], "CallingRegions": ["US"]},
        )
    assert bad_cidr.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "CidrAllowedList" in bad_cidr.value.response["Error"]["Message"]

    raw = no_client_validation(server)
    with pytest.raises(raw.exceptions.BadRequestException) as prio:
        raw.put_voice_connector_origination(
            VoiceConnectorId=vc_id,
            Origination={
                "Routes": [
                    {"Host": "pbx.example.com", "Port": 5060, "Protocol": "UDP",
                     "Priority": 0, "Weight": 1}
                ],
                "Disabled": False,
            },
        )
    assert "Priority" in prio.value.response["Error"]["Message"]

    unknown = "a" * 22
    with pytest.raises(voice.exceptions.NotFoundException) as nf:
        voice.get_voice_connector(VoiceConnectorId=unknown)
    assert nf.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    for call in (
        lambda: voice.get_voice_connector_termination(VoiceConnectorId=unknown),
        lambda: voice.delete_voice_connector(VoiceConnectorId=unknown),
        lambda: voice.get_voice_connector_origination(VoiceConnectorId=vc_id),
    ):
        with pytest.raises(voice.exceptions.NotFoundException):
            call()

    wrong = server.client("chime-sdk-voice", secret="not-the-secret-" + "x" * 25)
    with pytest.raises(ClientError) as sig:
        wrong.list_voice_connectors()
    assert sig.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert sig.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    stranger = server.client("chime-sdk-voice", key_id="AKIASTRANGER0000000", secret="whatever")
    with pytest.raises(ClientError) as unk:
        stranger.list_voice_connectors()
    assert unk.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert unk.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    server.assert_healthy()


def test_every_voice_operation(server):
    voice = server.voice
    vc_id = voice.create_voice_connector(Name="ops", RequireEncryption=True)["VoiceConnector"][
        "VoiceConnectorId"
    ]

    # Update / Get.
    upd = voice.update_voice_connector(
        VoiceConnectorId=vc_id, Name="ops-renamed", RequireEncryption=False
    )["VoiceConnector"]
    assert upd["Name"] == "ops-renamed" and upd["RequireEncryption"] is False
    got = voice.get_voice_connector(VoiceConnectorId=vc_id)["VoiceConnector"]
    assert got["Name"] == "ops-renamed" and got["RequireEncryption"] is False

    # Termination put / get / delete.
    voice.put_voice_connector_termination(
        VoiceConnectorId=vc_id,
        Termination={"CidrAllowedList": ["192.0.2.0/24"], "CallingRegions": ["US", "CA"],
                     "CpsLimit": 5, "DefaultPhoneNumber": "+12065550100", "Disabled": False},
    )
    t = voice.get_voice_connector_termination(VoiceConnectorId=vc_id)["Termination"]
    assert t["CpsLimit"] == 5 and sorted(t["CallingRegions"]) == ["CA", "US"]
    assert t["DefaultPhoneNumber"] == "+12065550100"
    voice.delete_voice_connector_termination(VoiceConnectorId=vc_id)
    with pytest.raises(voice.exceptions.NotFoundException):
        voice.get_voice_connector_termination(VoiceConnectorId=vc_id)

    # Termination credentials put / list / delete; passwords are never returned.
    voice.put_voice_connector_termination_credentials(
        VoiceConnectorId=vc_id,
        Credentials=[{"Username": "alice", "Password": "s3cret-a"},
                     {"Username": "bob", "Password": "s3cret-b"}],
    )
    names = voice.list_voice_connector_termination_credentials(VoiceConnectorId=vc_id)
    assert names["Usernames"] == ["alice", "bob"]
    assert "s3cret" not in str(names)
    assert "s3cret" not in server.log(), "passwords are never logged"
    voice.delete_voice_connector_termination_credentials(VoiceConnectorId=vc_id, Usernames=["alice"])
    assert voice.list_voice_connector_termination_credentials(VoiceConnectorId=vc_id)[
        "Usernames"
    ] == ["bob"]

    # Health: no OPTIONS ping yet.
    health = voice.get_voice_connector_termination_health(VoiceConnectorId=vc_id)
    assert "TerminationHealth" in health

    # Origination put / get / delete.
    routes = [
        {"Host": "pbx.example.com", "Port": 5060, "Protocol": "UDP", "Priority": 1, "Weight": 10},
        {"Host": "10.1.2.3", "Port": 5061, "Protocol": "TCP", "Priority": 2, "Weight": 5},
    ]
    put = voice.put_voice_connector_origination(
        VoiceConnectorId=vc_id, Origination={"Routes": routes, "Disabled": False}
    )["Origination"]
    assert put["Routes"] == routes
    o = voice.get_voice_connector_origination(VoiceConnectorId=vc_id)["Origination"]
    assert o["Routes"] == routes and o["Disabled"] is False
    voice.delete_voice_connector_origination(VoiceConnectorId=vc_id)
    with pytest.raises(voice.exceptions.NotFoundException):
        voice.get_voice_connector_origination(VoiceConnectorId=vc_id)

    # Logging put / get.
    lc = voice.get_voice_connector_logging_configuration(VoiceConnectorId=vc_id)[
        "LoggingConfiguration"
    ]
    assert lc.get("EnableSIPLogs") is False
    voice.put_voice_connector_logging_configuration(
        VoiceConnectorId=vc_id, LoggingConfiguration={"EnableSIPLogs": True}
    )
    lc = voice.get_voice_connector_logging_configuration(VoiceConnectorId=vc_id)[
        "LoggingConfiguration"
    ]
    assert lc["EnableSIPLogs"] is True

    # List, then Delete.
    listed = [v["VoiceConnectorId"] for v in voice.list_voice_connectors()["VoiceConnectors"]]
    assert vc_id in listed
    voice.delete_voice_connector(VoiceConnectorId=vc_id)
    with pytest.raises(voice.exceptions.NotFoundException):
        voice.get_voice_connector(VoiceConnectorId=vc_id)
    listed = [v["VoiceConnectorId"] for v in voice.list_voice_connectors()["VoiceConnectors"]]
    assert vc_id not in listed
    server.assert_healthy()


def test_list_voice_connectors_pages(server):
    voice = server.voice
    ids = {
        voice.create_voice_connector(Name=f"page-{i}", RequireEncryption=True)["VoiceConnector"][
            "VoiceConnectorId"
        ]
        for i in range(5)
    }
    seen: list[str] = []
    kwargs = {"MaxResults": 2}
    pages = 0
    while True:
        page = voice.list_voice_connectors(**kwargs)
        assert len(page["VoiceConnectors"]) <= 2
        seen += [v["VoiceConnectorId"] for v in page["VoiceConnectors"]]
        pages += 1
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    assert sorted(seen) == sorted(ids), "every connector exactly once"
    assert pages >= 3


def test_phone_numbers(server):
    voice = server.voice
    numbers = ["+12065550101", "+12065550102", "+18005550103"]
    out = server.admin("add-numbers", *numbers)
    assert "added +12065550101" in out.stdout, out.stdout
    again = server.admin("add-numbers", numbers[0])
    assert "already" in again.stdout

    vc_a = voice.create_voice_connector(Name="numbers-a", RequireEncryption=True)[
        "VoiceConnector"]["VoiceConnectorId"]
    vc_b = voice.create_voice_connector(Name="numbers-b", RequireEncryption=True)[
        "VoiceConnector"]["VoiceConnectorId"]

    pn = voice.get_phone_number(PhoneNumberId="+18005550103")["PhoneNumber"]
    assert pn["E164PhoneNumber"] == "+18005550103"
    assert pn["Type"] == "TollFree" and pn["Status"] == "Unassigned"
    assert pn["Associations"] == []
    with pytest.raises(voice.exceptions.NotFoundException):
        voice.get_phone_number(PhoneNumberId="+12065559999")

    res = voice.associate_phone_numbers_with_voice_connector(
        VoiceConnectorId=vc_a, E164PhoneNumbers=numbers[:2] + ["+12065559999"]
    )
    errs = res["PhoneNumberErrors"]
    assert [e["PhoneNumberId"] for e in errs] == ["+12065559999"], errs
    assert errs[0]["ErrorCode"] == "NotFound"

    pn = voice.get_phone_number(PhoneNumberId="+12065550101")["PhoneNumber"]
    assert pn["Status"] == "Assigned"
    assert pn["Associations"][0]["Name"] == "VoiceConnectorId"
    assert pn["Associations"][0]["Value"] == vc_a

    # Associated elsewhere: refused without ForceAssociate, moved with it.
    res = voice.associate_phone_numbers_with_voice_connector(
        VoiceConnectorId=vc_b, E164PhoneNumbers=["+12065550102"]
    )
    assert res["PhoneNumberErrors"][0]["ErrorCode"] == "Conflict"
    res = voice.associate_phone_numbers_with_voice_connector(
        VoiceConnectorId=vc_b, E164PhoneNumbers=["+12065550102"], ForceAssociate=True
    )
    assert res["PhoneNumberErrors"] == []

    def listed(**kw):
        return sorted(p["E164PhoneNumber"] for p in voice.list_phone_numbers(**kw)["PhoneNumbers"])

    assert listed(FilterName="VoiceConnectorId", FilterValue=vc_a) == ["+12065550101"]
    assert listed(FilterName="VoiceConnectorId", FilterValue=vc_b) == ["+12065550102"]
    assert listed() == sorted(numbers)
    assert listed(Status="Unassigned") == ["+18005550103"]
    first = voice.list_phone_numbers(MaxResults=2)
    assert len(first["PhoneNumbers"]) == 2 and first.get("NextToken")
    rest = voice.list_phone_numbers(MaxResults=2, NextToken=first["NextToken"])
    paged = [p["E164PhoneNumber"] for p in first["PhoneNumbers"] + rest["PhoneNumbers"]]
    assert sorted(paged) == sorted(numbers)

    # A connector with numbers cannot be deleted.
    with pytest.raises(voice.exceptions.ConflictException) as conflict:
        voice.delete_voice_connector(VoiceConnectorId=vc_a)
    assert conflict.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert voice.get_voice_connector(VoiceConnectorId=vc_a)["VoiceConnector"]

    res = voice.disassociate_phone_numbers_from_voice_connector(
        VoiceConnectorId=vc_a, E164PhoneNumbers=["+12065550101", "+12065550102"]
    )
    # +12065550102 now belongs to vc_b, so only it is refused.
    assert [e["PhoneNumberId"] for e in res["PhoneNumberErrors"]] == ["+12065550102"]
    pn = voice.get_phone_number(PhoneNumberId="+12065550101")["PhoneNumber"]
    assert pn["Status"] == "Unassigned" and pn["Associations"] == []
    assert listed(FilterName="VoiceConnectorId", FilterValue=vc_a) == []
    voice.delete_voice_connector(VoiceConnectorId=vc_a)
    with pytest.raises(voice.exceptions.NotFoundException):
        voice.get_voice_connector(VoiceConnectorId=vc_a)
    server.assert_healthy()
