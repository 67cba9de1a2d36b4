"""Durability: a write that got a 2xx survives `kill -9` of the server right after it, on
SQLite (same data dir) and on PostgreSQL (same database)."""

from __future__ import annotations

import uuid


def test_writes_survive_kill_9(server):
    voice, meetings = server.voice, server.meetings
    vc = voice.create_voice_connector(Name="durable", RequireEncryption=True)["VoiceConnector"]
    vc_id = vc["VoiceConnectorId"]
    voice.put_voice_connector_termination(
        VoiceConnectorId=vc_id,
        Termination={"CidrAllowedList": ["127.0.0.1/32"], "CallingRegions": ["US"], "CpsLimit": 3},
    )
    voice.put_voice_connector_termination_credentials(
        VoiceConnectorId=vc_id, Credentials=[{"Username": "pbx", "Password": "pw-1"}]
    )
    crt = uuid.uuid4().hex
    m = meetings.create_meeting(ClientRequestToken=crt, MediaRegion="us-east-1",
                                ExternalMeetingId="durable")["Meeting"]
    a = meetings.create_attendee(MeetingId=m["MeetingId"], ExternalUserId="dur-1")["Attendee"]
    # The last write before the kill: the update must be there afterwards.
    voice.update_voice_connector(VoiceConnectorId=vc_id, Name="durable-renamed", RequireEncryption=False)
    server.kill9()

    server.start()
    voice, meetings = server.voice, server.meetings
    got = voice.get_voice_connector(VoiceConnectorId=vc_id)["VoiceConnector"]
    assert got["Name"] == "durable-renamed" and got["RequireEncryption"] is False
    assert got["OutboundHostName"] == vc["OutboundHostName"]
    t = voice.get_voice_connector_termination(VoiceConnectorId=vc_id)["Termination"]
    assert t["CpsLimit"] == 3 and t["CidrAllowedList"] == ["127.0.0.1/32"]
    assert voice.list_voice_connector_termination_credentials(VoiceConnectorId=vc_id)["Usernames"] == ["pbx"]
    assert meetings.get_meeting(MeetingId=m["MeetingId"])["Meeting"]["ExternalMeetingId"] == "durable"
    again = meetings.get_attendee(MeetingId=m["MeetingId"], AttendeeId=a["AttendeeId"])["Attendee"]
    assert again["JoinToken"] == a["JoinToken"], "the same token after a restart"
    # Idempotency survives too.
    same = meetings.create_meeting(ClientRequestToken=crt, MediaRegion="us-east-1",
                                   ExternalMeetingId="durable")["Meeting"]
    assert same["MeetingId"] == m["MeetingId"]

    # Deletes are durable as well.
    meetings.delete_attendee(MeetingId=m["MeetingId"], AttendeeId=a["AttendeeId"])
    server.kill9()
    server.start()
    meetings = server.meetings
    assert meetings.list_attendees(MeetingId=m["MeetingId"])["Attendees"] == []
    server.assert_healthy()


def test_each_write_survives_an_immediate_kill(server):
    """Kill right after every single 2xx, several times in a row."""
    for i in range(3):
        vc_id = server.voice.create_voice_connector(Name=f"k{i}", RequireEncryption=True)[
            "VoiceConnector"]["VoiceConnectorId"]
        server.kill9()
        server.start()
        assert server.voice.get_voice_connector(VoiceConnectorId=vc_id)["VoiceConnector"]["Name"] == f"k{i}"
    assert len(server.voice.list_voice_connectors()["VoiceConnectors"]) == 3
