"""boto3 (and the aws CLI once) against the real binary: voice connector groups and the
phone-number operations of issue 12 (UpdatePhoneNumber, BatchUpdatePhoneNumber,
DeletePhoneNumber, RestorePhoneNumber, Get/UpdatePhoneNumberSettings), with the exception
classes AWS raises. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from botocore.exceptions import ClientError

N1, N2, N3 = "+12065550141", "+12065550142", "+442079460143"


def error_of(exc: pytest.ExceptionInfo) -> tuple[str, str]:
    e = exc.value.response["Error"]
    return e["Code"], e["Message"]


@pytest.fixture
def lab(server):
    server.admin("add-numbers", N1, N2, N3)
    voice = server.voice
    a = voice.create_voice_connector(Name="pbx-a", RequireEncryption=False)["VoiceConnector"]
    b = voice.create_voice_connector(Name="pbx-b", RequireEncryption=False)["VoiceConnector"]
    return server, voice, a["VoiceConnectorId"], b["VoiceConnectorId"]


def test_group_crud(lab):
    server, voice, a, b = lab
    g = voice.create_voice_connector_group(
        Name="east-west",
        VoiceConnectorItems=[{"VoiceConnectorId": a, "Priority": 1},
                             {"VoiceConnectorId": b, "Priority": 2}],
    )["VoiceConnectorGroup"]
    gid = g["VoiceConnectorGroupId"]
    assert g["Name"] == "east-west"
    assert g["VoiceConnectorGroupArn"].endswith(f":vcg/{gid}")
    assert g["VoiceConnectorItems"] == [{"VoiceConnectorId": a, "Priority": 1},
                                        {"VoiceConnectorId": b, "Priority": 2}]
    assert voice.get_voice_connector_group(VoiceConnectorGroupId=gid)["VoiceConnectorGroup"] == g

    empty = voice.create_voice_connector_group(Name="spare")["VoiceConnectorGroup"]
    assert empty["VoiceConnectorItems"] == []
    listed = voice.list_voice_connector_groups()["VoiceConnectorGroups"]
    assert {x["VoiceConnectorGroupId"] for x in listed} == {gid, empty["VoiceConnectorGroupId"]}
    first = voice.list_voice_connector_groups(MaxResults=1)
    assert len(first["VoiceConnectorGroups"]) == 1 and first["NextToken"]
    second = voice.list_voice_connector_groups(MaxResults=1, NextToken=first["NextToken"])
    assert second["VoiceConnectorGroups"][0] != first["VoiceConnectorGroups"][0]

    up = voice.update_voice_connector_group(
        VoiceConnectorGroupId=gid, Name="west-only",
        VoiceConnectorItems=[{"VoiceConnectorId": b, "Priority": 1}],
    )["VoiceConnectorGroup"]
    assert up["Name"] == "west-only" and up["VoiceConnectorItems"] == [{"VoiceConnectorId": b, "Priority": 1}]
    assert up["CreatedTimestamp"] == g["CreatedTimestamp"]

    # A connector in a group cannot be deleted; one that left it can.
    with pytest.raises(ClientError) as exc:
        voice.delete_voice_connector(VoiceConnectorId=b)
    code, msg = error_of(exc)
    assert code == "ConflictException" and gid in msg, msg
    voice.delete_voice_connector(VoiceConnectorId=a)

    # A group with voice connectors cannot be deleted (AWS: remove them first).
    with pytest.raises(ClientError) as exc:
        voice.delete_voice_connector_group(VoiceConnectorGroupId=gid)
    assert error_of(exc)[0] == "ConflictException"
    voice.update_voice_connector_group(VoiceConnectorGroupId=gid, Name="west-only", VoiceConnectorItems=[])
    voice.delete_voice_connector_group(VoiceConnectorGroupId=gid)
    with pytest.raises(ClientError) as exc:
        voice.get_voice_connector_group(VoiceConnectorGroupId=gid)
    assert error_of(exc)[0] == "NotFoundException"
    server.assert_healthy()


def test_group_bad_input(lab):
    server, voice, a, _ = lab
    from test_api_voice import no_client_validation

    raw = no_client_validation(server)
    cases = [
        ({"Name": "x", "VoiceConnectorItems": [{"VoiceConnectorId": "nope", "Priority": 1}]},
         "VoiceConnectorItems[0].VoiceConnectorId"),
        ({"Name": "x", "VoiceConnectorItems": [{"VoiceConnectorId": a, "Priority": 1},
                                               {"VoiceConnectorId": a, "Priority": 2}]},
         "VoiceConnectorItems[1].VoiceConnectorId"),
        ({"Name": "x", "VoiceConnectorItems": [{"VoiceConnectorId": a, "Priority": 100}]}, "Priority"),
        ({"Name": "bad/name"}, "Name"),
        ({}, "Name"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ClientError) as exc:
            raw.create_voice_connector_group(**kwargs)
        code, msg = error_of(exc)
        assert code == "BadRequestException" and field in msg, (kwargs, msg)
    with pytest.raises(ClientError) as exc:
        voice.update_voice_connector_group(VoiceConnectorGroupId="missing", Name="n", VoiceConnectorItems=[])
    assert error_of(exc)[0] == "NotFoundException"
    assert voice.list_voice_connector_groups()["VoiceConnectorGroups"] == [], "nothing half-made"


def test_group_number_association(lab):
    server, voice, a, b = lab
    gid = voice.create_voice_connector_group(
        Name="g", VoiceConnectorItems=[{"VoiceConnectorId": a, "Priority": 1}],
    )["VoiceConnectorGroup"]["VoiceConnectorGroupId"]
    out = voice.associate_phone_numbers_with_voice_connector_group(
        VoiceConnectorGroupId=gid, E164PhoneNumbers=[N1, "+12065550999"])
    errs = out["PhoneNumberErrors"]
    assert [(e["PhoneNumberId"], e["ErrorCode"]) for e in errs] == [("+12065550999", "NotFound")]
    pn = voice.get_phone_number(PhoneNumberId=N1)["PhoneNumber"]
    assert pn["Status"] == "Assigned"
    assert [(x["Name"], x["Value"]) for x in pn["Associations"]] == [("VoiceConnectorGroupId", gid)]

    listed = voice.list_phone_numbers(FilterName="VoiceConnectorGroupId", FilterValue=gid)["PhoneNumbers"]
    assert [p["E164PhoneNumber"] for p in listed] == [N1]

    # Moving it to a connector needs ForceAssociate, and the reverse too.
    errs = voice.associate_phone_numbers_with_voice_connector(
        VoiceConnectorId=b, E164PhoneNumbers=[N1])["PhoneNumberErrors"]
    assert errs[0]["ErrorCode"] == "Conflict" and gid in errs[0]["ErrorMessage"]
    voice.associate_phone_numbers_with_voice_connector(VoiceConnectorId=b, E164PhoneNumbers=[N2])
    errs = voice.associate_phone_numbers_with_voice_connector_group(
        VoiceConnectorGroupId=gid, E164PhoneNumbers=[N2])["PhoneNumberErrors"]
    assert errs[0]["ErrorCode"] == "Conflict" and b in errs[0]["ErrorMessage"]
    assert voice.associate_phone_numbers_with_voice_connector_group(
        VoiceConnectorGroupId=gid, E164PhoneNumbers=[N2], ForceAssociate=True)["PhoneNumberErrors"] == []

    # A group with numbers cannot be deleted, even once its connectors are gone.
    voice.update_voice_connector_group(VoiceConnectorGroupId=gid, Name="g", VoiceConnectorItems=[])
    with pytest.raises(ClientError) as exc:
        voice.delete_voice_connector_group(VoiceConnectorGroupId=gid)
    code, msg = error_of(exc)
    assert code == "ConflictException" and "phone numbers" in msg, msg

    errs = voice.disassociate_phone_numbers_from_voice_connector_group(
        VoiceConnectorGroupId=gid, E164PhoneNumbers=[N1, N2, N3])["PhoneNumberErrors"]
    assert [(e["PhoneNumberId"], e["ErrorCode"]) for e in errs] == [(N3, "BadRequest")]
    assert voice.get_phone_number(PhoneNumberId=N1)["PhoneNumber"]["Status"] == "Unassigned"
    assert voice.list_phone_numbers(FilterName="VoiceConnectorGroupId", FilterValue=gid)["PhoneNumbers"] == []
    voice.delete_voice_connector_group(VoiceConnectorGroupId=gid)
    server.assert_healthy()


def test_update_phone_number_and_batch(lab):
    server, voice, a, _ = lab
    pn = voice.update_phone_number(PhoneNumberId=N1, CallingName="Example Co", Name="front desk")["PhoneNumber"]
    assert (pn["CallingName"], pn["CallingNameStatus"], pn["Name"]) == ("Example Co", "UpdateSucceeded", "front desk")
    assert voice.get_phone_number(PhoneNumberId=N1)["PhoneNumber"]["CallingName"] == "Example Co"
    pn = voice.update_phone_number(PhoneNumberId=N1, ProductType="SipMediaApplicationDialIn")["PhoneNumber"]
    assert pn["ProductType"] == "SipMediaApplicationDialIn" and pn["CallingName"] == "Example Co"

    with pytest.raises(ClientError) as exc:
        voice.update_phone_number(PhoneNumberId="+12065550999", CallingName="Nobody")
    assert error_of(exc)[0] == "NotFoundException"
    with pytest.raises(ClientError) as exc:
        voice.update_phone_number(PhoneNumberId=N2, CallingName="Bad, name!")
    code, msg = error_of(exc)
    assert code == "BadRequestException" and "CallingName" in msg, msg
    voice.associate_phone_numbers_with_voice_connector(VoiceConnectorId=a, E164PhoneNumbers=[N2])
    with pytest.raises(ClientError) as exc:
        voice.update_phone_number(PhoneNumberId=N2, ProductType="SipMediaApplicationDialIn")
    assert error_of(exc)[0] == "ConflictException"

    out = voice.batch_update_phone_number(UpdatePhoneNumberRequestItems=[
        {"PhoneNumberId": N2, "CallingName": "Batch One"},
        {"PhoneNumberId": N3, "CallingName": "Batch Two"},
        {"PhoneNumberId": "+12065550999", "CallingName": "Ghost"},
    ])
    assert [(e["PhoneNumberId"], e["ErrorCode"]) for e in out["PhoneNumberErrors"]] == [("+12065550999", "NotFound")]
    assert voice.get_phone_number(PhoneNumberId=N3)["PhoneNumber"]["CallingName"] == "Batch Two"
    # Clearing a calling name.
    pn = voice.update_phone_number(PhoneNumberId=N3, CallingName="")["PhoneNumber"]
    assert "CallingName" not in pn


def test_delete_and_restore_phone_number(lab):
    server, voice, a, _ = lab
    voice.associate_phone_numbers_with_voice_connector(VoiceConnectorId=a, E164PhoneNumbers=[N1])
    with pytest.raises(ClientError) as exc:
        voice.delete_phone_number(PhoneNumberId=N1)
    code, msg = error_of(exc)
    assert code == "BadRequestException" and "disassociate" in msg, msg
    voice.disassociate_phone_numbers_from_voice_connector(VoiceConnectorId=a, E164PhoneNumbers=[N1])

    voice.delete_phone_number(PhoneNumberId=N1)
    pn = voice.get_phone_number(PhoneNumberId=N1)["PhoneNumber"]
    assert pn["Status"] == "DeleteInProgress" and pn["DeletionTimestamp"]
    listed = voice.list_phone_numbers(Status="DeleteInProgress")["PhoneNumbers"]
    assert [p["E164PhoneNumber"] for p in listed] == [N1]
    # While queued for deletion it takes no association and no update.
    errs = voice.associate_phone_numbers_with_voice_connector(
        VoiceConnectorId=a, E164PhoneNumbers=[N1])["PhoneNumberErrors"]
    assert errs[0]["ErrorCode"] == "BadRequest" and "RestorePhoneNumber" in errs[0]["ErrorMessage"]
    with pytest.raises(ClientError) as exc:
        voice.update_phone_number(PhoneNumberId=N1, CallingName="Too Late")
    assert error_of(exc)[0] == "BadRequestException"
    voice.delete_phone_number(PhoneNumberId=N1)  # idempotent

    pn = voice.restore_phone_number(PhoneNumberId=N1)["PhoneNumber"]
    assert pn["Status"] == "Unassigned" and "DeletionTimestamp" not in pn
    with pytest.raises(ClientError) as exc:
        voice.restore_phone_number(PhoneNumberId=N1)
    code, msg = error_of(exc)
    assert code == "BadRequestException" and "deletion queue" in msg, msg
    with pytest.raises(ClientError) as exc:
        voice.delete_phone_number(PhoneNumberId="+12065550999")
    assert error_of(exc)[0] == "NotFoundException"
    assert voice.associate_phone_numbers_with_voice_connector(
        VoiceConnectorId=a, E164PhoneNumbers=[N1])["PhoneNumberErrors"] == []


def test_phone_number_settings(server):
    voice = server.voice
    assert "CallingName" not in voice.get_phone_number_settings()
    voice.update_phone_number_settings(CallingName="Acme Support")
    got = voice.get_phone_number_settings()
    assert got["CallingName"] == "Acme Support" and got["CallingNameUpdatedTimestamp"]
    with pytest.raises(ClientError) as exc:
        voice.update_phone_number_settings(CallingName="x" * 16)
    code, msg = error_of(exc)
    assert code == "BadRequestException" and "CallingName" in msg, msg


@pytest.mark.skipif(shutil.which("aws") is None, reason="aws CLI is not installed (scripts/setup-deps installs it)")
def test_aws_cli_creates_a_group(server):
    vc = server.voice.create_voice_connector(Name="cli-a", RequireEncryption=False)["VoiceConnector"]
    p = subprocess.run(
        ["aws", "chime-sdk-voice", "create-voice-connector-group", "--name", "cli-group",
         "--voice-connector-items", f"VoiceConnectorId={vc['VoiceConnectorId']},Priority=1",
         "--endpoint-url", server.endpoint, "--output", "json"],
        capture_output=True, text=True, env=server.aws_env(), timeout=120,
    )
    assert p.returncode == 0, p.stderr
    g = json.loads(p.stdout)["VoiceConnectorGroup"]
    assert g["Name"] == "cli-group"
    assert g["VoiceConnectorItems"] == [{"VoiceConnectorId": vc["VoiceConnectorId"], "Priority": 1}]
