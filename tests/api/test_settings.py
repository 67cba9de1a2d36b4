"""Settings beyond termination and origination, through boto3 and the aws CLI (issue 18):
ListAvailableVoiceConnectorRegions, Get/UpdateGlobalSettings, and a voice connector's
external systems and emergency calling configuration (put, get, delete, and refusals that
name the field). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil

import pytest
from botocore.exceptions import ClientError


def refused(call, **kw):
    with pytest.raises(ClientError) as e:
        call(**kw)
    err = e.value.response["Error"]
    return err["Code"], err["Message"]


def test_regions_are_the_models(server):
    regions = server.voice.list_available_voice_connector_regions()["VoiceConnectorRegions"]
    model = server.voice.meta.service_model.shape_for("VoiceConnectorAwsRegion").enum
    assert regions == model and "us-east-1" in regions
    # Each listed region is one a connector can be created in.
    vc = server.voice.create_voice_connector(Name="west", RequireEncryption=True,
                                             AwsRegion=regions[-1])["VoiceConnector"]
    assert vc["AwsRegion"] == regions[-1]


def test_global_settings_round_trip_and_refuse_a_bad_bucket(server):
    voice = server.voice
    assert voice.get_global_settings()["VoiceConnector"] == {}
    voice.update_global_settings(VoiceConnector={"CdrBucket": "call-records.example"})
    assert voice.get_global_settings()["VoiceConnector"] == {"CdrBucket": "call-records.example"}
    code, msg = refused(voice.update_global_settings, VoiceConnector={"CdrBucket": "Bad_Bucket"})
    assert code == "BadRequestException" and "VoiceConnector.CdrBucket" in msg, (code, msg)
    assert voice.get_global_settings()["VoiceConnector"] == {"CdrBucket": "call-records.example"}


def test_external_systems_configuration(server):
    voice = server.voice
    vc = voice.create_voice_connector(Name="pbx", RequireEncryption=True)["VoiceConnector"]
    vid = vc["VoiceConnectorId"]
    code, _ = refused(voice.get_voice_connector_external_systems_configuration, VoiceConnectorId=vid)
    assert code == "NotFoundException"
    put = voice.put_voice_connector_external_systems_configuration(
        VoiceConnectorId=vid, SessionBorderControllerTypes=["AUDIOCODES_MEDIANT_SBC"],
        ContactCenterSystemTypes=["GENESYS_ENGAGE_ON_PREMISES"])["ExternalSystemsConfiguration"]
    got = voice.get_voice_connector_external_systems_configuration(
        VoiceConnectorId=vid)["ExternalSystemsConfiguration"]
    assert got == put == {"SessionBorderControllerTypes": ["AUDIOCODES_MEDIANT_SBC"],
                          "ContactCenterSystemTypes": ["GENESYS_ENGAGE_ON_PREMISES"]}
    code, msg = refused(voice.put_voice_connector_external_systems_configuration, VoiceConnectorId=vid,
                        SessionBorderControllerTypes=["RIBBON_SBC", "RIBBON_SBC"])
    assert code == "BadRequestException" and "twice" in msg, (code, msg)
    voice.delete_voice_connector_external_systems_configuration(VoiceConnectorId=vid)
    code, _ = refused(voice.delete_voice_connector_external_systems_configuration, VoiceConnectorId=vid)
    assert code == "NotFoundException"
    code, msg = refused(voice.put_voice_connector_external_systems_configuration,
                        VoiceConnectorId="abcdefghijklmnopqrstu", SessionBorderControllerTypes=[])
    assert code == "NotFoundException", (code, msg)


def test_emergency_calling_configuration(server):
    voice = server.voice
    vid = voice.create_voice_connector(Name="pbx", RequireEncryption=True)["VoiceConnector"]["VoiceConnectorId"]
    put = voice.put_voice_connector_emergency_calling_configuration(
        VoiceConnectorId=vid, EmergencyCallingConfiguration={"DNIS": [
            {"EmergencyPhoneNumber": "12065550911", "TestPhoneNumber": "+12065550933", "CallingCountry": "US"}]},
    )["EmergencyCallingConfiguration"]
    assert put["DNIS"] == [{"EmergencyPhoneNumber": "+12065550911", "TestPhoneNumber": "+12065550933",
                            "CallingCountry": "US"}]
    got = voice.get_voice_connector_emergency_calling_configuration(VoiceConnectorId=vid)
    assert got["EmergencyCallingConfiguration"] == put

    for dnis, field in [
        ({"EmergencyPhoneNumber": "+99955501", "CallingCountry": "US"}, "DNIS[0].EmergencyPhoneNumber"),
        ({"EmergencyPhoneNumber": "+12065550911", "CallingCountry": "XX"}, "DNIS[0].CallingCountry"),
        ({"EmergencyPhoneNumber": "+12065550911", "TestPhoneNumber": "+99955501", "CallingCountry": "US"},
         "DNIS[0].TestPhoneNumber"),
    ]:
        code, msg = refused(voice.put_voice_connector_emergency_calling_configuration, VoiceConnectorId=vid,
                            EmergencyCallingConfiguration={"DNIS": [dnis]})
        assert code == "BadRequestException" and field in msg, (code, msg)
    code, msg = refused(voice.put_voice_connector_emergency_calling_configuration, VoiceConnectorId=vid,
                        EmergencyCallingConfiguration={"DNIS": [
                            {"EmergencyPhoneNumber": "+12065550911", "CallingCountry": "US"},
                            {"EmergencyPhoneNumber": "12065550911", "CallingCountry": "US"}]})
    assert code == "BadRequestException" and "DNIS[1]" in msg and "twice" in msg, (code, msg)
    # Refusals left the stored configuration as it was.
    assert voice.get_voice_connector_emergency_calling_configuration(
        VoiceConnectorId=vid)["EmergencyCallingConfiguration"] == put
    voice.delete_voice_connector_emergency_calling_configuration(VoiceConnectorId=vid)
    code, _ = refused(voice.get_voice_connector_emergency_calling_configuration, VoiceConnectorId=vid)
    assert code == "NotFoundException"


@pytest.mark.skipif(shutil.which("aws") is None, reason="aws CLI is not installed (scripts/setup-deps installs it)")
def test_aws_cli_settings(server):
    def aws(*args):
        return server.aws_cli("chime-sdk-voice", *args)

    assert "us-east-1" in aws("list-available-voice-connector-regions")["VoiceConnectorRegions"]
    aws("update-global-settings", "--voice-connector", "CdrBucket=cdrs-bucket")
    assert aws("get-global-settings")["VoiceConnector"] == {"CdrBucket": "cdrs-bucket"}
