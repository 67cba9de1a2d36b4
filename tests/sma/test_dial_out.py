"""A SIP media application's own calls end to end (issue 13): CreateSipMediaApplicationCall
dials the carrier serving the number (a pjsua2 callee on 127.0.0.2 that plays a tone and
records); the function (a webhook in this process) hears NEW_OUTBOUND_CALL with the
ArgumentsMap as its TransactionAttributes, RINGING and CALL_ANSWERED, and answers the last
with JoinChimeMeeting into a meeting a pjsua2 PBX is already in, so the callee and the PBX
hear each other; UpdateSipMediaApplicationCall reaches the function as
CALL_UPDATE_REQUESTED; the callee's BYE ends it with HANGUP. A number nobody answers
(486) gives HANGUP with that code after RINGING.
"""

from __future__ import annotations

import time
import uuid

from flowlab import ARN, Webhook, actions, add_function, add_numbers, caller
from vctest.server import find_binary

FROM = "+12065550190"
TO = "+14155550177"
TONE_MIN_DB = -30.0


def leg(event: dict, tag: str) -> dict:
    found = [p for p in event["CallDetails"]["Participants"] if p["ParticipantTag"] == tag]
    assert found, event
    return found[0]


def setup(lab, app):
    """The function's webhook and the caller id in the inventory, then the server; an
    application on the function. Returns (server, webhook, application id)."""
    binary = find_binary()
    hook = Webhook(app)
    add_function(binary, lab.data_dir, ARN, hook.url)
    add_numbers(binary, lab.data_dir, FROM)
    server = lab.start_server()
    sma = server.client("chime-sdk-voice").create_sip_media_application(
        AwsRegion="us-east-1", Name="dialer-" + uuid.uuid4().hex[:8], Endpoints=[{"LambdaArn": ARN}]
    )["SipMediaApplication"]
    return server, hook, sma["SipMediaApplicationId"]


def wait_until(check, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s")


def test_dial_out_join_meeting_and_update(pstn_lab, pstn_tools, tmp_path):
    lab, tools = pstn_lab, pstn_tools
    state: dict = {}

    def app(event: dict):
        kind = event["InvocationEventType"]
        data = event.get("ActionData") or {}
        if kind == "CALL_ANSWERED":
            meeting = event["CallDetails"]["TransactionAttributes"]["meeting"]
            att = state["meetings"].create_attendee(MeetingId=meeting, ExternalUserId="callee-" + uuid.uuid4().hex[:8])
            state["attendee"] = att["Attendee"]["AttendeeId"]
            return actions({"Type": "JoinChimeMeeting", "Parameters": {
                "JoinToken": att["Attendee"]["JoinToken"], "MeetingId": meeting}})
        if kind == "ACTION_SUCCESSFUL" and data.get("Type") == "JoinChimeMeeting":
            state["joined_at"] = time.time()
        return actions()

    callee_wav, pbx_wav = tmp_path / "callee.wav", tmp_path / "pbx.wav"
    c1 = lab.callee("c1", "127.0.0.2", play=lab.tones[1000], record=callee_wav, duration=12.0)
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    server, hook, sma_id = setup(lab, app)
    try:
        voice = server.client("chime-sdk-voice")
        state["meetings"] = server.client("chime-sdk-meetings")
        _, host = lab.connector(False)
        meeting_id = server.create_meeting()
        _, token = server.add_attendee(meeting_id)
        pbx = caller(lab, f"sip:+17035550122@{host};X-chime-join-token={token}", "attendee",
                     play=lab.tones[440], record=pbx_wav, duration=24.0, from_number="+12065550111")
        pbx.wait_media()
        pbx_started = time.time()

        call = voice.create_sip_media_application_call(
            FromPhoneNumber=FROM, ToPhoneNumber=TO, SipMediaApplicationId=sma_id,
            SipHeaders={"X-Case": "42"}, ArgumentsMap={"meeting": meeting_id})
        transaction_id = call["SipMediaApplicationCall"]["TransactionId"]
        wait_until(lambda: "joined_at" in state, 20, "no JoinChimeMeeting success")
        voice.update_sip_media_application_call(
            SipMediaApplicationId=sma_id, TransactionId=transaction_id, Arguments={"note": "wrap-up"})
        update = hook.wait_for("CALL_UPDATE_REQUESTED", timeout=10)
        callee_run = c1.result()
        hangup = hook.wait_for("HANGUP", timeout=15)
        pbx_run = pbx.result()
    finally:
        hook.close()

    assert not hook.errors, hook.errors
    assert callee_run["confirmed"] and callee_run["bye_from"] == "callee", (callee_run, server.log()[-3000:])
    assert pbx_run["confirmed"], pbx_run
    invite = callee_run["invite"]
    assert tools.sip_user(invite["from"]) == FROM and tools.sip_user(invite["request_uri"]) == TO, invite
    assert ["X-Case", "42"] in [[n, v.strip()] for n, v in invite["headers"]], invite["headers"]

    kinds = hook.kinds()
    assert kinds[:3] == ["NEW_OUTBOUND_CALL", "RINGING", "CALL_ANSWERED"], kinds
    assert kinds[-1] == "HANGUP", kinds
    assert [e["Sequence"] for e in hook.events] == list(range(1, len(hook.events) + 1)), kinds
    assert {e["CallDetails"]["TransactionId"] for e in hook.events} == {transaction_id}, kinds
    first = hook.events[0]
    assert first["CallDetails"]["SipMediaApplicationId"] == sma_id, first
    assert first["CallDetails"].get("TransactionAttributes") == {"meeting": meeting_id}, first
    a = leg(first, "LEG-A")
    assert a["From"] == FROM and a["To"] == TO and a["Direction"] == "Outbound", a
    assert update["ActionData"]["Type"] == "CallUpdateRequest", update
    assert update["ActionData"]["Parameters"]["Arguments"] == {"note": "wrap-up"}, update
    assert leg(hangup, "LEG-A")["Status"] == "Disconnected", hangup

    # Once joined, the callee hears the PBX's 440 Hz and the PBX the callee's 1000 Hz.
    joined = state["joined_at"]
    window = (joined - callee_run["confirmed_at"] + 1.0, joined - callee_run["confirmed_at"] + 5.0)
    heard = tools.tone_levels(callee_wav, freqs=(440, 1000), window=window)
    assert heard[440] > TONE_MIN_DB and heard["present"][440] > 0.8, (
        f"the callee does not hear the meeting in {window}: {heard}")
    window = (joined - pbx_started + 1.0, joined - pbx_started + 5.0)
    heard = tools.tone_levels(pbx_wav, freqs=(440, 1000), window=window)
    assert heard[1000] > TONE_MIN_DB and heard["present"][1000] > 0.8, (
        f"the meeting does not hear the callee in {window}: {heard}")
    rec = server.call_ended(meeting_id, state["attendee"])
    assert rec["Status"] == "Completed", rec


def test_dial_out_busy(pstn_lab, pstn_tools):
    """The callee answers 486: the function hears RINGING, then HANGUP naming the code;
    an update of the call that is over is accepted by the API and changes nothing."""
    lab = pstn_lab
    c1 = lab.callee("busy", "127.0.0.2", status=486, answer_after=0.5)
    lab.add_carrier("busy", c1.address, 1, "PCMU")
    server, hook, sma_id = setup(lab, lambda event: actions())
    try:
        voice = server.client("chime-sdk-voice")
        call = voice.create_sip_media_application_call(
            FromPhoneNumber=FROM, ToPhoneNumber=TO, SipMediaApplicationId=sma_id)
        hangup = hook.wait_for("HANGUP", timeout=15)
        voice.update_sip_media_application_call(
            SipMediaApplicationId=sma_id, TransactionId=call["SipMediaApplicationCall"]["TransactionId"],
            Arguments={"late": "yes"})
        time.sleep(1.0)
        c1.stop()
    finally:
        hook.close()
    assert not hook.errors, hook.errors
    assert hook.kinds() == ["NEW_OUTBOUND_CALL", "RINGING", "HANGUP"], hook.kinds()
    data = hangup["ActionData"]
    assert data["Type"] == "Hangup" and str(data["Parameters"]["SipResponseCode"]) == "486", hangup
    assert leg(hangup, "LEG-A")["Status"] == "Disconnected", hangup


def test_dial_out_nobody_can_carry(pstn_lab, pstn_tools):
    """No carrier serves the number: the call is not placed, and the function still hears
    of it, NEW_OUTBOUND_CALL (with its ArgumentsMap) then HANGUP with 503."""
    lab = pstn_lab
    server, hook, sma_id = setup(lab, lambda event: actions())
    try:
        voice = server.client("chime-sdk-voice")
        voice.create_sip_media_application_call(
            FromPhoneNumber=FROM, ToPhoneNumber="+442079460000", SipMediaApplicationId=sma_id,
            ArgumentsMap={"case": "no-route"})
        hangup = hook.wait_for("HANGUP", timeout=15)
    finally:
        hook.close()
    assert not hook.errors, hook.errors
    assert hook.kinds() == ["NEW_OUTBOUND_CALL", "HANGUP"], hook.kinds()
    assert hook.events[0]["CallDetails"].get("TransactionAttributes") == {"case": "no-route"}, hook.events[0]
    data = hangup["ActionData"]
    assert str(data["Parameters"]["SipResponseCode"]) == "503", hangup
    assert leg(hangup, "LEG-A")["Status"] == "Disconnected", hangup
    assert "no carrier serves +442079460000" in server.log(), server.log()[-2000:]
