"""Durability: a write that got a 2xx survives `kill -9` of the server right after it, on
SQLite (same data dir) and on PostgreSQL (same database)."""

from __future__ import annotations

import uuid

from botocore.exceptions import BotoCoreError, ClientError


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


def test_acknowledged_writes_survive_kill_9_under_load(server):
    """Writers create attendees as fast as they can; the server is SIGKILLed in the middle.
    After a restart every attendee whose CreateAttendee got a 200 is there, with its token."""
    import threading

    meetings = server.meetings
    mids = [meetings.create_meeting(ClientRequestToken=uuid.uuid4().hex, MediaRegion="us-east-1",
                                    ExternalMeetingId=f"load-{i}")["Meeting"]["MeetingId"]
            for i in range(4)]
    acked: list[tuple[str, str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[ClientError] = []

    def writer(w: int) -> None:
        client = server.meetings  # botocore clients are safe to share between threads
        i = 0
        while not stop.is_set() and i < 200:
            mid = mids[i % len(mids)]
            try:
                a = client.create_attendee(MeetingId=mid, ExternalUserId=f"w{w}-{i:04d}")["Attendee"]
            except ClientError as e:  # an answer from the server: must not happen
                with lock:
                    errors.append(e)
                return
            except BotoCoreError:  # the connection died with the server
                return
            with lock:
                acked.append((mid, a["AttendeeId"], a["JoinToken"]))
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    # Kill once a good number of writes have been acknowledged (no timing: a count).
    while True:
        with lock:
            if len(acked) >= 60 or not any(t.is_alive() for t in threads):
                break
        stop.wait(0.005)
    server.kill9()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 60
    assert errors == [], errors

    server.start()
    meetings = server.meetings
    for mid, attendee_id, token in acked:
        got = meetings.get_attendee(MeetingId=mid, AttendeeId=attendee_id)["Attendee"]
        assert got["JoinToken"] == token
    server.assert_healthy()
