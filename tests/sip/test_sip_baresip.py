"""baresip 1.0.0 joins a meeting over SIP/TLS with SDES-SRTP (RTP/SAVP, RFC 4568), the way the
spec's example INVITE does: `sip:+17035550122@<host>;transport=tls;X-chime-join-token=...`,
sent through 127.0.0.1:<tls port> as outbound proxy, trusting the server's development CA.

No sound card: the microphone is baresip's `aufile` source playing a WAV made with sox, the
speaker is an `aubridge` device. baresip 1.0.0's aufile module only provides a *source*
(an aufile player arrived in later releases), so what baresip received is recorded with the
`sndfile` audio filter, which writes the decoded receive path to `dump-*-dec.wav`.

baresip 1.0.0 (libre) does not verify the server certificate of a SIP/TLS connection: with
`sip_cafile` pointing at an unrelated CA the call still connects (checked by hand), so
certificate verification of the server is proven by test_sip_tls.py (openssl s_client),
not here.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import threading
import wave
from pathlib import Path

import pytest

from vctest.baresip import Baresip as VcBaresip

CALLER = "+12065550100"

#: Length of the WAV baresip sends; baresip hangs up (BYE) when the file ends.
CALL_SECONDS = 3

#: Safety net only: baresip quits on its own after this many seconds (`-t`).
BARESIP_MAX_SECONDS = 20


def Baresip(workdir: Path, server, mediaenc: str, source_wav: Path) -> VcBaresip:
    """A PCMU-only baresip (audio at 8 kHz mono) calling as CALLER with `mediaenc`."""
    return VcBaresip(workdir, server, source_wav, codec="pcmu", mediaenc=mediaenc, caller=CALLER,
                     force_rate=True, max_seconds=BARESIP_MAX_SECONDS)


@pytest.fixture
def sip_tone_wav(tmp_path) -> Path:
    if shutil.which("sox") is None:
        pytest.fail("sox is not installed; run scripts/setup-deps")
    path = tmp_path / "tone440.wav"
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path), "synth", str(CALL_SECONDS), "sine", "440", "vol", "0.5"],
        check=True,
        timeout=30,
    )
    return path


@pytest.mark.parametrize(
    "mediaenc,profile,require_encryption",
    [
        # Mandatory SRTP: RTP/SAVP with a=crypto, to a connector that requires encryption.
        pytest.param("srtp-mand", "RTP/SAVP", True, id="srtp-mand"),
        # Best-effort SRTP: RTP/AVP carrying a=crypto; the server takes the keys.
        pytest.param("srtp", "RTP/AVP", False, id="srtp-best-effort"),
    ],
)
def test_baresip_tls_srtp_meeting_join(sip_server, sip_tone_wav, tmp_path, mediaenc, profile, require_encryption):
    p = sip_server.provision(require_encryption=require_encryption)
    phone = Baresip(tmp_path / "baresip", sip_server, mediaenc, sip_tone_wav)
    phone.dial(f"sip:+17035550122@{p.host};transport=tls;X-chime-join-token={p.token}")
    rc = phone.wait_for_call_end()
    log = phone.log()

    assert "Call established" in log, log[-6000:]
    assert rc == 0, log[-6000:]
    # Signalling really went over TLS to the server's TLS port, through the outbound proxy.
    assert re.search(rf"TLS 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:{sip_server.tls_port}\s+INVITE ", log), log[-6000:]
    assert re.search(rf"TLS 127\.0\.0\.1:{sip_server.tls_port} -> 127\.0\.0\.1:\d+\s+SIP/2\.0 200 OK", log), log[-6000:]
    # Media is SDES-SRTP (RFC 4568): the offered profile and an a=crypto line in the answer.
    answer = log.split("SIP/2.0 200 OK", 1)[1]
    assert re.search(rf"m=audio \d+ {profile} ", answer), answer[:2000]
    assert re.search(r"a=crypto:\d+ AES_CM_128_HMAC_SHA1_(80|32) inline:", answer), answer[:2000]
    assert "SRTP is Enabled" in log, log[-6000:]
    assert "incoming rtp for 'audio' established" in log, log[-6000:]

    # The server's view: the caller joined this meeting as this attendee and left with BYE.
    joined = sip_server.wait_for_log(r"joined meeting [^\n]*meeting=" + re.escape(p.meeting_id) + r"[^\n]*")
    assert f"attendee={p.attendee_id}" in joined.group(0)
    rec = sip_server.call_ended(p.meeting_id)
    assert rec["Reason"] == "RemoteBye", rec
    media = rec["Media"]
    # SRTP and SRTCP from baresip authenticated. baresip 1.0.0 sends exactly two RTCP
    # packets unprotected (an APP "PINGPONG" as SRTP starts, and its final RTCP BYE after
    # SRTP is torn down; seen with tshark), which the server rightly drops as SRTP
    # failures; every other packet must pass.
    assert media["PacketsReceived"] > 0, rec
    assert media["RtcpPacketsReceived"] >= 1, rec
    assert media["SrtpFailures"] <= 2, rec

    # baresip's RTP statistics: packets received from the server, none failing SRTP.
    rx = re.search(r"packets:\s+(\d+)\s+(\d+)", log)
    errors = re.search(r"errors:\s+(\d+)\s+(\d+)", log)
    assert rx and errors, log[-3000:]
    assert int(rx.group(1)) > 0 and int(rx.group(2)) > 0, rx.group(0)
    assert int(errors.group(2)) == 0, errors.group(0)
    assert media["PacketsReceived"] <= int(rx.group(1)), (rec, rx.group(0))
    # What the server counted as sent covers what baresip counted as received.
    assert media["PacketsSent"] >= int(rx.group(2)), (rec, rx.group(0))

    # The decoded receive path was recorded: a non-empty 8 kHz mono WAV.
    dec = phone.decoded_wav()
    assert dec is not None, sorted(x.name for x in phone.dir.iterdir())
    with wave.open(str(dec)) as w:
        assert w.getframerate() == 8000 and w.getnchannels() == 1
        assert w.getnframes() > 0


def test_baresip_and_plain_rtp_caller_hear_each_other(sip_server, sip_sipp, sip_tools, sip_tone_wav, tmp_path):
    """Two callers in one meeting: baresip (TLS + SRTP) sends a 440 Hz tone, a SIPp caller
    (UDP, plain RTP) sends a 1000 Hz tone. Each must hear the other's tone through the
    server (SRTP unprotect, decode, mix, encode, SRTP protect)."""
    p = sip_server.provision(require_encryption=False)
    attendee2, token2 = sip_server.add_attendee(p.meeting_id)
    ulaw_1k = subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-e", "mu-law", "-t", "raw", "-", "synth", "2", "sine", "1000", "vol", "0.5"],
        stdout=subprocess.PIPE, check=True, timeout=30,
    ).stdout

    results = {}
    with sip_tools.RtpPeer(reply_pt=0, reply_audio=ulaw_1k) as peer:
        keys = {"vc_host": p.host, "token": token2, "from_user": "+12065550101", "rtp_port": str(peer.port)}
        # SIPp holds its call for longer than baresip's; both overlap in the meeting.
        sipp = threading.Thread(
            target=lambda: results.update(sipp=sip_sipp("join_uac.xml", keys, "u1", extra=["-d", str((CALL_SECONDS + 3) * 1000)]))
        )
        sipp.start()
        try:
            sip_server.wait_for_log(r"joined meeting [^\n]*attendee=" + re.escape(attendee2))
            phone = Baresip(tmp_path / "baresip", sip_server, "srtp-mand", sip_tone_wav)
            phone.dial(f"sip:+17035550122@{p.host};transport=tls;X-chime-join-token={p.token}")
            rc = phone.wait_for_call_end()
        finally:
            sipp.join(timeout=60)
        received = b"".join(pkt["payload"] for pkt in peer.rtp() if pkt["pt"] == 0)

    log = phone.log()
    assert "Call established" in log and rc == 0, log[-6000:]
    sipp_result = results.get("sipp")
    assert sipp_result is not None and sipp_result.returncode == 0, sipp_result and sipp_result.describe()
    assert sipp_result.counter("SuccessfulCall") == 1

    # The plain-RTP caller heard baresip's 440 Hz tone.
    freq, frames = sip_tools.tone_frequency(sip_tools.g711_to_pcm16(received))
    assert frames >= 25, (freq, frames)  # at least half a second of audible audio
    assert 400 <= freq <= 480, freq

    # baresip heard the 1000 Hz tone of the plain-RTP caller.
    dec = phone.decoded_wav()
    assert dec is not None
    with wave.open(str(dec)) as w:
        raw = w.readframes(w.getnframes())
    samples = list(struct.unpack(f"<{len(raw) // 2}h", raw))
    freq, frames = sip_tools.tone_frequency(samples)
    assert frames >= 25, (freq, frames)
    assert 950 <= freq <= 1050, freq


def test_encrypted_connector_refuses_plain_rtp_over_tls(sip_server, sip_tone_wav, tmp_path):
    """TLS alone is not enough for RequireEncryption: a plain RTP/AVP offer gets 488
    (RFC 3261 §21.4.26) with a Warning naming what to offer instead."""
    p = sip_server.provision(require_encryption=True)
    phone = Baresip(tmp_path / "baresip", sip_server, "", sip_tone_wav)
    phone.dial(f"sip:+17035550122@{p.host};transport=tls;X-chime-join-token={p.token}")
    rc = phone.wait_for_call_end()
    log = phone.log()
    assert rc == 0, log[-6000:]
    assert re.search(r"m=audio \d+ RTP/AVP ", log) and "a=crypto:" not in log, log[-6000:]
    assert "SIP/2.0 488 Not Acceptable Here" in log, log[-6000:]
    warning = re.search(r'Warning: 399 voice-connector "([^"]*)"', log)
    assert warning, log[-6000:]
    assert "encryption required" in warning.group(1) and "RTP/SAVP" in warning.group(1), warning.group(1)
    assert "Call established" not in log, log[-6000:]
    assert not re.search(r"joined meeting [^\n]*meeting=" + re.escape(p.meeting_id), sip_server.log())
