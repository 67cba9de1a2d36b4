"""A webinar with a browser listener (issue 18, the Must-show's browser half; the SIP half
is tests/pjsua2/test_pjsua2_webinar.py): a pjsua2 presenter (audio SendReceive, 440 Hz),
a pjsua2 listener (audio Receive, 660 Hz) and the unmodified amazon-chime-sdk-js in
Chromium as a second listener (audio Receive, its fake microphone playing 1 kHz).

- Both listeners hear the presenter; the presenter hears neither, though both play tones.
- UpdateAttendeeCapabilities turns the browser listener to SendReceive: the presenter's
  next call hears the browser's 1 kHz, and still not the SIP listener's 660 Hz.
"""

from __future__ import annotations

import harness
from phone import caller_result, start_caller, stop

PRESENTER_HZ, SIP_LISTENER_HZ, BROWSER_HZ = 440, 660, 1000
LISTEN = {"Audio": "Receive", "Video": "None", "Content": "None"}
TALK = {"Audio": "SendReceive", "Video": "None", "Content": "None"}
#: Analysis blocks (~100 ms) that must carry a tone: one second's worth.
TONE_BLOCKS = 10
#: Blocks in which a tone that must not be heard may still show (none should).
STRAY_BLOCKS_MAX = 3
CALL_SECONDS = 5.0


def presenter_call(tmp_path, sip_port, host, token, name) -> dict:
    """One presenter call of CALL_SECONDS playing 440 Hz; the tones heard in its recording."""
    tone = harness.tone_wav(tmp_path / f"{name}-tone.wav", PRESENTER_HZ, seconds=4.0, rate=16000)
    recording = tmp_path / f"{name}-heard.wav"
    caller = start_caller(tmp_path, sip_port, host, token, tone, recording, CALL_SECONDS)
    try:
        res = caller_result(caller, timeout=CALL_SECONDS + 30)
    finally:
        stop(caller)
    assert res.get("confirmed"), res
    return harness.tone_presence(recording, (PRESENTER_HZ, SIP_LISTENER_HZ, BROWSER_HZ))["tones"]


def test_webinar_listeners_hear_the_presenter_and_are_heard_only_once_they_may_send(browser_env, tmp_path):
    server, sip_port, host = browser_env
    meetings = server.meetings
    meeting, (presenter,) = harness.meeting_with(meetings, "webinar", "presenter")
    meeting_id = meeting["MeetingId"]
    listeners = [
        meetings.create_attendee(MeetingId=meeting_id, ExternalUserId=e, Capabilities=LISTEN)["Attendee"]
        for e in ("listener-sip", "listener-browser")
    ]
    sip_listener, browser_listener = listeners
    assert all(a["Capabilities"] == LISTEN for a in listeners), listeners

    mic = harness.tone_wav(tmp_path / "browser-mic.wav", BROWSER_HZ)
    sip_tone = harness.tone_wav(tmp_path / "sip-listener-tone.wav", SIP_LISTENER_HZ, seconds=4.0, rate=16000)
    sip_heard = tmp_path / "sip-listener-heard.wav"
    join_info = {"Meeting": meeting, "Attendee": browser_listener}
    tones = (PRESENTER_HZ, SIP_LISTENER_HZ, BROWSER_HZ)
    with harness.BrowserAttendee(tmp_path, join_info, fake_audio=mic, tones=tones) as browser:
        started = browser.wait(lambda s: s["phase"] == "started", 25, "the SDK session started")
        assert started["errors"] == [], started["errors"]
        listener = start_caller(tmp_path, sip_port, host, sip_listener["JoinToken"], sip_tone, sip_heard,
                                2 * CALL_SECONDS + 10)
        try:
            before = harness.tone_blocks(browser.state, PRESENTER_HZ)
            during = presenter_call(tmp_path, sip_port, host, presenter["JoinToken"], "presenter-1")
            heard = browser.wait(
                lambda s: harness.tone_blocks(s, PRESENTER_HZ) >= before + TONE_BLOCKS, 10,
                f"the presenter's {PRESENTER_HZ} Hz in the browser listener's audio",
            )
            # The browser hears the presenter, not the SIP listener.
            assert harness.tone_blocks(heard, SIP_LISTENER_HZ) < STRAY_BLOCKS_MAX, heard["audio"]
            # The presenter heard neither listener.
            assert during[SIP_LISTENER_HZ]["present_blocks"] < STRAY_BLOCKS_MAX, during
            assert during[BROWSER_HZ]["present_blocks"] < STRAY_BLOCKS_MAX, during

            meetings.update_attendee_capabilities(MeetingId=meeting_id, AttendeeId=browser_listener["AttendeeId"],
                                                  Capabilities=TALK)
            after = presenter_call(tmp_path, sip_port, host, presenter["JoinToken"], "presenter-2")
            assert after[BROWSER_HZ]["present_blocks"] >= TONE_BLOCKS, (
                f"the presenter does not hear the browser after UpdateAttendeeCapabilities: {after}")
            assert after[SIP_LISTENER_HZ]["present_blocks"] < STRAY_BLOCKS_MAX, after
            res = caller_result(listener, timeout=2 * CALL_SECONDS + 40)
        finally:
            stop(listener)
    assert res.get("confirmed"), res
    # The SIP listener heard the presenter (both calls) and, once it might send, the browser.
    sip = harness.tone_presence(sip_heard, tones)["tones"]
    assert sip[PRESENTER_HZ]["present_blocks"] >= 2 * TONE_BLOCKS, sip
    assert sip[BROWSER_HZ]["present_blocks"] >= TONE_BLOCKS, sip
