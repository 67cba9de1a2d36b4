"""End to end: the official, unmodified amazon-chime-sdk-js (npm 3.32.0) in headless
Chromium joins a meeting of the real `voice-connector serve` over its signaling WebSocket
(`MediaPlacement.SignalingUrl`, `/control/<MeetingId>`) and WebRTC, and talks with a SIP
caller (pjsua2, tests/pjsua2/caller.py) that joined the same meeting by its token.

The browser's fake microphone plays a steady 1 kHz tone, the SIP caller 440 Hz:
- the browser's received audio (WebAudio analyser on the SDK's remote stream) carries 440 Hz
  and not its own 1 kHz; the SIP caller's recording carries 1 kHz and not its own 440 Hz;
- the SIP attendee's level reaches the browser's volume indicator;
- the browser's roster lists the SIP attendee (ExternalUserId: the caller's E.164 number),
  and drops it when the caller hangs up;
- DeleteAttendee of the browser's attendee stops the SDK session with AUDIO_STATUS 411,
  the SDK's `MeetingSessionStatusCode.AudioAttendeeRemoved`;
- the SDK's events reach the EventIngestionUrl; DeleteMeeting stops it with 410,
  `MeetingEnded`;
- the same token from a second browser stops the first with 301
  (`AudioJoinedFromAnotherDevice`);
- a browser's mute reaches another browser (volume indicator `muted`, its tone gone) and
  its unmute brings both back.

Every wait is bounded; each test takes well under 90 s.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

import harness
from phone import CALLER_NUMBER, caller_result, start_caller, stop

BROWSER_TONE_HZ = 1000
CALLER_TONE_HZ = 440
#: Seconds the SIP caller stays in the call once its media runs.
CALL_SECONDS = 8.0
#: Received-audio analysis blocks (~100 ms each) that must carry a tone: one second's worth.
TONE_BLOCKS = 10
#: Blocks in which one's own tone may come back (none should: the mix is N-1).
OWN_TONE_BLOCKS_MAX = 3


def test_sdk_browser_and_sip_caller_hear_each_other(browser_env, tmp_path):
    """The browser (1 kHz) and a SIP caller (440 Hz) in one meeting hear each other and not
    themselves; the roster and volume indicator show the caller, and its departure;
    DeleteAttendee stops the browser with AudioAttendeeRemoved (411)."""
    server, sip_port, host = browser_env
    meetings = server.meetings
    meeting, (browser_att, sip_att) = harness.meeting_with(meetings, "browser", "browser-alice", CALLER_NUMBER)
    meeting_id = meeting["MeetingId"]
    assert meeting["MediaPlacement"]["SignalingUrl"].endswith(f"/control/{meeting_id}"), meeting

    mic = harness.tone_wav(tmp_path / "browser-mic.wav", BROWSER_TONE_HZ)
    caller_tone = harness.tone_wav(tmp_path / "caller-tone.wav", CALLER_TONE_HZ, seconds=4.0, rate=16000)
    recording = tmp_path / "caller-heard.wav"
    join_info = {"Meeting": meeting, "Attendee": browser_att}

    with harness.BrowserAttendee(tmp_path, join_info, fake_audio=mic, tones=(CALLER_TONE_HZ, BROWSER_TONE_HZ)) as browser:
        started = browser.wait(lambda s: s["phase"] == "started", 25, "the SDK session started (audioVideoDidStart)")
        assert started["errors"] == [], started["errors"]
        # The joiner is in its own roster, with its ExternalUserId.
        browser.wait(
            lambda s: harness.roster_external_ids(s).get(browser_att["AttendeeId"]) == "browser-alice",
            10,
            "the browser's own attendee in its roster",
        )

        caller = start_caller(tmp_path, sip_port, host, sip_att["JoinToken"], caller_tone, recording, CALL_SECONDS)
        try:
            in_call = browser.wait(
                lambda s: harness.roster_external_ids(s).get(sip_att["AttendeeId"]) == CALLER_NUMBER,
                15,
                f"the SIP attendee {sip_att['AttendeeId']} ({CALLER_NUMBER}) in the browser's roster",
            )
            baseline = harness.tone_blocks(in_call, CALLER_TONE_HZ)
            heard = browser.wait(
                lambda s: harness.tone_blocks(s, CALLER_TONE_HZ) >= baseline + TONE_BLOCKS,
                15,
                f"{CALLER_TONE_HZ} Hz from the SIP caller in the browser's received audio",
            )
            assert harness.packets_received(heard) > 0, heard["stats"]
            # N-1 mix: the browser does not get its own tone back.
            assert harness.tone_blocks(heard, BROWSER_TONE_HZ) < OWN_TONE_BLOCKS_MAX, heard["audio"]
            # The caller's level reaches the SDK's volume indicator (AUDIO_METADATA).
            browser.wait(
                lambda s: (s["volumes"][sip_att["AttendeeId"]]["maxVolume"] or 0) >= 0.5,
                10,
                "a volume indicator of at least 0.5 for the SIP attendee",
            )
            res = caller_result(caller, timeout=CALL_SECONDS + 30)
        finally:
            stop(caller)

        assert res.get("confirmed"), res
        presence = harness.tone_presence(recording, (BROWSER_TONE_HZ, CALLER_TONE_HZ))
        assert presence["tones"][BROWSER_TONE_HZ]["present_blocks"] >= TONE_BLOCKS, (
            f"the SIP caller did not hear the browser's {BROWSER_TONE_HZ} Hz: {presence}"
        )
        assert presence["tones"][CALLER_TONE_HZ]["present_blocks"] < OWN_TONE_BLOCKS_MAX, (
            f"the SIP caller heard its own {CALLER_TONE_HZ} Hz: {presence}"
        )

        # The caller hung up: the browser sees the SIP attendee leave.
        browser.wait(
            lambda s: sip_att["AttendeeId"] not in harness.roster_external_ids(s),
            15,
            "the SIP attendee gone from the browser's roster after its hang-up",
        )

        # DeleteAttendee: AUDIO_STATUS 411, which the SDK reports as AudioAttendeeRemoved.
        meetings.delete_attendee(MeetingId=meeting_id, AttendeeId=browser_att["AttendeeId"])
        stopped = browser.wait(lambda s: s.get("stopStatus") is not None, 15, "audioVideoDidStop after DeleteAttendee")
        assert stopped["stopStatus"]["name"] == "AudioAttendeeRemoved", stopped["stopStatus"]
        assert stopped["stopStatus"]["isTerminal"], stopped["stopStatus"]
        assert stopped["errors"] == [], stopped["errors"]


def client_events_total(server) -> int:
    """The server's count of SDK events received at `MediaPlacement.EventIngestionUrl`."""
    text = requests.get(server.endpoint + "/metrics", timeout=5).text
    m = re.search(r"^vc_client_events_total(?:\{[^}]*\})? (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def test_sdk_browser_events_and_delete_meeting(browser_env, tmp_path):
    """The SDK's events reach `MediaPlacement.EventIngestionUrl` (cross-origin POST with
    the JoinToken as bearer, accepted with a 2xx), and DeleteMeeting ends the browser's
    session with AUDIO_STATUS 410, the SDK's `MeetingSessionStatusCode.MeetingEnded`."""
    server, _, _ = browser_env
    meetings = server.meetings
    meeting, (attendee,) = harness.meeting_with(meetings, "browser", "browser-bob")
    mic = harness.tone_wav(tmp_path / "browser-mic.wav", BROWSER_TONE_HZ)
    with harness.BrowserAttendee(tmp_path, {"Meeting": meeting, "Attendee": attendee}, fake_audio=mic) as browser:
        browser.wait(lambda s: s["phase"] == "started", 25, "the SDK session started (audioVideoDidStart)")
        browser.wait(
            lambda s: harness.roster_external_ids(s).get(attendee["AttendeeId"]) == "browser-bob",
            10,
            "the browser's own attendee in its roster",
        )
        assert meeting["MediaPlacement"].get("EventIngestionUrl"), meeting["MediaPlacement"]
        deadline = time.monotonic() + 15
        while client_events_total(server) == 0:
            assert time.monotonic() < deadline, f"no SDK event reached the EventIngestionUrl\n{browser.describe()}"
            time.sleep(0.2)
        refused = [line for line in browser.logs if "InMemoryJSONEventBuffer" in line and "ERROR" in line.split()[1]]
        assert refused == [], refused

        meetings.delete_meeting(MeetingId=meeting["MeetingId"])
        stopped = browser.wait(lambda s: s.get("stopStatus") is not None, 15, "audioVideoDidStop after DeleteMeeting")
        assert stopped["stopStatus"]["name"] == "MeetingEnded", stopped["stopStatus"]
        assert stopped["stopStatus"]["isTerminal"], stopped["stopStatus"]
        assert stopped["errors"] == [], stopped["errors"]


def test_sdk_browser_same_token_elsewhere_replaces_session(browser_env, tmp_path):
    """A second browser joining with the same attendee's token replaces the first session:
    the first stops with AUDIO_STATUS 301 (`AudioJoinedFromAnotherDevice`), the second runs
    and sees that attendee in its roster."""
    server, _, _ = browser_env
    meetings = server.meetings
    meeting, (attendee,) = harness.meeting_with(meetings, "browser", "browser-carol")
    join_info = {"Meeting": meeting, "Attendee": attendee}
    mic = harness.tone_wav(tmp_path / "browser-mic.wav", BROWSER_TONE_HZ)
    with harness.BrowserAttendee(tmp_path, join_info, fake_audio=mic, name="first") as first:
        first.wait(lambda s: s["phase"] == "started", 25, "the first session started")
        with harness.BrowserAttendee(tmp_path, join_info, fake_audio=mic, name="second") as second:
            second.wait(lambda s: s["phase"] == "started", 25, "the second session started")
            stopped = first.wait(lambda s: s.get("stopStatus") is not None, 15, "the first session stopped")
            assert stopped["stopStatus"]["name"] == "AudioJoinedFromAnotherDevice", stopped["stopStatus"]
            second.wait(
                lambda s: harness.roster_external_ids(s).get(attendee["AttendeeId"]) == "browser-carol",
                10,
                "the attendee in the second session's roster",
            )
            assert second.state.get("stopStatus") is None, second.state.get("stopStatus")


def test_sdk_browser_mute_reaches_the_other_browser(browser_env, tmp_path):
    """Two browsers in one meeting hear each other; when A mutes (the SDK's
    realtimeMuteLocalAudio: AUDIO_CONTROL to the server), B's volume indicator for A says
    muted and A's tone leaves B's audio; after unmuting both come back."""
    server, _, _ = browser_env
    meetings = server.meetings
    meeting, (att_a, att_b) = harness.meeting_with(meetings, "browser", "browser-a", "browser-b")
    a_id = att_a["AttendeeId"]
    mic_a = harness.tone_wav(tmp_path / "a-mic.wav", BROWSER_TONE_HZ)
    mic_b = harness.tone_wav(tmp_path / "b-mic.wav", CALLER_TONE_HZ)
    tones = (CALLER_TONE_HZ, BROWSER_TONE_HZ)
    with (
        harness.BrowserAttendee(tmp_path, {"Meeting": meeting, "Attendee": att_a}, fake_audio=mic_a, tones=tones, name="a") as a,
        harness.BrowserAttendee(tmp_path, {"Meeting": meeting, "Attendee": att_b}, fake_audio=mic_b, tones=tones, name="b") as b,
    ):
        a.wait(lambda s: s["phase"] == "started", 25, "A's session started")
        b.wait(lambda s: s["phase"] == "started", 25, "B's session started")
        a.wait(lambda s: harness.tone_blocks(s, CALLER_TONE_HZ) >= TONE_BLOCKS, 15, "B's 440 Hz in A's audio")
        heard = b.wait(lambda s: harness.tone_blocks(s, BROWSER_TONE_HZ) >= TONE_BLOCKS, 15, "A's 1 kHz in B's audio")
        b.wait(lambda s: harness.volume_of(s, a_id).get("muted") is False, 10, "A unmuted in B's volume indicator")

        a.command("mute")
        a.wait(lambda s: s["muted"] is True, 10, "A muted locally")
        b.wait(lambda s: harness.volume_of(s, a_id).get("muted") is True, 10, "A muted in B's volume indicator")
        b.wait(
            lambda s: harness.tone_absent_streak(s, BROWSER_TONE_HZ) >= TONE_BLOCKS,
            10,
            "A's 1 kHz gone from B's audio while A is muted",
        )

        a.command("unmute")
        before = harness.tone_blocks(b.state, BROWSER_TONE_HZ)
        b.wait(lambda s: harness.volume_of(s, a_id).get("muted") is False, 10, "A unmuted again in B's volume indicator")
        b.wait(
            lambda s: harness.tone_blocks(s, BROWSER_TONE_HZ) >= before + TONE_BLOCKS,
            15,
            "A's 1 kHz back in B's audio after unmuting",
        )
        assert a.state["errors"] == [] and b.state["errors"] == [], (a.state["errors"], b.state["errors"])
