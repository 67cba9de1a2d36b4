"""AWS's auto-end rule, enforced once media exists: a meeting with no audio connection for the
idle timeout ends (here shortened with --meeting-idle-timeout), its attendees' join tokens with
it. (Meetings with calls on the node are refreshed by the sweep; see serve.rs.)"""

from __future__ import annotations

import time

import pytest


def _meeting(server, token: str) -> str:
    m = server.meetings.create_meeting(ClientRequestToken=token, MediaRegion="us-east-1", ExternalMeetingId=token)
    return m["Meeting"]["MeetingId"]


def test_idle_meeting_ends_after_the_idle_timeout(start_server):
    server = start_server("sqlite", extra_args=["--meeting-idle-timeout", "2"])
    meetings = server.meetings
    idle = _meeting(server, "idle-meeting")
    attendee = meetings.create_attendee(MeetingId=idle, ExternalUserId="someone")["Attendee"]
    assert meetings.get_meeting(MeetingId=idle)["Meeting"]["MeetingId"] == idle

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            meetings.get_meeting(MeetingId=idle)
        except meetings.exceptions.NotFoundException:
            break
        time.sleep(0.25)
    else:
        pytest.fail("the idle meeting did not end:\n" + server.log()[-3000:])
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_attendee(MeetingId=idle, AttendeeId=attendee["AttendeeId"])
    assert "meeting ended" in server.log()
    server.assert_healthy()


def test_meetings_live_without_the_idle_rule_by_default(start_server):
    server = start_server("sqlite")
    meetings = server.meetings
    m = _meeting(server, "default-idle")
    time.sleep(3)
    assert meetings.get_meeting(MeetingId=m)["Meeting"]["MeetingId"] == m
