"""A webinar over SIP (issue 18, item 1): a pjsua2 presenter (audio SendReceive) and a pjsua2
listener (audio Receive) in one meeting, each playing its own tone. The listener hears the
presenter; the presenter does not hear the listener. UpdateAttendeeCapabilities then makes
the listener SendReceive, and the presenter hears it within a second. The issue's browser
listener is tests/browser/test_sdk_webinar.py."""

from __future__ import annotations

import time

LISTEN = {"Audio": "Receive", "Video": "None", "Content": "None"}
TALK = {"Audio": "SendReceive", "Video": "None", "Content": "None"}


def test_listener_is_heard_only_after_it_may_send(pj_server, pj_callers, pj_tones, pj_tools, tmp_path):
    join = pj_server.provision()
    meetings = pj_server.client("chime-sdk-meetings")
    listener = meetings.create_attendee(MeetingId=join.meeting_id, ExternalUserId="listener-1",
                                        Capabilities=LISTEN)["Attendee"]
    assert listener["Capabilities"] == LISTEN
    rec_p, rec_l = tmp_path / "presenter.wav", tmp_path / "listener.wav"
    end = 7.0
    p = pj_callers.start(join.host, join.token, "udp", play=pj_tones[440], record=rec_p,
                         duration=end, name="presenter")
    lis = pj_callers.start(join.host, listener["JoinToken"], "udp", play=pj_tones[1000], record=rec_l,
                           duration=end, name="listener")
    p.wait_media()
    lis.wait_media()
    # Three seconds as a webinar, then the listener may talk.
    time.sleep(3.0)
    before = time.time()
    meetings.update_attendee_capabilities(MeetingId=join.meeting_id, AttendeeId=listener["AttendeeId"],
                                          Capabilities=TALK)
    after_update = time.time()
    res_p, res_l = p.result(), lis.result()
    for res in (res_p, res_l):
        assert res["error"] == "" and res["confirmed"], res

    # Each recording starts with its call's media (the caller's ready file): the update's
    # place in it follows from the file's time.
    p_start, l_start = p.ready_file.stat().st_mtime, lis.ready_file.stat().st_mtime
    webinar = (1.0, before - max(p_start, l_start) - 0.1)
    assert webinar[1] - webinar[0] > 1.5, webinar
    heard_by_listener = pj_tools.tone_levels(rec_l, window=webinar)
    heard_by_presenter = pj_tools.tone_levels(rec_p, window=webinar)
    assert heard_by_listener["present"][440] > 0.9, f"listener does not hear the presenter: {heard_by_listener}"
    assert heard_by_presenter["present"][1000] == 0.0, f"presenter hears the listener: {heard_by_presenter}"
    assert heard_by_presenter[1000] < -60.0, heard_by_presenter
    # Frames kept coming to the presenter during the webinar (silence, not a stopped stream).
    assert res_p["rx_packets"] > 0, res_p["dump"]

    # From a second after the update on, the presenter hears the listener, and the listener
    # still hears the presenter.
    later_p = pj_tools.tone_levels(rec_p, window=(after_update - p_start + 1.0, end - 0.5))
    later_l = pj_tools.tone_levels(rec_l, window=(after_update - l_start + 1.0, end - 0.5))
    assert later_p["present"][1000] > 0.9, f"presenter does not hear the listener after the update: {later_p}"
    assert later_l["present"][440] > 0.9, later_l
