#!/usr/bin/env python3
"""One pjsua2 (pjsip) caller joining a meeting through the voice connector, run as its own
process so that every call gets a fresh pjlib (pjlib does not like an Endpoint being created
twice in one process).

The caller sends the INVITE through an outbound proxy (127.0.0.1, loose routing, RFC 3261
§16.12) so the Request-URI can name the connector's host without DNS, plays a WAV file into
the call, records what it hears, hangs up after `--duration` seconds and prints one JSON
object on stdout:

    {"confirmed": bool, "status": int, "reason": str, "answer_sdp": str,
     "codec": "G722/16000", "proto": "RTP/SAVP", "rx_packets": int, "tx_packets": int,
     "rx_bytes": int, "crypto": ["1 AES_CM_128_HMAC_SHA1_80 inline:..."], "offer_sdp": str,
     "final_response": "SIP/2.0 ... (the INVITE's final response as received)",
     "offers": [every SDP offer sent], "answers": [every SDP answer in a 2xx],
     "remote_bye": "BYE ... (the server's BYE, when it ended the call)",
     "snapshots": [{"label": "start"|"hold"|..., "at": s, "rx": packets, "tx": packets}],
     "provisionals": [{"status": 183, "sdp": bool, "at": epoch s}] (18x responses received),
     "rx_at_answer": packets received before the 2xx (early media; -1 without media),
     "reinvites": [the SDP of every in-dialog INVITE received (the other side's re-offers)],
     "codecs": [...], "dump": str, "error": str,
     "dtmf": [{"digit": "5", "method": "rfc4733"|"info", "at": s}] (digits heard, from the
             media start), "dtmf_sent": [{"digits": "12", "method": ..., "at": s}],
     "info_responses": [the final responses to `--info` requests, as received]}

All pjsua2 work runs on the main thread: threadCnt = 0 and `libHandleEvents` polling.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import pjsua2 as pj


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--uri", required=True, help="Request-URI of the join")
    p.add_argument("--from-uri", default="sip:+12065550100@127.0.0.1", help="account id / From")
    p.add_argument("--proxy", required=True, help="outbound proxy URI with ;lr")
    p.add_argument("--transport", choices=("udp", "tls"), required=True)
    p.add_argument("--ca", help="CA file that verifies the server's TLS certificate")
    p.add_argument(
        "--suite",
        action="append",
        default=[],
        help="SDES crypto suite to offer (repeatable, in order); none: plain RTP/AVP",
    )
    p.add_argument("--codec", action="append", default=[], help="only offer these codec ids, e.g. PCMA/8000")
    p.add_argument("--play", help="WAV file played into the call (looped)")
    p.add_argument("--record", help="WAV file that receives what the caller hears")
    p.add_argument("--duration", type=float, default=4.0, help="seconds in the call after it is confirmed")
    p.add_argument("--timeout", type=float, default=8.0, help="seconds to wait for the answer")
    p.add_argument(
        "--action",
        action="append",
        default=[],
        help="SECONDS:hold|unhold|reinvite|reinit|codec=PCMU/, seconds after the media started (repeatable)",
    )
    p.add_argument("--record-early", help="WAV file that receives what the caller hears before the answer")
    p.add_argument(
        "--session-expires",
        type=int,
        default=0,
        help="RFC 4028 session timer: Session-Expires (and Min-SE) in seconds, Require: timer",
    )
    p.add_argument(
        "--dtmf",
        action="append",
        default=[],
        help="SECONDS:DIGITS[:info] sent SECONDS after the media started, as RFC 4733 events "
        "(pjsua2 dialDtmf) or, with :info, SIP INFO application/dtmf-relay (repeatable)",
    )
    p.add_argument(
        "--info",
        action="append",
        default=[],
        help="SECONDS:CONTENT-TYPE:BODY an in-dialog INFO sent SECONDS after the media started (repeatable)",
    )
    p.add_argument("--bind-host", default="127.0.0.1", help="local address of SIP and media (127.0.0.x)")
    p.add_argument("--ready-file", help="created once the call's media runs")
    p.add_argument("--log-level", type=int, default=3)
    p.add_argument("--log-file", default="")
    return p.parse_args(argv)


class JoinCall(pj.Call):
    """Keeps what the test asserts on: the call's last status and the answer's SDP."""

    def __init__(self, acc: pj.Account):
        super().__init__(acc)
        self.state = pj.PJSIP_INV_STATE_NULL
        self.status = 0
        self.reason = ""
        self.answer_sdp = ""
        self.offer_sdp = ""
        self.final_response = ""
        self.offers: list[str] = []
        self.answers: list[str] = []
        self._seen: set[str] = set()
        self.remote_bye = ""
        self.media_active = False
        self.media_changed = False
        self.ever_confirmed = False
        self.provisionals: list[dict] = []
        self.reinvites: list[str] = []
        self.rx_at_answer = -1
        self.dtmf: list[dict] = []
        self.media_at: float | None = None
        self.info_responses: list[str] = []

    def onDtmfDigit(self, prm) -> None:
        self.dtmf.append(dtmf_heard(prm, self.media_at))

    def onCallState(self, prm) -> None:
        self._keep_response(prm.e)
        ci = self.getInfo()
        self.state = ci.state
        self.status = ci.lastStatusCode
        self.reason = ci.lastReason
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            if not self.ever_confirmed and self.hasMedia():
                self.rx_at_answer = self.getStreamStat(0).rtcp.rxStat.pkt
            self.ever_confirmed = True

    def onCallSdpCreated(self, prm) -> None:
        if not self.offer_sdp:
            self.offer_sdp = prm.sdp.wholeSdp

    def onCallTsxState(self, prm) -> None:
        self._keep_response(prm.e)

    def _keep_response(self, ev) -> None:
        """Keeps the final response to our INVITE; a 2xx carries the server's SDP answer
        (RFC 3264 §6). A failure response arrives with the DISCONNECTED state change."""
        if ev.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        body = ev.body.tsxState
        if body.tsx.method == "BYE" and body.type == pj.PJSIP_EVENT_RX_MSG:
            msg = body.src.rdata.wholeMsg
            if msg.startswith("BYE "):
                self.remote_bye = msg  # the server ended the call
            return
        if body.tsx.method == "INFO" and body.type == pj.PJSIP_EVENT_RX_MSG:
            msg = body.src.rdata.wholeMsg
            if msg.startswith("SIP/2.0 ") and not msg.startswith("SIP/2.0 1") and msg not in self._seen:
                self._seen.add(msg)
                self.info_responses.append(msg)
            return
        if body.tsx.method != "INVITE":
            return
        if body.type == pj.PJSIP_EVENT_TX_MSG:
            # Offers as sent (hold's a=sendonly is applied after onCallSdpCreated).
            sent = body.src.tdata.wholeMsg
            if sent.startswith("INVITE ") and "\r\n\r\n" in sent and sent not in self._seen:
                self._seen.add(sent)
                self.offers.append(sent.split("\r\n\r\n", 1)[1])
            return
        if body.type != pj.PJSIP_EVENT_RX_MSG:
            return
        msg = body.src.rdata.wholeMsg
        if msg in self._seen:
            return  # the same response, reported to onCallState and onCallTsxState
        self._seen.add(msg)
        if msg.startswith("INVITE "):
            self.reinvites.append(msg.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in msg else "")
            return
        if msg.startswith("SIP/2.0 1") and not msg.startswith("SIP/2.0 100"):
            sdp = "\r\n\r\n" in msg and msg.split("\r\n\r\n", 1)[1].strip() != ""
            self.provisionals.append({"status": int(msg.split(" ", 2)[1]), "sdp": sdp, "at": time.time()})
        if msg.startswith("SIP/2.0 ") and not msg.startswith("SIP/2.0 1"):
            self.final_response = msg
        if msg.startswith("SIP/2.0 2") and "\r\n\r\n" in msg:
            sdp = msg.split("\r\n\r\n", 1)[1]
            if sdp.strip():
                if not self.answer_sdp:
                    self.answer_sdp = sdp
                self.answers.append(sdp)

    def onCallMediaState(self, prm) -> None:
        # Called again after every re-INVITE; the stream's bridge port may be new.
        self.media_active = True
        self.media_changed = True


# DTMF (shared with tests/pstn/callee.py) ----------------------------------------------

DTMF_METHODS = {pj.PJSUA_DTMF_METHOD_RFC2833: "rfc4733", pj.PJSUA_DTMF_METHOD_SIP_INFO: "info"}


def dtmf_schedule(specs: list[str]) -> list[tuple[float, str, str]]:
    """`SECONDS:DIGITS[:info]` flags as (seconds, digits, method), soonest first."""
    out = []
    for spec in specs:
        at, digits, *method = spec.split(":")
        out.append((float(at), digits, method[0] if method else "rfc4733"))
    return sorted(out)


def send_dtmf(call: pj.Call, digits: str, method: str) -> None:
    """RFC 4733 telephone-events on the call's stream, or one SIP INFO per digit."""
    prm = pj.CallSendDtmfParam()
    prm.digits = digits
    prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO if method == "info" else pj.PJSUA_DTMF_METHOD_RFC2833
    call.sendDtmf(prm)


def dtmf_due(call: pj.Call, pending: list, since: float | None, sent: list) -> None:
    """Sends the scheduled digits whose time (seconds after `since`) has come."""
    while since is not None and pending and time.monotonic() - since >= pending[0][0]:
        _, digits, method = pending.pop(0)
        send_dtmf(call, digits, method)
        sent.append({"digits": digits, "method": method, "at": time.monotonic() - since})


def send_info(call: pj.Call, spec: str) -> None:
    """An INFO with `CONTENT-TYPE:BODY` of an `--info` flag in the call's dialog."""
    content_type, _, body = spec.partition(":")
    prm = pj.CallSendRequestParam()
    prm.method = "INFO"
    prm.txOption.contentType = content_type
    prm.txOption.msgBody = body
    call.sendRequest(prm)


def dtmf_heard(prm, since: float | None) -> dict:
    """A digit pjsua2 reports (`onDtmfDigit`), with how it came."""
    at = time.monotonic() - since if since is not None else -1.0
    return {"digit": prm.digit, "method": DTMF_METHODS.get(prm.method, str(prm.method)), "at": at}


def snapshot(call: JoinCall, out: dict, label: str, at: float) -> None:
    """Stream counters at `at` seconds after the media started (RFC 3550 §6.4 counts)."""
    snap = {"label": label, "at": at, "rx": -1, "tx": -1}
    if call.hasMedia():
        st = call.getStreamStat(0)
        snap["rx"] = st.rtcp.rxStat.pkt
        snap["tx"] = st.rtcp.txStat.pkt
    out["snapshots"].append(snap)


def connect_media(call: JoinCall, player, recorder) -> None:
    """Player -> call and call -> recorder on the conference bridge (connecting an already
    connected pair is a no-op)."""
    info = call.getInfo()  # kept alive: its media vector's items point into it
    for i in range(len(info.media)):
        media = info.media[i]
        if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status not in (
            pj.PJSUA_CALL_MEDIA_ACTIVE,
            pj.PJSUA_CALL_MEDIA_LOCAL_HOLD,
        ):
            continue
        aud = call.getAudioMedia(i)
        if player is not None:
            player.startTransmit(aud)
        if recorder is not None:
            aud.startTransmit(recorder)


def do_action(ep: pj.Endpoint, call: JoinCall, what: str) -> None:
    """Hold (RFC 3264 §8.4 a=sendonly), resume (a=sendrecv), a plain re-INVITE (pjsip
    re-offers the same key) or one with a new media transport (new port and SDES keys,
    RFC 4568 §7.1.4)."""
    prm = pj.CallOpParam(True)
    if what == "hold":
        call.setHold(prm)
    elif what == "unhold":
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        call.reinvite(prm)
    elif what == "reinvite":
        call.reinvite(prm)
    elif what.startswith("codec="):
        # Re-offer with only this codec (e.g. codec=PCMU/): a mid-call codec change.
        wanted = what.split("=", 1)[1]
        for c in ep.codecEnum2():
            ep.codecSetPriority(c.codecId, 200 if c.codecId.startswith(wanted) else 0)
        call.reinvite(prm)
    elif what == "reinit":
        # A new media transport: new local RTP port and new SDES keys in the offer.
        prm.opt.flag = pj.PJSUA_CALL_REINIT_MEDIA
        call.reinvite(prm)
    else:
        raise SystemExit(f"unknown action {what!r}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    out: dict = {
        "confirmed": False,
        "status": 0,
        "reason": "",
        "answer_sdp": "",
        "offer_sdp": "",
        "final_response": "",
        "offers": [],
        "answers": [],
        "remote_bye": "",
        "snapshots": [],
        "provisionals": [],
        "rx_at_answer": -1,
        "reinvites": [],
        "codec": "",
        "proto": "",
        "rx_packets": 0,
        "tx_packets": 0,
        "rx_bytes": 0,
        "crypto": [],
        "codecs": [],
        "dump": "",
        "error": "",
        "dtmf": [],
        "dtmf_sent": [],
        "info_responses": [],
    }
    ep = pj.Endpoint()
    ep.libCreate()
    try:
        run(ep, args, out)
    except pj.Error as e:  # pjsua2 raises its own Error type for every failed call
        out["error"] = f"{e.title}: {e.reason} ({e.status})"
    finally:
        print(json.dumps(out), flush=True)
        ep.libDestroy()
    return 0


def run(ep: pj.Endpoint, args: argparse.Namespace, out: dict) -> None:
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "pjsua2-e2e"
    cfg.logConfig.level = args.log_level
    cfg.logConfig.consoleLevel = 0 if args.log_file else 1
    if args.log_file:
        cfg.logConfig.filename = args.log_file
    cfg.medConfig.clockRate = 16000
    cfg.medConfig.sndClockRate = 16000
    cfg.medConfig.noVad = True
    ep.libInit(cfg)

    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = args.bind_host
    tcfg.publicAddress = args.bind_host
    if args.transport == "tls":
        tcfg.tlsConfig.CaListFile = args.ca or ""
        tcfg.tlsConfig.verifyServer = True
        tcfg.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tcfg)
    else:
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()

    available = [c.codecId for c in ep.codecEnum2()]
    out["codecs"] = available
    if args.codec:
        for cid in available:
            ep.codecSetPriority(cid, 200 if any(cid.startswith(w) for w in args.codec) else 0)

    acfg = pj.AccountConfig()
    acfg.idUri = args.from_uri
    acfg.sipConfig.proxies.append(args.proxy)
    acfg.sipConfig.transportId = tid
    acfg.mediaConfig.transportConfig.boundAddress = args.bind_host
    acfg.mediaConfig.transportConfig.publicAddress = args.bind_host
    acfg.mediaConfig.transportConfig.port = 0
    if args.session_expires:
        acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_ALWAYS
        acfg.callConfig.timerSessExpiresSec = args.session_expires
        acfg.callConfig.timerMinSESec = args.session_expires
    acfg.natConfig.iceEnabled = False
    acfg.natConfig.sdpNatRewriteUse = False
    acfg.natConfig.viaRewriteUse = False
    acfg.natConfig.contactRewriteUse = False
    acfg.natConfig.sipOutboundUse = False
    if args.suite:
        # SDES only (RFC 4568), the listed suites only; srtpSecureSignaling 0 lets the
        # UDP-signalled variants through too.
        acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
        acfg.mediaConfig.srtpSecureSignaling = 0
        opt = pj.SrtpOpt()
        cryptos = pj.SrtpCryptoVector()
        for name in args.suite:
            c = pj.SrtpCrypto()
            c.name = name
            cryptos.append(c)
        opt.cryptos = cryptos
        keyings = pj.IntVector()
        keyings.append(pj.PJMEDIA_SRTP_KEYING_SDES)
        opt.keyings = keyings
        acfg.mediaConfig.srtpOpt = opt
    else:
        acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_DISABLED
        acfg.mediaConfig.srtpSecureSignaling = 0
    acc = pj.Account()
    acc.create(acfg)

    player = None
    if args.play:
        player = pj.AudioMediaPlayer()
        player.createPlayer(args.play, 0)
    recorder = None
    if args.record:
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(args.record)

    early = None
    if args.record_early:
        early = pj.AudioMediaRecorder()
        early.createRecorder(args.record_early)

    call = JoinCall(acc)
    prm = pj.CallOpParam(True)
    call.makeCall(args.uri, prm)

    # Wait for the answer (or a final failure), bounded by --timeout; early media (a 18x
    # with SDP) goes to --record-early until then.
    early_media = None
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        ep.libHandleEvents(20)
        if call.state in (pj.PJSIP_INV_STATE_CONFIRMED, pj.PJSIP_INV_STATE_DISCONNECTED):
            break
        if early is not None and early_media is None and call.hasMedia():
            early_media = call.getAudioMedia(0)
            early_media.startTransmit(early)
    if early_media is not None and call.hasMedia():
        try:
            early_media.stopTransmit(early)
        except pj.Error:
            pass  # the stream was replaced by the answer's: no longer connected
    out["confirmed"] = call.state == pj.PJSIP_INV_STATE_CONFIRMED
    if out["confirmed"]:
        actions = sorted(
            (float(t), what) for t, what in (a.split(":", 1) for a in args.action)
        )
        connected_at = None
        digits = dtmf_schedule(args.dtmf)
        infos = sorted((float(t), rest) for t, rest in (i.split(":", 1) for i in args.info))
        end = time.monotonic() + args.duration
        while time.monotonic() < end:
            ep.libHandleEvents(10)
            if call.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                break
            if call.media_changed and call.hasMedia():
                call.media_changed = False
                connect_media(call, player, recorder)
                if connected_at is None:
                    connected_at = call.media_at = time.monotonic()
                    snapshot(call, out, "start", 0.0)
                    if args.ready_file:
                        with open(args.ready_file, "w") as f:
                            f.write("media\n")
            if connected_at is not None and actions and time.monotonic() - connected_at >= actions[0][0]:
                _, what = actions.pop(0)
                snapshot(call, out, what, time.monotonic() - connected_at)
                do_action(ep, call, what)
            dtmf_due(call, digits, connected_at, out["dtmf_sent"])
            if connected_at is not None and infos and time.monotonic() - connected_at >= infos[0][0]:
                send_info(call, infos.pop(0)[1])
        if connected_at is not None:
            snapshot(call, out, "end", time.monotonic() - connected_at)
        if call.hasMedia():
            si = call.getStreamInfo(0)
            out["codec"] = f"{si.codecName}/{si.codecClockRate}"
            out["proto"] = si.proto
            st = call.getStreamStat(0)
            out["rx_packets"] = st.rtcp.rxStat.pkt
            out["rx_bytes"] = st.rtcp.rxStat.bytes
            out["tx_packets"] = st.rtcp.txStat.pkt
            out["dump"] = call.dump(True, "")
        if call.state != pj.PJSIP_INV_STATE_DISCONNECTED:
            call.hangup(pj.CallOpParam(True))
        end = time.monotonic() + 3.0
        while time.monotonic() < end and call.state != pj.PJSIP_INV_STATE_DISCONNECTED:
            ep.libHandleEvents(20)
    elif call.state != pj.PJSIP_INV_STATE_DISCONNECTED:
        call.hangup(pj.CallOpParam(True))
        end = time.monotonic() + 2.0
        while time.monotonic() < end and call.state != pj.PJSIP_INV_STATE_DISCONNECTED:
            ep.libHandleEvents(20)

    out["status"] = call.status
    out["reason"] = call.reason
    out["answer_sdp"] = call.answer_sdp
    out["offer_sdp"] = call.offer_sdp
    out["final_response"] = call.final_response
    out["offers"] = call.offers
    out["remote_bye"] = call.remote_bye
    out["answers"] = call.answers
    out["provisionals"] = call.provisionals
    out["rx_at_answer"] = call.rx_at_answer
    out["reinvites"] = call.reinvites
    out["dtmf"] = call.dtmf
    out["info_responses"] = call.info_responses
    out["crypto"] = [
        line[len("a=crypto:"):].strip()
        for line in call.answer_sdp.splitlines()
        if line.startswith("a=crypto:")
    ]
    # Release media ports before the library goes away (recorder closes its WAV here).
    if recorder is not None:
        del recorder
    if early is not None:
        del early
    if player is not None:
        del player
    del call
    acc.shutdown()
    ep.libHandleEvents(50)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
