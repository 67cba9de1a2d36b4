"""Issue 15: content share. The SDK's `startContentShare` opens a second session with
`<JoinToken>#content` as the attendee `<AttendeeId>#content`; the server accepts it for an
existing attendee, lists it in the roster with the attendee's ExternalUserId, and mixes its
audio: a SIP phone (pjsua2) hears the shared 700 Hz tone beside the browser's 1 kHz
microphone. Stopping the share takes the content attendee out of the roster, and
DeleteAttendee ends the content share with the attendee's own session.
"""

from __future__ import annotations

import time

import harness
from phone import CALLER_NUMBER, caller_result, start_caller, stop

BROWSER_TONE_HZ = 1000
CONTENT_TONE_HZ = 700
CALLER_TONE_HZ = 440
CALL_SECONDS = 20.0
#: 100 ms blocks of the phone's recording that must carry the content's tone.
CONTENT_BLOCKS = 20


def test_content_share_is_accepted_and_its_audio_reaches_the_phone(browser_env, tmp_path):
    server, sip_port, host = browser_env
    meeting, (att, sip_att) = harness.meeting_with(server.meetings, "content", "presenter", CALLER_NUMBER)
    content_id = att["AttendeeId"] + "#content"
    mic = harness.tone_wav(tmp_path / "mic.wav", BROWSER_TONE_HZ)
    caller_tone = harness.tone_wav(tmp_path / "caller-tone.wav", CALLER_TONE_HZ, seconds=4.0, rate=16000)
    recording = tmp_path / "caller-heard.wav"
    tones = (CALLER_TONE_HZ, BROWSER_TONE_HZ, CONTENT_TONE_HZ)
    with harness.BrowserAttendee(tmp_path, {"Meeting": meeting, "Attendee": att}, fake_audio=mic, tones=tones) as browser:
        browser.wait(lambda s: s["phase"] == "started", 25, "the SDK session started")
        caller = start_caller(tmp_path, sip_port, host, sip_att["JoinToken"], caller_tone, recording, CALL_SECONDS)
        try:
            browser.wait(
                lambda s: harness.roster_external_ids(s).get(sip_att["AttendeeId"]) == CALLER_NUMBER,
                15,
                "the phone in the roster",
            )
            browser.command(f"content-share:{CONTENT_TONE_HZ}")
            browser.wait(lambda s: s["content"]["started"] >= 1, 25, "contentShareDidStart")
            shared = browser.wait(
                lambda s: harness.roster_external_ids(s).get(content_id) == "presenter",
                15,
                f"the content attendee {content_id} in the roster",
            )
            assert shared["errors"] == [], shared["errors"]
            # Long enough for the phone to record the content's tone.
            time.sleep(CONTENT_BLOCKS * 0.1 + 2)
            browser.command("content-stop")
            browser.wait(
                lambda s: content_id not in harness.roster_external_ids(s), 15, "the content attendee gone after stopping"
            )
            browser.wait(lambda s: s["content"]["stopped"] >= 1, 10, "contentShareDidStop")
            assert browser.state["phase"] == "started", "the attendee's own session goes on"
            res = caller_result(caller, timeout=CALL_SECONDS + 30)
        finally:
            stop(caller)

        # DeleteAttendee ends the attendee's content share with its own session.
        browser.command(f"content-share:{CONTENT_TONE_HZ}")
        browser.wait(lambda s: s["content"]["started"] >= 2, 25, "the second contentShareDidStart")
        browser.wait(lambda s: content_id in harness.roster_external_ids(s), 15, "the content attendee back")
        server.meetings.delete_attendee(MeetingId=meeting["MeetingId"], AttendeeId=att["AttendeeId"])
        ended = browser.wait(
            lambda s: s["content"]["stopped"] >= 2 and s.get("stopStatus") is not None,
            20,
            "the content share and the session stopped after DeleteAttendee",
        )
        assert ended["stopStatus"]["name"] == "AudioAttendeeRemoved", ended["stopStatus"]
    assert res.get("confirmed"), res
    heard = harness.tone_presence(recording, (BROWSER_TONE_HZ, CONTENT_TONE_HZ))["tones"]
    assert heard[CONTENT_TONE_HZ]["present_blocks"] >= CONTENT_BLOCKS, f"the phone did not hear the content: {heard}"
    assert heard[BROWSER_TONE_HZ]["present_blocks"] >= CONTENT_BLOCKS, f"the phone did not hear the browser: {heard}"
    assert "#content" in server.log() and "signaling upgrade refused" not in server.log()
