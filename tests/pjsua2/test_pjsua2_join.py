"""Meeting joins with pjsua2 (pjsip 2.15, PyPI pjsua2-python) against the real server.

Every caller is its own process (caller.py) that sends the INVITE through 127.0.0.1 as
outbound proxy, plays a sine WAV into the call and records what it hears. The server answers
with the strongest SDES suite both sides support (RFC 4568 §6.1: the answerer picks one of
the offered crypto attributes) and mixes the meeting N-1: each caller hears every other
caller but never itself.
"""

from __future__ import annotations

import re

import pytest

#: The SDES suites pjsip 2.15 can offer (RFC 4568 §6.2, RFC 6188 §7), one call each.
PJSIP_SUITES = [
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
    "AES_256_CM_HMAC_SHA1_80",
    "AES_256_CM_HMAC_SHA1_32",
]

#: Seconds each caller stays in the call after the 200 OK.
CALL_SECONDS = 4.0

#: The other caller's tone must be at least this loud (dB relative to a full-scale sine)
#: in a recording; the tones are played at -6 dB and G.722 / the mixer may lower them.
OTHER_TONE_MIN_DB = -30.0
#: A caller's own tone must be this far below the other's (N-1 mixing).
OWN_TONE_MARGIN_DB = 20.0


def media_line(sdp: str) -> list[str]:
    """The fields of the audio m= line (RFC 4566 §5.14)."""
    for line in sdp.splitlines():
        if line.startswith("m=audio "):
            return line[2:].split()
    return []


def assert_joined(res: dict) -> None:
    assert res["error"] == "", res
    assert res["confirmed"], f"call not confirmed: {res['status']} {res['reason']} (log {res['log_file']})"
    assert res["answer_sdp"], "no SDP answer in the 200 OK"


def assert_media_flowed(res: dict, stats: dict) -> None:
    """RTP flowed both ways: pjsua2 received (and, for SRTP, authenticated and decrypted)
    packets, and the server counted the caller's packets without SRTP failures."""
    assert res["rx_packets"] > 0, res["dump"]
    assert res["tx_packets"] > 0, res["dump"]
    assert stats["packets_in"] > 0, stats
    assert stats["packets_out"] > 0, stats
    assert stats["srtp_failures"] == 0, stats
    assert stats["invalid"] == 0, stats


def assert_hears_only_other(levels: dict, own_hz: int, other_hz: int, who: str) -> None:
    assert levels["seconds"] > 1.0, f"{who}: recording too short: {levels}"
    assert levels[other_hz] > OTHER_TONE_MIN_DB, f"{who} does not hear the other caller's {other_hz} Hz: {levels}"
    assert levels[own_hz] < levels[other_hz] - OWN_TONE_MARGIN_DB, (
        f"{who} hears its own {own_hz} Hz (N-1 mixing broken): {levels}"
    )


def call_ended_for(server, attendee_id: str, meeting_id: str) -> dict:
    """The `call ended` statistics of one attendee's leg: the server logs the meeting, so
    the leg is found by the port of that attendee's `joined meeting` line."""
    joined = server.wait_for_log(
        r"joined meeting [^\n]*meeting=" + re.escape(meeting_id) + r" attendee=" + re.escape(attendee_id)
        + r" port=(\d+)"
    )
    call = re.search(r"call=(CallKey\(\d+\))", joined.group(0))
    assert call, joined.group(0)
    m = server.wait_for_log(r"call ended call=" + re.escape(call.group(1)) + r"[^\n]*")
    stats: dict = {k: int(v) for k, v in re.findall(r"(\w+): (\d+)", m.group(0))}
    reason = re.search(r"reason=(\S+)", m.group(0))
    stats["_reason"] = reason.group(1) if reason else ""
    return stats


@pytest.mark.parametrize("suite", PJSIP_SUITES)
def test_tls_sdes_srtp_suite(pj_server, pj_callers, pj_tones, pj_tools, tmp_path, suite):
    """Over SIP/TLS each caller offers only `suite`: the answer carries exactly that suite,
    pjsip's SRTP session runs with it, and each caller hears the other's tone."""
    join = pj_server.provision(require_encryption=True)
    other_id, other_token = pj_server.add_attendee(join.meeting_id)
    rec_a, rec_b = tmp_path / "a.wav", tmp_path / "b.wav"
    a = pj_callers.start(join.host, join.token, "tls", suites=[suite], play=pj_tones[440], record=rec_a,
                         duration=CALL_SECONDS, name="a")
    b = pj_callers.start(join.host, other_token, "tls", suites=[suite], play=pj_tones[1000], record=rec_b,
                         duration=CALL_SECONDS, name="b")
    res_a, res_b = a.result(), b.result()

    for who, res, attendee in (("a", res_a, join.attendee_id), ("b", res_b, other_id)):
        assert_joined(res)
        m = media_line(res["answer_sdp"])
        assert m[2] == "RTP/SAVP", f"{who}: {res['answer_sdp']}"
        # One crypto attribute, the offered one, with the offer's tag (RFC 4568 §7.1.2).
        assert len(res["crypto"]) == 1, res["answer_sdp"]
        tag, name, params = res["crypto"][0].split(" ", 2)
        assert (tag, name) == ("1", suite), res["crypto"]
        assert params.startswith("inline:"), res["crypto"]
        assert f"SRTP status: Active Crypto-suite: {suite}" in res["dump"], res["dump"]
        # No opus in this pjsip build: G.722 is the best codec both sides have.
        assert res["codec"] == "G722/16000", res
        assert_media_flowed(res, call_ended_for(pj_server, attendee, join.meeting_id))

    assert_hears_only_other(pj_tools.tone_levels(rec_a), 440, 1000, "a")
    assert_hears_only_other(pj_tools.tone_levels(rec_b), 1000, 440, "b")
