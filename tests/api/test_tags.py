"""Tags by ARN through boto3's two clients and the aws CLI (issue 18): voice connectors, voice
connector groups, SIP media applications and meetings; tags given at creation; replace,
remove, the 50-tag limit with each service's own exception, reserved keys, and unknown ARNs.
Tags go with their resource when it is deleted. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess

import pytest
from botocore.exceptions import ClientError

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:greeter"


def tags_of(client, arn):
    return {t["Key"]: t["Value"] for t in client.list_tags_for_resource(ResourceARN=arn)["Tags"]}


def code_and_message(exc):
    e = exc.value.response["Error"]
    return e["Code"], e["Message"]


def test_every_resource_kind_is_tagged_by_its_arn(server):
    voice, meetings = server.voice, server.meetings
    vc = voice.create_voice_connector(Name="pbx", RequireEncryption=True,
                                      Tags=[{"Key": "team", "Value": "voice"}])["VoiceConnector"]
    group = voice.create_voice_connector_group(Name="g")["VoiceConnectorGroup"]
    sma = voice.create_sip_media_application(
        AwsRegion="us-east-1", Name="ivr", Endpoints=[{"LambdaArn": LAMBDA}],
        Tags=[{"Key": "app", "Value": "ivr"}])["SipMediaApplication"]
    meeting = meetings.create_meeting(ClientRequestToken="tags-1", MediaRegion="us-east-1",
                                      ExternalMeetingId="mtg",
                                      Tags=[{"Key": "room", "Value": "standup"}])["Meeting"]

    assert tags_of(voice, vc["VoiceConnectorArn"]) == {"team": "voice"}
    assert tags_of(voice, sma["SipMediaApplicationArn"]) == {"app": "ivr"}
    assert tags_of(meetings, meeting["MeetingArn"]) == {"room": "standup"}
    assert tags_of(voice, group["VoiceConnectorGroupArn"]) == {}

    voice.tag_resource(ResourceARN=vc["VoiceConnectorArn"],
                       Tags=[{"Key": "team", "Value": "core"}, {"Key": "env", "Value": "prod"}])
    voice.tag_resource(ResourceARN=group["VoiceConnectorGroupArn"], Tags=[{"Key": "site", "Value": "a"}])
    meetings.tag_resource(ResourceARN=meeting["MeetingArn"], Tags=[{"Key": "cost", "Value": "42"}])
    assert tags_of(voice, vc["VoiceConnectorArn"]) == {"team": "core", "env": "prod"}
    assert tags_of(voice, group["VoiceConnectorGroupArn"]) == {"site": "a"}
    assert tags_of(meetings, meeting["MeetingArn"]) == {"room": "standup", "cost": "42"}

    voice.untag_resource(ResourceARN=vc["VoiceConnectorArn"], TagKeys=["env", "absent"])
    meetings.untag_resource(ResourceARN=meeting["MeetingArn"], TagKeys=["room"])
    assert tags_of(voice, vc["VoiceConnectorArn"]) == {"team": "core"}
    assert tags_of(meetings, meeting["MeetingArn"]) == {"cost": "42"}
    # Tags belong to one resource only.
    assert tags_of(voice, sma["SipMediaApplicationArn"]) == {"app": "ivr"}


def test_limits_and_unknown_resources_get_each_services_error(server):
    voice, meetings = server.voice, server.meetings
    vc = voice.create_voice_connector(Name="pbx", RequireEncryption=True)["VoiceConnector"]
    meeting = meetings.create_meeting(ClientRequestToken="tags-2", MediaRegion="us-east-1",
                                      ExternalMeetingId="mtg")["Meeting"]
    fifty = [{"Key": f"k{i:02}", "Value": "v"} for i in range(50)]
    voice.tag_resource(ResourceARN=vc["VoiceConnectorArn"], Tags=fifty)
    meetings.tag_resource(ResourceARN=meeting["MeetingArn"], Tags=fifty)

    with pytest.raises(ClientError) as e:
        voice.tag_resource(ResourceARN=vc["VoiceConnectorArn"], Tags=[{"Key": "one-more", "Value": "x"}])
    code, msg = code_and_message(e)
    assert code == "ResourceLimitExceededException" and "at most 50 tags" in msg, (code, msg)
    with pytest.raises(ClientError) as e:
        meetings.tag_resource(ResourceARN=meeting["MeetingArn"], Tags=[{"Key": "one-more", "Value": "x"}])
    code, msg = code_and_message(e)
    assert code == "TooManyTagsException" and "at most 50 tags" in msg, (code, msg)
    assert len(tags_of(voice, vc["VoiceConnectorArn"])) == 50
    # Replacing a value is not a new tag.
    voice.tag_resource(ResourceARN=vc["VoiceConnectorArn"], Tags=[{"Key": "k00", "Value": "new"}])
    assert tags_of(voice, vc["VoiceConnectorArn"])["k00"] == "new"

    with pytest.raises(ClientError) as e:
        voice.tag_resource(ResourceARN=vc["VoiceConnectorArn"], Tags=[{"Key": "aws:owner", "Value": "x"}])
    code, msg = code_and_message(e)
    assert code == "BadRequestException" and "reserved" in msg, (code, msg)

    gone = vc["VoiceConnectorArn"][:-1] + ("a" if vc["VoiceConnectorArn"][-1] != "a" else "b")
    with pytest.raises(ClientError) as e:
        voice.list_tags_for_resource(ResourceARN=gone)
    code, msg = code_and_message(e)
    assert code == "NotFoundException" and gone in msg, (code, msg)
    missing_meeting = meeting["MeetingArn"].rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    with pytest.raises(ClientError) as e:
        meetings.tag_resource(ResourceARN=missing_meeting, Tags=[{"Key": "a", "Value": "b"}])
    code, msg = code_and_message(e)
    assert code == "ResourceNotFoundException", (code, msg)
    # A region that is not the resource's is another resource.
    other_region = vc["VoiceConnectorArn"].replace(":us-east-1:", ":us-west-2:")
    with pytest.raises(ClientError) as e:
        voice.list_tags_for_resource(ResourceARN=other_region)
    assert code_and_message(e)[0] == "NotFoundException"
    server.assert_healthy()


@pytest.mark.skipif(shutil.which("aws") is None, reason="aws CLI is not installed (scripts/setup-deps installs it)")
def test_aws_cli_tags_a_meeting(server):
    meeting = server.meetings.create_meeting(ClientRequestToken="tags-3", MediaRegion="us-east-1",
                                             ExternalMeetingId="mtg")["Meeting"]
    arn = meeting["MeetingArn"]

    def aws(*args):
        return server.aws_cli("chime-sdk-meetings", *args)

    aws("tag-resource", "--resource-arn", arn, "--tags", "Key=owner,Value=ops", "Key=tier,Value=gold")
    out = aws("list-tags-for-resource", "--resource-arn", arn)
    assert sorted((t["Key"], t["Value"]) for t in out["Tags"]) == [("owner", "ops"), ("tier", "gold")]
    aws("untag-resource", "--resource-arn", arn, "--tag-keys", "owner")
    assert aws("list-tags-for-resource", "--resource-arn", arn)["Tags"] == [{"Key": "tier", "Value": "gold"}]


def stored_tag_arns(server) -> set[str]:
    """The ARNs that have tag rows in the server's database (SQLite file or PostgreSQL)."""
    sql = "SELECT DISTINCT arn FROM resource_tags"
    if server.database_url:
        out = subprocess.run(["psql", server.database_url, "-tAc", sql], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        return {line for line in out.splitlines() if line}
    with sqlite3.connect(server.data_dir / "voice-connector.db") as db:
        return {row[0] for row in db.execute(sql)}


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed (scripts/setup-deps installs PostgreSQL)")
def test_tags_go_with_their_resource_and_arns_are_in_every_answer(server):
    voice, meetings = server.voice, server.meetings
    tag = [{"Key": "owner", "Value": "ops"}]
    vc = voice.create_voice_connector(Name="pbx", RequireEncryption=True, Tags=tag)["VoiceConnector"]
    group = voice.create_voice_connector_group(Name="g")["VoiceConnectorGroup"]
    voice.tag_resource(ResourceARN=group["VoiceConnectorGroupArn"], Tags=tag)
    sma = voice.create_sip_media_application(AwsRegion="us-east-1", Name="ivr",
                                             Endpoints=[{"LambdaArn": LAMBDA}],
                                             Tags=tag)["SipMediaApplication"]
    meeting = meetings.create_meeting(ClientRequestToken="tags-gone", MediaRegion="us-east-1",
                                      ExternalMeetingId="mtg", Tags=tag)["Meeting"]
    with_attendees = meetings.create_meeting_with_attendees(
        ClientRequestToken="tags-kept", MediaRegion="us-east-1", ExternalMeetingId="kept",
        Tags=tag, Attendees=[{"ExternalUserId": "u1"}])["Meeting"]
    arns = {vc["VoiceConnectorArn"], group["VoiceConnectorGroupArn"],
            sma["SipMediaApplicationArn"], meeting["MeetingArn"], with_attendees["MeetingArn"]}
    assert all(a.startswith("arn:aws:chime:us-east-1:") for a in arns), arns

    # The ARN in every Get and List answer is the one creation gave.
    assert voice.get_voice_connector(VoiceConnectorId=vc["VoiceConnectorId"])[
        "VoiceConnector"]["VoiceConnectorArn"] == vc["VoiceConnectorArn"]
    assert [v["VoiceConnectorArn"] for v in voice.list_voice_connectors()["VoiceConnectors"]] == \
        [vc["VoiceConnectorArn"]]
    assert voice.get_voice_connector_group(VoiceConnectorGroupId=group["VoiceConnectorGroupId"])[
        "VoiceConnectorGroup"]["VoiceConnectorGroupArn"] == group["VoiceConnectorGroupArn"]
    assert [g["VoiceConnectorGroupArn"] for g in
            voice.list_voice_connector_groups()["VoiceConnectorGroups"]] == [group["VoiceConnectorGroupArn"]]
    assert voice.get_sip_media_application(SipMediaApplicationId=sma["SipMediaApplicationId"])[
        "SipMediaApplication"]["SipMediaApplicationArn"] == sma["SipMediaApplicationArn"]
    assert [a["SipMediaApplicationArn"] for a in
            voice.list_sip_media_applications()["SipMediaApplications"]] == [sma["SipMediaApplicationArn"]]
    assert meetings.get_meeting(MeetingId=meeting["MeetingId"])["Meeting"]["MeetingArn"] == \
        meeting["MeetingArn"]
    assert voice.update_voice_connector(VoiceConnectorId=vc["VoiceConnectorId"], Name="pbx2",
                                        RequireEncryption=True)["VoiceConnector"]["VoiceConnectorArn"] == \
        vc["VoiceConnectorArn"]
    assert voice.update_voice_connector_group(VoiceConnectorGroupId=group["VoiceConnectorGroupId"], Name="g2",
                                              VoiceConnectorItems=[])["VoiceConnectorGroup"][
        "VoiceConnectorGroupArn"] == group["VoiceConnectorGroupArn"]
    assert voice.update_sip_media_application(SipMediaApplicationId=sma["SipMediaApplicationId"], Name="ivr2")[
        "SipMediaApplication"]["SipMediaApplicationArn"] == sma["SipMediaApplicationArn"]
    assert stored_tag_arns(server) == arns

    voice.delete_voice_connector(VoiceConnectorId=vc["VoiceConnectorId"])
    voice.delete_voice_connector_group(VoiceConnectorGroupId=group["VoiceConnectorGroupId"])
    voice.delete_sip_media_application(SipMediaApplicationId=sma["SipMediaApplicationId"])
    meetings.delete_meeting(MeetingId=meeting["MeetingId"])
    assert stored_tag_arns(server) == {with_attendees["MeetingArn"]}
    for arn, client in [(vc["VoiceConnectorArn"], voice), (meeting["MeetingArn"], meetings)]:
        with pytest.raises(ClientError) as e:
            client.list_tags_for_resource(ResourceARN=arn)
        assert code_and_message(e)[0] in ("NotFoundException", "ResourceNotFoundException")
    server.assert_healthy()
