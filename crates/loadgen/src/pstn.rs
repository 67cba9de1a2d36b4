//! PSTN mode (`--pstn SERVER`): the generator is both ends of calls through a B2BUA or a
//! proxy. As the PBX it INVITEs `sip:+1…@<uri host>` through SERVER with a plain-RTP offer
//! in `--codec`; as the carrier it listens on `--carrier` (an address of 127.0.0.0/8 the
//! server knows as a carrier trunk, or the Request-URI host a proxy relays to) and answers
//! every INVITE 200 with `--carrier-codec`. Both legs of every call then send a tone at
//! 50 packets/s on the shared schedule and account what arrives from the other side (loss
//! and lateness per leg, [`crate::stats`]), so the relay in the middle is measured both
//! ways. Plain RTP, because that is what a carrier trunk and an RTP relay carry.
//!
//! One fixed run: place `legs` calls at `cps`, wait until they are answered, warm up,
//! measure for `duration`, BYE every call from the PBX side (paced) and wait for both
//! sides to end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use codec::Codec;
use sdp::negotiate::{LocalTransport, MediaConfig, MediaSession, NegotiatedAudio};
use sip::{
    Body, CallKey, HeaderName, Message, OutgoingCall, Peer, TerminationReason, TransportKind,
    UaEvent, UserAgent,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::media::{
    self, PHASE_DONE, PHASE_MEASURE, PHASE_WARMUP, Payloads, RxResult, RxSettings, SendLeg,
    SenderMsg,
};
use crate::pacing::Paced;
use crate::report::{self, Sampler};
use crate::run::RunError;
use crate::stats::Histogram;
use crate::uac::{ByeState, caller_event, not_hung_up, transmit, ua_config};

/// The tone the PBX plays (index into [`media::tone_hz`]) and the carrier's.
const PBX_TONE: usize = 0;
const CARRIER_TONE: usize = 1;

/// Settings of a PSTN run.
#[derive(Clone, Debug)]
pub struct PstnOptions {
    /// Where the PBX sends its INVITEs (the B2BUA, or the proxy).
    pub server: SocketAddr,
    /// The carrier's SIP address (we listen on it).
    pub carrier: SocketAddr,
    /// The Request-URI host; `None`: the carrier's address (for a proxy that relays by
    /// Request-URI).
    pub uri_host: Option<String>,
    /// The PBX's address (SIP and RTP).
    pub pbx_ip: IpAddr,
    /// The caller's number (From user).
    pub from: String,
    /// The PBX leg's codec.
    pub pbx_codec: Codec,
    /// The carrier leg's codec.
    pub carrier_codec: Codec,
    /// How many calls, how fast, measured how long.
    pub load: crate::plan::Load,
}

/// The dialled number of call `i`: +1 415 555 0000 + i (US, inside every test's calling
/// region, one carrier prefix +1).
fn number(i: u64) -> String {
    format!("+1415555{:04}", i % 10_000)
}

/// Plain RTP with exactly `codec`, no telephone-event, rtcp-mux offered and accepted.
pub(crate) fn plain_config(codec: Codec) -> MediaConfig {
    MediaConfig {
        codecs: vec![codec],
        srtp_suites: vec![],
        require_srtp: false,
        srtp_on_avp: false,
        offer_srtp: false,
        telephone_event: false,
        rtcp_mux: true,
        ..MediaConfig::default()
    }
}

/// One leg's media while it runs: stop signal and receiver.
type LegMedia = (oneshot::Sender<()>, JoinHandle<RxResult>);

struct PbxCall {
    id: u64,
    session: MediaSession,
    sock: Arc<UdpSocket>,
    invited: Instant,
    answered: bool,
    media: Option<LegMedia>,
    bye: ByeState,
}

#[derive(Default)]
struct Counters {
    attempted: u64,
    answered: u64,
    failed: BTreeMap<u16, u64>,
    pbx_other_end: BTreeMap<String, u64>,
    bad_answer: u64,
    carrier_invites: u64,
    carrier_answered: u64,
    carrier_refused: u64,
    carrier_other_end: BTreeMap<String, u64>,
    setup: Histogram,
    bye_pending: HashSet<String>,
    no_kernel_timestamps: u64,
}

struct Runner {
    opts: PstnOptions,
    pbx: UserAgent,
    pbx_sip: UdpSocket,
    pbx_peer: Peer,
    carrier: UserAgent,
    carrier_sip: UdpSocket,
    carrier_peer: Peer,
    pbx_calls: HashMap<CallKey, PbxCall>,
    carrier_calls: HashMap<CallKey, (u64, Option<LegMedia>)>,
    pbx_done: Vec<JoinHandle<RxResult>>,
    carrier_done: Vec<JoinHandle<RxResult>>,
    counters: Counters,
    next_id: u64,
    phase: Arc<AtomicU8>,
    sender: mpsc::UnboundedSender<SenderMsg>,
    pbx_payloads: Arc<Payloads>,
    carrier_payloads: Arc<Payloads>,
    byes: Paced<CallKey>,
    origin: Instant,
    origin_wall: Option<Duration>,
}

/// The Call-ID of a final answer to a BYE.
pub(crate) fn bye_answered(bytes: &[u8]) -> Option<String> {
    let Ok(Message::Response(r)) = sip::parse_datagram(bytes, &sip::ParseLimits::default()) else {
        return None;
    };
    let is_bye = r.headers.cseq().is_some_and(|cs| cs.method == "BYE");
    (is_bye && r.status >= 200)
        .then(|| r.headers.get(HeaderName::CallId).map(str::to_string))
        .flatten()
}

pub(crate) fn bind_rtp(ip: IpAddr) -> Result<Arc<UdpSocket>, RunError> {
    let std_sock = std::net::UdpSocket::bind((ip, 0))?;
    std_sock.set_nonblocking(true)?;
    Ok(Arc::new(UdpSocket::from_std(std_sock)?))
}

pub(crate) fn local_transport(sock: &UdpSocket) -> Result<LocalTransport, RunError> {
    let a = sock.local_addr()?;
    Ok(LocalTransport {
        address: a.ip(),
        rtp_port: a.port(),
        rtcp_port: None,
    })
}

impl Runner {
    /// Starts one leg's sending and receiving; `None` when the negotiated stream has no
    /// usable remote address.
    fn start_media(
        &mut self,
        sock: &Arc<UdpSocket>,
        audio: &NegotiatedAudio,
        carrier_side: bool,
    ) -> Option<LegMedia> {
        let remote = audio.remote_rtp.socket_addr()?;
        self.next_id += 1;
        let id = self.next_id;
        if !media::enable_rx_timestamps(sock) {
            self.counters.no_kernel_timestamps += 1;
        }
        let settings = RxSettings {
            clock_rate: audio.clock_rate,
            late_after: self.opts.load.late_after,
            drop_every: 0,
            origin: self.origin,
            origin_wall: self.origin_wall,
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let handle = tokio::spawn(media::run_receiver(
            sock.clone(),
            None,
            settings,
            self.phase.clone(),
            stop_rx,
        ));
        let (payloads, tone) = if carrier_side {
            (self.carrier_payloads.clone(), CARRIER_TONE)
        } else {
            (self.pbx_payloads.clone(), PBX_TONE)
        };
        let _ = self.sender.send(SenderMsg::Add(Box::new(SendLeg {
            id,
            sock: sock.clone(),
            remote,
            srtp: None,
            payloads,
            payload_type: audio.payload_type,
            ssrc: rand::random(),
            ts_step: audio.clock_rate * codec::FRAME_MS / 1000,
            tone,
            seq: rand::random(),
            ts: rand::random(),
            frames: 0,
        })));
        Some((stop_tx, handle))
    }

    /// Ends a leg's media: the sender forgets it, its receiver's result is kept.
    fn stop_media(&mut self, id: u64, media: Option<LegMedia>, carrier_side: bool) {
        let _ = self.sender.send(SenderMsg::Remove(id));
        if let Some((stop, handle)) = media {
            let _ = stop.send(());
            if carrier_side {
                self.carrier_done.push(handle);
            } else {
                self.pbx_done.push(handle);
            }
        }
    }

    fn place(&mut self, now: Instant, i: u64) -> Result<(), RunError> {
        let sock = bind_rtp(self.opts.pbx_ip)?;
        let mut session = MediaSession::new(
            plain_config(self.opts.pbx_codec),
            local_transport(&sock)?,
            rand::random(),
        );
        let offer = session.create_offer().to_bytes();
        let host = self
            .opts
            .uri_host
            .clone()
            .unwrap_or_else(|| self.opts.carrier.to_string());
        let num = number(i);
        let Ok(target) = sip::Uri::parse(&format!("sip:{num}@{host}")) else {
            *self
                .counters
                .pbx_other_end
                .entry("bad Request-URI".into())
                .or_default() += 1;
            return Ok(());
        };
        let call = OutgoingCall {
            target,
            from: format!("<sip:{}@{}>", self.opts.from, self.opts.pbx_ip),
            to: format!("<sip:{num}@{host}>"),
            body: Some(Body::sdp(offer)),
            headers: vec![],
            credentials: None,
        };
        self.counters.attempted += 1;
        match self.pbx.invite(now, self.pbx_peer, call) {
            Ok(key) => {
                self.pbx_calls.insert(
                    key,
                    PbxCall {
                        id: 0,
                        session,
                        sock,
                        invited: now,
                        answered: false,
                        media: None,
                        bye: ByeState::default(),
                    },
                );
            }
            Err(_) => {
                *self
                    .counters
                    .pbx_other_end
                    .entry("invite refused by UA".into())
                    .or_default() += 1;
            }
        }
        Ok(())
    }

    fn pbx_answered(&mut self, now: Instant, key: CallKey, response: &sip::Response) {
        let Some(mut call) = self.pbx_calls.remove(&key) else {
            return;
        };
        call.answered = true;
        call.bye.call_id = response.headers.get(HeaderName::CallId).map(str::to_string);
        self.counters.answered += 1;
        self.counters
            .setup
            .record(now.saturating_duration_since(call.invited));
        let media = match call.session.accept_answer_body(&response.body) {
            Ok(audio) => self.start_media(&call.sock, &audio, false),
            Err(_) => None,
        };
        if let Some(m) = media {
            call.id = self.next_id;
            call.media = Some(m);
        } else {
            self.counters.bad_answer += 1;
            call.bye.sent = true;
            let _ = self.pbx.hangup(now, key);
        }
        self.pbx_calls.insert(key, call);
    }

    fn carrier_invite(
        &mut self,
        now: Instant,
        key: CallKey,
        request: &sip::Request,
    ) -> Result<(), RunError> {
        self.counters.carrier_invites += 1;
        let sock = bind_rtp(self.opts.carrier.ip())?;
        let mut session = MediaSession::new(
            plain_config(self.opts.carrier_codec),
            local_transport(&sock)?,
            rand::random(),
        );
        let answer = match session.answer_body(&request.body) {
            Ok(a) => a,
            Err(_) => {
                self.counters.carrier_refused += 1;
                let _ = self.carrier.answer(now, key, 488, None);
                return Ok(());
            }
        };
        let Some(media) = self.start_media(&sock, &answer.audio, true) else {
            self.counters.carrier_refused += 1;
            let _ = self.carrier.answer(now, key, 488, None);
            return Ok(());
        };
        let id = self.next_id;
        let body = Body::sdp(answer.sdp.to_bytes());
        if self.carrier.answer(now, key, 200, Some(body)).is_ok() {
            self.counters.carrier_answered += 1;
            self.carrier_calls.insert(key, (id, Some(media)));
        } else {
            self.counters.carrier_refused += 1;
            self.stop_media(id, Some(media), true);
        }
        Ok(())
    }

    fn pbx_terminated(&mut self, key: CallKey, reason: TerminationReason) {
        let Some(call) = self.pbx_calls.remove(&key) else {
            return;
        };
        self.stop_media(call.id, call.media, false);
        match reason {
            TerminationReason::Failed(s) => *self.counters.failed.entry(s).or_default() += 1,
            TerminationReason::LocalBye => {}
            other => {
                *self
                    .counters
                    .pbx_other_end
                    .entry(format!("{other:?}"))
                    .or_default() += 1
            }
        }
    }

    fn carrier_terminated(&mut self, key: CallKey, reason: TerminationReason) {
        if let Some((id, media)) = self.carrier_calls.remove(&key) {
            self.stop_media(id, media, true);
        }
        if reason != TerminationReason::RemoteBye {
            *self
                .counters
                .carrier_other_end
                .entry(format!("{reason:?}"))
                .or_default() += 1;
        }
    }

    /// BYEs paced at `per_s` from the queue filled by [`Runner::hangup_all`].
    fn drain_hangups(&mut self, now: Instant, per_s: f64) {
        for key in self.byes.due(now, per_s) {
            if let Some(call) = self.pbx_calls.get_mut(&key) {
                call.bye
                    .send(&mut self.pbx, now, key, &mut self.counters.bye_pending);
            }
        }
    }

    fn hangup_all(&mut self) {
        self.byes.extend(not_hung_up(&self.pbx_calls, |c| &c.bye));
    }

    async fn flush(&mut self, now: Instant) -> Result<(), RunError> {
        for _ in 0..2 {
            transmit(&mut self.pbx, &self.pbx_sip).await;
            transmit(&mut self.carrier, &self.carrier_sip).await;
            while let Some(ev) = self.pbx.poll_event() {
                match caller_event(&mut self.pbx, now, ev) {
                    Some(UaEvent::Answered { call, response }) => {
                        self.pbx_answered(now, call, &response)
                    }
                    Some(UaEvent::Terminated { call, reason }) => self.pbx_terminated(call, reason),
                    _ => {}
                }
            }
            while let Some(ev) = self.carrier.poll_event() {
                match ev {
                    UaEvent::IncomingCall { call, request, .. } => {
                        self.carrier_invite(now, call, &request)?
                    }
                    UaEvent::Terminated { call, reason } => self.carrier_terminated(call, reason),
                    UaEvent::Request { txn, request, .. }
                    | UaEvent::OutOfDialogRequest { txn, request, .. } => {
                        // OPTIONS keep-alives, in-dialog refreshes: 200.
                        let r = sip::Response::for_request(&request, 200);
                        let _ = self.carrier.respond_request(now, txn, r);
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// Runs the PSTN mode and returns the report (JSON).
pub async fn run(opts: PstnOptions) -> Result<serde_json::Value, RunError> {
    let pbx_sip = UdpSocket::bind((opts.pbx_ip, 0)).await?;
    let carrier_sip = UdpSocket::bind(opts.carrier).await?;
    let pbx_peer = Peer {
        transport: TransportKind::Udp,
        local: pbx_sip.local_addr()?,
        remote: opts.server,
    };
    let carrier_peer = Peer {
        transport: TransportKind::Udp,
        local: carrier_sip.local_addr()?,
        remote: opts.server,
    };
    let phase = Arc::new(AtomicU8::new(PHASE_WARMUP));
    let (sender_tx, sender_rx) = mpsc::unbounded_channel();
    let (sender_stop_tx, sender_stop_rx) = oneshot::channel();
    let sender = tokio::spawn(media::run_sender(
        opts.load.slots,
        sender_rx,
        sender_stop_rx,
        phase.clone(),
    ));
    let mut r = Runner {
        pbx: UserAgent::new(ua_config(), rand::random()),
        pbx_sip,
        pbx_peer,
        carrier: UserAgent::new(ua_config(), rand::random()),
        carrier_sip,
        carrier_peer,
        pbx_calls: HashMap::new(),
        carrier_calls: HashMap::new(),
        pbx_done: Vec::new(),
        carrier_done: Vec::new(),
        counters: Counters::default(),
        next_id: 0,
        phase: phase.clone(),
        sender: sender_tx,
        pbx_payloads: Arc::new(Payloads::new(opts.pbx_codec)?),
        carrier_payloads: Arc::new(Payloads::new(opts.carrier_codec)?),
        byes: Paced::new(Instant::now()),
        origin: Instant::now(),
        origin_wall: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok(),
        opts: opts.clone(),
    };
    let start = Instant::now();
    let rate = opts.load.cps.max(0.1);
    let to_offer = opts.load.legs as u64;
    let setup_deadline =
        start + Duration::from_secs_f64(to_offer as f64 / rate) + Duration::from_secs(30);
    let mut offered: u64 = 0;
    let mut warmup_until: Option<Instant> = None;
    let mut measure: Option<(Instant, Instant)> = None;
    let mut finish_deadline: Option<Instant> = None;
    let mut sampler = Sampler::new(start, opts.load.watch_pids.clone());
    let mut pbx_buf = vec![0u8; 65536];
    let mut carrier_buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        while offered < to_offer && start + Duration::from_secs_f64(offered as f64 / rate) <= now {
            r.place(now, offered)?;
            offered += 1;
        }
        let settled = offered >= to_offer && r.pbx_calls.values().all(|c| c.answered);
        if warmup_until.is_none() && (settled || now >= setup_deadline) {
            warmup_until = Some(now + opts.load.warmup);
        }
        if measure.is_none() && warmup_until.is_some_and(|w| now >= w) {
            phase.store(PHASE_MEASURE, Ordering::Relaxed);
            measure = Some((now, now + opts.load.duration));
        }
        if finish_deadline.is_none() && measure.is_some_and(|(_, end)| now >= end) {
            phase.store(PHASE_DONE, Ordering::Relaxed);
            r.hangup_all();
            finish_deadline = Some(
                now + Duration::from_secs_f64(to_offer as f64 / rate) + Duration::from_secs(15),
            );
        }
        r.drain_hangups(now, rate.max(50.0));
        let all_ended = r.pbx_calls.is_empty() && r.carrier_calls.is_empty();
        if finish_deadline.is_some_and(|d| now >= d)
            || (finish_deadline.is_some() && all_ended && r.counters.bye_pending.is_empty())
        {
            break;
        }
        sampler.tick(now, phase.load(Ordering::Relaxed) == PHASE_MEASURE);
        let mut wake = now + Duration::from_millis(20);
        for t in [r.pbx.poll_timeout(), r.carrier.poll_timeout()]
            .into_iter()
            .flatten()
        {
            wake = wake.min(t);
        }
        tokio::select! {
            res = r.pbx_sip.recv_from(&mut pbx_buf) => {
                if let Ok((n, from)) = res {
                    let bytes = pbx_buf.get(..n).unwrap_or(&[]);
                    if let Some(id) = bye_answered(bytes) {
                        r.counters.bye_pending.remove(&id);
                    }
                    let peer = Peer { remote: from, ..r.pbx_peer };
                    let _ = r.pbx.handle_datagram(Instant::now(), bytes, peer);
                }
            }
            res = r.carrier_sip.recv_from(&mut carrier_buf) => {
                if let Ok((n, from)) = res {
                    let bytes = carrier_buf.get(..n).unwrap_or(&[]);
                    let peer = Peer { remote: from, ..r.carrier_peer };
                    let _ = r.carrier.handle_datagram(Instant::now(), bytes, peer);
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        if r.pbx.poll_timeout().is_some_and(|t| t <= now) {
            r.pbx.handle_timeout(now);
        }
        if r.carrier.poll_timeout().is_some_and(|t| t <= now) {
            r.carrier.handle_timeout(now);
        }
        r.flush(now).await?;
    }
    phase.store(PHASE_DONE, Ordering::Relaxed);
    for k in r.pbx_calls.keys().copied().collect::<Vec<_>>() {
        r.pbx_terminated(k, TerminationReason::LocalBye);
    }
    for k in r.carrier_calls.keys().copied().collect::<Vec<_>>() {
        r.carrier_terminated(k, TerminationReason::LocalBye);
    }
    let _ = sender_stop_tx.send(());
    let tx = sender.await.unwrap_or_default();
    let mut pbx_rx = Vec::new();
    for h in std::mem::take(&mut r.pbx_done) {
        pbx_rx.extend(h.await.ok());
    }
    let mut carrier_rx = Vec::new();
    for h in std::mem::take(&mut r.carrier_done) {
        carrier_rx.extend(h.await.ok());
    }
    let (measured, offset) = match measure {
        Some((s, e)) => (
            e.saturating_duration_since(s),
            Some(s.saturating_duration_since(r.origin)),
        ),
        None => (Duration::ZERO, None),
    };
    let (generator, watched) = sampler.json();
    let c = &r.counters;
    let failed: BTreeMap<String, u64> = c.failed.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    Ok(serde_json::json!({
        "mode": "pstn",
        "codec": opts.pbx_codec.name(),
        "carrier_codec": opts.carrier_codec.name(),
        "measured_s": measured.as_secs_f64(),
        "late_threshold_ms": opts.load.late_after.as_secs_f64() * 1000.0,
        "calls": {
            "attempted": c.attempted, "answered": c.answered, "failed_by_status": failed,
            "other_end": c.pbx_other_end, "bad_answer": c.bad_answer,
            "carrier_invites": c.carrier_invites, "carrier_answered": c.carrier_answered,
            "carrier_refused": c.carrier_refused, "carrier_other_end": c.carrier_other_end,
            "bye_unanswered": c.bye_pending.len(),
            "legs_without_kernel_timestamps": c.no_kernel_timestamps,
            "setup_ms_p50": c.setup.percentile_ms(50.0), "setup_ms_p99": c.setup.percentile_ms(99.0),
        },
        "rx": report::rx_summary(pbx_rx.iter().chain(carrier_rx.iter()), offset),
        "rx_pbx": report::rx_summary(pbx_rx.iter(), offset),
        "rx_carrier": report::rx_summary(carrier_rx.iter(), offset),
        "tx": report::tx_summary(&tx),
        "generator": generator,
        "watched": watched,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_us_and_distinct_per_call() {
        assert_eq!(number(0), "+14155550000");
        assert_eq!(number(123), "+14155550123");
        assert_ne!(number(1), number(2));
    }

    #[test]
    fn offers_plain_rtp_with_only_the_asked_codec() {
        let local = LocalTransport {
            address: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            rtp_port: 40000,
            rtcp_port: None,
        };
        let mut s = MediaSession::new(plain_config(Codec::G722), local, 1);
        let offer = String::from_utf8(s.create_offer().to_bytes()).unwrap();
        assert!(offer.contains("m=audio 40000 RTP/AVP 9\r\n"), "{offer}");
        assert!(!offer.contains("a=crypto"), "{offer}");
        assert!(!offer.contains("telephone-event"), "{offer}");
    }

    #[test]
    fn a_final_answer_to_bye_is_recognised() {
        let resp = |cseq: &str, status: u16| {
            format!(
                "SIP/2.0 {status} OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n\
                 From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: c1\r\n\
                 CSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
            )
        };
        assert_eq!(
            bye_answered(resp("2 BYE", 200).as_bytes()),
            Some("c1".into())
        );
        assert_eq!(bye_answered(resp("1 INVITE", 200).as_bytes()), None);
        assert_eq!(bye_answered(resp("2 BYE", 100).as_bytes()), None);
        assert_eq!(bye_answered(b"garbage"), None);
    }
}
