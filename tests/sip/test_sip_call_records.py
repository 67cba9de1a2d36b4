"""Call detail records: one per call, answered or refused, listed by the signed admin
endpoint GET /admin/call-records."""

from __future__ import annotations

import json
import urllib.error

import pytest

CALLER = "+12065550100"


def test_answered_and_refused_calls_have_records(sip_server, sip_sipp, sip_rtp_peer):
    before = sip_server.metrics()
    p = sip_server.provision()
    keys = {"vc_host": p.host, "token": p.token, "from_user": CALLER, "rtp_port": str(sip_rtp_peer.port)}
    result = sip_sipp("join_uac.xml", keys, "u1", extra=["-d", "1500"])
    assert result.returncode == 0, result.describe()
    sip_server.call_ended(p.meeting_id)

    bad = dict(keys, token="A" * 43)
    refused = sip_sipp("join_refused_403.xml", bad, "u1")
    assert refused.returncode == 0, refused.describe()

    recs = sip_server.wait_call_records(p.voice_connector_id, 2)
    assert len(recs) == 2, recs
    done = next(r for r in recs if r["Status"] == "Completed")
    assert done["StatusCode"] == 200
    assert done["VoiceConnectorId"] == p.voice_connector_id
    assert done["SourcePhoneNumber"] == CALLER
    assert done["DestinationPhoneNumber"] == "+17035550122"
    assert done["MeetingId"] == p.meeting_id and done["AttendeeId"] == p.attendee_id
    assert done["Codec"] in ("PCMU", "PCMA"), done
    assert done["Transport"] == "UDP"
    assert done["Media"]["PacketsSent"] > 0, done
    assert done["CallId"] and done["TransactionId"] and done["StartTime"] <= done["EndTime"]

    no = next(r for r in recs if r["Status"] == "Refused")
    assert no["StatusCode"] == 403
    assert "invalid join token" in no["Reason"]
    # The record holds no secrets: the token is nowhere in it.
    assert p.token not in json.dumps(recs)

    # Prometheus counts the attempts, the refusal by status, and the media of the call.
    after = sip_server.metrics()
    grew = lambda k: after.get(k, 0) - before.get(k, 0)
    assert grew("vc_calls_attempted_total") >= 2, after
    assert grew('vc_calls_failed_total{status="403"}') >= 1, after
    assert grew('vc_calls_ended_total{status="Completed"}') >= 1, after
    assert grew('vc_rtp_packets_total{direction="out"}') >= done["Media"]["PacketsSent"], after
    assert grew("vc_call_jitter_ms_count") >= 1, after


def test_records_filtered_by_meeting_and_attendee(sip_server, sip_sipp, sip_rtp_peer):
    """`?meeting-id=` and `?attendee-id=` select one meeting's and one attendee's calls; a
    value that is not a GUID is a 400 naming the parameter."""
    vc_id, host = sip_server.create_connector()
    meeting_id, [(a_id, a_token), (b_id, b_token)] = sip_server.create_meeting_with(2)
    other_meeting, other_attendee, other_token = sip_server.create_attendee()
    for n, token in enumerate((a_token, b_token, other_token)):
        keys = {"vc_host": host, "token": token, "from_user": CALLER, "rtp_port": str(sip_rtp_peer.port)}
        result = sip_sipp("join_uac.xml", keys, "u1", extra=["-d", "300"], tag=f"call{n}")
        assert result.returncode == 0, result.describe()
    assert len(sip_server.wait_call_records(vc_id, 3)) == 3

    in_meeting = sip_server.call_records(meeting_id=meeting_id)
    assert sorted(r["AttendeeId"] for r in in_meeting) == sorted([a_id, b_id]), in_meeting
    assert {r["MeetingId"] for r in in_meeting} == {meeting_id}, in_meeting
    [a] = sip_server.call_records(vc_id, meeting_id=meeting_id, attendee_id=a_id)
    assert (a["AttendeeId"], a["VoiceConnectorId"], a["Reason"]) == (a_id, vc_id, "RemoteBye"), a
    assert sip_server.call_ended(other_meeting)["AttendeeId"] == other_attendee
    # Both filters must hold: B's attendee id in the other meeting matches nothing.
    assert sip_server.call_records(meeting_id=other_meeting, attendee_id=b_id) == []

    for name, value in (("meeting-id", "not-a-guid"), ("attendee-id", a_id[:-1])):
        with pytest.raises(urllib.error.HTTPError) as refused:
            sip_server.signed_get("/admin/call-records", {name: value})
        body = refused.value.read().decode()
        assert refused.value.code == 400 and name in body and "GUID" in body, body
