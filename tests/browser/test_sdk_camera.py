"""Issue 15: a browser turns its camera on in the middle of a call with a SIP phone.

The unmodified amazon-chime-sdk-js then sends a new SUBSCRIBE (a new SDP offer) on the same
peer connection. The server answers it on the session's existing WebRTC leg (the same ICE
credentials, DTLS and SRTP), so audio goes on both ways: the browser (1 kHz from its fake
microphone) keeps hearing the phone (pjsua2, 440 Hz) and the phone keeps hearing the
browser, measured before the camera goes on, after it, and after it goes off and on again
(Chromium's fake camera; its video packets leave the browser, so the renegotiation
happened). The server log shows one leg added and the later offers renegotiated.
"""

from __future__ import annotations

import time

import harness
from phone import CALLER_NUMBER, caller_result, start_caller, stop

BROWSER_TONE_HZ = 1000
CALLER_TONE_HZ = 440
#: Seconds the phone stays in the call once its media runs (the browser's part ends well
#: before).
CALL_SECONDS = 40.0
#: When the camera goes on, seconds after the phone's media runs.
CAMERA_ON_AFTER_S = 10.0
#: Received-audio analysis blocks (~100 ms each) of one measurement window.
WINDOW_BLOCKS = 30
#: Share of a window's blocks that must carry the other side's tone.
MIN_PRESENT_SHARE = 0.9
#: Longest absence of the browser's tone in the phone's recording, in 100 ms blocks.
MAX_GAP_BLOCKS = 5


def heard_window(browser: harness.BrowserAttendee, what: str) -> float:
    """Waits for WINDOW_BLOCKS more analysis blocks of the browser's received audio and
    returns the share of them that carried the phone's tone."""
    start = browser.state
    blocks0 = start["audio"]["blocks"]
    tone0 = harness.tone_blocks(start, CALLER_TONE_HZ)
    end = browser.wait(
        lambda s: s["audio"]["blocks"] >= blocks0 + WINDOW_BLOCKS, 20, f"{WINDOW_BLOCKS} analysis blocks {what}"
    )
    share = (harness.tone_blocks(end, CALLER_TONE_HZ) - tone0) / (end["audio"]["blocks"] - blocks0)
    assert share >= MIN_PRESENT_SHARE, (
        f"the browser heard the phone's {CALLER_TONE_HZ} Hz in only {share:.0%} of the blocks {what}\n"
        f"{browser.describe()}"
    )
    return share


def test_camera_on_mid_call_keeps_audio_both_ways(browser_env, tmp_path):
    server, sip_port, host = browser_env
    meeting, (browser_att, sip_att) = harness.meeting_with(server.meetings, "camera", "browser-cam", CALLER_NUMBER)
    mic = harness.tone_wav(tmp_path / "browser-mic.wav", BROWSER_TONE_HZ)
    caller_tone = harness.tone_wav(tmp_path / "caller-tone.wav", CALLER_TONE_HZ, seconds=4.0, rate=16000)
    recording = tmp_path / "caller-heard.wav"
    join_info = {"Meeting": meeting, "Attendee": browser_att}

    with harness.BrowserAttendee(tmp_path, join_info, fake_audio=mic, tones=(CALLER_TONE_HZ, BROWSER_TONE_HZ)) as browser:
        browser.wait(lambda s: s["phase"] == "started", 25, "the SDK session started")
        caller = start_caller(tmp_path, sip_port, host, sip_att["JoinToken"], caller_tone, recording, CALL_SECONDS)
        try:
            ready = tmp_path / "caller.ready"
            deadline = time.monotonic() + 15
            while not ready.exists():
                assert time.monotonic() < deadline and caller.poll() is None, "the phone's media never ran"
                time.sleep(0.05)
            media_at = time.monotonic()
            browser.wait(
                lambda s: harness.roster_external_ids(s).get(sip_att["AttendeeId"]) == CALLER_NUMBER,
                15,
                "the phone in the browser's roster",
            )
            browser.wait(
                lambda s: harness.tone_blocks(s, CALLER_TONE_HZ) >= 10, 15, "the phone's tone in the browser"
            )
            before = heard_window(browser, "before the camera")

            # ~10 s into the call the camera goes on: the SDK renegotiates.
            time.sleep(max(0.0, media_at + CAMERA_ON_AFTER_S - time.monotonic()))
            browser.command("camera-on")
            on = browser.wait(
                lambda s: s["camera"]["changes"] >= 1 and harness.video_packets_sent(s) > 0,
                20,
                "the camera on and its video packets sent",
            )
            assert on["camera"]["on"] and on["camera"]["errors"] == 0, on["camera"]
            after_on = heard_window(browser, "after the camera went on")

            browser.command("camera-off")
            browser.wait(lambda s: s["camera"]["changes"] >= 2 and not s["camera"]["on"], 20, "the camera off")
            after_off = heard_window(browser, "after the camera went off")

            sent = harness.video_packets_sent(browser.state)
            browser.command("camera-on")
            browser.wait(
                lambda s: s["camera"]["changes"] >= 3 and s["camera"]["on"] and harness.video_packets_sent(s) > sent,
                20,
                "the camera on again and sending",
            )
            after_again = heard_window(browser, "after the camera went on again")
            camera_done_at = time.monotonic() - media_at
            assert browser.state["phase"] == "started" and browser.state["observer"]["reconnecting"] == 0, (
                browser.state["observer"]
            )
            assert browser.state["errors"] == [], browser.state["errors"]
            res = caller_result(caller, timeout=CALL_SECONDS + 30)
        finally:
            stop(caller)
    assert res.get("confirmed"), res
    assert camera_done_at < CALL_SECONDS - 2, f"the camera steps ended {camera_done_at:.1f} s into the call"

    # The phone heard the browser all along: from its first block with the tone to the
    # end of the call (less a second for the hang-up), no gap longer than half a second.
    present = harness.tone_blocks_in_wav(recording, BROWSER_TONE_HZ)
    first = present.index(True) if True in present else len(present)
    span = present[first:-10]
    assert len(span) * 0.1 >= camera_done_at, f"the recording covers {len(span) * 0.1:.1f} s of {camera_done_at:.1f} s"
    gap = harness.longest_false_run(span)
    assert gap <= MAX_GAP_BLOCKS, (
        f"the phone lost the browser's {BROWSER_TONE_HZ} Hz for {gap * 0.1:.1f} s "
        f"(shares in the browser: {before:.0%} {after_on:.0%} {after_off:.0%} {after_again:.0%})"
    )

    log = server.log()
    assert log.count("browser media leg added") == 1, "one WebRTC leg for the whole session"
    assert log.count("browser media renegotiated") >= 3, "camera on, off and on again were renegotiated"
