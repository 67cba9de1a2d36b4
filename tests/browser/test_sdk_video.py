"""Issue 15: video between browsers (the server forwards each camera, an SFU).

Two headless Chromiums run the unmodified amazon-chime-sdk-js in one meeting with
Chromium's fake camera. A turns its camera on: the server lists A's stream in the INDEX it
sends B (stream id, A's attendee id, group id), B's SDK subscribes to it (a SUBSCRIBE with
the stream id on a receive section), and the server forwards A's VP8 into that section and
names the section's track in SUBSCRIBE_ACK. B's SDK then reports a remote video tile for A
(`videoTileDidUpdate` with A's AttendeeId), and the page's `<video>` element bound to it
shows decoded frames: a size, and frames advancing (`requestVideoFrameCallback`). A's
sender got keyframe requests (the server asks for one when a receiver subscribes, and
relays the receivers' PLI/FIR). A's camera off removes the tile at B; audio goes on.
"""

from __future__ import annotations

import harness


def remote_tiles(state: dict, attendee_id: str) -> list[dict]:
    return [t for t in (state.get("tiles") or {}).values() if t.get("attendeeId") == attendee_id]


def frames_of(state: dict, attendee_id: str) -> int:
    return max((t["frames"] for t in remote_tiles(state, attendee_id) if not t.get("removed")), default=0)


def test_camera_forwarded_between_browsers(browser_env, tmp_path):
    server, _, _ = browser_env
    meeting, (att_a, att_b) = harness.meeting_with(server.meetings, "video", "video-a", "video-b")
    mic = harness.tone_wav(tmp_path / "mic.wav", 1000)
    with (
        harness.BrowserAttendee(
            tmp_path, {"Meeting": meeting, "Attendee": att_a}, fake_audio=mic, name="a", tones=(1000,)
        ) as a,
        harness.BrowserAttendee(
            tmp_path, {"Meeting": meeting, "Attendee": att_b}, fake_audio=mic, name="b", tones=(1000,)
        ) as b,
    ):
        a.wait(lambda s: s["phase"] == "started", 25, "A's session started")
        b.wait(lambda s: s["phase"] == "started", 25, "B's session started")

        a.command("camera-on")
        a.wait(lambda s: s["camera"]["on"] and harness.video_packets_sent(s) > 0, 20, "A's camera sending")

        got = b.wait(lambda s: frames_of(s, att_a["AttendeeId"]) >= 1, 25, "a remote tile for A with a frame at B")
        tile = remote_tiles(got, att_a["AttendeeId"])[0]
        assert tile["externalUserId"] == "video-a", tile
        assert tile["streamId"], f"the tile names the stream it shows: {tile}"
        assert tile["width"] > 0 and tile["height"] > 0, tile
        first = frames_of(got, att_a["AttendeeId"])
        b.wait(lambda s: frames_of(s, att_a["AttendeeId"]) >= first + 30, 15, "A's frames advancing at B")
        video_in = (b.state.get("stats") or {}).get("videoIn") or {}
        assert video_in.get("framesDecoded", 0) > 0, video_in
        out = a.wait(
            lambda s: ((s.get("stats") or {}).get("video") or {}).get("keyFramesEncoded", 0) >= 1,
            10,
            "A encoded a keyframe",
        )["stats"]["video"]
        assert out["pliCount"] + out["firCount"] >= 1, f"keyframe requests reached A's sender: {out}"
        assert not remote_tiles(a.state, att_b["AttendeeId"]), "B sends no video, so A has no tile"
        assert not remote_tiles(a.state, att_a["AttendeeId"]), "A does not get its own stream back"

        # A's camera goes off: B's tile goes, and both keep hearing each other.
        a.command("camera-off")
        b.wait(
            lambda s: all(t.get("removed") for t in remote_tiles(s, att_a["AttendeeId"])),
            20,
            "A's tile removed at B",
        )
        blocks = b.state["audio"]["blocks"]
        tone = harness.tone_blocks(b.state, 1000)
        end = b.wait(lambda s: s["audio"]["blocks"] >= blocks + 20, 10, "20 more analysis blocks at B")
        assert harness.tone_blocks(end, 1000) - tone >= 18, "B still hears A after the camera went off"
        for br in (a, b):
            assert br.state["errors"] == [], br.state["errors"]
            assert br.state["observer"]["reconnecting"] == 0, br.state["observer"]


def test_content_share_video_forwarded_like_a_camera(browser_env, tmp_path):
    """A's content share (the SDK's `#content` session: a canvas changing every frame) is a
    stream like a camera: B gets a content tile for `<A>#content` whose frames advance."""
    server, _, _ = browser_env
    meeting, (att_a, att_b) = harness.meeting_with(server.meetings, "content-video", "cv-a", "cv-b")
    mic = harness.tone_wav(tmp_path / "mic.wav", 1000)
    with (
        harness.BrowserAttendee(tmp_path, {"Meeting": meeting, "Attendee": att_a}, fake_audio=mic, name="a") as a,
        harness.BrowserAttendee(tmp_path, {"Meeting": meeting, "Attendee": att_b}, fake_audio=mic, name="b") as b,
    ):
        a.wait(lambda s: s["phase"] == "started", 25, "A's session started")
        b.wait(lambda s: s["phase"] == "started", 25, "B's session started")
        a.command("content-share:700")
        a.wait(lambda s: s["content"]["started"] >= 1, 20, "A's content share started")
        content = att_a["AttendeeId"] + "#content"
        got = b.wait(lambda s: frames_of(s, content) >= 1, 25, "a content tile for A at B")
        tile = remote_tiles(got, content)[0]
        assert tile["isContent"] and tile["width"] > 0, tile
        first = frames_of(got, content)
        b.wait(lambda s: frames_of(s, content) >= first + 20, 15, "A's content frames advancing at B")
        assert b.state["errors"] == [], b.state["errors"]
