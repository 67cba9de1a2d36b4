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


def assert_media_flowed(res: dict, rec: dict) -> None:
    """RTP flowed both ways: pjsua2 received (and, for SRTP, authenticated and decrypted)
    packets, and the server's call record (`MeetingServer.call_ended`) counted the caller's
    packets without SRTP failures or packets it could not take."""
    assert res["rx_packets"] > 0, res["dump"]
    assert res["tx_packets"] > 0, res["dump"]
    media = rec["Media"]
    assert media["PacketsReceived"] > 0, rec
    assert media["PacketsSent"] > 0, rec
    assert media["SrtpFailures"] == 0, rec
    assert media["InvalidPackets"] == 0, rec


def assert_hears_only_others(levels: dict, own_hz: int, others_hz: list[int], who: str) -> None:
    """Each other caller's tone is clearly audible in `who`'s recording; its own tone is at
    least OWN_TONE_MARGIN_DB below the quietest of them."""
    assert levels["seconds"] > 1.0, f"{who}: recording too short: {levels}"
    for hz in others_hz:
        assert levels[hz] > OTHER_TONE_MIN_DB, f"{who} does not hear the {hz} Hz of another caller: {levels}"
    quietest = min(levels[hz] for hz in others_hz)
    assert levels[own_hz] < quietest - OWN_TONE_MARGIN_DB, (
        f"{who} hears its own {own_hz} Hz (N-1 mixing broken): {levels}"
    )


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
        assert_media_flowed(res, pj_server.call_ended(join.meeting_id, attendee))

    assert_hears_only_others(pj_tools.tone_levels(rec_a), 440, [1000], "a")
    assert_hears_only_others(pj_tools.tone_levels(rec_b), 1000, [440], "b")


def test_tls_best_suite_of_the_offer(pj_server, pj_callers):
    """pjsip offering all four suites gets the strongest one both support,
    AES_256_CM_HMAC_SHA1_80, answered with the offer's tag for it (RFC 4568 §7.1.2)."""
    join = pj_server.provision(require_encryption=True)
    res = pj_callers.start(join.host, join.token, "tls", suites=PJSIP_SUITES, duration=1.0).result()
    assert_joined(res)
    offer_tags = {
        c.split()[1]: c.split()[0]
        for c in (l[len("a=crypto:"):] for l in res["offer_sdp"].splitlines() if l.startswith("a=crypto:"))
    }
    assert set(offer_tags) == set(PJSIP_SUITES), res["offer_sdp"]
    assert len(res["crypto"]) == 1, res["answer_sdp"]
    tag, name, _ = res["crypto"][0].split(" ", 2)
    assert name == "AES_256_CM_HMAC_SHA1_80", res["answer_sdp"]
    assert tag == offer_tags[name], (res["offer_sdp"], res["answer_sdp"])
    assert "SRTP status: Active Crypto-suite: AES_256_CM_HMAC_SHA1_80" in res["dump"], res["dump"]


@pytest.mark.parametrize(
    "codecs,expected",
    [
        pytest.param([], "G722/16000", id="default-offer-g722"),
        pytest.param(["PCMU/"], "PCMU/8000", id="pcmu"),
        pytest.param(["PCMA/"], "PCMA/8000", id="pcma"),
    ],
)
def test_udp_plain_rtp(pj_server, pj_callers, pj_tones, pj_tools, tmp_path, codecs, expected):
    """Over SIP/UDP to a connector with RequireEncryption False, plain RTP/AVP: the answer
    has no crypto, the codec is the best one the caller offers (opus > G722 > PCMU > PCMA;
    this pjsip has no opus) and the two callers hear each other."""
    join = pj_server.provision(require_encryption=False)
    other_id, other_token = pj_server.add_attendee(join.meeting_id)
    rec_a, rec_b = tmp_path / "a.wav", tmp_path / "b.wav"
    a = pj_callers.start(join.host, join.token, "udp", play=pj_tones[440], record=rec_a,
                         duration=CALL_SECONDS, codecs=codecs, name="a")
    b = pj_callers.start(join.host, other_token, "udp", play=pj_tones[1000], record=rec_b,
                         duration=CALL_SECONDS, codecs=codecs, name="b")
    res_a, res_b = a.result(), b.result()
    for who, res, attendee in (("a", res_a, join.attendee_id), ("b", res_b, other_id)):
        assert_joined(res)
        assert media_line(res["offer_sdp"])[2] == "RTP/AVP", res["offer_sdp"]
        assert media_line(res["answer_sdp"])[2] == "RTP/AVP", f"{who}: {res['answer_sdp']}"
        assert res["crypto"] == [], res["answer_sdp"]
        assert "SRTP status: Active" not in res["dump"], res["dump"]
        assert res["codec"] == expected, res
        assert_media_flowed(res, pj_server.call_ended(join.meeting_id, attendee))
    assert_hears_only_others(pj_tools.tone_levels(rec_a), 440, [1000], "a")
    assert_hears_only_others(pj_tools.tone_levels(rec_b), 1000, [440], "b")


def test_two_callers_srtp_and_rtp_hear_each_other_not_themselves(
    pj_server, pj_callers, pj_tones, pj_tools, tmp_path
):
    """One caller over TLS with SRTP (440 Hz), the other over UDP with plain RTP (1 kHz)
    through a second connector, in the same meeting: each recording holds the other's
    tone, and its own tone at least 20 dB lower."""
    join = pj_server.provision(require_encryption=True)
    _, plain_host = pj_server.create_connector(require_encryption=False)
    other_id, other_token = pj_server.add_attendee(join.meeting_id)
    rec_a, rec_b = tmp_path / "a.wav", tmp_path / "b.wav"
    a = pj_callers.start(join.host, join.token, "tls", suites=["AES_CM_128_HMAC_SHA1_80"], play=pj_tones[440],
                         record=rec_a, duration=CALL_SECONDS, name="a")
    b = pj_callers.start(plain_host, other_token, "udp", play=pj_tones[1000], record=rec_b,
                         duration=CALL_SECONDS, name="b")
    res_a, res_b = a.result(), b.result()
    assert_joined(res_a)
    assert_joined(res_b)
    assert media_line(res_a["answer_sdp"])[2] == "RTP/SAVP", res_a["answer_sdp"]
    assert media_line(res_b["answer_sdp"])[2] == "RTP/AVP", res_b["answer_sdp"]
    assert_media_flowed(res_a, pj_server.call_ended(join.meeting_id, join.attendee_id))
    assert_media_flowed(res_b, pj_server.call_ended(join.meeting_id, other_id))
    assert_hears_only_others(pj_tools.tone_levels(rec_a), 440, [1000], "a")
    assert_hears_only_others(pj_tools.tone_levels(rec_b), 1000, [440], "b")


def test_three_callers_each_hear_the_two_others(pj_server, pj_callers, pj_tones, pj_tools, tmp_path):
    """N-1 with three legs, three codecs and mixed protection (G.722 + SRTP over TLS,
    PCMU + RTP over UDP, PCMA + SRTP over TLS): each caller hears both other tones and
    not its own."""
    join = pj_server.provision(require_encryption=False)
    b_id, b_token = pj_server.add_attendee(join.meeting_id)
    c_id, c_token = pj_server.add_attendee(join.meeting_id)
    recs = {hz: tmp_path / f"{hz}.wav" for hz in (440, 1000, 1700)}
    runs = {
        440: pj_callers.start(join.host, join.token, "tls", suites=["AES_256_CM_HMAC_SHA1_80"],
                              play=pj_tones[440], record=recs[440], duration=CALL_SECONDS, name="a"),
        1000: pj_callers.start(join.host, b_token, "udp", codecs=["PCMU/"], play=pj_tones[1000],
                               record=recs[1000], duration=CALL_SECONDS, name="b"),
        1700: pj_callers.start(join.host, c_token, "tls", suites=["AES_CM_128_HMAC_SHA1_32"], codecs=["PCMA/"],
                               play=pj_tones[1700], record=recs[1700], duration=CALL_SECONDS, name="c"),
    }
    results = {hz: run.result() for hz, run in runs.items()}
    for res in results.values():
        assert_joined(res)
    assert [results[hz]["codec"] for hz in (440, 1000, 1700)] == ["G722/16000", "PCMU/8000", "PCMA/8000"]
    for hz, attendee in ((440, join.attendee_id), (1000, b_id), (1700, c_id)):
        assert_media_flowed(results[hz], pj_server.call_ended(join.meeting_id, attendee))
        others = [o for o in (440, 1000, 1700) if o != hz]
        assert_hears_only_others(pj_tools.tone_levels(recs[hz]), hz, others, f"{hz} Hz caller")


def test_plain_rtp_offer_to_encrypted_connector_is_refused(pj_server, pj_callers):
    """A caller offering RTP/AVP to a connector with RequireEncryption True gets 488 Not
    Acceptable Here (RFC 3261 §21.4.26) with a Warning (§20.43) that says why."""
    join = pj_server.provision(require_encryption=True)
    res = pj_callers.start(join.host, join.token, "tls", duration=1.0).result()
    assert res["error"] == "", res
    assert not res["confirmed"], res
    assert res["status"] == 488, res
    warning = re.search(r"^Warning: *(.*)$", res["final_response"], re.M | re.I)
    assert warning and warning.group(1).startswith("399 "), res["final_response"]
    assert pj_server.proc.poll() is None


def sdp_direction(sdp: str) -> str:
    """The audio stream's direction attribute (RFC 3264 §5.1; sendrecv when absent)."""
    for line in sdp.splitlines():
        if line.strip() in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            return line.strip()[2:]
    return "sendrecv"


def crypto_keys(sdp: str) -> list[str]:
    return [l.split()[2] for l in sdp.splitlines() if l.startswith("a=crypto:")]


def rx_between(snapshots: list[dict], first: str, second: str) -> int:
    """Packets pjsua2 received between two snapshots. pjsip re-creates the stream (and its
    counters) when a re-INVITE changes it, so a drop means a restart from zero."""
    by = {s["label"]: s for s in snapshots}
    a, b = by[first]["rx"], by[second]["rx"]
    return b - a if b >= a else b


def test_hold_resume_and_reinvite(pj_server, pj_callers, pj_tones, pj_tools, tmp_path):
    """Caller A (SRTP over TLS) holds (a=sendonly), resumes and re-INVITEs with the same
    offer: the server answers recvonly, then sendrecv (RFC 3264 §8.4); it sends A nothing
    while held, B keeps hearing A during the hold, and both hear each other afterwards."""
    join = pj_server.provision(require_encryption=True)
    b_id, b_token = pj_server.add_attendee(join.meeting_id)
    rec_a, rec_b = tmp_path / "a.wav", tmp_path / "b.wav"
    hold, unhold, reinvite, end = 1.5, 3.0, 4.5, 6.0
    a = pj_callers.start(join.host, join.token, "tls", suites=["AES_CM_128_HMAC_SHA1_80"], play=pj_tones[440],
                         record=rec_a, duration=end, name="a",
                         actions=[f"{hold}:hold", f"{unhold}:unhold", f"{reinvite}:reinvite"])
    b = pj_callers.start(join.host, b_token, "tls", suites=["AES_CM_128_HMAC_SHA1_80"], play=pj_tones[1000],
                         record=rec_b, duration=end, name="b")
    res_a, res_b = a.result(), b.result()
    assert_joined(res_a)
    assert_joined(res_b)
    assert [s["label"] for s in res_a["snapshots"]] == ["start", "hold", "unhold", "reinvite", "end"], res_a
    assert [sdp_direction(o) for o in res_a["offers"]] == ["sendrecv", "sendonly", "sendrecv", "sendrecv"], res_a
    assert [sdp_direction(x) for x in res_a["answers"]] == ["sendrecv", "recvonly", "sendrecv", "sendrecv"], res_a
    # Same suite and (pjsip re-offers its key) an unchanged key in every answer.
    assert len({tuple(crypto_keys(x)) for x in res_a["answers"]}) == 1, res_a["answers"]
    assert rx_between(res_a["snapshots"], "hold", "unhold") <= 2, res_a["snapshots"]
    assert rx_between(res_a["snapshots"], "unhold", "reinvite") > 0, res_a["snapshots"]
    assert rx_between(res_a["snapshots"], "reinvite", "end") > 0, res_a["snapshots"]
    assert_media_flowed(res_a, pj_server.call_ended(join.meeting_id, join.attendee_id))
    assert_media_flowed(res_b, pj_server.call_ended(join.meeting_id, b_id))

    guard = 0.4
    during_hold = pj_tools.tone_levels(rec_b, window=(hold + guard, unhold))
    assert during_hold["present"][440] > 0.9, f"B stops hearing A while A holds: {during_hold}"
    for start, stop in ((unhold + guard, reinvite), (reinvite + guard, end - guard)):
        heard_a = pj_tools.tone_levels(rec_a, window=(start, stop))
        heard_b = pj_tools.tone_levels(rec_b, window=(start, stop))
        assert heard_a["present"][1000] > 0.9, f"A after {start - guard} s: {heard_a}"
        assert heard_b["present"][440] > 0.9, f"B after {start - guard} s: {heard_b}"


@pytest.mark.parametrize(
    "transport,suites",
    [
        pytest.param("udp", [], id="udp-rtp"),
        pytest.param("tls", ["AES_CM_128_HMAC_SHA1_80"], id="tls-srtp"),
    ],
)
def test_reinvite_with_new_media_transport(pj_server, pj_callers, pj_tones, pj_tools, tmp_path, transport, suites):
    """A re-INVITE from a new RTP port (and, with SRTP, a new SDES key): the call goes on
    with media both ways from the new port, decrypted with the new keys."""
    join = pj_server.provision(require_encryption=bool(suites))
    b_id, b_token = pj_server.add_attendee(join.meeting_id)
    rec_a, rec_b = tmp_path / "a.wav", tmp_path / "b.wav"
    reinit, end = 1.5, 4.0
    a = pj_callers.start(join.host, join.token, transport, suites=suites, play=pj_tones[440], record=rec_a,
                         duration=end, name="a", actions=[f"{reinit}:reinit"])
    b = pj_callers.start(join.host, b_token, transport, suites=suites, play=pj_tones[1000], record=rec_b,
                         duration=end, name="b")
    res_a, res_b = a.result(), b.result()
    assert_joined(res_a)
    assert_joined(res_b)
    assert len(res_a["offers"]) == 2 and len(res_a["answers"]) == 2, res_a
    first, second = res_a["offers"]
    assert media_line(first)[1] != media_line(second)[1], "pjsip re-offered the same RTP port"
    if suites:
        assert crypto_keys(first) != crypto_keys(second), "pjsip re-offered the same key"
        assert [k.split()[1] for k in (res_a["answers"][1].splitlines()) if k.startswith("a=crypto:")] == suites
    assert rx_between(res_a["snapshots"], "reinit", "end") > 0, res_a["snapshots"]
    assert_media_flowed(res_a, pj_server.call_ended(join.meeting_id, join.attendee_id))
    assert_media_flowed(res_b, pj_server.call_ended(join.meeting_id, b_id))
    after = (reinit + 0.5, end - 0.3)
    heard_a = pj_tools.tone_levels(rec_a, window=after)
    heard_b = pj_tools.tone_levels(rec_b, window=after)
    assert heard_a["present"][1000] > 0.9, f"A after the re-INVITE: {heard_a}"
    assert heard_b["present"][440] > 0.9, f"B after A's re-INVITE: {heard_b}"


def reason_header(msg: str) -> str:
    m = re.search(r"^Reason: *(.*?)\r?$", msg, re.M | re.I)
    return m.group(1) if m else ""


def test_server_ends_calls_on_delete_attendee_and_delete_meeting(pj_server, pj_callers):
    """DeleteAttendee sends that attendee's caller a BYE, DeleteMeeting the remaining
    callers, each with an RFC 3326 Reason saying why; the callers see the call end before
    they would hang up themselves."""
    join = pj_server.provision(require_encryption=True)
    b_id, b_token = pj_server.add_attendee(join.meeting_id)
    long_call = 20.0
    a = pj_callers.start(join.host, join.token, "tls", suites=["AES_CM_128_HMAC_SHA1_80"], duration=long_call,
                         name="a")
    b = pj_callers.start(join.host, b_token, "tls", suites=["AES_256_CM_HMAC_SHA1_80"], duration=long_call,
                         name="b")
    a.wait_media()
    b.wait_media()
    meetings = pj_server.client("chime-sdk-meetings")

    meetings.delete_attendee(MeetingId=join.meeting_id, AttendeeId=b_id)
    res_b = b.result()
    assert_joined(res_b)
    assert res_b["remote_bye"], f"B's call did not end with a BYE from the server: {res_b['log_file']}"
    assert re.match(r'SIP;cause=\d+;text="[^"]*attendee', reason_header(res_b["remote_bye"]), re.I), res_b["remote_bye"]
    assert a.proc.poll() is None, "A's call ended with B's"

    meetings.delete_meeting(MeetingId=join.meeting_id)
    res_a = a.result()
    assert_joined(res_a)
    assert res_a["remote_bye"], f"A's call did not end with a BYE from the server: {res_a['log_file']}"
    assert re.match(r'SIP;cause=\d+;text="[^"]*meeting', reason_header(res_a["remote_bye"]), re.I), res_a["remote_bye"]
    # Both ended at the server's BYE, long before the callers' own hang-up.
    for res in (res_a, res_b):
        end = [s for s in res["snapshots"] if s["label"] == "end"]
        assert end and end[0]["at"] < long_call - 5, res["snapshots"]


def test_same_attendee_joining_again_ends_the_older_call(pj_server, pj_callers, pj_tones, pj_tools, tmp_path):
    """A second join with the same token takes over (as Chime does): the older call gets a
    BYE with a Reason, the newer one stays in the meeting with media."""
    join = pj_server.provision(require_encryption=True)
    b_id, b_token = pj_server.add_attendee(join.meeting_id)
    long_call = 20.0
    old = pj_callers.start(join.host, join.token, "tls", suites=["AES_CM_128_HMAC_SHA1_80"], duration=long_call,
                           name="old")
    old.wait_media()
    rec = tmp_path / "new.wav"
    new = pj_callers.start(join.host, join.token, "tls", suites=["AES_CM_128_HMAC_SHA1_32"], record=rec,
                           duration=CALL_SECONDS, name="new")
    other = pj_callers.start(join.host, b_token, "tls", suites=["AES_CM_128_HMAC_SHA1_80"], play=pj_tones[1000],
                             duration=CALL_SECONDS, name="other")
    res_old, res_new, res_other = old.result(), new.result(), other.result()
    assert_joined(res_old)
    assert res_old["remote_bye"], f"the older call was not ended by the server: {res_old['log_file']}"
    assert re.match(r'SIP;cause=\d+;text="[^"]*another device', reason_header(res_old["remote_bye"]), re.I), (
        res_old["remote_bye"]
    )
    assert_joined(res_new)
    assert res_new["remote_bye"] == "", res_new["remote_bye"]
    assert_joined(res_other)
    assert res_new["rx_packets"] > 0, res_new
    heard = pj_tools.tone_levels(rec)
    assert heard["present"][1000] > 0.8, f"the newer call does not hear the meeting: {heard}"


def test_reinvite_changes_codec(pj_server, pj_callers, pj_tones, pj_tools, tmp_path):
    """A re-INVITE that offers only PCMU after a G.722 call: the answer moves to PCMU and
    audio goes on both ways in the new codec (RFC 3264 §8.3.2)."""
    join = pj_server.provision(require_encryption=False)
    b_id, b_token = pj_server.add_attendee(join.meeting_id)
    rec_a, rec_b = tmp_path / "a.wav", tmp_path / "b.wav"
    switch, end = 1.5, 4.0
    a = pj_callers.start(join.host, join.token, "udp", play=pj_tones[440], record=rec_a, duration=end, name="a",
                         actions=[f"{switch}:codec=PCMU/"])
    b = pj_callers.start(join.host, b_token, "udp", play=pj_tones[1000], record=rec_b, duration=end, name="b")
    res_a, res_b = a.result(), b.result()
    assert_joined(res_a)
    assert_joined(res_b)
    assert len(res_a["answers"]) == 2, res_a
    assert media_line(res_a["answers"][0])[3] == "9", res_a["answers"][0]
    assert media_line(res_a["answers"][1])[3] == "0", res_a["answers"][1]
    assert res_a["codec"] == "PCMU/8000", res_a
    after = (switch + 0.5, end - 0.3)
    heard_a = pj_tools.tone_levels(rec_a, window=after)
    heard_b = pj_tools.tone_levels(rec_b, window=after)
    assert heard_a["present"][1000] > 0.9, f"A after switching to PCMU: {heard_a}"
    assert heard_b["present"][440] > 0.9, f"B after A switched to PCMU: {heard_b}"
