"""Attendee capabilities through boto3 (issue 18, item 1): given at creation (CreateAttendee,
BatchCreateAttendee, CreateMeetingWithAttendees), shown by GetAttendee and ListAttendees,
changed by UpdateAttendeeCapabilities and BatchUpdateAttendeeCapabilitiesExcept, and AWS's
invalid combinations refused with BadRequestException naming the member. Runs on SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

LISTEN = {"Audio": "Receive", "Video": "Receive", "Content": "Receive"}
ALL = {"Audio": "SendReceive", "Video": "SendReceive", "Content": "SendReceive"}


def new_meeting(meetings, token, **extra):
    return meetings.create_meeting(ClientRequestToken=token, MediaRegion="us-east-1",
                                   ExternalMeetingId=token, **extra)["Meeting"]["MeetingId"]


def caps_of(meetings, mid, aid):
    return meetings.get_attendee(MeetingId=mid, AttendeeId=aid)["Attendee"]["Capabilities"]


def bad_request(exc):
    e = exc.value.response["Error"]
    assert e["Code"] == "BadRequestException", e
    return e["Message"]


def test_capabilities_at_creation_are_shown_by_get_and_list(server):
    m = server.meetings
    mid = new_meeting(m, "caps-1")
    presenter = m.create_attendee(MeetingId=mid, ExternalUserId="presenter")["Attendee"]
    listener = m.create_attendee(MeetingId=mid, ExternalUserId="listener",
                                 Capabilities=LISTEN)["Attendee"]
    assert presenter["Capabilities"] == ALL
    assert listener["Capabilities"] == LISTEN
    assert caps_of(m, mid, listener["AttendeeId"]) == LISTEN
    batch = m.batch_create_attendee(MeetingId=mid, Attendees=[
        {"ExternalUserId": "aa", "Capabilities": {"Audio": "Send", "Video": "None", "Content": "None"}},
        {"ExternalUserId": "bb", "Capabilities": {"Audio": "None", "Video": "Send", "Content": "Receive"}},
    ])
    assert [a["ExternalUserId"] for a in batch["Attendees"]] == ["aa"]
    assert batch["Errors"][0]["ExternalUserId"] == "bb"
    assert batch["Errors"][0]["ErrorCode"] == "BadRequest"
    assert "Capabilities.Content" in batch["Errors"][0]["ErrorMessage"]
    listed = {a["ExternalUserId"]: a["Capabilities"]
              for a in m.list_attendees(MeetingId=mid)["Attendees"]}
    assert listed == {"presenter": ALL, "listener": LISTEN,
                      "aa": {"Audio": "Send", "Video": "None", "Content": "None"}}

    with_att = m.create_meeting_with_attendees(
        ClientRequestToken="caps-2", MediaRegion="us-east-1", ExternalMeetingId="caps-2",
        Attendees=[{"ExternalUserId": "xx", "Capabilities": LISTEN}, {"ExternalUserId": "yy"}])
    got = {a["ExternalUserId"]: a["Capabilities"] for a in with_att["Attendees"]}
    assert got == {"xx": LISTEN, "yy": ALL}


def test_invalid_combinations_name_the_member(server):
    m = server.meetings
    mid = new_meeting(m, "caps-bad")
    with pytest.raises(ClientError) as exc:
        m.create_attendee(MeetingId=mid, ExternalUserId="uu", Capabilities={
            "Audio": "SendReceive", "Video": "Send", "Content": "SendReceive"})
    assert "Capabilities.Content" in bad_request(exc)
    # An unknown value is refused by the model's enum.
    with pytest.raises(ClientError) as exc:
        m.create_attendee(MeetingId=mid, ExternalUserId="uu", Capabilities={
            "Audio": "Loud", "Video": "None", "Content": "None"})
    assert "Audio" in bad_request(exc)
    # A meeting without video takes only Video None.
    novid = new_meeting(m, "caps-novid", MeetingFeatures={"Video": {"MaxResolution": "None"}})
    with pytest.raises(ClientError) as exc:
        m.create_attendee(MeetingId=novid, ExternalUserId="uu", Capabilities=LISTEN)
    assert "Capabilities.Video" in bad_request(exc)
    ok = m.create_attendee(MeetingId=novid, ExternalUserId="uu", Capabilities={
        "Audio": "SendReceive", "Video": "None", "Content": "None"})["Attendee"]
    with pytest.raises(ClientError) as exc:
        m.update_attendee_capabilities(MeetingId=novid, AttendeeId=ok["AttendeeId"],
                                       Capabilities=ALL)
    assert "Capabilities.Video" in bad_request(exc)
    assert caps_of(m, novid, ok["AttendeeId"])["Video"] == "None"


def test_update_and_batch_update_except(server):
    m = server.meetings
    mid = new_meeting(m, "caps-upd")
    ids = [m.create_attendee(MeetingId=mid, ExternalUserId=f"user{i}")["Attendee"]["AttendeeId"]
           for i in range(4)]
    out = m.update_attendee_capabilities(MeetingId=mid, AttendeeId=ids[0], Capabilities=LISTEN)
    assert out["Attendee"]["AttendeeId"] == ids[0]
    assert out["Attendee"]["Capabilities"] == LISTEN
    assert caps_of(m, mid, ids[0]) == LISTEN
    assert caps_of(m, mid, ids[1]) == ALL

    m.batch_update_attendee_capabilities_except(
        MeetingId=mid, ExcludedAttendeeIds=[{"AttendeeId": ids[0]}, {"AttendeeId": ids[3]}],
        Capabilities={"Audio": "Receive", "Video": "None", "Content": "None"})
    assert caps_of(m, mid, ids[0]) == LISTEN
    assert caps_of(m, mid, ids[1]) == {"Audio": "Receive", "Video": "None", "Content": "None"}
    assert caps_of(m, mid, ids[2]) == {"Audio": "Receive", "Video": "None", "Content": "None"}
    assert caps_of(m, mid, ids[3]) == ALL

    with pytest.raises(ClientError) as exc:
        m.update_attendee_capabilities(MeetingId=mid, AttendeeId="00000000-0000-0000-0000-000000000000",
                                       Capabilities=ALL)
    assert exc.value.response["Error"]["Code"] == "NotFoundException"
    with pytest.raises(ClientError) as exc:
        m.batch_update_attendee_capabilities_except(
            MeetingId="00000000-0000-0000-0000-000000000000", ExcludedAttendeeIds=[{"AttendeeId": ids[0]}],
            Capabilities=ALL)
    assert exc.value.response["Error"]["Code"] == "NotFoundException"
    with pytest.raises(ClientError) as exc:
        m.batch_update_attendee_capabilities_except(
            MeetingId=mid, ExcludedAttendeeIds=[{"AttendeeId": ids[0]}],
            Capabilities={"Audio": "SendReceive", "Video": "None", "Content": "Receive"})
    assert "Capabilities.Content" in bad_request(exc)
