"""Retained call audio (issue 19): a connector whose streaming configuration has
DataRetentionInHours > 0 also writes each streamed call's audio, one WAV per track, to
`<data-dir>/streams/<VoiceConnectorId>/<TransactionId>/`, and deletes it once the period is
over. The server runs with `--stream-retention-sweep-secs 1`; the period is the real one
(1 h), compared with the call's `retention.json` modification time, which the test moves
back (30 min: kept; 2 h: deleted).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from test_streaming import CALL_SECONDS, joined, streaming_on
from vctest.sip_suite import wait_for


def backdate(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_retained_audio_is_written_per_track_and_deleted_after_the_period(
        st_server, st_callers, st_tones, st_tools):
    join = st_server.provision(require_encryption=False)
    _, plain_host = st_server.create_connector(require_encryption=False)
    _, other_token = st_server.add_attendee(join.meeting_id)
    with st_tools.Sink() as sink:
        streaming_on(st_server, join.voice_connector_id, "--url", sink.url, retention_hours=1)
        a = st_callers.start(join.host, join.token, "udp", play=st_tones[440], duration=CALL_SECONDS, name="a")
        b = st_callers.start(plain_host, other_token, "udp", play=st_tones[1000], duration=CALL_SECONDS,
                             name="b")
        joined(a.result())
        joined(b.result())
        stream = sink.wait_stop()
    tx = stream.start["transactionId"]
    call_dir = st_server.data_dir / "streams" / join.voice_connector_id / tx
    manifest = call_dir / "retention.json"
    wait_for(manifest.exists, 10, f"{manifest}")
    assert json.loads(manifest.read_text())["retentionHours"] == 1
    assert sorted(p.name for p in call_dir.iterdir()) == ["caller.wav", "meeting.wav", "retention.json"]
    # Each track with its tone, and as long as what the consumer got.
    caller, rate = st_tools.read_wav(call_dir / "caller.wav")
    meeting, meeting_rate = st_tools.read_wav(call_dir / "meeting.wav")
    assert rate == meeting_rate == stream.start["sampleRate"]
    assert len(caller) == len(meeting) >= len(stream.tracks[0]), (len(caller), len(stream.tracks[0]))
    caller, meeting = caller[rate // 2:], meeting[rate // 2:]
    lv = {hz: (st_tools.level_db(caller, rate, hz), st_tools.level_db(meeting, rate, hz)) for hz in (440, 1000)}
    assert lv[440][0] > -30 and lv[440][0] > lv[1000][0] + 20, f"caller.wav: {lv}"
    assert lv[1000][1] > -30 and lv[1000][1] > lv[440][1] + 20, f"meeting.wav: {lv}"
    # Half the period gone: kept through several sweeps.
    backdate(manifest, 30 * 60)
    mark = len(st_server.log())
    time.sleep(3.5)
    assert manifest.exists(), "retained audio deleted before its period"
    # The period over: the next sweep deletes the call's folder.
    backdate(manifest, 2 * 3600)
    wait_for(lambda: not call_dir.exists(), 10, f"{call_dir} to be deleted")
    st_server.wait_for_log("retained call audio past its period deleted", start=mark)
    st_server.client("chime-sdk-voice").delete_voice_connector_streaming_configuration(
        VoiceConnectorId=join.voice_connector_id)


def test_no_audio_is_retained_without_a_period(st_server, st_callers, st_tones, st_tools):
    join = st_server.provision(require_encryption=False)
    with st_tools.Sink() as sink:
        streaming_on(st_server, join.voice_connector_id, "--url", sink.url)
        joined(st_callers.start(join.host, join.token, "udp", play=st_tones[440], duration=2.0, name="a").result())
        stream = sink.wait_stop()
    assert stream.start["transactionId"]
    assert not (st_server.data_dir / "streams" / join.voice_connector_id).exists()
