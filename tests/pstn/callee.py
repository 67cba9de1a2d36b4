#!/usr/bin/env python3
"""One pjsua2 (pjsip) callee standing in for a carrier's SIP trunk: it listens on
`--bind 127.0.0.x:PORT` (UDP), rings (180) on the first INVITE, answers it after
`--answer-after` seconds with `--status` (200, or 486/503/...; `--never-answer` keeps
ringing until a CANCEL), offers only the `--codec` codecs, plays a WAV into the call, records
what it hears, and after `--duration` seconds in the call hangs up (BYE) unless the other
side did first. Run one per process (pjlib does not like a second Endpoint in one process).

It prints one JSON object on stdout when done (the call ended, `--timeout` passed, or
SIGTERM/SIGINT came):

    {"listening": "127.0.0.2:5060",
     "invite": {"request_uri": str, "from": str, "to": str, "call_id": str,
                "headers": [[name, value], ...], "raw": str} | null,
     "invites": [{"request_uri", "call_id", "at"} for every INVITE that made a call,
                 the ones after the first refused 486],
     "offer_sdp": str, "answer_sdp": str, "answered": int (the final status we sent, 0 none),
     "confirmed": bool (the ACK of our 200 came), "codec": "PCMU/8000", "proto": "RTP/AVP",
     "rx_packets": int, "tx_packets": int, "rx_bytes": int,
     "ended": "bye-received" | "bye-sent" | "cancelled" | "refused" | "no-invite" |
              "timeout" | "signal" | "disconnected",
     "bye_from": "remote" | "callee" | "", "remote_bye": str, "cancel": str,
     "invite_at": epoch s, "confirmed_at": epoch s, "ended_at": epoch s,
     "last_status": int, "last_reason": str, "dump": str, "error": str,
     "dtmf": [{"digit", "method": "rfc4733"|"info", "at": s after the ACK}] (digits heard),
     "dtmf_sent": [{"digits", "method", "at"}] (`--dtmf`)}

All pjsua2 work runs on the main thread: threadCnt = 0 and `libHandleEvents` polling.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import pjsua2 as pj

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pjsua2"))
from caller import connect_media  # noqa: E402  (player -> call, call -> recorder)
from caller import dtmf_due, dtmf_heard, dtmf_schedule  # noqa: E402  (--dtmf, onDtmfDigit)

#: RFC 3261 §7.3.3 compact header names, as full names.
COMPACT = {
    "f": "From", "t": "To", "i": "Call-ID", "m": "Contact", "v": "Via", "l": "Content-Length",
    "c": "Content-Type", "k": "Supported", "s": "Subject", "e": "Content-Encoding",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bind", required=True, help="HOST:PORT of the SIP/UDP listener, e.g. 127.0.0.2:5060")
    p.add_argument("--answer-after", type=float, default=0.5, help="seconds from the INVITE to the final answer")
    p.add_argument("--status", type=int, default=200, help="final status of the answer (200, 486, 503, ...)")
    p.add_argument("--reason", default="", help="reason phrase of a non-2xx answer")
    p.add_argument("--never-answer", action="store_true", help="ring (180) until CANCEL or --timeout")
    p.add_argument("--codec", action="append", default=[], help="only these codec ids, e.g. PCMU/8000")
    p.add_argument("--play", help="WAV file played into the call (looped)")
    p.add_argument("--record", help="WAV file that receives what the callee hears")
    p.add_argument("--duration", type=float, default=4.0, help="seconds in the call after the ACK, then BYE")
    p.add_argument("--timeout", type=float, default=60.0, help="upper bound of the whole run (s)")
    p.add_argument(
        "--dtmf",
        action="append",
        default=[],
        help="SECONDS:DIGITS[:info] sent SECONDS after the ACK, as RFC 4733 events or SIP INFO (repeatable)",
    )
    p.add_argument("--ready-file", help="created once the SIP listener is up")
    p.add_argument("--log-level", type=int, default=3)
    p.add_argument("--log-file", default="")
    args = p.parse_args(argv)
    host, _, port = args.bind.rpartition(":")
    if not host or not port.isdigit():
        p.error(f"--bind {args.bind!r} is not HOST:PORT")
    args.host, args.port = host, int(port)
    return args


def parse_request(msg: str) -> dict:
    """The request line's URI and the headers (unfolded, compact names expanded, RFC 3261
    §7.3.1) of a SIP request as received."""
    head, _, _ = msg.partition("\r\n\r\n")
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    headers: list[list[str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1][1] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        name = name.strip()
        headers.append([COMPACT.get(name.lower(), name), value.strip()])

    def first(name: str) -> str:
        return next((v for n, v in headers if n.lower() == name.lower()), "")

    return {
        "request_uri": parts[1] if len(parts) > 2 else "",
        "from": first("From"),
        "to": first("To"),
        "call_id": first("Call-ID"),
        "headers": headers,
        "raw": msg,
    }


def media_proto(sdp: str) -> str:
    """The transport of the audio m= line (RFC 4566 §5.14), e.g. RTP/AVP."""
    for line in sdp.splitlines():
        if line.startswith("m=audio "):
            fields = line.split()
            return fields[2] if len(fields) > 2 else ""
    return ""


class CalleeCall(pj.Call):
    """An incoming call; keeps the BYE or CANCEL that ended it and its last stream counters
    (pjsip frees the stream before the DISCONNECTED callback)."""

    def __init__(self, acc: pj.Account, call_id: int):
        super().__init__(acc, call_id)
        self.state = pj.PJSIP_INV_STATE_NULL
        self.status = 0
        self.reason = ""
        self.answer_sdp = ""
        self.remote_bye = ""
        self.cancel = ""
        self.media_changed = False
        self.stats = {"rx_packets": 0, "tx_packets": 0, "rx_bytes": 0, "codec": "", "proto": "", "dump": ""}
        self.dtmf: list[dict] = []
        self.confirmed_at: float | None = None

    def onDtmfDigit(self, prm) -> None:
        self.dtmf.append(dtmf_heard(prm, self.confirmed_at))

    def onCallState(self, prm) -> None:
        ci = self.getInfo()
        self.state = ci.state
        self.status = ci.lastStatusCode
        self.reason = ci.lastReason

    def onCallSdpCreated(self, prm) -> None:
        # For an incoming call with an offer, the SDP created here is our answer.
        self.answer_sdp = prm.sdp.wholeSdp

    def onCallTsxState(self, prm) -> None:
        ev = prm.e
        if ev.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        body = ev.body.tsxState
        if body.type != pj.PJSIP_EVENT_RX_MSG:
            return
        msg = body.src.rdata.wholeMsg
        if body.tsx.method == "BYE" and msg.startswith("BYE "):
            self.remote_bye = msg
        elif body.tsx.method == "CANCEL" and msg.startswith("CANCEL "):
            self.cancel = msg

    def onCallMediaState(self, prm) -> None:
        self.media_changed = True

    def keep_stats(self, dump: bool = False) -> None:
        """Copies the stream's counters (RFC 3550 §6.4) while the stream exists; with
        `dump`, pjsip's call dump too."""
        if not self.hasMedia():
            return
        if dump:
            self.stats["dump"] = self.dump(True, "")
        si = self.getStreamInfo(0)
        st = self.getStreamStat(0)
        self.stats.update(
            codec=f"{si.codecName}/{si.codecClockRate}",
            proto=media_proto(self.answer_sdp),
            rx_packets=st.rtcp.rxStat.pkt,
            tx_packets=st.rtcp.txStat.pkt,
            rx_bytes=st.rtcp.rxStat.bytes,
        )


class Trunk(pj.Account):
    """The carrier's account: the first INVITE becomes `call`; any other INVITE while it
    lives is refused 486 (and listed)."""

    def __init__(self):
        super().__init__()
        self.call: CalleeCall | None = None
        self.invite: dict | None = None
        self.invites: list[dict] = []
        self.invite_at = 0.0
        self.extra: list[CalleeCall] = []

    def onIncomingCall(self, prm) -> None:
        req = parse_request(prm.rdata.wholeMsg)
        self.invites.append({"request_uri": req["request_uri"], "call_id": req["call_id"], "at": time.time()})
        call = CalleeCall(self, prm.callId)
        if self.call is not None:
            op = pj.CallOpParam(True)
            op.statusCode = 486
            op.reason = "Busy Here (one call per callee)"
            call.hangup(op)
            self.extra.append(call)
            return
        self.call, self.invite, self.invite_at = call, req, time.time()
        op = pj.CallOpParam(True)
        op.statusCode = 180
        call.answer(op)


#: pjsua's NAT helpers, all off: every address here is on 127.0.0.0/8 as bound.
NAT_HELPERS = ("iceEnabled", "sdpNatRewriteUse", "viaRewriteUse", "contactRewriteUse", "sipOutboundUse")

STOP = {"signal": False}


def on_signal(signum, frame) -> None:
    STOP["signal"] = True


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    out: dict = {
        "listening": args.bind, "invite": None, "invites": [], "offer_sdp": "", "answer_sdp": "",
        "answered": 0, "confirmed": False, "codec": "", "proto": "", "rx_packets": 0, "tx_packets": 0,
        "rx_bytes": 0, "ended": "", "bye_from": "", "remote_bye": "", "cancel": "", "invite_at": 0.0,
        "confirmed_at": 0.0, "ended_at": 0.0, "last_status": 0, "last_reason": "", "dump": "", "error": "",
        "dtmf": [], "dtmf_sent": [],
    }
    ep = pj.Endpoint()
    ep.libCreate()
    try:
        run(ep, args, out)
    except pj.Error as e:  # pjsua2 raises its own Error type for every failed call
        out["error"] = f"{e.title}: {e.reason} ({e.status})"
    finally:
        # From here a SIGTERM has nothing left to stop; ignored, it cannot kill the
        # interpreter mid-exit either (Python restores the default action at finalization).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        out["ended_at"] = out["ended_at"] or time.time()
        print(json.dumps(out), flush=True)
        ep.libDestroy()
    return 0


def setup(ep: pj.Endpoint, args: argparse.Namespace) -> Trunk:
    """Endpoint, the UDP listener on --bind, codecs, and the account taking every call."""
    cfg = pj.EpConfig()
    ua, log, med = cfg.uaConfig, cfg.logConfig, cfg.medConfig
    ua.threadCnt, ua.mainThreadOnly, ua.userAgent = 0, True, "pjsua2-carrier-e2e"
    log.level, log.consoleLevel, log.filename = args.log_level, (0 if args.log_file else 1), args.log_file
    med.clockRate = med.sndClockRate = 16000  # the bridge runs wideband; PCMU is resampled
    med.noVad = True
    ep.libInit(cfg)

    tcfg = pj.TransportConfig()
    tcfg.port = args.port
    tcfg.boundAddress = args.host
    tcfg.publicAddress = args.host
    tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()

    if args.codec:
        for c in ep.codecEnum2():
            ep.codecSetPriority(c.codecId, 200 if any(c.codecId.startswith(w) for w in args.codec) else 0)

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:carrier@{args.host}:{args.port}"
    acfg.sipConfig.transportId = tid
    acfg.mediaConfig.transportConfig.boundAddress = args.host
    acfg.mediaConfig.transportConfig.publicAddress = args.host
    acfg.mediaConfig.transportConfig.port = 0
    acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_DISABLED
    acfg.mediaConfig.srtpSecureSignaling = 0
    for name in NAT_HELPERS:
        setattr(acfg.natConfig, name, False)
    acc = Trunk()
    acc.create(acfg, True)
    return acc


def run(ep: pj.Endpoint, args: argparse.Namespace, out: dict) -> None:
    acc = setup(ep, args)
    player = recorder = None
    if args.play:  # looped WAV into the call
        (player := pj.AudioMediaPlayer()).createPlayer(args.play, 0)
    if args.record:  # what the callee hears, to WAV
        (recorder := pj.AudioMediaRecorder()).createRecorder(args.record)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("listening\n")

    deadline = time.monotonic() + args.timeout
    out["ended"] = drive(ep, acc, args, out, deadline, player, recorder)

    call = acc.call
    if call is not None:
        call.keep_stats(dump=True)
        out.update(call.stats)
        if call.state != pj.PJSIP_INV_STATE_DISCONNECTED:
            op = pj.CallOpParam(True)
            if not out["answered"]:
                # Still ringing at the end of the run: a final answer ends the INVITE.
                op.statusCode = 480
                out["answered"] = 480
            else:
                out["bye_from"] = out["bye_from"] or "callee"
            call.hangup(op)
            end = time.monotonic() + 3.0
            while time.monotonic() < end and call.state != pj.PJSIP_INV_STATE_DISCONNECTED:
                ep.libHandleEvents(20)
        out["answer_sdp"] = call.answer_sdp if out["answered"] and out["answered"] < 300 else ""
        out["remote_bye"] = call.remote_bye
        out["cancel"] = call.cancel
        out["last_status"] = call.status
        out["last_reason"] = call.reason
        out["dtmf"] = call.dtmf
    out["invite"] = acc.invite
    out["invites"] = acc.invites
    out["invite_at"] = acc.invite_at
    if acc.invite is not None:
        raw = acc.invite["raw"]
        out["offer_sdp"] = raw.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in raw else ""
    # Release media ports before the library goes away (the recorder closes its WAV here).
    if recorder is not None:
        del recorder
    if player is not None:
        del player
    acc.call = None
    acc.extra.clear()
    acc.shutdown()
    ep.libHandleEvents(50)


def drive(ep, acc: Trunk, args, out: dict, deadline: float, player, recorder) -> str:
    """Polls pjsip until the call has ended, the run's deadline passed or a signal came;
    answers and hangs up on schedule. Returns how the run ended (see the module doc)."""
    answer_at = hangup_at = None
    digits = dtmf_schedule(args.dtmf)
    while True:
        ep.libHandleEvents(10)
        if STOP["signal"]:
            return "signal"
        if time.monotonic() > deadline:
            return "timeout" if acc.call is not None else "no-invite"
        call = acc.call
        if call is None:
            continue
        now = time.monotonic()
        if answer_at is None and not out["answered"]:
            answer_at = now + args.answer_after
        if not args.never_answer and not out["answered"] and now >= answer_at:
            if call.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                return "cancelled" if call.cancel or call.status == 487 else "disconnected"
            op = pj.CallOpParam(True)
            op.statusCode = args.status
            if args.reason:
                op.reason = args.reason
            if args.status < 300:
                call.answer(op)
            else:
                call.hangup(op)
            out["answered"] = args.status
        if call.media_changed and call.hasMedia():
            call.media_changed = False
            connect_media(call, player, recorder)
        if call.state == pj.PJSIP_INV_STATE_CONFIRMED and not out["confirmed"]:
            out["confirmed"] = True
            out["confirmed_at"] = time.time()
            call.confirmed_at = now
            hangup_at = now + args.duration
        if out["confirmed"]:
            call.keep_stats()
            if call.state == pj.PJSIP_INV_STATE_CONFIRMED:
                dtmf_due(call, digits, call.confirmed_at, out["dtmf_sent"])
        if call.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            out["ended_at"] = time.time()
            if call.remote_bye:
                out["bye_from"] = "remote"
                return "bye-received"
            if out["confirmed"]:
                return "disconnected"
            if out["answered"] >= 300:
                return "refused"
            return "cancelled" if call.cancel or call.status == 487 else "disconnected"
        if hangup_at is not None and now >= hangup_at:
            call.keep_stats(dump=True)
            out["bye_from"] = "callee"
            call.hangup(pj.CallOpParam(True))
            hangup_at = None
            end = time.monotonic() + 3.0
            while time.monotonic() < end and call.state != pj.PJSIP_INV_STATE_DISCONNECTED:
                ep.libHandleEvents(20)
            out["ended_at"] = time.time()
            return "bye-sent"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
