"""Issue 15: realtime data messages (chat) and the SDK's event beacons.

Two headless Chromiums run the unmodified amazon-chime-sdk-js in one meeting, both
subscribed to the topic `chat` (`realtimeSubscribeToReceiveDataMessage`):
- a message A sends with `realtimeSendDataMessage` reaches B with its topic, text, A's
  AttendeeId and ExternalUserId and a server timestamp, and does not come back to A;
- A sending more than Amazon Chime's burst (200 messages at once) gets the excess back
  marked `throttled` (the server's refusal), and B gets only the accepted ones;
- A's page is cross-origin isolated (COEP require-corp, as the SDK's demos are): its
  events reach the EventIngestionUrl, and when the page goes (pagehide) the SDK's
  `sendBeacon` of its last events arrives (the server counts the beacon form) with no
  console error about it.
"""

from __future__ import annotations

import re
import time

import requests

import harness

TOPIC = "chat"
#: Messages sent at once (in one loop of the page), over the burst of 200.
BURST_SENT = 240
BURST = 200


def metric(server, name: str) -> int:
    text = requests.get(server.endpoint + "/metrics", timeout=5).text
    m = re.search(rf"^{name}(?:\{{[^}}]*\}})? (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def test_chat_between_browsers_with_chimes_limits_and_beacons(browser_env, tmp_path):
    server, _, _ = browser_env
    meeting, (att_a, att_b) = harness.meeting_with(server.meetings, "chat", "chat-a", "chat-b")
    mic = harness.tone_wav(tmp_path / "mic.wav", 1000)
    with (
        harness.BrowserAttendee(
            tmp_path, {"Meeting": meeting, "Attendee": att_a}, fake_audio=mic, name="a", topics=(TOPIC,), coep=True
        ) as a,
        harness.BrowserAttendee(
            tmp_path, {"Meeting": meeting, "Attendee": att_b}, fake_audio=mic, name="b", topics=(TOPIC,)
        ) as b,
    ):
        a.wait(lambda s: s["phase"] == "started", 25, "A's session started")
        b.wait(lambda s: s["phase"] == "started", 25, "B's session started")

        a.command(f"send:{TOPIC}:hello from a: with colons")
        got = b.wait(lambda s: len(s["dataMessages"]) >= 1, 10, "A's chat message at B")
        m = got["dataMessages"][0]
        assert m["topic"] == TOPIC and m["text"] == "hello from a: with colons", m
        assert m["senderAttendeeId"] == att_a["AttendeeId"] and m["senderExternalUserId"] == "chat-a", m
        assert m["throttled"] is False, m
        assert abs(m["timestampMs"] / 1000 - time.time()) < 60, f"a server timestamp of now: {m}"
        time.sleep(1.0)  # a message back to A would have arrived by now
        assert a.state["dataMessages"] == [], "the sender does not get its own message back"

        # Over the burst: the excess comes back to A throttled; B gets the rest.
        time.sleep(2.5)  # the bucket refills to its burst
        a.command(f"burst:{TOPIC}:{BURST_SENT}")
        a.wait(
            lambda s: len(s["dataMessages"]) >= 1 and len(b.state["dataMessages"]) - 1 + len(s["dataMessages"]) >= BURST_SENT,
            20,
            "every burst message at B or back at A",
        )
        back = a.state["dataMessages"]
        at_b = b.state["dataMessages"][1:]
        assert all(x["throttled"] for x in back), back[:3]
        # The burst, and what the bucket refilled (100 a second) while the page sent.
        assert BURST <= len(at_b) <= BURST_SENT - 20, (len(at_b), len(back))
        assert len(at_b) + len(back) == BURST_SENT, (len(at_b), len(back))
        assert all(not x["throttled"] and x["senderAttendeeId"] == att_a["AttendeeId"] for x in at_b)
        stamps = [x["timestampMs"] for x in at_b]
        assert stamps == sorted(stamps), "ingest times go up"

        # Events reached the EventIngestionUrl from the cross-origin isolated page, and its
        # sendBeacon as the page goes is not blocked.
        deadline = time.monotonic() + 15
        while metric(server, "vc_client_events_total") == 0:
            assert time.monotonic() < deadline, "no SDK event reached the EventIngestionUrl"
            time.sleep(0.2)
        assert a.state["errors"] == [] and b.state["errors"] == [], (a.state["errors"], b.state["errors"])
        beacons = metric(server, "vc_client_event_beacons_total")
        a.command("stop")
        a.wait(lambda s: s.get("stopStatus") is not None, 15, "A stopped")
        # The page goes (pagehide): the SDK sends its last events with sendBeacon.
        a.command("unload")
        deadline = time.monotonic() + 10
        while metric(server, "vc_client_event_beacons_total") == beacons:
            assert time.monotonic() < deadline, f"A's sendBeacon as the page went did not arrive\n{a.describe()}"
            time.sleep(0.2)
        blocked = [
            line
            for needle in ("sendBeacon", "ERR_BLOCKED_BY_RESPONSE", "Cross-Origin-Resource-Policy", "CORS policy")
            for line in harness.chromium_console_lines(a, needle)
        ]
        assert blocked == [], blocked
