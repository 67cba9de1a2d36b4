"""A voice connector's streaming configuration through boto3 (issue 19): put, get and
delete, the refusals that name the field (the model's shapes and the rules beyond them),
and a deleted connector taking its configuration with it. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError


def refused(call, **kw):
    with pytest.raises(ClientError) as e:
        call(**kw)
    err = e.value.response["Error"]
    return err["Code"], err["Message"]


def connector(voice) -> str:
    vc = voice.create_voice_connector(Name="pbx", RequireEncryption=True)["VoiceConnector"]
    return vc["VoiceConnectorId"]


def test_streaming_configuration_round_trip(server):
    voice = server.voice
    vid = connector(voice)
    code, msg = refused(voice.get_voice_connector_streaming_configuration, VoiceConnectorId=vid)
    assert code == "NotFoundException" and "PutVoiceConnectorStreamingConfiguration" in msg
    want = {"DataRetentionInHours": 24, "Disabled": False,
            "StreamingNotificationTargets": [{"NotificationTarget": "EventBridge"},
                                             {"NotificationTarget": "SQS"}]}
    put = voice.put_voice_connector_streaming_configuration(
        VoiceConnectorId=vid, StreamingConfiguration=want)["StreamingConfiguration"]
    assert put == want
    got = voice.get_voice_connector_streaming_configuration(
        VoiceConnectorId=vid)["StreamingConfiguration"]
    assert got == want
    # A second put replaces the first.
    off = {"DataRetentionInHours": 0, "Disabled": True,
           "MediaInsightsConfiguration": {"Disabled": True}}
    voice.put_voice_connector_streaming_configuration(VoiceConnectorId=vid,
                                                      StreamingConfiguration=off)
    got = voice.get_voice_connector_streaming_configuration(
        VoiceConnectorId=vid)["StreamingConfiguration"]
    assert got == off
    voice.delete_voice_connector_streaming_configuration(VoiceConnectorId=vid)
    code, _ = refused(voice.get_voice_connector_streaming_configuration, VoiceConnectorId=vid)
    assert code == "NotFoundException"
    code, _ = refused(voice.delete_voice_connector_streaming_configuration, VoiceConnectorId=vid)
    assert code == "NotFoundException"


def test_bad_configurations_are_refused_naming_the_field(server):
    voice = server.voice
    vid = connector(voice)
    insights_arn = ("arn:aws:chime:us-east-1:111122223333:"
                    "media-insights-pipeline-configuration/analytics")
    cases = [
        # The model's shapes, checked by the server.
        ({"DataRetentionInHours": -1, "Disabled": False}, "DataRetentionInHours"),
        ({"DataRetentionInHours": 1}, "Disabled"),
        ({"DataRetentionInHours": 1, "Disabled": False,
          "StreamingNotificationTargets": [{"NotificationTarget": "Pager"}]}, "NotificationTarget"),
        ({"DataRetentionInHours": 1, "Disabled": False, "StreamingNotificationTargets": []},
         "StreamingNotificationTargets"),
        ({"DataRetentionInHours": 1, "Disabled": False, "StreamingNotificationTargets":
          [{"NotificationTarget": t} for t in ("SNS", "SQS", "EventBridge", "SNS")]},
         "StreamingNotificationTargets"),
        # The rules beyond the shapes.
        ({"DataRetentionInHours": 100000, "Disabled": False}, "DataRetentionInHours"),
        ({"DataRetentionInHours": 1, "Disabled": False, "StreamingNotificationTargets":
          [{"NotificationTarget": "SNS"}, {"NotificationTarget": "SNS"}]}, "SNS twice"),
        ({"DataRetentionInHours": 1, "Disabled": False,
          "MediaInsightsConfiguration": {"Disabled": False}}, "ConfigurationArn"),
        ({"DataRetentionInHours": 1, "Disabled": False,
          "MediaInsightsConfiguration": {"ConfigurationArn": "arn:aws:s3:::bucket"}},
         "ConfigurationArn"),
    ]
    for config, field in cases:
        # Sent signed by hand: boto3 would refuse some of them before sending.
        r = server.signed("PUT", f"/voice-connectors/{vid}/streaming-configuration",
                          json.dumps({"StreamingConfiguration": config}))
        assert r.status_code == 400, (config, r.status_code, r.text)
        assert "BadRequest" in r.headers.get("x-amzn-ErrorType", "") + r.text, (config, r.text)
        assert field in r.json().get("Message", r.json().get("message", "")), (config, r.text)
    # Nothing was stored by the refusals.
    code, _ = refused(voice.get_voice_connector_streaming_configuration, VoiceConnectorId=vid)
    assert code == "NotFoundException"
    ok = {"DataRetentionInHours": 1, "Disabled": False,
          "MediaInsightsConfiguration": {"Disabled": False, "ConfigurationArn": insights_arn}}
    put = voice.put_voice_connector_streaming_configuration(
        VoiceConnectorId=vid, StreamingConfiguration=ok)["StreamingConfiguration"]
    assert put == ok


def test_unknown_connector_and_deleted_connector(server):
    voice = server.voice
    code, msg = refused(voice.put_voice_connector_streaming_configuration,
                        VoiceConnectorId="nosuchconnector0000000",
                        StreamingConfiguration={"DataRetentionInHours": 0, "Disabled": False})
    assert code == "NotFoundException" and "nosuchconnector0000000" in msg
    vid = connector(voice)
    voice.put_voice_connector_streaming_configuration(
        VoiceConnectorId=vid, StreamingConfiguration={"DataRetentionInHours": 0, "Disabled": False})
    voice.delete_voice_connector(VoiceConnectorId=vid)
    code, _ = refused(voice.get_voice_connector_streaming_configuration, VoiceConnectorId=vid)
    assert code == "NotFoundException"
