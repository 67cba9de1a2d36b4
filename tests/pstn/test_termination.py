"""PSTN termination (issue 12): a PBX calls +14155550100 through a voice connector and the
server, a B2BUA with media anchored on itself, places the call with the operator's carrier
trunks (`voice-connector admin carriers add`), trying them by priority.

The PBX is pjsua2 (`tests/pjsua2/caller.py`); carriers are `callee.py` (pjsua2) and SIPp UAS
scenarios on 127.0.0.2 and up. Tones: the PBX plays 440 Hz, an answering carrier 1000 Hz;
each side's recording is checked with Goertzel for the other's tone.
"""

from __future__ import annotations

import time

import pytest

#: The other side's tone must be at least this loud (dB relative to a full-scale sine) and
#: present in this share of the recording's 100 ms blocks (from its first sound on).
TONE_MIN_DB = -30.0
TONE_PRESENT = 0.8
SUITE = "AES_CM_128_HMAC_SHA1_80"
#: The fields of an AWS Voice Connector call detail record that issue 12 asks for.
AWS_CDR_FIELDS = (
    "TransactionId", "CallId", "VoiceConnectorId", "Status", "StatusMessage", "BillableDurationSeconds",
    "SourcePhoneNumber", "SourceCountry", "DestinationPhoneNumber", "DestinationCountry", "Direction",
    "StartTimeEpochSeconds", "EndTimeEpochSeconds",
)


def assert_connected(pbx: dict, carrier: dict) -> None:
    assert pbx["error"] == "" and carrier["error"] == "", (pbx, carrier)
    assert pbx["confirmed"], f"the PBX's call did not connect: {pbx['status']} {pbx['reason']} ({pbx['log_file']})"
    assert carrier["invite"] is not None, f"the carrier got no INVITE: {carrier}"
    assert carrier["answered"] == 200 and carrier["confirmed"], carrier


def assert_hears(levels: dict, hz: int, who: str) -> None:
    assert levels["seconds"] > 1.0, f"{who}: recording too short: {levels}"
    assert levels[hz] > TONE_MIN_DB, f"{who} does not hear {hz} Hz: {levels}"
    assert levels["present"][hz] > TONE_PRESENT, f"{who} hears {hz} Hz only in part of the call: {levels}"


def assert_tones_both_ways(tools, pbx_wav, carrier_wav) -> None:
    """The PBX hears the carrier's 1000 Hz, the carrier the PBX's 440 Hz."""
    assert_hears(tools.tone_levels(pbx_wav), 1000, "the PBX")
    assert_hears(tools.tone_levels(carrier_wav), 440, "the carrier")


def assert_b2bua_invite(tools, pbx: dict, carrier: dict, server) -> None:
    """The carrier's INVITE is the server's own (a B2BUA: new Call-ID, RFC 3261 §8.1.1.4),
    to the dialled number, from the caller's E.164 number, with an SDP offer whose RTP port
    is one of the server's (media anchored, not the PBX's address passed through)."""
    inv = carrier["invite"]
    assert tools.sip_user(inv["request_uri"]) == tools.number, inv["request_uri"]
    assert tools.sip_user(inv["from"]) == tools.caller, inv["from"]
    pbx_call_id = tools.header(pbx["final_response"], "Call-ID")
    assert pbx_call_id and inv["call_id"] != pbx_call_id, (inv["call_id"], pbx_call_id)
    port = tools.media_port(carrier["offer_sdp"])
    low, high = server.rtp_ports
    assert low <= port <= high, f"the offer to the carrier names port {port}, not one of the server's {low}-{high}"
    assert "a=crypto:" not in carrier["offer_sdp"], carrier["offer_sdp"]


def record_values(doc) -> set[str]:
    """Every scalar value anywhere in a call record (nested objects and lists), as text:
    where the record lists the carrier and its attempts is left to the record's design."""
    if isinstance(doc, dict):
        return set().union(*(record_values(v) for v in doc.values())) if doc else set()
    if isinstance(doc, list):
        return set().union(*(record_values(v) for v in doc)) if doc else set()
    return {str(doc)}


def outbound_record(server, vc_id: str) -> dict:
    """The one finished call record of the connector, an outbound PSTN call to the number."""
    recs = server.wait_call_records(vc_id, 1, timeout=10)
    assert len(recs) == 1, f"{len(recs)} call records: {recs}\n{server.log()[-3000:]}"
    rec = recs[0]
    assert rec.get("Direction") == "Outbound", rec
    assert rec.get("DestinationPhoneNumber") == "+14155550100", rec
    assert rec.get("SourcePhoneNumber") == "+12065550100", rec
    return rec


def test_transcoded(pstn_lab, pstn_tools, tmp_path):
    """PBX over TLS with SDES-SRTP and G.722; the carrier plain RTP with PCMU only: the call
    connects, the server transcodes, and each side hears the other's tone."""
    lab, tools = pstn_lab, pstn_tools
    carrier_wav, pbx_wav = tmp_path / "carrier.wav", tmp_path / "pbx.wav"
    c1, vc_id, host = lab.single_carrier(True, play=lab.tones[1000], record=carrier_wav)
    pbx = lab.pbx(host, "tls", suites=(SUITE,), codecs=("G722/16000",), play=lab.tones[440], record=pbx_wav,
                  duration=5.0).result()
    carrier = c1.stop()

    assert_connected(pbx, carrier)
    assert pbx["codec"] == "G722/16000", pbx
    assert f"SRTP status: Active Crypto-suite: {SUITE}" in pbx["dump"], pbx["dump"]
    assert carrier["codec"] == "PCMU/8000" and carrier["proto"] == "RTP/AVP", carrier
    assert_b2bua_invite(tools, pbx, carrier, lab.server)
    assert carrier["ended"] == "bye-received", f"the PBX's hang-up did not reach the carrier: {carrier['ended']}"
    assert_tones_both_ways(tools, pbx_wav, carrier_wav)
    rec = outbound_record(lab.server, vc_id)
    assert "c1" in record_values(rec), f"the record does not name the carrier: {rec}"
    missing = [f for f in AWS_CDR_FIELDS if f not in rec]
    assert not missing, f"the record lacks the AWS Voice Connector CDR fields {missing}: {rec}"
    assert rec["VoiceConnectorId"] == vc_id and rec["Status"] == "Completed", rec
    assert rec["SourceCountry"] == "US" and rec["DestinationCountry"] == "US", rec
    assert rec["StartTimeEpochSeconds"] < rec["EndTimeEpochSeconds"], rec
    assert 3 <= rec["BillableDurationSeconds"] <= 10, f"a 5 s call billed {rec['BillableDurationSeconds']} s"


def test_relayed_same_codec(pstn_lab, pstn_tools, tmp_path):
    """PCMU on both legs, plain RTP over UDP on a connector without RequireEncryption: the
    packets are relayed (still through the server's ports) and the tones pass both ways."""
    lab, tools = pstn_lab, pstn_tools
    carrier_wav, pbx_wav = tmp_path / "carrier.wav", tmp_path / "pbx.wav"
    c1, vc_id, host = lab.single_carrier(False, play=lab.tones[1000], record=carrier_wav)
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), play=lab.tones[440], record=pbx_wav, duration=5.0).result()
    carrier = c1.stop()

    assert_connected(pbx, carrier)
    assert pbx["codec"] == "PCMU/8000" and carrier["codec"] == "PCMU/8000", (pbx["codec"], carrier["codec"])
    assert_b2bua_invite(tools, pbx, carrier, lab.server)
    assert_tones_both_ways(tools, pbx_wav, carrier_wav)
    outbound_record(lab.server, vc_id)


def test_failover(pstn_lab, pstn_tools, tmp_path):
    """c1 (priority 1) answers 503 and c2 (priority 2) rings without answering: both are
    passed over (c2 after the 3 s carrier answer timeout, with a CANCEL) and the call
    connects to c3 (priority 3)."""
    lab, tools = pstn_lab, pstn_tools
    pbx_wav = tmp_path / "pbx.wav"
    c1 = lab.sipp_uas("c1", "uas_503.xml", "127.0.0.3")
    c2 = lab.sipp_uas("c2", "uas_ring_forever.xml", "127.0.0.4")
    c3 = lab.callee("c3", "127.0.0.5", play=lab.tones[1000])
    for prio, (name, carrier) in enumerate((("c1", c1), ("c2", c2), ("c3", c3)), start=1):
        lab.add_carrier(name, carrier.address, prio, "PCMU")
    server = lab.start_server(answer_timeout=3)
    vc_id, host = lab.connector(require_encryption=False)
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), play=lab.tones[440], record=pbx_wav, duration=3.0,
                  answer_timeout=20.0).result()
    third = c3.stop()
    c1.stop()
    c2.stop()

    assert_connected(pbx, third)
    assert_hears(tools.tone_levels(pbx_wav), 1000, "the PBX")
    invites1, invites2 = c1.requests("INVITE"), c2.requests("INVITE")
    assert len(invites1) == 1, c1.describe()
    assert c1.sent_statuses() == [503], c1.describe()
    assert len(c1.requests("ACK")) == 1, f"503 not acknowledged: {c1.describe()}"
    assert len(invites2) == 1, c2.describe()
    cancels = c2.requests("CANCEL")
    assert len(cancels) == 1, f"c2 was not cancelled: {c2.describe()}"
    assert tools.header(cancels[0].text, "Call-ID") == tools.header(invites2[0].text, "Call-ID")
    assert c2.sent_statuses() == [180, 487], c2.describe()
    # Tried in priority order, c2 given up only after the answer timeout.
    assert invites1[0].at <= invites2[0].at <= third["invite_at"], (invites1[0].at, invites2[0].at, third["invite_at"])
    waited = cancels[0].at - invites2[0].at
    assert 2.5 <= waited <= 8.0, f"c2 was cancelled {waited:.1f} s after its INVITE, not after the 3 s timeout"
    for inv in (invites1[0].text, invites2[0].text):
        assert tools.sip_user(inv.split(" ", 2)[1]) == tools.number, inv
    rec = outbound_record(server, vc_id)
    assert {"c1", "c2", "c3", "503"} <= record_values(rec), f"the record does not list every attempt: {rec}"


def test_busy_is_not_failed_over(pstn_lab, pstn_tools):
    """c1 answers 486 Busy Here: a final 4xx goes back to the PBX unchanged and c2, which
    would answer, is never tried."""
    lab, tools = pstn_lab, pstn_tools
    c1 = lab.sipp_uas("c1", "uas_486.xml", "127.0.0.3")
    c2 = lab.callee("c2", "127.0.0.4")
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    lab.add_carrier("c2", c2.address, 2, "PCMU")
    server = lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), duration=1.0).result()
    c1.stop()
    second = c2.stop()

    assert pbx["error"] == "", pbx
    assert not pbx["confirmed"], pbx
    assert pbx["status"] == 486, f"the PBX got {pbx['status']} {pbx['reason']}, not the carrier's 486"
    assert len(c1.requests("INVITE")) == 1 and c1.sent_statuses() == [486], c1.describe()
    assert second["invite"] is None and second["invites"] == [], f"c2 was tried after a 486: {second['invites']}"
    rec = outbound_record(server, vc_id)
    assert "486" in record_values(rec), rec


def test_cancel_before_answer(pstn_lab, pstn_tools):
    """The PBX gives up while the carrier rings: its CANCEL becomes the server's CANCEL to
    the carrier (same INVITE, RFC 3261 §9.1), the carrier answers 487, so does the server."""
    lab, tools = pstn_lab, pstn_tools
    c1, vc_id, host = lab.single_carrier(False, never_answer=True, timeout=20.0)
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), duration=1.0, answer_timeout=3.0).result()
    carrier = c1.result()  # ends by itself once cancelled

    assert pbx["error"] == "", pbx
    assert not pbx["confirmed"] and pbx["status"] == 487, f"the PBX got {pbx['status']} {pbx['reason']}"
    assert carrier["invite"] is not None, carrier
    assert carrier["ended"] == "cancelled", carrier["ended"]
    assert carrier["answered"] == 0, carrier
    assert tools.header(carrier["cancel"], "Call-ID") == carrier["invite"]["call_id"], carrier["cancel"]
    assert tools.sip_user(carrier["cancel"].split(" ", 2)[1]) == tools.number, carrier["cancel"]
    recs = lab.server.wait_call_records(vc_id, 1, timeout=10)
    assert len(recs) == 1, recs
    assert recs[0].get("Status") != "Completed", recs[0]


@pytest.mark.parametrize("who", ["pbx", "carrier"])
def test_bye_from_each_side(pstn_lab, pstn_tools, tmp_path, who):
    """Whichever side hangs up first, its BYE ends the other leg with a BYE from the server
    long before that side would hang up itself; media ran both ways until then."""
    lab, tools = pstn_lab, pstn_tools
    short, long = 2.0, 20.0
    carrier_wav = tmp_path / "carrier.wav"
    c1, vc_id, host = lab.single_carrier(False, play=lab.tones[1000], record=carrier_wav,
                                         duration=short if who == "carrier" else long)
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), play=lab.tones[440],
                  duration=short if who == "pbx" else long).result()
    carrier = c1.result() if who == "pbx" else c1.stop()

    assert_connected(pbx, carrier)
    assert carrier["rx_packets"] > 0 and carrier["tx_packets"] > 0, carrier
    assert_hears(tools.tone_levels(carrier_wav), 440, "the carrier")
    if who == "pbx":
        assert carrier["ended"] == "bye-received" and carrier["bye_from"] == "remote", carrier["ended"]
        assert carrier["ended_at"] - carrier["confirmed_at"] < long - 5, carrier
        assert pbx["remote_bye"] == "", "the PBX hung up, yet got a BYE"
    else:
        assert carrier["ended"] == "bye-sent", carrier["ended"]
        assert pbx["remote_bye"].startswith("BYE "), f"the carrier's BYE did not reach the PBX ({pbx['log_file']})"
        end = [s["at"] for s in pbx["snapshots"] if s["label"] == "end"]
        assert end and end[0] < long - 5, pbx["snapshots"]
    rec = outbound_record(lab.server, vc_id)
    assert rec.get("BillableDurationSeconds", 0) >= 1, f"no BillableDurationSeconds of 1 s or more: {rec}"


def test_sipp_carrier_answers_and_gets_the_bye(pstn_lab, pstn_tools):
    """A carrier that is not pjsip (SIPp's uas_answer: 180, then 200 with a bare PCMU answer
    and a Contact of its own): the call connects, the carrier's ACK and, when the PBX hangs
    up, its BYE come from the server on the carrier's dialog."""
    lab, tools = pstn_lab, pstn_tools
    c1 = lab.sipp_uas("c1", "uas_answer.xml", "127.0.0.2")
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    server = lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), play=lab.tones[440], duration=2.0).result()
    time_for_bye = 3.0
    deadline = time.monotonic() + time_for_bye
    while not c1.requests("BYE") and time.monotonic() < deadline:
        time.sleep(0.1)
    c1.stop()

    assert pbx["error"] == "" and pbx["confirmed"], f"{pbx['status']} {pbx['reason']} ({pbx['log_file']})"
    assert pbx["codec"] == "PCMU/8000", pbx
    invites = c1.requests("INVITE")
    assert len(invites) == 1, c1.describe()
    assert tools.sip_user(invites[0].text.split(" ", 2)[1]) == tools.number, invites[0].text
    low, high = server.rtp_ports
    assert low <= tools.media_port(invites[0].text.partition("\r\n\r\n")[2]) <= high, invites[0].text
    assert c1.sent_statuses() == [180, 200], c1.describe()
    acks, byes = c1.requests("ACK"), c1.requests("BYE")
    assert len(acks) == 1 and len(byes) == 1, c1.describe()
    for req in (acks[0], byes[0]):
        assert tools.header(req.text, "Call-ID") == tools.header(invites[0].text, "Call-ID"), req.text
    outbound_record(server, vc_id)


def test_default_phone_number_stands_in_for_a_caller_that_is_not_e164(pstn_lab, pstn_tools):
    """A PBX whose From user is `alice`: refused 403 with a Warning naming the From while the
    connector has no DefaultPhoneNumber (nothing reaches the carrier); with one set, the call
    goes out with it as the caller ID (the carrier's From) and the record's source number."""
    lab, tools = pstn_lab, pstn_tools
    c1 = lab.sipp_uas("c1", "uas_answer.xml", "127.0.0.2")
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    server = lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    alice = ("--from-uri", "sip:alice@127.0.0.1")

    refused = lab.pbx(host, "udp", codecs=("PCMU/8000",), duration=1.0, name="pbx-refused", extra=alice).result()
    assert refused["error"] == "" and not refused["confirmed"], refused
    assert refused["status"] == 403, f"{refused['status']} {refused['reason']}"
    warnings = [ln for ln in server.log().splitlines() if "alice" in ln and "E.164" in ln]
    assert warnings, "the server's log does not say why alice was refused"
    assert c1.requests("INVITE") == [], c1.describe()

    server.put_termination(vc_id, DefaultPhoneNumber="+12065550199")
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), duration=1.0, name="pbx-default", extra=alice).result()
    assert pbx["error"] == "" and pbx["confirmed"], f"{pbx['status']} {pbx['reason']} ({pbx['log_file']})"
    c1.stop()
    invites = c1.requests("INVITE")
    assert len(invites) == 1, c1.describe()
    assert tools.sip_user(tools.header(invites[0].text, "From")) == "+12065550199", invites[0].text
    assert "alice" not in invites[0].text, "the PBX's own From user leaked to the carrier"
    recs = server.wait_call_records(vc_id, 2, timeout=10)
    answered = [r for r in recs if r.get("Direction") == "Outbound" and r.get("BillableDurationSeconds") is not None
                and r.get("Status") == "Completed"]
    assert len(answered) == 1, recs
    assert answered[0]["SourcePhoneNumber"] == "+12065550199" and answered[0]["SourceCountry"] == "US", answered[0]
