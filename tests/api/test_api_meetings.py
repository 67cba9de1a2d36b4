"""boto3 against the `chime-sdk-meetings` API of the real binary: meetings, attendees, join
tokens, idempotency, limits and pagination. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
import uuid

import pytest

TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def new_meeting(meetings, **kw):
    args = dict(
        ClientRequestToken=uuid.uuid4().hex,
        MediaRegion="us-east-1",
        ExternalMeetingId="ext-" + uuid.uuid4().hex[:12],
    )
    args.update(kw)
    return meetings.create_meeting(**args)["Meeting"]


def test_meeting_with_two_attendees_delete_one(server):
    meetings = server.meetings
    m = new_meeting(meetings, ExternalMeetingId="standup")
    mid = m["MeetingId"]
    assert GUID.match(mid)
    assert m["ExternalMeetingId"] == "standup" and m["MediaRegion"] == "us-east-1"
    assert set(m["MediaPlacement"]) >= {"AudioHostUrl", "SignalingUrl"}
    assert meetings.get_meeting(MeetingId=mid)["Meeting"]["MeetingId"] == mid

    alice = meetings.create_attendee(MeetingId=mid, ExternalUserId="alice")["Attendee"]
    bob = meetings.create_attendee(MeetingId=mid, ExternalUserId="bob")["Attendee"]
    for a in (alice, bob):
        assert TOKEN.match(a["JoinToken"]), a["JoinToken"]
        assert GUID.match(a["AttendeeId"])
    assert alice["JoinToken"] != bob["JoinToken"]
    assert alice["AttendeeId"] != bob["AttendeeId"]

    listed = meetings.list_attendees(MeetingId=mid)["Attendees"]
    assert sorted(a["JoinToken"] for a in listed) == sorted([alice["JoinToken"], bob["JoinToken"]])
    got = meetings.get_attendee(MeetingId=mid, AttendeeId=alice["AttendeeId"])["Attendee"]
    assert got["JoinToken"] == alice["JoinToken"] and got["ExternalUserId"] == "alice"

    meetings.delete_attendee(MeetingId=mid, AttendeeId=alice["AttendeeId"])
    listed = meetings.list_attendees(MeetingId=mid)["Attendees"]
    assert [a["AttendeeId"] for a in listed] == [bob["AttendeeId"]]
    assert alice["JoinToken"] not in {a["JoinToken"] for a in listed}
    with pytest.raises(meetings.exceptions.NotFoundException) as nf:
        meetings.get_attendee(MeetingId=mid, AttendeeId=alice["AttendeeId"])
    assert nf.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.delete_attendee(MeetingId=mid, AttendeeId=alice["AttendeeId"])

    # Secrets stay secret: no join token and no API secret in the server's log.
    log = server.log()
    assert alice["JoinToken"] not in log and bob["JoinToken"] not in log
    assert server.secret not in log

    # Deleting the meeting ends it: it and its attendees are gone.
    meetings.delete_meeting(MeetingId=mid)
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_meeting(MeetingId=mid)
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_attendee(MeetingId=mid, AttendeeId=bob["AttendeeId"])
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.create_attendee(MeetingId=mid, ExternalUserId="carol")
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.delete_meeting(MeetingId=mid)
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_meeting(MeetingId=str(uuid.uuid4()))
    server.assert_healthy()


def test_create_meeting_with_attendees_and_batch(server):
    meetings = server.meetings
    res = meetings.create_meeting_with_attendees(
        ClientRequestToken=uuid.uuid4().hex,
        MediaRegion="us-west-2",
        ExternalMeetingId="all-hands",
        Attendees=[{"ExternalUserId": "u-1"}, {"ExternalUserId": "u-2"}],
    )
    mid = res["Meeting"]["MeetingId"]
    assert res["Meeting"]["MediaRegion"] == "us-west-2"
    assert [a["ExternalUserId"] for a in res["Attendees"]] == ["u-1", "u-2"]
    assert res.get("Errors", []) == []

    batch = meetings.batch_create_attendee(
        MeetingId=mid,
        Attendees=[{"ExternalUserId": "u-3"}, {"ExternalUserId": "u-4"}, {"ExternalUserId": "u-1"}],
    )
    assert [a["ExternalUserId"] for a in batch["Attendees"]] == ["u-3", "u-4", "u-1"]
    # u-1 already existed: the same attendee comes back.
    u1 = next(a for a in res["Attendees"] if a["ExternalUserId"] == "u-1")
    assert batch["Attendees"][2]["AttendeeId"] == u1["AttendeeId"]
    assert batch["Attendees"][2]["JoinToken"] == u1["JoinToken"]
    tokens = [a["JoinToken"] for a in meetings.list_attendees(MeetingId=mid)["Attendees"]]
    assert len(tokens) == 4 and len(set(tokens)) == 4
    assert all(TOKEN.match(t) for t in tokens)
    server.assert_healthy()


def test_idempotency(server):
    meetings = server.meetings
    crt = uuid.uuid4().hex
    m1 = new_meeting(meetings, ClientRequestToken=crt)
    m2 = new_meeting(meetings, ClientRequestToken=crt)
    assert m1["MeetingId"] == m2["MeetingId"], "ClientRequestToken makes CreateMeeting idempotent"
    m3 = new_meeting(meetings)
    assert m3["MeetingId"] != m1["MeetingId"]

    mid = m1["MeetingId"]
    a1 = meetings.create_attendee(MeetingId=mid, ExternalUserId="same-user")["Attendee"]
    a2 = meetings.create_attendee(MeetingId=mid, ExternalUserId="same-user")["Attendee"]
    assert a1["AttendeeId"] == a2["AttendeeId"]
    assert a1["JoinToken"] == a2["JoinToken"]
    assert len(meetings.list_attendees(MeetingId=mid)["Attendees"]) == 1
    # The same ExternalUserId in another meeting is another attendee.
    other = meetings.create_attendee(MeetingId=m3["MeetingId"], ExternalUserId="same-user")[
        "Attendee"]
    assert other["AttendeeId"] != a1["AttendeeId"] and other["JoinToken"] != a1["JoinToken"]


def test_attendee_limit_and_pagination(server):
    meetings = server.meetings
    mid = new_meeting(meetings)["MeetingId"]
    created = []
    for start in range(0, 250, 100):
        batch = meetings.batch_create_attendee(
            MeetingId=mid,
            Attendees=[{"ExternalUserId": f"user-{i:03d}"} for i in range(start, min(start + 100, 250))],
        )
        assert batch.get("Errors", []) == []
        created += batch["Attendees"]
    assert len(created) == 250
    tokens = {a["JoinToken"] for a in created}
    assert len(tokens) == 250, "every join token is distinct"
    assert all(TOKEN.match(t) for t in tokens)

    with pytest.raises(meetings.exceptions.LimitExceededException) as lim:
        meetings.create_attendee(MeetingId=mid, ExternalUserId="user-250")
    assert lim.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # In a batch the 251st is reported per item, not as a failed request.
    batch = meetings.batch_create_attendee(MeetingId=mid, Attendees=[{"ExternalUserId": "user-251"}])
    assert batch["Attendees"] == []
    assert batch["Errors"][0]["ExternalUserId"] == "user-251"
    assert batch["Errors"][0]["ErrorCode"] == "LimitExceeded"
    # An existing attendee is still returned at the limit (idempotent, not a new seat).
    again = meetings.create_attendee(MeetingId=mid, ExternalUserId="user-007")["Attendee"]
    assert again["AttendeeId"] == next(a["AttendeeId"] for a in created if a["ExternalUserId"] == "user-007")

    # Pagination with MaxResults / NextToken visits each attendee exactly once.
    seen, kwargs, pages = [], {"MaxResults": 100}, 0
    while True:
        page = meetings.list_attendees(MeetingId=mid, **kwargs)
        assert len(page["Attendees"]) <= 100
        seen += [a["AttendeeId"] for a in page["Attendees"]]
        pages += 1
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    assert pages >= 3
    assert sorted(seen) == sorted(a["AttendeeId"] for a in created)
    small = meetings.list_attendees(MeetingId=mid, MaxResults=7)
    assert len(small["Attendees"]) == 7 and small["NextToken"]
    nxt = meetings.list_attendees(MeetingId=mid, MaxResults=7, NextToken=small["NextToken"])
    assert not {a["AttendeeId"] for a in small["Attendees"]} & {a["AttendeeId"] for a in nxt["Attendees"]}
    # Deleting one frees a seat.
    meetings.delete_attendee(MeetingId=mid, AttendeeId=created[0]["AttendeeId"])
    meetings.create_attendee(MeetingId=mid, ExternalUserId="user-250")
    server.assert_healthy()


def test_meeting_validation(server):
    meetings = server.meetings
    with pytest.raises(meetings.exceptions.BadRequestException):
        meetings.get_meeting(MeetingId="not-a-guid")
    mid = new_meeting(meetings)["MeetingId"]
    import boto3
    from botocore.config import Config

    raw = boto3.client(
        "chime-sdk-meetings", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=server.key_id, aws_secret_access_key=server.secret,
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )
    with pytest.raises(raw.exceptions.BadRequestException) as short:
        raw.create_attendee(MeetingId=mid, ExternalUserId="x")
    assert "ExternalUserId" in short.value.response["Error"]["Message"]
    server.assert_healthy()


def test_concurrent_create_attendee_respects_max_count(server):
    """30 CreateAttendee calls at once on a meeting with MeetingFeatures Attendee.MaxCount 10:
    exactly 10 attendees, the other 20 get LimitExceededException."""
    from concurrent.futures import ThreadPoolExecutor

    meetings = server.meetings
    mid = new_meeting(meetings, MeetingFeatures={"Attendee": {"MaxCount": 10}})["MeetingId"]

    def create(i):
        try:
            meetings.create_attendee(MeetingId=mid, ExternalUserId=f"racer-{i:02d}")
            return "created"
        except meetings.exceptions.LimitExceededException:
            return "limit"

    with ThreadPoolExecutor(max_workers=15) as pool:
        outcomes = list(pool.map(create, range(30)))
    assert outcomes.count("created") == 10, outcomes
    assert outcomes.count("limit") == 20, outcomes
    assert len(meetings.list_attendees(MeetingId=mid)["Attendees"]) == 10
    server.assert_healthy()


def test_concurrent_create_meeting_same_request_token(server):
    """A client retrying CreateMeeting while the first try is still in flight gets the same
    meeting, not a second one."""
    from concurrent.futures import ThreadPoolExecutor

    meetings = server.meetings
    for round_ in range(5):
        crt = uuid.uuid4().hex
        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = set(pool.map(lambda _: new_meeting(meetings, ClientRequestToken=crt)["MeetingId"],
                               range(8)))
        assert len(ids) == 1, f"round {round_}: {len(ids)} meetings for one ClientRequestToken"
    server.assert_healthy()
