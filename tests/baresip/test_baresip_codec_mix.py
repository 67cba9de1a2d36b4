"""GitHub issue 5 must-show: baresip over TLS with SDES-SRTP, once with Opus and once with
G.722, joins the same meeting as a third caller (baresip, PCMU), and the three-way mix is
right: every caller hears the two others and not itself (N-1 mixing).

Each caller is baresip 1.0.0 with exactly one codec module loaded and only that codec in its
account's `audio_codecs`, so the offer holds nothing else; its microphone is the aufile
source playing a sox-made sine (440 / 1000 / 1700 Hz), what it hears is written decoded by the
sndfile filter (`dump-*-dec.wav`) and analysed with Goertzel per 100 ms block.
"""

from __future__ import annotations

import re
import time

CALL_SECONDS = 6

#: (name, codec, tone Hz). The tones are far apart and none is a low-order intermodulation
#: product of the two others, so G.711/G.722/Opus distortion of a two-tone mix cannot fake one.
CALLERS = [("A", "opus", 440), ("B", "g722", 1000), ("C", "pcmu", 1700)]

#: Level at or above which a tone counts as present in a 100 ms block (dBFS; the callers
#: send at -8 dBFS, the mixer may attenuate).
PRESENT_DB = -40.0
#: How far the caller's own tone must stay below the weaker of the two others.
OWN_MARGIN_DB = 15.0
#: 100 ms blocks skipped either side of a change in who is audible.
SETTLE = 3


def _answer_sdp(log: str) -> str:
    """The SDP of the 200 OK to baresip's INVITE in its SIP trace."""
    parts = log.split("SIP/2.0 200 OK", 1)
    assert len(parts) == 2, log[-6000:]
    return parts[1][:3000]


def test_opus_g722_pcmu_over_tls_srtp_three_way_mix(bs_server, bs_tools, tmp_path):
    vc_id, host = bs_server.create_connector(require_encryption=True)
    meeting_id, attendees = bs_server.create_meeting_with(len(CALLERS))

    phones = {}
    for (name, codec, tone), (_attendee, _token) in zip(CALLERS, attendees):
        phones[name] = bs_tools.Baresip(tmp_path / name, bs_server, codec, tone, CALL_SECONDS)
    try:
        for (name, _codec, _tone), (_attendee, token) in zip(CALLERS, attendees):
            phones[name].dial(f"sip:+17035550122@{host};transport=tls;X-chime-join-token={token}")
        # All three established, then each ends its call when its tone file runs out.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(p.established() or p.ended() for p in phones.values()):
            time.sleep(0.1)
        deadline = time.monotonic() + CALL_SECONDS + 10
        while time.monotonic() < deadline and not all(p.ended() for p in phones.values()):
            time.sleep(0.1)
        time.sleep(0.5)  # RTP statistics and BYE transactions
    finally:
        rcs = {name: p.hang_up() for name, p in phones.items()}

    # The server stores each leg's call record once its BYE transaction is done: wait for all three.
    records = bs_server.wait_call_records(vc_id, len(CALLERS), meeting_id=meeting_id)
    server_log = bs_server.log()
    logs = {name: p.log() for name, p in phones.items()}
    for (name, codec, _tone), (attendee, _token) in zip(CALLERS, attendees):
        log = logs[name]
        assert "Call established" in log, f"{name}:\n{log[-6000:]}"
        assert rcs[name] == 0, f"{name}:\n{log[-6000:]}"
        # Signalling over TLS to the server's TLS port; mandatory SDES-SRTP (RFC 4568).
        assert re.search(rf"TLS 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:{bs_server.tls_port}\s+INVITE ", log), log[-6000:]
        answer = _answer_sdp(log)
        assert re.search(r"m=audio \d+ RTP/SAVP ", answer), answer
        assert re.search(r"a=crypto:\d+ AES_CM_128_HMAC_SHA1_(80|32) inline:", answer), answer
        assert "SRTP is Enabled" in log, log[-6000:]
        # The server joined this attendee into this meeting.
        assert re.search(
            r"joined meeting [^\n]*meeting=" + re.escape(meeting_id) + r"[^\n]*attendee=" + re.escape(attendee),
            server_log,
        ), server_log[-4000:]
        # baresip decrypted everything the server sent (RTP statistics: errors rx column).
        errors = re.search(r"errors:\s+(\d+)\s+(\d+)", log)
        assert errors and int(errors.group(2)) == 0, (name, errors and errors.group(0))

    # The server's view of each leg: ended by baresip's BYE, media in both directions, SRTP and
    # SRTCP authenticated. baresip 1.0.0 sends up to two RTCP packets unprotected (an APP
    # "PINGPONG" as SRTP starts, its final RTCP BYE after SRTP is torn down), which the
    # server rightly drops as SRTP failures (see tests/sip/test_sip_baresip.py).
    assert sorted(r["AttendeeId"] for r in records) == sorted(a for a, _ in attendees), records
    for rec in records:
        media = rec["Media"]
        assert rec["Reason"] == "RemoteBye", rec
        assert media["PacketsReceived"] >= 100 and media["PacketsSent"] >= 100, rec
        assert media["SrtpFailures"] <= 2, rec

    # Each offer held exactly its one codec (and baresip's telephone-event, RFC 4733).
    for name, pt, rtpmap in (("A", "96", "opus/48000/2"), ("B", "9", "G722/8000"), ("C", "0", "PCMU/8000")):
        offer = re.search(r"m=audio \d+ RTP/SAVP ([0-9 ]+)", logs[name])  # the INVITE is traced first
        assert offer and offer.group(1).split() == [pt, "101"], (name, offer and offer.group(0))
        assert f"a=rtpmap:{pt} {rtpmap}" in logs[name], name
        answer_m = re.search(r"m=audio \d+ RTP/SAVP ([0-9 ]+)", _answer_sdp(logs[name]))
        assert answer_m and answer_m.group(1).split()[0] == pt, (name, answer_m and answer_m.group(0))

    # The negotiated codec, from the server's SDP answer (RFC 3264 §6: the answer's m= line
    # lists the codec the server will send) and baresip's own encoder choice.
    opus = _answer_sdp(logs["A"])
    assert re.search(r"a=rtpmap:\d+ opus/48000/2", opus, re.I), opus
    assert not re.search(r"a=rtpmap:\d+ (G722|PCMU|PCMA)/", opus), opus
    g722 = _answer_sdp(logs["B"])
    assert re.search(r"m=audio \d+ RTP/SAVP 9\b", g722) and "G722/8000" in g722, g722
    assert not re.search(r"a=rtpmap:\d+ (opus|PCMU|PCMA)/", g722, re.I), g722
    pcmu = _answer_sdp(logs["C"])
    assert re.search(r"m=audio \d+ RTP/SAVP 0\b", pcmu), pcmu
    for name, enc in (("A", r"opus"), ("B", r"G722"), ("C", r"PCMU")):
        assert re.search(rf"Set audio encoder: {enc} ", logs[name]), logs[name][-6000:]
        assert re.search(rf"Set audio decoder: {enc} ", logs[name]), logs[name][-6000:]

    # The mix: each hears both others and not itself.
    tones = [tone for _n, _c, tone in CALLERS]
    report = {}
    for name, codec, own in CALLERS:
        dec = phones[name].decoded_wav()
        assert dec is not None, sorted(x.name for x in phones[name].dir.iterdir())
        samples, rate = bs_tools.read_wav(dec)
        levels = bs_tools.tone_levels(samples, rate, tones)
        others = [t for t in tones if t != own]
        # Steady blocks: both other tones audible for SETTLE blocks either side. Where a
        # tone starts or stops its energy spreads over the band, and G.722's ADPCM step size
        # (and Opus's state) needs a few frames to adapt; neither is the mixer's doing.
        full = [all(levels[t][i] >= PRESENT_DB for t in others) for i in range(len(levels[own]))]
        steady = [i for i in range(SETTLE, len(full) - SETTLE) if all(full[i - SETTLE : i + SETTLE + 1])]
        report[name] = {
            "codec": codec,
            "blocks": len(full),
            "steady": len(steady),
            "own_max_db": round(max((levels[own][i] for i in steady), default=0.0), 1),
            "others_min_db": round(min((levels[t][i] for t in others for i in steady), default=0.0), 1),
        }
        assert len(steady) >= 30, (name, report[name])  # at least 3 s of the full three-way mix
        for i in steady:
            weaker = min(levels[t][i] for t in others)
            assert levels[own][i] <= weaker - OWN_MARGIN_DB, (name, i, {t: round(levels[t][i], 1) for t in tones})
            assert levels[own][i] < PRESENT_DB, (name, i, {t: round(levels[t][i], 1) for t in tones})
    print(report)
