//! One run: SIP signalling with the sans-IO [`sip::UserAgent`] on one UDP socket, the call
//! schedule of the chosen mode, media set-up from the SDP answer (crate `sdp`), and the
//! report.
//!
//! * Fixed mode (`--legs N`): place N calls at `--cps`, wait until all are answered or
//!   failed, warm up, measure for `--duration`, then BYE every call.
//! * Rate mode (`--rate R --hold H`): offer R calls/s for `--duration`; each admitted call
//!   holds H seconds with audio and is measured over its whole life; refused calls are
//!   counted by status, and every 503 is checked for a Retry-After header (RFC 3261
//!   §21.5.4). Join tokens are reused from a pool once their call has ended or been
//!   refused, so the same attendee is never in two calls at once.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use codec::Codec;
use rtp::{SrtpContext, SrtpSuite};
use sdp::negotiate::{LocalTransport, MediaConfig, MediaSession};
use sip::{
    Body, CallKey, HeaderName, Message, OutgoingCall, Peer, TerminationReason, TransportKind,
    UaEvent, UserAgent,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::media::{
    self, PHASE_DONE, PHASE_MEASURE, PHASE_WARMUP, Payloads, RxResult, RxSettings, SendLeg,
    SenderMsg, TxTotals,
};
use crate::pacing::Paced;
use crate::plan::{LegPlan, Plan};
use crate::report::{self, Sampler};
use crate::stats::Histogram;
use crate::uac::{ByeState, caller_event, not_hung_up, transmit, ua_config};

/// How calls are offered.
#[derive(Clone, Debug)]
pub enum Mode {
    /// A fixed number of concurrent legs.
    Fixed {
        /// Legs to place.
        legs: usize,
        /// Warm-up after the last answer, before measuring.
        warmup: Duration,
    },
    /// A call rate; admitted calls hold for `hold`.
    Rate {
        /// Calls per second offered.
        rate: f64,
        /// How long an admitted call lasts.
        hold: Duration,
    },
}

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Mode.
    pub mode: Mode,
    /// Codec to offer.
    pub codec: Codec,
    /// Fixed mode: measurement time. Rate mode: how long calls are offered.
    pub duration: Duration,
    /// Fixed mode: call set-up rate.
    pub cps: f64,
    /// Lateness threshold.
    pub late_after: Duration,
    /// Sender sub-ticks per 20 ms.
    pub slots: u64,
    /// Drop every n-th received packet before accounting (test hook; 0 = never).
    pub rx_drop_every: u64,
    /// Include one row per leg in the report.
    pub per_leg: bool,
    /// Sample these processes' CPU and RSS (summed) over the measurement (the server, or a
    /// peer's processes).
    pub watch_pids: Vec<u32>,
}

/// Failures of the generator itself.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A socket could not be bound or used.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// Media set-up failed.
    #[error(transparent)]
    Media(#[from] media::MediaError),
    /// The joins file was refused.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
}

struct Call {
    leg: usize,
    id: u64,
    session: MediaSession,
    sock: Arc<UdpSocket>,
    invited: Instant,
    answered: Option<Instant>,
    media: Option<(oneshot::Sender<()>, JoinHandle<RxResult>)>,
    bye: ByeState,
}

struct Finished {
    leg: usize,
    result: JoinHandle<RxResult>,
}

#[derive(Default)]
struct Counters {
    attempted: u64,
    answered: u64,
    failed: BTreeMap<u16, u64>,
    remote_bye: u64,
    other_end: BTreeMap<String, u64>,
    bad_answer: u64,
    pool_empty: u64,
    setup: Histogram,
    calls_503: HashSet<String>,
    calls_503_retry_after: HashSet<String>,
    /// Call-IDs whose BYE has not been answered yet.
    bye_pending: HashSet<String>,
    /// Legs whose socket refused SO_TIMESTAMPNS (arrival = read time instead).
    no_kernel_timestamps: u64,
}

fn media_config(codec: Codec) -> MediaConfig {
    MediaConfig {
        codecs: vec![codec],
        srtp_suites: vec![SrtpSuite::AesCm128HmacSha1_80],
        require_srtp: true,
        offer_srtp: true,
        telephone_event: false,
        rtcp_mux: true,
        ..MediaConfig::default()
    }
}

/// Notes a 503 to an INVITE and whether it carried Retry-After (by Call-ID, so UDP
/// retransmissions count once), and final answers to our BYEs.
fn inspect(bytes: &[u8], c: &mut Counters) {
    let Ok(Message::Response(r)) = sip::parse_datagram(bytes, &sip::ParseLimits::default()) else {
        return;
    };
    let Some(id) = r.headers.get(HeaderName::CallId) else {
        return;
    };
    let method = r.headers.cseq().map(|cs| cs.method.to_string());
    if method.as_deref() == Some("BYE") && r.status >= 200 {
        c.bye_pending.remove(id);
        return;
    }
    if r.status != 503 || method.as_deref() != Some("INVITE") {
        return;
    }
    c.calls_503.insert(id.to_string());
    if r.headers.get(HeaderName::RetryAfter).is_some() {
        c.calls_503_retry_after.insert(id.to_string());
    }
}

struct Runner {
    opts: Options,
    plan_from: String,
    local_ip: IpAddr,
    legs: Vec<LegPlan>,
    ua: UserAgent,
    sip: UdpSocket,
    peer: Peer,
    calls: HashMap<CallKey, Call>,
    finished: Vec<Finished>,
    counters: Counters,
    pool: VecDeque<usize>,
    next_id: u64,
    phase: Arc<AtomicU8>,
    sender: mpsc::UnboundedSender<SenderMsg>,
    hangups: BinaryHeap<Reverse<(Instant, CallKey)>>,
    byes: Paced<CallKey>,
    /// Origin of every receiver's arrival times.
    origin: Instant,
    /// The encoded tones every leg sends.
    payloads: Arc<Payloads>,
    origin_wall: Option<Duration>,
}

impl Runner {
    async fn place(&mut self, now: Instant) -> Result<(), RunError> {
        let Some(leg_idx) = self.pool.pop_front() else {
            self.counters.pool_empty += 1;
            return Ok(());
        };
        let Some(leg) = self.legs.get(leg_idx) else {
            return Ok(());
        };
        let std_sock = std::net::UdpSocket::bind((self.local_ip, 0))?;
        std_sock.set_nonblocking(true)?;
        let sock = Arc::new(UdpSocket::from_std(std_sock)?);
        let port = sock.local_addr()?.port();
        let local = LocalTransport {
            address: self.local_ip,
            rtp_port: port,
            rtcp_port: None,
        };
        let mut session = MediaSession::new(media_config(self.opts.codec), local, rand::random());
        let offer = session.create_offer().to_bytes();
        let to = format!(
            "<sip:{}@{}>",
            leg.uri
                .user()
                .map(|u| String::from_utf8_lossy(&sip::percent_decode(u)).into_owned())
                .unwrap_or_default(),
            leg.uri.host()
        );
        let call = OutgoingCall {
            target: leg.uri.clone(),
            from: format!("<sip:{}@{}>", self.plan_from, self.local_ip),
            to,
            body: Some(Body::sdp(offer)),
            headers: vec![],
            credentials: None,
        };
        match self.ua.invite(now, self.peer, call) {
            Ok(key) => {
                self.counters.attempted += 1;
                self.next_id += 1;
                self.calls.insert(
                    key,
                    Call {
                        leg: leg_idx,
                        id: self.next_id,
                        session,
                        sock,
                        invited: now,
                        answered: None,
                        media: None,
                        bye: ByeState::default(),
                    },
                );
            }
            Err(_) => {
                *self
                    .counters
                    .other_end
                    .entry("invite refused by UA".into())
                    .or_default() += 1;
                self.pool.push_back(leg_idx);
            }
        }
        Ok(())
    }

    fn answered(&mut self, now: Instant, key: CallKey, response: &sip::Response) {
        let body = &response.body;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.bye.call_id = response.headers.get(HeaderName::CallId).map(str::to_string);
        self.counters.answered += 1;
        self.counters
            .setup
            .record(now.saturating_duration_since(call.invited));
        call.answered = Some(now);
        let Some(leg) = self.legs.get(call.leg) else {
            return;
        };
        let audio = match call.session.accept_answer_body(body) {
            Ok(a) => a,
            Err(_) => {
                self.counters.bad_answer += 1;
                let _ = self.ua.hangup(now, key);
                call.bye.sent = true;
                return;
            }
        };
        let (Some(keys), Some(remote)) = (audio.srtp.as_ref(), audio.remote_rtp.socket_addr())
        else {
            self.counters.bad_answer += 1;
            let _ = self.ua.hangup(now, key);
            call.bye.sent = true;
            return;
        };
        let tx = SrtpContext::new(
            keys.suite,
            keys.local.master_key(),
            keys.local.master_salt(),
        );
        let rx = SrtpContext::with_config(
            keys.suite,
            keys.remote.master_key(),
            keys.remote.master_salt(),
            keys.remote_config,
        );
        let (Ok(tx), Ok(rx)) = (tx, rx) else {
            self.counters.bad_answer += 1;
            let _ = self.ua.hangup(now, key);
            call.bye.sent = true;
            return;
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let settings = RxSettings {
            clock_rate: audio.clock_rate,
            late_after: self.opts.late_after,
            drop_every: self.opts.rx_drop_every,
            origin: self.origin,
            origin_wall: self.origin_wall,
        };
        if !media::enable_rx_timestamps(&call.sock) {
            self.counters.no_kernel_timestamps += 1;
        }
        let handle = tokio::spawn(media::run_receiver(
            call.sock.clone(),
            Some(rx),
            settings,
            self.phase.clone(),
            stop_rx,
        ));
        call.media = Some((stop_tx, handle));
        let _ = self.sender.send(SenderMsg::Add(Box::new(SendLeg {
            id: call.id,
            sock: call.sock.clone(),
            remote,
            srtp: Some(tx),
            payloads: self.payloads.clone(),
            payload_type: audio.payload_type,
            ssrc: rand::random(),
            ts_step: audio.clock_rate * codec::FRAME_MS / 1000,
            tone: leg.position,
            seq: rand::random(),
            ts: rand::random(),
            frames: 0,
        })));
        if let Mode::Rate { hold, .. } = self.opts.mode {
            self.hangups.push(Reverse((now + hold, key)));
        }
    }

    fn terminated(&mut self, key: CallKey, reason: TerminationReason) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        let _ = self.sender.send(SenderMsg::Remove(call.id));
        if let Some((stop, handle)) = call.media {
            let _ = stop.send(());
            self.finished.push(Finished {
                leg: call.leg,
                result: handle,
            });
        }
        match reason {
            TerminationReason::Failed(s) => *self.counters.failed.entry(s).or_default() += 1,
            TerminationReason::RemoteBye => self.counters.remote_bye += 1,
            TerminationReason::LocalBye => {}
            other => {
                *self
                    .counters
                    .other_end
                    .entry(format!("{other:?}"))
                    .or_default() += 1
            }
        }
        // The attendee is free again (rate mode reuses it later).
        self.pool.push_back(call.leg);
    }

    fn hangup(&mut self, now: Instant, key: CallKey) {
        if let Some(call) = self.calls.get_mut(&key) {
            call.bye
                .send(&mut self.ua, now, key, &mut self.counters.bye_pending);
        }
    }

    /// Queues every call for hang-up; [`Runner::drain_hangups`] sends the BYEs paced, so a
    /// thousand BYEs do not overflow the server's socket buffer at once.
    fn hangup_all(&mut self) {
        self.byes.extend(not_hung_up(&self.calls, |c| &c.bye));
    }

    fn drain_hangups(&mut self, now: Instant, per_s: f64) {
        for k in self.byes.due(now, per_s) {
            self.hangup(now, k);
        }
    }

    async fn flush(&mut self, now: Instant) -> Result<(), RunError> {
        transmit(&mut self.ua, &self.sip).await;
        while let Some(ev) = self.ua.poll_event() {
            match caller_event(&mut self.ua, now, ev) {
                Some(UaEvent::Answered { call, response }) => self.answered(now, call, &response),
                Some(UaEvent::Terminated { call, reason }) => self.terminated(call, reason),
                _ => {}
            }
        }
        // Answers can queue more transmits (hangups after a bad answer).
        transmit(&mut self.ua, &self.sip).await;
        Ok(())
    }
}

/// Runs the plan and returns the report (JSON).
pub async fn run(plan: Plan, opts: Options) -> Result<serde_json::Value, RunError> {
    let legs = plan.legs()?;
    let payloads = Arc::new(Payloads::new(opts.codec)?);
    let sip_sock = UdpSocket::bind((plan.local_ip, 0)).await?;
    let peer = Peer {
        transport: TransportKind::Udp,
        local: sip_sock.local_addr()?,
        remote: plan.server,
    };
    let phase = Arc::new(AtomicU8::new(match opts.mode {
        Mode::Fixed { .. } => PHASE_WARMUP,
        Mode::Rate { .. } => PHASE_MEASURE,
    }));
    let (sender_tx, sender_rx) = mpsc::unbounded_channel();
    let (sender_stop_tx, sender_stop_rx) = oneshot::channel();
    let sender = tokio::spawn(media::run_sender(
        opts.slots,
        sender_rx,
        sender_stop_rx,
        phase.clone(),
    ));
    let n_legs = match opts.mode {
        Mode::Fixed { legs: n, .. } => n.min(legs.len()),
        Mode::Rate { .. } => legs.len(),
    };
    let mut r = Runner {
        opts: opts.clone(),
        plan_from: plan.from.clone(),
        local_ip: plan.local_ip,
        pool: (0..n_legs).collect(),
        legs,
        ua: UserAgent::new(ua_config(), rand::random()),
        sip: sip_sock,
        peer,
        calls: HashMap::new(),
        finished: Vec::new(),
        counters: Counters::default(),
        next_id: 0,
        phase: phase.clone(),
        sender: sender_tx,
        hangups: BinaryHeap::new(),
        byes: Paced::new(Instant::now()),
        origin: Instant::now(),
        payloads,
        origin_wall: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok(),
    };

    let start = Instant::now();
    let (rate, offer_until) = match opts.mode {
        Mode::Fixed { .. } => (opts.cps.max(0.1), None),
        Mode::Rate { rate, .. } => (rate.max(0.1), Some(start + opts.duration)),
    };
    let mut offered: u64 = 0;
    let to_offer = match opts.mode {
        Mode::Fixed { .. } => n_legs as u64,
        Mode::Rate { rate, .. } => (rate * opts.duration.as_secs_f64()).round() as u64,
    };
    let setup_deadline =
        start + Duration::from_secs_f64(n_legs as f64 / rate) + Duration::from_secs(30);
    let mut measure_start: Option<Instant> = None;
    let mut measure_end: Option<Instant> = None;
    let mut finish_deadline: Option<Instant> = None;
    let mut warmup_until: Option<Instant> = None;
    let mut sampler = Sampler::new(start, opts.watch_pids.clone());
    let mut buf = vec![0u8; 65536];

    loop {
        let now = Instant::now();
        // The schedule.
        while offered < to_offer && start + Duration::from_secs_f64(offered as f64 / rate) <= now {
            if offer_until.is_some_and(|u| now >= u) {
                break;
            }
            r.place(now).await?;
            offered += 1;
        }
        while let Some(Reverse((at, key))) = r.hangups.peek().copied() {
            if at > now {
                break;
            }
            r.hangups.pop();
            r.hangup(now, key);
        }
        match opts.mode {
            Mode::Fixed { warmup, .. } => {
                let all_placed = offered >= to_offer;
                let settled = all_placed && r.calls.values().all(|c| c.answered.is_some());
                if warmup_until.is_none() && (settled || now >= setup_deadline) {
                    warmup_until = Some(now + warmup);
                }
                if measure_start.is_none() && warmup_until.is_some_and(|w| now >= w) {
                    phase.store(PHASE_MEASURE, Ordering::Relaxed);
                    measure_start = Some(now);
                    measure_end = Some(now + opts.duration);
                }
                if finish_deadline.is_none() && measure_end.is_some_and(|e| now >= e) {
                    phase.store(PHASE_DONE, Ordering::Relaxed);
                    r.hangup_all();
                    finish_deadline = Some(
                        now + Duration::from_secs_f64(n_legs as f64 / rate)
                            + Duration::from_secs(15),
                    );
                }
            }
            Mode::Rate { hold, .. } => {
                measure_start.get_or_insert(start);
                let offers_done = offered >= to_offer || offer_until.is_some_and(|u| now >= u);
                if offers_done && measure_end.is_none() {
                    measure_end = Some(now);
                    // Admitted calls finish their hold; then anything left is ended.
                    finish_deadline = Some(now + hold + Duration::from_secs(15));
                }
                if let Some(fd) = finish_deadline
                    && now + Duration::from_secs(10) >= fd
                {
                    r.hangup_all();
                }
            }
        }
        r.drain_hangups(now, rate.max(50.0));
        // Done when every call is over and every BYE answered (retransmissions included).
        if finish_deadline.is_some() && r.calls.is_empty() && r.counters.bye_pending.is_empty() {
            break;
        }
        if finish_deadline.is_some_and(|d| now >= d) {
            break;
        }
        // CPU and memory samples over the measurement.
        sampler.tick(now, phase.load(Ordering::Relaxed) == PHASE_MEASURE);
        // Wait for SIP or the next timer.
        let mut wake = now + Duration::from_millis(20);
        if let Some(t) = r.ua.poll_timeout() {
            wake = wake.min(t);
        }
        tokio::select! {
            res = r.sip.recv_from(&mut buf) => {
                if let Ok((n, from)) = res {
                    let bytes = buf.get(..n).unwrap_or(&[]);
                    inspect(bytes, &mut r.counters);
                    let peer = Peer { remote: from, ..r.peer };
                    let _ = r.ua.handle_datagram(Instant::now(), bytes, peer);
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        if r.ua.poll_timeout().is_some_and(|t| t <= now) {
            r.ua.handle_timeout(now);
        }
        r.flush(now).await?;
    }
    phase.store(PHASE_DONE, Ordering::Relaxed);
    // Whatever is still up is stopped without waiting for its BYE.
    let keys: Vec<CallKey> = r.calls.keys().copied().collect();
    for k in keys {
        r.terminated(k, TerminationReason::LocalBye);
    }
    let _ = sender_stop_tx.send(());
    let tx = sender.await.unwrap_or_default();
    let mut per_leg = Vec::new();
    for f in std::mem::take(&mut r.finished) {
        if let Ok(res) = f.result.await {
            per_leg.push((f.leg, res));
        }
    }
    let measured = match (measure_start, measure_end) {
        (Some(s), Some(e)) => e.saturating_duration_since(s),
        _ => Duration::ZERO,
    };
    let measure_offset = measure_start.map(|s| s.saturating_duration_since(r.origin));
    Ok(report(
        &r,
        &opts,
        &per_leg,
        &tx,
        (measured, measure_offset),
        &sampler,
    ))
}

fn report(
    r: &Runner,
    opts: &Options,
    per_leg: &[(usize, RxResult)],
    tx: &TxTotals,
    (measured, measure_offset): (Duration, Option<Duration>),
    sampler: &Sampler,
) -> serde_json::Value {
    use serde_json::json;
    let mut legs_json = Vec::new();
    if opts.per_leg {
        for (leg, res) in per_leg {
            let s = &res.stats;
            let (meeting, position) = r
                .legs
                .get(*leg)
                .map(|l| (l.meeting, l.position))
                .unwrap_or_default();
            legs_json.push(json!({
                "meeting": meeting, "position": position, "received": s.received,
                "expected": s.expected(), "lost": s.lost(), "late": s.late,
                "duplicates": s.duplicates, "srtp_failures": res.srtp_failures,
                "authenticated_total": res.authenticated_total,
                "dropped_by_test": res.dropped_by_test,
                "lateness_max_ms": s.lateness.max_ms(),
            }));
        }
    }
    let (generator, watched) = sampler.json();
    let c = &r.counters;
    let failed: BTreeMap<String, u64> = c.failed.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let n503 = c.calls_503.len() as u64;
    let n503_ra = c.calls_503_retry_after.len() as u64;
    let mut out = json!({
        "mode": match opts.mode { Mode::Fixed { .. } => "fixed", Mode::Rate { .. } => "rate" },
        "codec": opts.codec.name(),
        "measured_s": measured.as_secs_f64(),
        "late_threshold_ms": opts.late_after.as_secs_f64() * 1000.0,
        "calls": {
            "attempted": c.attempted, "answered": c.answered, "failed_by_status": failed,
            "responses_503": n503, "responses_503_with_retry_after": n503_ra,
            "remote_bye": c.remote_bye, "bye_unanswered": c.bye_pending.len(), "other_end": c.other_end, "bad_answer": c.bad_answer,
            "pool_empty": c.pool_empty, "legs_without_kernel_timestamps": c.no_kernel_timestamps,
            "setup_ms_p50": c.setup.percentile_ms(50.0), "setup_ms_p99": c.setup.percentile_ms(99.0),
        },
        "rx": report::rx_summary(per_leg.iter().map(|(_, res)| res), measure_offset),
        "tx": report::tx_summary(tx),
        "generator": generator,
        "watched": watched,
    });
    if opts.per_leg
        && let Some(o) = out.as_object_mut()
    {
        o.insert("legs".into(), serde_json::Value::Array(legs_json));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_offer_has_only_the_asked_codec_and_aes_cm_128() {
        let local = LocalTransport {
            address: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            rtp_port: 40000,
            rtcp_port: None,
        };
        let mut s = MediaSession::new(media_config(Codec::Pcmu), local, 1);
        let offer = String::from_utf8(s.create_offer().to_bytes()).unwrap();
        assert!(offer.contains("m=audio 40000 RTP/SAVP 0\r\n"), "{offer}");
        assert!(offer.contains("AES_CM_128_HMAC_SHA1_80 inline:"));
        assert!(!offer.contains("AEAD_AES_256_GCM"));
        assert!(offer.contains("a=rtcp-mux"));
    }

    #[test]
    fn retry_after_is_checked_once_per_call() {
        let mut c = Counters::default();
        let resp = |id: &str, ra: bool| {
            format!(
                "SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n\
                 From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: {id}\r\n\
                 CSeq: 1 INVITE\r\n{}Content-Length: 0\r\n\r\n",
                if ra { "Retry-After: 1\r\n" } else { "" }
            )
        };
        inspect(resp("a", true).as_bytes(), &mut c);
        inspect(resp("a", true).as_bytes(), &mut c);
        inspect(resp("b", false).as_bytes(), &mut c);
        inspect(b"garbage", &mut c);
        assert_eq!((c.calls_503.len(), c.calls_503_retry_after.len()), (2, 1));
    }

    #[test]
    fn socket_addr_of_loopback() {
        let a: std::net::SocketAddr = "127.0.0.1:5060".parse().unwrap();
        assert!(crate::plan::is_loopback_v4(a.ip()));
    }
}
