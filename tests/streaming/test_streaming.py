"""Live call streams (issue 19) against the real server: pjsua2 phones join a meeting
through a voice connector whose streaming configuration is on and whose target (`admin
streaming set`) is a Python `websockets` server in the test.

- The consumer gets the start message with the call's fields, both tracks with the right
  tone (440 Hz from the caller, 1 kHz from the other phone in the meeting's mix), and the
  stop message; the notify endpoint gets STARTED and ENDED.
- Bidirectional: a 700 Hz tone the consumer sends is heard by the phone, and `clear`
  silences it.
- A consumer that refuses connections gives FAILED, and the call goes on unharmed.
"""

from __future__ import annotations

import asyncio
import subprocess
from array import array

from vctest.server import CALLER, MEETING_NUMBER, find_binary

CALL_SECONDS = 4.0


def streaming_on(server, vc_id: str, *args: str, retention_hours: int = 0) -> None:
    """Turns the connector's streaming configuration on and points it at a target."""
    server.client("chime-sdk-voice").put_voice_connector_streaming_configuration(
        VoiceConnectorId=vc_id,
        StreamingConfiguration={"DataRetentionInHours": retention_hours, "Disabled": False,
                                "StreamingNotificationTargets": [{"NotificationTarget": "EventBridge"}]})
    subprocess.run([str(find_binary()), "admin", "streaming", "set", "--data-dir", str(server.data_dir),
                    vc_id, *args], check=True, capture_output=True, timeout=30)


def joined(res: dict) -> None:
    assert res["error"] == "", res
    assert res["confirmed"], f"call not confirmed: {res['status']} {res['reason']}"


def test_both_tracks_reach_the_consumer_with_start_stop_and_events(
        st_server, st_callers, st_tones, st_tools, tmp_path):
    join = st_server.provision(require_encryption=False)
    # The other phone comes through a connector without streaming: one stream only.
    _, plain_host = st_server.create_connector(require_encryption=False)
    _, other_token = st_server.add_attendee(join.meeting_id)
    with st_tools.Sink() as sink, st_tools.Events() as events:
        streaming_on(st_server, join.voice_connector_id, "--url", sink.url, "--notify-url", events.url)
        a = st_callers.start(join.host, join.token, "udp", play=st_tones[440], duration=CALL_SECONDS, name="a")
        b = st_callers.start(plain_host, other_token, "udp", play=st_tones[1000], duration=CALL_SECONDS,
                             name="b")
        res_a, res_b = a.result(), b.result()
        joined(res_a)
        joined(res_b)
        stream = sink.wait_stop()
        ended = events.wait_for("ENDED")
    assert len(sink.streams) == 1, [s.start for s in sink.streams]
    start = stream.start
    assert start is not None, stream.other
    assert start["event"] == "start"
    assert start["voiceConnectorId"] == join.voice_connector_id
    assert start["direction"] == "Outbound"
    assert (start["fromNumber"], start["toNumber"]) == (CALLER, MEETING_NUMBER)
    assert start["mediaType"] == "audio/L16" and start["frameMs"] == 20
    assert start["sampleRate"] == 16000, start  # G.722's audio
    assert [t["name"] for t in start["tracks"]] == ["caller", "meeting"]
    assert start["callId"] and start["transactionId"] and start["startTime"]
    headers = {h["name"].lower(): h["value"] for h in start["sipHeaders"]}
    assert headers["call-id"] == start["callId"], headers
    assert join.token not in str(start["sipHeaders"]), "the join token reached the consumer"
    # Both tracks, frame for frame, with the right tone on each.
    rate = start["sampleRate"]
    assert stream.frames[0] == stream.frames[1] > 100, stream.frames
    caller, meeting = stream.tracks[0][rate // 2:], stream.tracks[1][rate // 2:]
    lv = {hz: (st_tools.level_db(caller, rate, hz), st_tools.level_db(meeting, rate, hz)) for hz in (440, 1000)}
    assert lv[440][0] > -30 and lv[440][0] > lv[1000][0] + 20, f"caller track: {lv}"
    assert lv[1000][1] > -30 and lv[1000][1] > lv[440][1] + 20, f"meeting track (N-1): {lv}"
    stop = stream.stop
    assert stop["callId"] == start["callId"]
    assert stop["framesSent"] == stream.frames[0] + stream.frames[1], (stop, stream.frames)
    assert stop["framesDropped"] == 0, stop
    # The status events, EventBridge-shaped.
    started = next(e for e in events.events if e["detail"]["streamingStatus"] == "STARTED")
    for e in (started, ended):
        assert e["detail-type"] == "Chime VoiceConnector Streaming Status"
        assert e["source"] == "aws.chime"
        assert e["detail"]["callId"] == start["callId"]
        assert e["detail"]["voiceConnectorId"] == join.voice_connector_id
    assert events.statuses() == ["STARTED", "ENDED"], events.events
    st_server.client("chime-sdk-voice").delete_voice_connector_streaming_configuration(
        VoiceConnectorId=join.voice_connector_id)


def test_bidirectional_consumer_is_heard_and_clear_silences_it(
        st_server, st_callers, st_tones, st_tools, tmp_path):
    join = st_server.provision(require_encryption=False)
    clear_after = 2.0

    async def talk_back(ws, start):
        rate = start["sampleRate"]
        tone = st_tools.sine(700, rate, 10.0)
        step = rate // 50
        for i in range(0, len(tone), step):
            frame = array("h", tone[i:i + step])
            frame.byteswap()
            await ws.send(b"\x00" + frame.tobytes())
        await asyncio.sleep(clear_after)
        await ws.send('{"event":"clear"}')

    rec = tmp_path / "a.wav"
    with st_tools.Sink(talk_back) as sink:
        streaming_on(st_server, join.voice_connector_id, "--url", sink.url, "--bidirectional")
        res = st_callers.start(join.host, join.token, "udp", play=st_tones[440], record=rec,
                               duration=CALL_SECONDS + 1, name="a").result()
        joined(res)
        stream = sink.wait_stop()
    assert stream.start["bidirectional"] is True
    assert stream.stop["framesPlayed"] > 0, stream.stop
    samples, rate = st_tools.read_wav(rec)
    block = rate // 10
    blocks = [samples[i:i + block] for i in range(0, len(samples) - block + 1, block)]
    heard = [st_tools.level_db(b, rate, 700) > -30 for b in blocks]
    assert sum(heard) >= 5, f"the consumer's 700 Hz is not heard: {heard}"
    first = heard.index(True)
    last = len(heard) - 1 - heard[::-1].index(True)
    # Cleared 2 s after the start message: the tone stops well before the call ends
    # (10 s were queued).
    assert (last - first) / 10 < clear_after + 1.0, f"clear did not stop the tone: {heard}"
    assert last < len(heard) - 10, f"the tone plays to the end despite clear: {heard}"


def test_refusing_consumer_fails_the_stream_not_the_call(st_server, st_callers, st_tones, st_tools, tmp_path):
    join = st_server.provision(require_encryption=False)
    _, other_token = st_server.add_attendee(join.meeting_id)
    rec = tmp_path / "a.wav"
    with st_tools.Events() as events:
        dead = f"ws://127.0.0.1:{st_tools.refused_port()}/calls"
        streaming_on(st_server, join.voice_connector_id, "--url", dead, "--notify-url", events.url)
        a = st_callers.start(join.host, join.token, "udp", play=st_tones[440], record=rec,
                             duration=CALL_SECONDS, name="a")
        b = st_callers.start(join.host, other_token, "udp", play=st_tones[1000], duration=CALL_SECONDS,
                             name="b")
        failed = events.wait_for("FAILED")
        res_a, res_b = a.result(), b.result()
    joined(res_a)
    joined(res_b)
    assert "attempts" in failed["detail"]["failureReason"], failed
    assert failed["detail"]["voiceConnectorId"] == join.voice_connector_id
    # Both callers' streams failed (same connector); neither call was touched.
    assert set(events.statuses()) == {"FAILED"}, events.events
    assert res_a["rx_packets"] > 0 and res_a["tx_packets"] > 0, res_a
    levels = st_tools.tone_levels(rec, (440, 1000))
    assert levels[1000] > -30, f"the caller no longer hears the meeting: {levels}"
    assert st_server.proc.poll() is None


def test_a_cut_socket_is_connected_again(st_server, st_callers, st_tones, st_tools):
    """The consumer's first connection is cut (TCP reset, no close) a second into the
    call: the server connects again, sends a new start message for the same call and
    streams on to the stop; the events are STARTED, UPDATED, ENDED."""
    join = st_server.provision(require_encryption=False)
    cuts = []

    async def cut_first(ws, start):
        if cuts:
            return
        cuts.append(start["callId"])
        await asyncio.sleep(1.0)
        ws.transport.abort()

    with st_tools.Sink(cut_first) as sink, st_tools.Events() as events:
        streaming_on(st_server, join.voice_connector_id, "--url", sink.url, "--notify-url", events.url)
        res = st_callers.start(join.host, join.token, "udp", play=st_tones[440], duration=CALL_SECONDS,
                               name="a").result()
        joined(res)
        stream = sink.wait_stop()
        events.wait_for("ENDED")
    assert len(sink.streams) == 2, [(s.start, s.stop) for s in sink.streams]
    first, second = sink.streams
    assert second is stream and first.stop is None
    assert first.start["callId"] == second.start["callId"] == cuts[0]
    assert events.statuses() == ["STARTED", "UPDATED", "ENDED"], events.events
    rate = second.start["sampleRate"]
    assert st_tools.level_db(second.tracks[0], rate, 440) > -30
    assert second.stop["framesSent"] >= first.frames[0] + second.frames[0], (second.stop, first.frames)


def test_a_consumer_that_reads_nothing_loses_frames_not_the_call(
        st_server, st_callers, st_tones, st_tools, tmp_path):
    """The consumer reads nothing for 8 s of a 10 s call: the server drops frames and
    counts them (the stop message, /metrics), the stream survives, and the phones in the
    meeting hear each other throughout."""
    join = st_server.provision(require_encryption=False)
    _, plain_host = st_server.create_connector(require_encryption=False)
    _, other_token = st_server.add_attendee(join.meeting_id)
    dropped_before = st_server.metrics().get("vc_stream_frames_dropped_total", 0.0)
    rec = tmp_path / "b.wav"
    with st_tools.Sink(stall=8.0) as sink:
        streaming_on(st_server, join.voice_connector_id, "--url", sink.url)
        a = st_callers.start(join.host, join.token, "udp", play=st_tones[440], duration=10.0, name="a")
        b = st_callers.start(plain_host, other_token, "udp", play=st_tones[1000], record=rec,
                             duration=10.0, name="b")
        res_a, res_b = a.result(), b.result()
        joined(res_a)
        joined(res_b)
        stream = sink.wait_stop(timeout=30)
    assert stream.stop["framesDropped"] > 50, stream.stop
    assert stream.stop["framesSent"] == stream.frames[0] + stream.frames[1], (stream.stop, stream.frames)
    dropped = st_server.metrics().get("vc_stream_frames_dropped_total", 0.0) - dropped_before
    assert dropped == stream.stop["framesDropped"], dropped
    levels = st_tools.tone_levels(rec, (440, 1000))
    assert levels["present"][440] > 0.9, f"the caller's audio suffered from the stalled consumer: {levels}"
