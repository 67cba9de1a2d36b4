"""boto3 `chime-sdk-voice` (and the aws CLI once) against the real binary: SIP media
applications and SIP rules (issue 13) — CRUD, list pagination, the settings documents,
errors that name the field, a rule that must be disabled before it is deleted, an
application that cannot be deleted while a rule targets it, and CreateSipMediaApplicationCall
/ UpdateSipMediaApplicationCall queued with a TransactionId. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

ARN = "arn:aws:lambda:us-east-1:123456789012:function:greeter"
FREE, ASSIGNED, MISSING = "+12065550161", "+12065550162", "+12065550169"


def error_of(exc: pytest.ExceptionInfo) -> tuple[str, str]:
    e = exc.value.response["Error"]
    return e["Code"], e["Message"]


@pytest.fixture
def lab(server):
    server.admin("add-numbers", FREE, ASSIGNED)
    voice = server.voice
    vc = voice.create_voice_connector(Name="pbx", RequireEncryption=False)["VoiceConnector"]
    voice.associate_phone_numbers_with_voice_connector(
        VoiceConnectorId=vc["VoiceConnectorId"], E164PhoneNumbers=[ASSIGNED])
    return server, voice, vc


def create_sma(voice, name="ivr", arn=ARN, region="us-east-1"):
    return voice.create_sip_media_application(
        AwsRegion=region, Name=name, Endpoints=[{"LambdaArn": arn}])["SipMediaApplication"]


def test_sip_media_application_crud_and_pagination(lab):
    server, voice, _ = lab
    a = create_sma(voice)
    sid = a["SipMediaApplicationId"]
    uuid.UUID(sid)
    assert a["Name"] == "ivr" and a["AwsRegion"] == "us-east-1"
    assert a["Endpoints"] == [{"LambdaArn": ARN}]
    assert a["SipMediaApplicationArn"] == f"arn:aws:chime:us-east-1:000000000000:sma/{sid}"
    assert voice.get_sip_media_application(SipMediaApplicationId=sid)["SipMediaApplication"] == a

    others = [create_sma(voice, name=f"app-{i}")["SipMediaApplicationId"] for i in range(2)]
    seen, token, pages = [], None, 0
    while True:
        kw = {"MaxResults": 2} | ({"NextToken": token} if token else {})
        page = voice.list_sip_media_applications(**kw)
        seen += [x["SipMediaApplicationId"] for x in page["SipMediaApplications"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted([sid, *others]) and pages == 2

    arn2 = "arn:aws:lambda:us-east-1:123456789012:function:greeter:prod"
    up = voice.update_sip_media_application(
        SipMediaApplicationId=sid, Name="ivr-2", Endpoints=[{"LambdaArn": arn2}])["SipMediaApplication"]
    assert (up["Name"], up["Endpoints"]) == ("ivr-2", [{"LambdaArn": arn2}])
    assert up["CreatedTimestamp"] == a["CreatedTimestamp"]
    # Only what is given changes.
    up2 = voice.update_sip_media_application(SipMediaApplicationId=sid, Name="ivr-3")["SipMediaApplication"]
    assert (up2["Name"], up2["Endpoints"]) == ("ivr-3", [{"LambdaArn": arn2}])

    # Settings documents: empty until put, then what was put.
    assert "SipMediaApplicationLoggingConfiguration" not in \
        voice.get_sip_media_application_logging_configuration(SipMediaApplicationId=sid)
    voice.put_sip_media_application_logging_configuration(
        SipMediaApplicationId=sid,
        SipMediaApplicationLoggingConfiguration={"EnableSipMediaApplicationMessageLogs": True})
    got = voice.get_sip_media_application_logging_configuration(SipMediaApplicationId=sid)
    assert got["SipMediaApplicationLoggingConfiguration"] == {"EnableSipMediaApplicationMessageLogs": True}
    skill = {"AlexaSkillStatus": "ACTIVE",
             "AlexaSkillIds": ["amzn1.application-oa2-client." + "ab" * 16]}
    voice.put_sip_media_application_alexa_skill_configuration(
        SipMediaApplicationId=sid, SipMediaApplicationAlexaSkillConfiguration=skill)
    got = voice.get_sip_media_application_alexa_skill_configuration(SipMediaApplicationId=sid)
    assert got["SipMediaApplicationAlexaSkillConfiguration"] == skill

    voice.delete_sip_media_application(SipMediaApplicationId=sid)
    with pytest.raises(ClientError) as exc:
        voice.get_sip_media_application(SipMediaApplicationId=sid)
    assert error_of(exc)[0] == "NotFoundException"
    with pytest.raises(ClientError) as exc:
        voice.get_sip_media_application_logging_configuration(SipMediaApplicationId=sid)
    assert error_of(exc)[0] == "NotFoundException"
    server.assert_healthy()


@pytest.mark.parametrize("kwargs, field", [
    ({"Endpoints": [{"LambdaArn": "arn:aws:s3:::bucket"}]}, "LambdaArn"),
    ({"Endpoints": [{"LambdaArn": "arn:aws:lambda:us-east-1:12345:function:f"}]}, "LambdaArn"),
    ({"Endpoints": [{"LambdaArn": "arn:aws:lambda:eu-west-1:123456789012:function:f"}]},
     "Endpoints[0].LambdaArn"),
    ({"AwsRegion": "mars-1"}, "AwsRegion"),
    ({"Name": "bad/name"}, "Name"),
])
def test_create_sip_media_application_refusals_name_the_field(lab, kwargs, field):
    _, voice, _ = lab
    args = {"AwsRegion": "us-east-1", "Name": "ivr", "Endpoints": [{"LambdaArn": ARN}]} | kwargs
    with pytest.raises(ClientError) as exc:
        voice.create_sip_media_application(**args)
    code, msg = error_of(exc)
    assert code == "BadRequestException" and field in msg, msg
    assert voice.list_sip_media_applications()["SipMediaApplications"] == []


def raw_error(server, method: str, path: str, body: dict) -> tuple[int, str, str]:
    """A signed request boto3 would refuse to send (its client-side checks): status, error
    code and message of the server's answer."""
    r = server.signed(method, path, json.dumps(body))
    doc = r.json()
    return r.status_code, r.headers.get("x-amzn-ErrorType", ""), doc.get("Message", "")


def test_what_boto3_would_not_send_is_refused_by_the_server_too(lab):
    server, voice, _ = lab
    good = {"AwsRegion": "us-east-1", "Name": "ivr", "Endpoints": [{"LambdaArn": ARN}]}
    for change, field in [({"Endpoints": []}, "Endpoints"), ({"Name": ""}, "Name"),
                          ({"Endpoints": [{"LambdaArn": ARN}, {"LambdaArn": ARN}]}, "Endpoints")]:
        status, code, msg = raw_error(server, "POST", "/sip-media-applications", good | change)
        assert (status, code) == (400, "BadRequestException") and field in msg, (change, msg)
    a = create_sma(voice)["SipMediaApplicationId"]
    rule = {"Name": "r", "TriggerType": "ToPhoneNumber", "TriggerValue": FREE,
            "TargetApplications": [{"SipMediaApplicationId": a, "Priority": 0, "AwsRegion": "us-east-1"}]}
    status, code, msg = raw_error(server, "POST", "/sip-rules", rule)
    assert (status, code) == (400, "BadRequestException") and "Priority" in msg, msg
    status, code, msg = raw_error(server, "POST", "/sip-rules", rule | {"TargetApplications": []})
    assert (status, code) == (400, "BadRequestException") and "TargetApplications" in msg, msg
    assert voice.list_sip_rules()["SipRules"] == []
    server.assert_healthy()


def test_sip_rule_crud_both_triggers(lab):
    server, voice, vc = lab
    a = create_sma(voice)["SipMediaApplicationId"]
    b = create_sma(voice, name="west", region="us-west-2",
                   arn="arn:aws:lambda:us-west-2:123456789012:function:west")["SipMediaApplicationId"]
    by_number = voice.create_sip_rule(
        Name="dial-in", TriggerType="ToPhoneNumber", TriggerValue=FREE,
        TargetApplications=[{"SipMediaApplicationId": a, "Priority": 1, "AwsRegion": "us-east-1"}],
    )["SipRule"]
    rid = by_number["SipRuleId"]
    uuid.UUID(rid)
    assert (by_number["Disabled"], by_number["TriggerType"], by_number["TriggerValue"]) == \
        (False, "ToPhoneNumber", FREE)
    host = vc["OutboundHostName"]
    by_host = voice.create_sip_rule(
        Name="pbx-calls", TriggerType="RequestUriHostname", TriggerValue=host.upper(),
        Disabled=True,
        TargetApplications=[{"SipMediaApplicationId": a, "Priority": 1, "AwsRegion": "us-east-1"},
                            {"SipMediaApplicationId": b, "Priority": 2, "AwsRegion": "us-west-2"}],
    )["SipRule"]
    assert by_host["TriggerValue"] == host.lower() and by_host["Disabled"] is True
    assert voice.get_sip_rule(SipRuleId=rid)["SipRule"] == by_number

    listed = voice.list_sip_rules()["SipRules"]
    assert {r["SipRuleId"] for r in listed} == {rid, by_host["SipRuleId"]}
    first = voice.list_sip_rules(MaxResults=1)
    assert len(first["SipRules"]) == 1 and first["NextToken"]
    second = voice.list_sip_rules(MaxResults=1, NextToken=first["NextToken"])
    assert second["SipRules"][0]["SipRuleId"] != first["SipRules"][0]["SipRuleId"]
    only_b = voice.list_sip_rules(SipMediaApplicationId=b)["SipRules"]
    assert [r["SipRuleId"] for r in only_b] == [by_host["SipRuleId"]]

    up = voice.update_sip_rule(
        SipRuleId=rid, Name="dial-in-2", Disabled=True,
        TargetApplications=[{"SipMediaApplicationId": b, "Priority": 1, "AwsRegion": "us-west-2"}],
    )["SipRule"]
    assert (up["Name"], up["Disabled"], up["TriggerValue"]) == ("dial-in-2", True, FREE)
    assert up["TargetApplications"] == [{"SipMediaApplicationId": b, "Priority": 1, "AwsRegion": "us-west-2"}]
    assert voice.list_sip_rules(SipMediaApplicationId=a)["SipRules"][0]["SipRuleId"] == by_host["SipRuleId"]
    server.assert_healthy()


def test_rule_must_be_disabled_before_delete_and_application_in_use(lab):
    _, voice, vc = lab
    a = create_sma(voice)["SipMediaApplicationId"]
    rid = voice.create_sip_rule(
        Name="dial-in", TriggerType="ToPhoneNumber", TriggerValue=FREE,
        TargetApplications=[{"SipMediaApplicationId": a, "Priority": 1, "AwsRegion": "us-east-1"}],
    )["SipRule"]["SipRuleId"]

    with pytest.raises(ClientError) as exc:
        voice.delete_sip_media_application(SipMediaApplicationId=a)
    code, msg = error_of(exc)
    assert code == "ConflictException" and a in msg and rid in msg, msg

    with pytest.raises(ClientError) as exc:
        voice.delete_sip_rule(SipRuleId=rid)
    code, msg = error_of(exc)
    assert code == "ConflictException" and "disable" in msg.lower(), msg
    assert voice.get_sip_rule(SipRuleId=rid)["SipRule"]["Disabled"] is False

    # The rule's number cannot be given to a voice connector, even with ForceAssociate.
    out = voice.associate_phone_numbers_with_voice_connector(
        VoiceConnectorId=vc["VoiceConnectorId"], E164PhoneNumbers=[FREE], ForceAssociate=True)
    [err] = out["PhoneNumberErrors"]
    assert (err["PhoneNumberId"], err["ErrorCode"]) == (FREE, "Conflict") and rid in err["ErrorMessage"]
    assert voice.get_phone_number(PhoneNumberId=FREE)["PhoneNumber"]["Associations"] == []

    voice.update_sip_rule(SipRuleId=rid, Name="dial-in", Disabled=True)
    voice.delete_sip_rule(SipRuleId=rid)
    with pytest.raises(ClientError) as exc:
        voice.get_sip_rule(SipRuleId=rid)
    assert error_of(exc)[0] == "NotFoundException"
    voice.delete_sip_media_application(SipMediaApplicationId=a)
    # Once the rule is gone the number is free for a connector again.
    out = voice.associate_phone_numbers_with_voice_connector(
        VoiceConnectorId=vc["VoiceConnectorId"], E164PhoneNumbers=[FREE])
    assert out["PhoneNumberErrors"] == []


def test_sip_rule_refusals_name_the_field(lab):
    _, voice, vc = lab
    a = create_sma(voice)["SipMediaApplicationId"]
    target = [{"SipMediaApplicationId": a, "Priority": 1, "AwsRegion": "us-east-1"}]

    def refused(field: str, code: str = "BadRequestException", **kw) -> str:
        args = {"Name": "r", "TriggerType": "ToPhoneNumber", "TriggerValue": FREE,
                "TargetApplications": target} | kw
        args = {k: v for k, v in args.items() if v is not None}
        with pytest.raises(ClientError) as exc:
            voice.create_sip_rule(**args)
        got, msg = error_of(exc)
        assert got == code and field in msg, (kw, msg)
        return msg

    assert "inventory" in refused("TriggerValue", TriggerValue=MISSING)
    assert vc["VoiceConnectorId"] in refused("TriggerValue", TriggerValue=ASSIGNED)
    refused("TriggerValue", TriggerValue="12065550161")
    refused("TriggerValue", TriggerType="RequestUriHostname", TriggerValue="pbx.example.net")
    refused("TriggerValue", TriggerType="RequestUriHostname", TriggerValue="127.0.0.1")
    refused("TriggerType", TriggerType="ToSomething")
    refused("TargetApplications[0].SipMediaApplicationId",
            TargetApplications=[{"SipMediaApplicationId": str(uuid.uuid4()), "Priority": 1,
                                 "AwsRegion": "us-east-1"}])
    refused("TargetApplications[0].AwsRegion",
            TargetApplications=[{"SipMediaApplicationId": a, "Priority": 1, "AwsRegion": "us-west-2"}])
    refused("TargetApplications", TargetApplications=None)  # absent: the rule would start nothing
    assert voice.list_sip_rules()["SipRules"] == []

    # One rule per trigger.
    voice.create_sip_rule(Name="r", TriggerType="ToPhoneNumber", TriggerValue=FREE,
                          TargetApplications=target)
    assert FREE in refused("", code="ConflictException")

    with pytest.raises(ClientError) as exc:
        voice.update_sip_rule(SipRuleId=str(uuid.uuid4()), Name="x")
    assert error_of(exc)[0] == "NotFoundException"


def test_sma_calls_are_queued_with_a_transaction_id(lab):
    server, voice, _ = lab
    a = create_sma(voice)["SipMediaApplicationId"]
    call = voice.create_sip_media_application_call(
        SipMediaApplicationId=a, FromPhoneNumber=FREE, ToPhoneNumber="+14155550100",
        SipHeaders={"X-Case": "42"}, ArgumentsMap={"lang": "en"})["SipMediaApplicationCall"]
    tid = call["TransactionId"]
    uuid.UUID(tid)
    upd = voice.update_sip_media_application_call(
        SipMediaApplicationId=a, TransactionId=tid, Arguments={"next": "goodbye"})
    assert upd["SipMediaApplicationCall"]["TransactionId"] == tid

    for kw, code, field in [
        ({"FromPhoneNumber": MISSING}, "BadRequestException", "FromPhoneNumber"),
        ({"ToPhoneNumber": "12345"}, "BadRequestException", "ToPhoneNumber"),
        ({"SipHeaders": {"Contact": "<sip:x@127.0.0.1>"}}, "BadRequestException", "SipHeaders"),
        ({"SipMediaApplicationId": str(uuid.uuid4())}, "NotFoundException", "SIP media application"),
    ]:
        args = {"SipMediaApplicationId": a, "FromPhoneNumber": FREE,
                "ToPhoneNumber": "+14155550100"} | kw
        with pytest.raises(ClientError) as exc:
            voice.create_sip_media_application_call(**args)
        got, msg = error_of(exc)
        assert got == code and field in msg, (kw, msg)
    with pytest.raises(ClientError) as exc:
        voice.update_sip_media_application_call(
            SipMediaApplicationId=a, TransactionId=str(uuid.uuid4()), Arguments={})
    code, msg = error_of(exc)
    assert code == "NotFoundException" and "TransactionId" in msg, msg
    server.assert_healthy()


@pytest.mark.skipif(shutil.which("aws") is None, reason="aws CLI is not installed (scripts/setup-deps installs it)")
def test_aws_cli_creates_a_sip_media_application(server):
    p = subprocess.run(
        ["aws", "chime-sdk-voice", "create-sip-media-application", "--aws-region", "us-east-1",
         "--name", "cli-ivr", "--endpoints", f"LambdaArn={ARN}",
         "--endpoint-url", server.endpoint, "--output", "json"],
        capture_output=True, text=True, env=server.aws_env(), timeout=120,
    )
    assert p.returncode == 0, p.stderr
    a = json.loads(p.stdout)["SipMediaApplication"]
    assert a["Name"] == "cli-ivr" and a["Endpoints"] == [{"LambdaArn": ARN}]
    got = server.voice.get_sip_media_application(
        SipMediaApplicationId=a["SipMediaApplicationId"])["SipMediaApplication"]
    assert (got["Name"], got["SipMediaApplicationArn"]) == ("cli-ivr", a["SipMediaApplicationArn"])
