"""DTMF across the B2BUA (issue 12, section 5): RFC 4733 telephone-events from either side
reach the other with that leg's own payload type (pjsua2 offers telephone-event on 120, the
server offers the carrier 101, so the carrier's events come in on 101 and go to the PBX on
120), in relay mode (one codec on both legs: packets relayed
without decoding) and in mixer mode (G.722 to PCMU: events generated for the other leg);
a digit the PBX sends as SIP INFO (application/dtmf-relay) reaches the carrier as RFC 4733;
INFOs the server does not take get 415 with Accept or 400 with a Warning (RFC 6086), and the
call goes on. A re-INVITE that gives both legs one codec moves the bridge from mixer to relay
mid-call.

The PBX is pjsua2 (`tests/pjsua2/caller.py --dtmf`), the carrier pjsua2 (`callee.py
--dtmf`); both report the digits pjsua2 heard (`onDtmfDigit`) and how they came.
"""

from __future__ import annotations

import re

SUITE = "AES_CM_128_HMAC_SHA1_80"
TONE_MIN_DB = -30.0
TONE_PRESENT = 0.8
#: Seconds of each recording with no digit in it (digits go at 1 to 2.6 s).
QUIET = (3.2, 5.0)


def event_pt(sdp: str) -> int:
    """The payload type of telephone-event/8000 in an SDP (RFC 4733 §7.1.1)."""
    m = re.search(r"^a=rtpmap:(\d+) telephone-event/8000", sdp, re.M | re.I)
    assert m, f"no telephone-event/8000 in\n{sdp}"
    return int(m.group(1))


def heard(run: dict) -> list[tuple[str, str]]:
    return [(d["digit"], d["method"]) for d in run["dtmf"]]


def sent_total(server, mode: str) -> float:
    return server.metrics().get(f'vc_rtp_sent_total{{mode="{mode}"}}', 0.0)


def assert_tone(tools, wav, hz: int, who: str) -> None:
    """`who` hears `hz` in the stretch of the call without digits."""
    levels = tools.tone_levels(wav, window=QUIET)
    assert levels[hz] > TONE_MIN_DB, f"{who} does not hear {hz} Hz: {levels}"
    assert levels["present"][hz] > TONE_PRESENT, f"{who} hears {hz} Hz only in part: {levels}"


def call_with_digits(lab, tmp_path, pbx_codec: str, pbx_extra: tuple[str, ...] = ()):
    """A PBX over TLS with SDES-SRTP offering `pbx_codec` calls the PCMU carrier (plain
    RTP). The PBX sends 1, 2, 3 as RFC 4733 at 1 s and 9 as SIP INFO at 2.5 s; the carrier
    sends #, 4 at 1.5 s after its ACK. Returns (pbx, carrier) results."""
    carrier_wav, pbx_wav = tmp_path / "carrier.wav", tmp_path / "pbx.wav"
    c1 = lab.callee("c1", "127.0.0.2", play=lab.tones[1000], record=carrier_wav, extra=("--dtmf", "1.5:#4"))
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    lab.start_server()
    _, host = lab.connector(require_encryption=True)
    pbx = lab.pbx(
        host, "tls", suites=(SUITE,), codecs=(pbx_codec,), play=lab.tones[440], record=pbx_wav, duration=6.0,
        extra=("--dtmf", "1.0:123", "--dtmf", "2.5:9:info", *pbx_extra),
    ).result()
    carrier = c1.stop()
    assert pbx["error"] == "" and carrier["error"] == "", (pbx, carrier)
    assert pbx["confirmed"] and carrier["confirmed"], (pbx["status"], carrier["ended"], pbx["log_file"])
    assert [s["method"] for s in pbx["dtmf_sent"]] == ["rfc4733", "info"], pbx["dtmf_sent"]
    assert len(carrier["dtmf_sent"]) == 1, carrier["dtmf_sent"]
    # Each leg has its own telephone-event payload types: the PBX's are 120 both ways; the
    # carrier sends on the server's 101 and (pjsua2 answering with its own number, RFC 3264
    # §6.1 allows it) takes 120. The carrier's 101 reaches the PBX as 120.
    pbx_pt = event_pt(pbx["answer_sdp"])
    assert pbx_pt == event_pt(pbx["offer_sdp"]), (pbx["offer_sdp"], pbx["answer_sdp"])
    assert event_pt(carrier["offer_sdp"]) != pbx_pt, (carrier["offer_sdp"], pbx_pt)
    # The digits, in order, all as RFC 4733 (the INFO one converted by the server).
    assert heard(carrier) == [("1", "rfc4733"), ("2", "rfc4733"), ("3", "rfc4733"), ("9", "rfc4733")], (
        carrier["dtmf"], lab.server.log()[-3000:])
    assert heard(pbx) == [("#", "rfc4733"), ("4", "rfc4733")], pbx["dtmf"]
    return pbx, carrier, pbx_wav, carrier_wav


def test_dtmf_relayed_same_codec(pstn_lab, pstn_tools, tmp_path):
    """PCMU on both legs (SRTP to the PBX, plain RTP to the carrier): audio and events are
    relayed without decoding, re-protected for the PBX, and the tones pass both ways."""
    lab, tools = pstn_lab, pstn_tools
    # Two INFOs the server does not take: a body it does not read, a digit it cannot.
    bad = ("--info", "3.0:application/x-vendor-keys:5", "--info", "3.3:application/dtmf-relay:Signal=x")
    pbx, carrier, pbx_wav, carrier_wav = call_with_digits(lab, tmp_path, "PCMU/8000", bad)
    statuses = [int(r.split(" ", 2)[1]) for r in pbx["info_responses"]]
    assert statuses == [200, 415, 400], pbx["info_responses"]
    unsupported, malformed = pbx["info_responses"][1:]
    assert "application/dtmf-relay" in tools.header(unsupported, "Accept"), unsupported
    assert "x-vendor-keys" in tools.header(unsupported, "Warning"), unsupported
    assert "Signal 'x'" in tools.header(malformed, "Warning"), malformed
    assert pbx["codec"] == "PCMU/8000" and carrier["codec"] == "PCMU/8000", (pbx["codec"], carrier["codec"])
    assert f"SRTP status: Active Crypto-suite: {SUITE}" in pbx["dump"], pbx["dump"]
    assert_tone(tools, pbx_wav, 1000, "the PBX")
    assert_tone(tools, carrier_wav, 440, "the carrier")
    lab.server.wait_media_idle()
    relayed, mixed, dtmf = (sent_total(lab.server, m) for m in ("relayed", "mixed", "dtmf"))
    # About 6 s both ways at 50 packets/s; before the answer the PBX's leg was alone.
    assert relayed > 400, (relayed, mixed)
    assert mixed < relayed / 5, (relayed, mixed)
    assert dtmf >= 6 * 3, f"event packets sent: {dtmf}"


def test_dtmf_transcoded(pstn_lab, pstn_tools, tmp_path):
    """G.722 to the PBX, PCMU to the carrier: the mixer transcodes and the server generates
    each leg's events (start, updates, three ends) from the other's."""
    lab, tools = pstn_lab, pstn_tools
    pbx, carrier, pbx_wav, carrier_wav = call_with_digits(lab, tmp_path, "G722/16000")
    assert pbx["codec"] == "G722/16000" and carrier["codec"] == "PCMU/8000", (pbx["codec"], carrier["codec"])
    assert_tone(tools, pbx_wav, 1000, "the PBX")
    assert_tone(tools, carrier_wav, 440, "the carrier")
    lab.server.wait_media_idle()
    assert sent_total(lab.server, "relayed") == 0
    assert sent_total(lab.server, "mixed") > 400
    assert sent_total(lab.server, "dtmf") >= 6 * 3


def test_codec_change_moves_the_bridge_from_mixer_to_relay(pstn_lab, pstn_tools, tmp_path):
    """The PBX starts in G.722 (transcoded to the PCMU carrier), then re-INVITEs offering
    PCMU only: the bridge switches to relay mid-call, the tones go on, and a digit after the
    change reaches the carrier."""
    lab, tools = pstn_lab, pstn_tools
    carrier_wav, pbx_wav = tmp_path / "carrier.wav", tmp_path / "pbx.wav"
    c1 = lab.callee("c1", "127.0.0.2", play=lab.tones[1000], record=carrier_wav)
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    lab.start_server()
    _, host = lab.connector(require_encryption=False)
    pbx = lab.pbx(
        host, "udp", codecs=("G722/16000", "PCMU/8000"), play=lab.tones[440], record=pbx_wav, duration=7.0,
        extra=("--action", "2.0:codec=PCMU/", "--dtmf", "4.0:7"),
    ).result()
    carrier = c1.stop()
    assert pbx["confirmed"] and carrier["confirmed"], (pbx["status"], carrier["ended"], pbx["log_file"])
    # Answered G.722 (payload type 9) first, PCMU (0) in the re-INVITE's answer.
    first, last = pbx["answers"][0], pbx["answers"][-1]
    assert re.search(r"^m=audio \d+ RTP/AVP 9[ \r]", first, re.M), first
    assert re.search(r"^m=audio \d+ RTP/AVP 0[ \r]", last, re.M), last
    assert pbx["codec"] == "PCMU/8000", f"the re-INVITE did not move the PBX to PCMU: {pbx['codec']}"
    assert heard(carrier) == [("7", "rfc4733")], carrier["dtmf"]
    late = (4.8, 6.5)  # after the change and the digit
    for wav, hz, who in ((pbx_wav, 1000, "the PBX"), (carrier_wav, 440, "the carrier")):
        levels = tools.tone_levels(wav, window=late)
        assert levels[hz] > TONE_MIN_DB and levels["present"][hz] > TONE_PRESENT, (who, levels)
    lab.server.wait_media_idle()
    relayed, mixed = sent_total(lab.server, "relayed"), sent_total(lab.server, "mixed")
    # About 2 s mixed (both ways) before the change, about 5 s relayed after it.
    assert relayed > 250 and mixed > 100, (relayed, mixed)
