"""Signalling carried across the B2BUA (issue 12, "Relayed"): early media, hold and resume by
re-INVITE in either direction, session timers per leg.

The PBX is pjsua2 (`tests/pjsua2/caller.py`), the carriers SIPp scenarios on 127.0.0.2 and
up (`scenarios/uas_early_media.xml`, `uas_early_503.xml`, `uas_hold_relayed.xml`,
`uas_holds.xml`). The refreshes of a 90 s session take longer than a test should: that
each leg refreshes on its own, that refreshes stay on their leg and that one leg's expiry
ends both is shown on virtual time in `crates/calls/tests/bridge_timers.rs`; here the
headers of both legs' sessions are checked once.
"""

from __future__ import annotations

import re
import subprocess

#: The early media's tone (the carrier's ringback stand-in) and the PBX's tone.
EARLY_HZ, PBX_HZ = 1000, 440


def early_tone(tmp_path) -> None:
    """`early.ul` in SIPp's directory: 1000 Hz, 8 kHz mu-law, no header (rtp_stream's
    format for payload type 0)."""
    cmd = f"sox -n -r 8000 -c 1 -e u-law -t raw {tmp_path.resolve() / 'early.ul'} synth 5 sine {EARLY_HZ} vol 0.5"
    subprocess.run(cmd.split(), check=True, timeout=30)


def direction(sdp: str) -> str:
    """The audio stream's direction attribute (RFC 3264 §5.1), sendrecv when none."""
    m = re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", sdp, re.M)
    return m.group(1) if m else "sendrecv"


def body(msg: str) -> str:
    return msg.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in msg else ""


def sipp_log(uas) -> str:
    return uas.log_file.read_text(errors="replace") if uas.log_file.exists() else ""


def test_early_media_reaches_the_pbx_before_the_answer(pstn_lab, pstn_tools, tmp_path):
    """The carrier answers 183 with SDP and plays a tone for 3 s before its 200: the PBX
    gets a 183 with the server's SDP and hears the tone before the call is answered; the
    200 that follows changes nothing (same SDP), and the call goes on to its BYE."""
    lab, tools = pstn_lab, pstn_tools
    early_tone(tmp_path)
    c1 = lab.sipp_uas("c1", "uas_early_media.xml", "127.0.0.2", extra=("-mi", "127.0.0.2"))
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    early_wav = tmp_path / "early.wav"
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), play=lab.tones[PBX_HZ], duration=2.0,
                  answer_timeout=10.0, extra=("--record-early", str(early_wav))).result()
    c1.stop()

    assert pbx["error"] == "" and pbx["confirmed"], pbx
    early = [p for p in pbx["provisionals"] if p["status"] == 183]
    assert early and early[0]["sdp"], f"no 183 with SDP reached the PBX: {pbx['provisionals']}"
    assert not [p for p in pbx["provisionals"] if p["status"] == 180], pbx["provisionals"]
    # 3 s of early media at 50 packets/s before the 200; at least half of it.
    assert pbx["rx_at_answer"] >= 75, f"{pbx['rx_at_answer']} RTP packets before the answer"
    levels = tools.tone_levels(early_wav)
    assert levels["seconds"] > 1.5, levels
    assert levels[EARLY_HZ] > -30.0 and levels["present"][EARLY_HZ] > 0.8, f"early media not heard: {levels}"
    # Our 183 and our 200 carry one and the same answer for the PBX's leg.
    assert pbx["answers"] and tools.media_port(pbx["answers"][0]) > 0, pbx["answers"]
    statuses = c1.sent_statuses()
    assert statuses == [183, 200], c1.describe()
    assert len(c1.requests("ACK")) == 1 and len(c1.requests("BYE")) == 1, c1.describe()
    assert "early media" in sipp_log(c1) and "bye" in sipp_log(c1), sipp_log(c1)


def test_failover_after_early_media(pstn_lab, pstn_tools, tmp_path):
    """c1 plays early media and then answers 503: the server still fails over, c2 answers,
    and c2's media replaces c1's in the bridge (the PBX hears its own tone echoed by c2 and
    no more of c1's)."""
    lab, tools = pstn_lab, pstn_tools
    early_tone(tmp_path)
    c1 = lab.sipp_uas("c1", "uas_early_503.xml", "127.0.0.2", extra=("-mi", "127.0.0.2"))
    c2 = lab.sipp_uas("c2", "uas_answer.xml", "127.0.0.3", rtp_echo=True)
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    lab.add_carrier("c2", c2.address, 2, "PCMU")
    lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    pbx_wav = tmp_path / "pbx.wav"
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), play=lab.tones[PBX_HZ], record=pbx_wav,
                  duration=3.0, answer_timeout=15.0).result()
    c1.stop()
    c2.stop()

    assert pbx["error"] == "" and pbx["confirmed"], pbx
    assert any(p["status"] == 183 and p["sdp"] for p in pbx["provisionals"]), pbx["provisionals"]
    assert c1.sent_statuses() == [183, 503], c1.describe()
    assert len(c1.requests("ACK")) == 1, c1.describe()
    assert len(c2.requests("INVITE")) == 1 and c2.sent_statuses() == [180, 200], c2.describe()
    levels = tools.tone_levels(pbx_wav)
    assert levels[PBX_HZ] > -30.0, f"the PBX does not hear c2's echo: {levels}"
    assert levels[EARLY_HZ] < levels[PBX_HZ] - 20.0, f"c1's early media still reaches the PBX: {levels}"
    rec_values = {str(v) for r in lab.server.wait_call_records(vc_id, 1, timeout=10) for v in r.values()}
    assert vc_id in rec_values


def test_hold_and_resume_from_the_pbx_reach_the_carrier(pstn_lab, pstn_tools):
    """The PBX (with a 90 s session timer) holds and resumes: each re-INVITE is answered on
    its leg and the carrier gets the server's own re-INVITE, a=sendonly then a=sendrecv, in
    the carrier leg's dialog (the SIPp scenario fails the call on any other direction).
    Session timers are per leg: the PBX's leg runs its 90 s with the PBX refreshing, the
    carrier leg the server's own interval."""
    lab, tools = pstn_lab, pstn_tools
    c1 = lab.sipp_uas("c1", "uas_hold_relayed.xml", "127.0.0.2", rtp_echo=True)
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), play=lab.tones[PBX_HZ], duration=5.0,
                  extra=("--action", "1.5:hold", "--action", "3:unhold", "--session-expires", "90")).result()
    c1.stop()

    assert pbx["error"] == "" and pbx["confirmed"], pbx
    assert [direction(a) for a in pbx["answers"]] == ["sendrecv", "recvonly", "sendrecv"], pbx["answers"]
    invites = c1.requests("INVITE")
    assert len(invites) == 3, c1.describe()
    first, hold, resume = invites
    assert direction(body(hold.text)) == "sendonly", hold.text
    assert direction(body(resume.text)) == "sendrecv", resume.text
    call_id = tools.header(first.text, "Call-ID")
    assert tools.header(hold.text, "Call-ID") == call_id == tools.header(resume.text, "Call-ID")
    assert call_id != tools.header(pbx["final_response"], "Call-ID"), "not the B2BUA's own dialog"
    cseqs = [int(tools.header(m.text, "CSeq").split()[0]) for m in invites]
    assert cseqs[0] < cseqs[1] < cseqs[2], cseqs
    log = sipp_log(c1)
    assert "reinvite sendonly" in log and "reinvite sendrecv" in log and "bye" in log, log
    assert len(c1.requests("ACK")) == 3, c1.describe()

    # Session timers: the PBX asked for 90 s and refreshes itself (it is the UAC); the
    # carrier's INVITE carries the server's own interval, never the PBX's.
    assert tools.header(pbx["final_response"], "Session-Expires").replace(" ", "") == "90;refresher=uac", \
        pbx["final_response"]
    theirs = tools.header(first.text, "Session-Expires")
    assert theirs and int(theirs.split(";")[0]) != 90, first.text
    for m in (hold, resume):
        se = tools.header(m.text, "Session-Expires")
        assert not se or int(se.split(";")[0]) != 90, m.text
    # Nothing else of the PBX's leg reached the carrier: INVITE, 2 re-INVITEs, 3 ACKs, BYE.
    methods = [m.method for m in c1.messages() if m.received and m.method and m.method != "OPTIONS"]
    assert sorted(set(methods)) == ["ACK", "BYE", "INVITE"], methods


def test_hold_from_the_carrier_reaches_the_pbx(pstn_lab, pstn_tools):
    """The carrier holds (a=sendonly) and resumes: it gets answers a=recvonly then
    a=sendrecv, and the PBX gets the server's re-INVITEs offering a=sendonly then
    a=sendrecv."""
    lab, tools = pstn_lab, pstn_tools
    c1 = lab.sipp_uas("c1", "uas_holds.xml", "127.0.0.2", rtp_echo=True)
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), play=lab.tones[PBX_HZ], duration=6.0).result()
    c1.stop()

    assert pbx["error"] == "" and pbx["confirmed"], pbx
    assert [direction(s) for s in pbx["reinvites"]] == ["sendonly", "sendrecv"], pbx["reinvites"]
    log = sipp_log(c1)
    assert "answered recvonly" in log and "answered sendrecv" in log and "bye" in log, f"{log}\n{c1.describe()}"


def test_an_answer_that_differs_from_the_early_one_wins(pstn_lab, pstn_tools, tmp_path):
    """The carrier's 183 names its stream's port, its 200 that port + 2 (where SIPp echoes
    RTP): the server moves the carrier leg to the 200's address, so after the answer the PBX
    hears its own 440 Hz echoed from there and no more of the early stream, which now comes
    from an address the leg's SDP does not name. (Before the answer SIPp also echoes the
    server's packets from the stream's port, a second SSRC there: the early audio is not
    checked here, `test_early_media_reaches_the_pbx_before_the_answer` does.)"""
    lab, tools = pstn_lab, pstn_tools
    early_tone(tmp_path)
    c1 = lab.sipp_uas("c1", "uas_early_changed.xml", "127.0.0.2", rtp_echo=True)
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    pbx_wav = tmp_path / "pbx.wav"
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), play=lab.tones[PBX_HZ], record=pbx_wav, duration=3.0,
                  answer_timeout=10.0).result()
    c1.stop()

    assert pbx["error"] == "" and pbx["confirmed"], pbx
    assert any(p["status"] == 183 and p["sdp"] for p in pbx["provisionals"]), pbx["provisionals"]
    assert pbx["rx_at_answer"] > 0, pbx
    after = tools.tone_levels(pbx_wav)
    assert after[PBX_HZ] > -30.0, f"the PBX does not hear the echo from the 200's port: {after}"
    assert after[EARLY_HZ] < after[PBX_HZ] - 20.0, f"the early stream still reaches the PBX: {after}"
    assert c1.sent_statuses() == [183, 200], c1.describe()
    ports = [tools.media_port(body(m.text)) for m in c1.messages() if not m.received and m.text.startswith("SIP/2.0 18")
             or not m.received and m.text.startswith("SIP/2.0 200") and "INVITE" in tools.header(m.text, "CSeq")]
    assert len(set(ports)) == 2, f"the 183 and the 200 name the same port: {ports}"


def test_relayed_hold_meets_glare_and_a_refused_resume(pstn_lab, pstn_tools):
    """The carrier answers the server's relayed hold 491 (glare): the server offers it again
    2.1 to 4 s later (RFC 3261 §14.1, it owns the carrier leg's Call-ID), and the carrier
    accepts. The resume is refused 488: the call goes on as it was until the PBX hangs up."""
    lab, tools = pstn_lab, pstn_tools
    c1 = lab.sipp_uas("c1", "uas_hold_glare.xml", "127.0.0.2", rtp_echo=True)
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), play=lab.tones[PBX_HZ], duration=8.0,
                  extra=("--action", "1.5:hold", "--action", "6.5:unhold")).result()
    c1.stop()

    assert pbx["error"] == "" and pbx["confirmed"], pbx
    assert pbx["remote_bye"] == "", f"the refused resume ended the call: {pbx['remote_bye']}"
    assert [direction(a) for a in pbx["answers"]] == ["sendrecv", "recvonly", "sendrecv"], pbx["answers"]
    invites = c1.requests("INVITE")
    assert [direction(body(m.text)) for m in invites] == ["sendrecv", "sendonly", "sendonly", "sendrecv"], \
        c1.describe()
    waited = invites[2].at - invites[1].at
    assert 2.0 <= waited <= 4.6, f"the re-INVITE was retried {waited:.2f} s after the 491"
    assert c1.sent_statuses() == [180, 200, 491, 488], c1.describe()
    log = sipp_log(c1)
    assert log.count("reinvite sendonly") == 2 and "bye" in log, log
    # The PBX's own hang-up ended the call: the carrier got its BYE after the refused resume.
    assert invites[3].at < c1.requests("BYE")[0].at, c1.describe()
