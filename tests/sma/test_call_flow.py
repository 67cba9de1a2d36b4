"""SIP media application calls end to end (issue 13): a carrier's call to a number with a
ToPhoneNumber rule, or a PBX's call to a connector host with a RequestUriHostname rule,
reaches the application; its function (a webhook in this process) is invoked at each step
and its actions run on the real binary: prompts from the data directory, digits as RFC 4733,
JoinChimeMeeting into a meeting a pjsua2 PBX is already in, Hangup; and a function that
answers badly or not at all.
"""

from __future__ import annotations

import re
import threading
import time
import uuid

from flowlab import (ARN, PHONE_HOST, PHONE_NUMBER, Webhook, actions, add_function, add_numbers, caller,
                     load_pstn, phone, rule_for_number, s3, tone_wav)
from vctest.server import find_binary

DIAL_IN = "+12065550188"
TONE_MIN_DB = -30.0


def setup(lab, tools, app, numbers=(DIAL_IN,), extra=()):
    """Prompts in the data directory, the carrier of PHONE_HOST, the function's webhook,
    the numbers; then the server. Returns (server, webhook)."""
    binary = find_binary()
    prompts = lab.data_dir / "audio" / "prompts"
    tone_wav(prompts / "enter-pin.wav", 600, 1.0)
    tone_wav(prompts / "try-again.wav", 2000, 0.5)
    lab.add_carrier("phone-co", f"{PHONE_HOST}:{tools.free_udp_port(PHONE_HOST)}", 1, "PCMU",
                    "--source", f"{PHONE_HOST}/32")
    hook = Webhook(app)
    add_function(binary, lab.data_dir, ARN, hook.url)
    if numbers:
        add_numbers(binary, lab.data_dir, *numbers)
    return lab.start_server(extra=extra), hook


def leg(event: dict, tag: str) -> dict:
    found = [p for p in event["CallDetails"]["Participants"] if p["ParticipantTag"] == tag]
    assert found, event
    return found[0]


def test_pin_dial_in(pstn_lab, pstn_tools, tmp_path):
    """The phone calls the dial-in number, hears the prompt, keys the PIN as RFC 4733 digits;
    the function creates an attendee with boto3 and answers JoinChimeMeeting; the phone and
    a pjsua2 PBX already in the meeting hear each other's tones; HANGUP names both legs."""
    lab, tools = pstn_lab, pstn_tools
    state: dict = {"pins": {}}

    def app(event: dict):
        kind = event["InvocationEventType"]
        data = event.get("ActionData") or {}
        if kind == "NEW_INBOUND_CALL":
            return actions({"Type": "PlayAudioAndGetDigits", "Parameters": {
                "AudioSource": s3("prompts", "enter-pin.wav"),
                "FailureAudioSource": s3("prompts", "try-again.wav"),
                "MinNumberOfDigits": 4, "MaxNumberOfDigits": 4, "TerminatorDigits": ["#"],
                "InBetweenDigitsDurationInMilliseconds": 3000, "Repeat": 3,
                "RepeatDurationInMilliseconds": 5000}})
        if kind == "ACTION_SUCCESSFUL" and data.get("Type") == "PlayAudioAndGetDigits":
            meeting = state["pins"].get(data.get("ReceivedDigits"))
            if meeting is None:
                return actions({"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}})
            att = state["meetings"].create_attendee(MeetingId=meeting, ExternalUserId="phone-" + uuid.uuid4().hex[:8])
            state["phone_attendee"] = att["Attendee"]["AttendeeId"]
            state["joining_at"] = time.time()
            return actions({"Type": "JoinChimeMeeting", "Parameters": {
                "JoinToken": att["Attendee"]["JoinToken"], "MeetingId": meeting}},
                attributes={"pin": "accepted"})
        if kind == "ACTION_SUCCESSFUL" and data.get("Type") == "JoinChimeMeeting":
            # Three seconds of conversation, then the PBX's attendee is muted.
            return actions({"Type": "Pause", "Parameters": {"DurationInMilliseconds": 3000}},
                           {"Type": "ModifyChimeMeetingAttendees", "Parameters": {
                               "Operation": "Mute", "MeetingId": data["Parameters"]["MeetingId"],
                               "AttendeeList": [state["pbx_attendee"]]}})
        return actions()

    server, hook = setup(lab, tools, app)
    try:
        voice = server.client("chime-sdk-voice")
        state["meetings"] = server.client("chime-sdk-meetings")
        app_id, rule_id = rule_for_number(voice, DIAL_IN)
        voice.put_sip_media_application_logging_configuration(
            SipMediaApplicationId=app_id,
            SipMediaApplicationLoggingConfiguration={"EnableSipMediaApplicationMessageLogs": True})
        _, host = lab.connector(False)
        meeting_id = server.create_meeting()
        state["pbx_attendee"], token = server.add_attendee(meeting_id)
        state["pins"]["4321"] = meeting_id

        pbx_wav, phone_wav = tmp_path / "pbx.wav", tmp_path / "phone.wav"
        pbx = caller(lab, f"sip:+17035550122@{host};X-chime-join-token={token}", "attendee",
                     play=lab.tones[1000], record=pbx_wav, duration=16.0, from_number="+12065550111")
        pbx.wait_media()
        pbx_started = time.time()
        ph = phone(lab, DIAL_IN, play=lab.tones[440], record=phone_wav, duration=11.0,
                   extra=("--dtmf", "2.0:4321"))
        ph.wait_media()
        phone_started = time.time()
        phone_run = ph.result()
        pbx_run = pbx.result()
        hangup = hook.wait_for("HANGUP")
    finally:
        hook.close()

    assert phone_run["error"] == "" and phone_run["confirmed"], (phone_run, server.log()[-3000:])
    assert pbx_run["confirmed"], pbx_run
    assert not hook.errors, hook.errors
    kinds = hook.kinds()
    assert kinds[0] == "NEW_INBOUND_CALL" and kinds[-1] == "HANGUP", kinds
    first = hook.events[0]
    details = first["CallDetails"]
    assert details["SipRuleId"] == rule_id and details["SipMediaApplicationId"] == app_id, details
    a = leg(first, "LEG-A")
    assert a["From"] == PHONE_NUMBER and a["To"] == DIAL_IN and a["Direction"] == "Inbound", a
    assert [e["Sequence"] for e in hook.events] == list(range(1, len(hook.events) + 1))
    assert len({e["CallDetails"]["TransactionId"] for e in hook.events}) == 1
    digits = [e for e in hook.events if (e.get("ActionData") or {}).get("Type") == "PlayAudioAndGetDigits"]
    assert digits and digits[0]["InvocationEventType"] == "ACTION_SUCCESSFUL", kinds
    assert digits[0]["ActionData"]["ReceivedDigits"] == "4321", digits[0]
    joined = [e for e in hook.events if (e.get("ActionData") or {}).get("Type") == "JoinChimeMeeting"]
    assert joined and joined[0]["InvocationEventType"] == "ACTION_SUCCESSFUL", kinds
    assert joined[0]["CallDetails"].get("TransactionAttributes") == {"pin": "accepted"}, joined[0]
    b = leg(joined[0], "LEG-B")
    assert b["Status"] == "Connected", b
    # The caller hung up (its BYE after --duration): both legs are named, LEG-A disconnected.
    assert leg(hangup, "LEG-A")["Status"] == "Disconnected", hangup
    leg(hangup, "LEG-B")

    # The phone heard the prompt first, then the PBX's tone; the PBX heard the phone.
    levels = tools.tone_levels(phone_wav, freqs=(440, 600, 1000), window=(0.1, 0.9))
    assert levels[600] > TONE_MIN_DB, f"the phone did not hear the prompt: {levels}"
    join_offset = state["joining_at"] - pbx_started
    joined_at = state["joining_at"] - phone_started
    talk = tools.tone_levels(phone_wav, freqs=(440, 600, 1000), window=(joined_at + 0.8, joined_at + 2.5))
    assert talk[1000] > TONE_MIN_DB and talk["present"][1000] > 0.8, (
        f"the phone does not hear the meeting after joining at {joined_at:.1f} s: {talk}")
    muted = tools.tone_levels(phone_wav, freqs=(440, 600, 1000), window=(joined_at + 4.2, joined_at + 6.5))
    assert muted["present"][1000] < 0.2, f"ModifyChimeMeetingAttendees Mute left the PBX heard: {muted}"
    modified = [e for e in hook.events if (e.get("ActionData") or {}).get("Type") == "ModifyChimeMeetingAttendees"]
    assert modified and modified[0]["InvocationEventType"] == "ACTION_SUCCESSFUL", kinds
    window = (join_offset + 1.0, join_offset + 5.0)
    heard = tools.tone_levels(pbx_wav, freqs=(440, 600, 1000), window=window)
    assert heard[440] > TONE_MIN_DB and heard["present"][440] > 0.8, (
        f"the meeting does not hear the phone in {window}: {heard} (join at {join_offset:.1f} s)")
    # Its attendee is the one the function created; the call's record names it.
    rec = server.call_ended(joined[0]["ActionData"]["Parameters"]["MeetingId"], state["phone_attendee"])
    assert rec["Status"] == "Completed", rec

    # Message logs are on: each event and answer is logged, the join token never.
    messages = [line for line in server.log().splitlines() if "sma_messages" in line]
    events = [line for line in messages if re.search(r'kind="?event', line)]
    answers = [line for line in messages if re.search(r'kind="?answer', line)]
    assert len(events) == len(hook.events) and len(answers) >= 3, messages
    assert '"InvocationEventType":"NEW_INBOUND_CALL"' in events[0], events[0]
    assert any('"JoinToken":"<redacted>"' in line for line in answers), answers
    assert token not in server.log(), "a join token was logged"


def test_request_uri_hostname_rule(pstn_lab, pstn_tools, tmp_path):
    """A PBX dials any number at a connector host with a RequestUriHostname rule: the call
    reaches the application (not the carriers), which plays a prompt and hangs up."""
    lab, tools = pstn_lab, pstn_tools

    def app(event: dict):
        if event["InvocationEventType"] == "NEW_INBOUND_CALL":
            return actions({"Type": "PlayAudio", "Parameters": {"AudioSource": s3("prompts", "enter-pin.wav")}},
                           {"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}})
        return actions()

    server, hook = setup(lab, tools, app, numbers=())
    try:
        voice = server.client("chime-sdk-voice")
        vc_id, host = lab.connector(False)
        sma = voice.create_sip_media_application(
            AwsRegion="us-east-1", Name="host-app", Endpoints=[{"LambdaArn": ARN}])["SipMediaApplication"]
        rule = voice.create_sip_rule(
            Name="by-host", TriggerType="RequestUriHostname", TriggerValue=host,
            TargetApplications=[{"SipMediaApplicationId": sma["SipMediaApplicationId"], "Priority": 1,
                                 "AwsRegion": "us-east-1"}])["SipRule"]
        rec_wav = tmp_path / "pbx.wav"
        run = caller(lab, f"sip:+14155550123@{host}", "pbx", from_number="+12065550100",
                     record=rec_wav, duration=10.0).result()
        hook.wait_for("HANGUP")
    finally:
        hook.close()
    assert run["confirmed"], (run, server.log()[-3000:])
    assert "BYE" in run["remote_bye"], run  # the application hung up, not the PBX
    first = hook.events[0]
    assert first["InvocationEventType"] == "NEW_INBOUND_CALL", hook.kinds()
    assert first["CallDetails"]["SipRuleId"] == rule["SipRuleId"], first
    assert leg(first, "LEG-A")["To"] == "+14155550123", first
    levels = tools.tone_levels(rec_wav, freqs=(600,), window=(0.1, 0.9))
    assert levels[600] > TONE_MIN_DB, levels


def test_bad_function_answers(pstn_lab, pstn_tools, tmp_path):
    """Malformed JSON, more than 10 actions and an unknown action type each get an
    INVALID_LAMBDA_RESPONSE event naming what was wrong (the function then hangs up 486);
    a function that never answers in time is tried twice, then the call is refused 480."""
    lab, tools = pstn_lab, pstn_tools
    mode = {"bad": b"{not json"}
    lock = threading.Lock()

    def app(event: dict):
        with lock:
            bad = mode["bad"]
        if event["InvocationEventType"] == "NEW_INBOUND_CALL":
            return bad
        if event["InvocationEventType"] == "INVALID_LAMBDA_RESPONSE":
            return actions({"Type": "Hangup", "Parameters": {"SipResponseCode": "486"}})
        return actions()

    play = {"Type": "PlayAudio", "Parameters": {"AudioSource": s3("prompts", "enter-pin.wav")}}
    cases = [
        (b"{not json", "MalformedResponse"),
        (actions(*([play] * 11)), "TooManyActions"),
        (actions({"Type": "Dance", "Parameters": {}}), "InvalidActionType"),
    ]
    server, hook = setup(lab, tools, app)
    try:
        rule_for_number(server.client("chime-sdk-voice"), DIAL_IN)
        for i, (bad, error_type) in enumerate(cases):
            with lock:
                mode["bad"] = bad
            seen = len(hook.events)
            run = phone(lab, DIAL_IN, name=f"bad{i}", duration=2.0).result()
            assert run["status"] == 486 and not run["confirmed"], (error_type, run, server.log()[-2000:])
            invalid = [e for e in hook.events[seen:] if e["InvocationEventType"] == "INVALID_LAMBDA_RESPONSE"]
            assert invalid and invalid[0]["ErrorType"] == error_type, (error_type, hook.events[seen:])
            assert invalid[0]["ErrorMessage"], invalid[0]
        # Too slow: each attempt waits 6 s (the deadline is 5 s), one retry, then 480.
        with lock:
            mode["bad"] = 6.0
        seen = len(hook.events)
        started = time.time()
        run = phone(lab, DIAL_IN, name="slow", duration=2.0, answer_timeout=30.0).result()
        assert run["status"] == 480 and not run["confirmed"], (run, server.log()[-2000:])
        attempts = [e for e in hook.events[seen:] if e["InvocationEventType"] == "NEW_INBOUND_CALL"]
        assert len(attempts) == 2, hook.kinds()[seen:]
        assert time.time() - started < 25, "refused once the retry failed"
    finally:
        hook.close()


def test_speak_with_a_local_text_to_speech_program(pstn_lab, pstn_tools, tmp_path):
    """With `--tts-command espeak-ng`, Speak's text is heard by the caller (AWS's Polly
    parameters given, the language used); its ACTION_SUCCESSFUL then Hangup."""
    lab, tools = pstn_lab, pstn_tools

    def app(event: dict):
        kind = event["InvocationEventType"]
        call_id = leg(event, "LEG-A")["CallId"]
        if kind == "NEW_INBOUND_CALL":
            return actions({"Type": "Speak", "Parameters": {
                "CallId": call_id, "Text": "Welcome to the voice connector. Please hold.",
                "Engine": "neural", "LanguageCode": "en-US", "TextType": "text", "VoiceId": "Joanna"}})
        if kind == "ACTION_SUCCESSFUL":
            return actions({"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}})
        return actions()

    server, hook = setup(lab, tools, app, extra=("--tts-command", "espeak-ng"))
    try:
        rule_for_number(server.client("chime-sdk-voice"), DIAL_IN)
        heard = tmp_path / "phone.wav"
        run = phone(lab, DIAL_IN, record=heard, duration=10.0).result()
        hook.wait_for("HANGUP")
    finally:
        hook.close()
    assert run["confirmed"] and "BYE" in run["remote_bye"], (run, server.log()[-3000:])
    spoke = [e for e in hook.events if (e.get("ActionData") or {}).get("Type") == "Speak"]
    assert spoke and spoke[0]["InvocationEventType"] == "ACTION_SUCCESSFUL", hook.kinds()
    samples, rate = load_pstn().pj.read_wav(heard)
    loud = sum(1 for i in range(0, len(samples) - rate // 10, rate // 10)
               if max(abs(x) for x in samples[i:i + rate // 10]) > 2000)
    assert loud >= 10, f"at least a second of speech heard, got {loud} loud tenths of a second"


def test_caller_gives_up_while_the_function_thinks(pstn_lab, pstn_tools, tmp_path):
    """The caller CANCELs while NEW_INBOUND_CALL is still being answered (the function takes
    3 s): the INVITE ends 487, the late answer answers nothing, the function gets HANGUP, and
    the call's ports go back."""
    lab, tools = pstn_lab, pstn_tools

    def app(event: dict):
        if event["InvocationEventType"] == "NEW_INBOUND_CALL":
            time.sleep(3.0)
            return actions({"Type": "PlayAudio", "Parameters": {"AudioSource": s3("prompts", "enter-pin.wav")}})
        return actions()

    server, hook = setup(lab, tools, app)
    try:
        rule_for_number(server.client("chime-sdk-voice"), DIAL_IN)
        run = phone(lab, DIAL_IN, answer_timeout=1.0, duration=1.0).result()
        hangup = hook.wait_for("HANGUP")
        assert server.wait_media_idle() == (0.0, set()), "the call's media and ports are released"
    finally:
        hook.close()
    assert not run["confirmed"] and run["status"] == 487, run
    assert hook.kinds() == ["NEW_INBOUND_CALL", "HANGUP"], hook.kinds()
    assert leg(hangup, "LEG-A")["Status"] == "Disconnected", hangup
