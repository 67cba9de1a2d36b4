"""A PSTN call streams too (issue 19): a pjsua2 PBX calls out through a voice connector with
streaming on to a carrier (tests/pstn's lab: callee.py on 127.0.0.2 answering with a tone);
the consumer gets the caller's 440 Hz on the caller track and the carrier's 1 kHz on the
callee track."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from vctest.server import CALLER

from test_streaming import streaming_on

_spec = importlib.util.spec_from_file_location(
    "pstn_fixtures", Path(__file__).resolve().parent.parent / "pstn" / "conftest.py")
pstn = importlib.util.module_from_spec(_spec)
sys.modules["pstn_fixtures"] = pstn
_spec.loader.exec_module(pstn)


def test_pstn_call_streams_caller_and_callee(st_tones, st_tools, tmp_path):
    lab = pstn.PstnLab(tmp_path, st_tones)
    try:
        with st_tools.Sink() as sink, st_tools.Events() as events:
            c1, vc_id, host = lab.single_carrier(False, play=st_tones[1000])
            streaming_on(lab.server, vc_id, "--url", sink.url, "--notify-url", events.url)
            pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), play=st_tones[440], duration=4.0).result()
            carrier = c1.stop()
            stream = sink.wait_stop()
            events.wait_for("ENDED")
    finally:
        lab.close()
    assert pbx["confirmed"] and carrier["confirmed"], (pbx, carrier)
    start = stream.start
    assert [t["name"] for t in start["tracks"]] == ["caller", "callee"], start
    assert (start["fromNumber"], start["toNumber"]) == (CALLER, pstn.PSTN_NUMBER), start
    assert start["voiceConnectorId"] == vc_id and start["direction"] == "Outbound", start
    assert start["sampleRate"] == 8000, start  # PCMU
    rate = start["sampleRate"]
    caller, callee = stream.tracks[0][rate:], stream.tracks[1][rate:]
    lv = {hz: (st_tools.level_db(caller, rate, hz), st_tools.level_db(callee, rate, hz)) for hz in (440, 1000)}
    assert lv[440][0] > -30 and lv[440][0] > lv[1000][0] + 20, f"caller track: {lv}"
    assert lv[1000][1] > -30 and lv[1000][1] > lv[440][1] + 20, f"callee track: {lv}"
    assert stream.stop["framesDropped"] == 0, stream.stop
    assert events.statuses() == ["STARTED", "ENDED"], events.events
