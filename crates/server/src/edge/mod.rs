//! The SIP edge and call controller: binds UDP, TCP and TLS (crate `sip-transport`) and runs
//! one task that owns the sans-IO [`sip::UserAgent`] and the sans-IO [`calls::CallTable`].
//!
//! The task feeds the UA datagrams and timer ticks and turns its events into call-table
//! inputs; it carries out the table's commands (answer, hang up with a Reason, apply a
//! delayed offer's answer, attach, release). Work that waits on the database or the
//! network (admitting and joining an INVITE, releasing a leg, answering OPTIONS) runs in
//! spawned tasks that report back through a bounded channel, so the UA never blocks on it.
//! Browser sessions, meeting tasks and the API's control events reach the table through
//! the same channel ([`Controller`]).

mod carrier_limits;
mod control;
mod drain;
mod early;
mod info;
mod join;
mod legs;
mod live;
mod options;
mod origination;
mod outbox;
mod probes;
mod pstn;
mod register;
mod reinvite;
mod sma;
mod sma_bridge;
mod sma_dial;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use calls::{Answer, Attachment, CallTable, Command, Endpoint, JoinError, LegId, TableConfig};
use sip::{Body, CallKey, HeaderName, Method, Peer, TransportKind, UaConfig, UaEvent, UserAgent};
use sip_transport::{Inbound, Outbound, TlsConfig, Transport, TransportConfig, Transports};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::meeting::{MeetingEvent, MeetingMsg};

pub use control::{Controller, Input, MetricsTarget};
pub use join::JoinContext;
use join::JoinOutcome;
use legs::{Release, SipLeg};
pub use live::{LiveLeg, operator_reason};
pub use probes::{Probe, resolve_carriers};
pub use pstn::is_bridge;
pub use register::register_carriers;
pub use sma::SMA_PREFIX;

/// A running SIP edge.
pub struct SipEdge {
    pub transports: Transports,
    pub controller: Controller,
    task: tokio::task::JoinHandle<()>,
}

impl SipEdge {
    pub fn local_addr(&self, t: Transport) -> Option<SocketAddr> {
        self.transports.local_addr(t)
    }
    pub async fn shutdown(self) {
        self.transports.shutdown();
        self.task.abort();
    }
}

fn transport_kind(t: Transport) -> TransportKind {
    match t {
        Transport::Udp => TransportKind::Udp,
        Transport::Tcp => TransportKind::Tcp,
        Transport::Tls => TransportKind::Tls,
    }
}

fn transport_of(k: TransportKind) -> Option<Transport> {
    match k {
        TransportKind::Udp => Some(Transport::Udp),
        TransportKind::Tcp => Some(Transport::Tcp),
        TransportKind::Tls => Some(Transport::Tls),
        _ => None,
    }
}

/// Binds the SIP transports and starts the edge task. Meeting tasks report on `events`.
pub async fn start(
    cfg: &Config,
    ctx: JoinContext,
    events: mpsc::Receiver<MeetingEvent>,
) -> anyhow::Result<SipEdge> {
    let mut tcfg = TransportConfig::new(cfg.sip);
    tcfg.tls = Some(match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => TlsConfig::from_files(cfg.sip_tls, c, k),
        _ => TlsConfig::development(cfg.sip_tls, &cfg.data_dir, &cfg.sip_domain),
    });
    let (transports, inbound) = Transports::bind(tcfg)
        .await
        .context("binding the SIP transports")?;
    let (tx, rx) = mpsc::channel(4096);
    let (sma_tx, sma_rx) = mpsc::channel(4096);
    let mut ua_cfg = UaConfig {
        options_to_app: true,
        ..UaConfig::default()
    };
    // The per-source budget (--sip-max-transactions-per-source) in transactions and, at
    // 1 KiB each, in bytes; a budget raised past half the global caps raises them too.
    // Answers to unverified UDP sources never exceed what they sent (sip's reflection guard).
    let t = &mut ua_cfg.transaction;
    t.max_transactions_per_source = cfg.sip_max_transactions_per_source;
    t.max_transaction_bytes_per_source = cfg.sip_max_transactions_per_source.saturating_mul(1024);
    t.max_transactions = t
        .max_transactions
        .max(t.max_transactions_per_source.saturating_mul(2));
    t.max_transaction_bytes = t
        .max_transaction_bytes
        .max(t.max_transaction_bytes_per_source.saturating_mul(2));
    t.reflection_guard = true;
    let edge = Edge {
        ua: UserAgent::with_ids(ua_cfg, sip::IdGenerator::from_os()),
        table: CallTable::new(TableConfig {
            ring_timeout: Duration::from_secs(u64::from(cfg.carrier_answer_timeout.max(1))),
            ..TableConfig::default()
        }),
        legs: HashMap::new(),
        browsers: 0,
        gauged_legs: -1,
        release: Arc::new(Release {
            ports: ctx.ports.clone(),
            records: ctx.records.clone(),
            metrics: ctx.metrics.clone(),
        }),
        ctx: Arc::new(ctx),
        transports: transports.clone(),
        outbox: outbox::Outbox::new(transports.clone(), tx.clone()),
        tx: tx.clone(),
        call_ids: HashMap::new(),
        draining: None,
        pstn: HashMap::new(),
        pstn_out: HashMap::new(),
        relay: reinvite::Relay::default(),
        sip_domain: cfg.sip_domain.clone(),
        probes: HashMap::new(),
        limits: carrier_limits::CarrierLimits::default(),
        registrations: register::Registrations::default(),
        sma: HashMap::new(),
        sma_tx,
        sma_dial: Default::default(),
    };
    let task = tokio::spawn(edge.run(inbound, rx, events, sma_rx));
    Ok(SipEdge {
        transports,
        controller: Controller { tx },
        task,
    })
}

/// The edge task's state.
struct Edge {
    ua: UserAgent,
    table: CallTable,
    /// SIP legs' media, by leg.
    legs: HashMap<LegId, SipLeg>,
    browsers: i64,
    /// The `vc_active_legs` gauge as last set.
    gauged_legs: i64,
    release: Arc<Release>,
    ctx: Arc<JoinContext>,
    transports: Transports,
    outbox: outbox::Outbox,
    tx: mpsc::Sender<Input>,
    /// Call-IDs of calls whose SIP messages are being logged.
    call_ids: HashMap<CallKey, String>,
    /// Set once a shutdown began.
    draining: Option<drain::Draining>,
    /// PSTN calls being routed to carriers, by their PBX leg.
    pstn: HashMap<LegId, pstn::PstnCall>,
    /// Carrier legs not yet answered → their PBX leg.
    pstn_out: HashMap<LegId, LegId>,
    /// Hold and resume carried across bridges.
    relay: reinvite::Relay,
    /// Our SIP domain (the host of the From in our INVITEs).
    sip_domain: String,
    /// OPTIONS keep-alives awaiting their outcome: the carrier and when it was sent.
    probes: HashMap<sip::TransactionKey, (String, i64)>,
    /// Calls per carrier and their rate (`--max-calls`, `--cps`).
    limits: carrier_limits::CarrierLimits<LegId>,
    /// REGISTERs to carriers (`--register`).
    registrations: register::Registrations<sip::TransactionKey>,
    /// SIP media application calls' legs, and the channel their flows ask through.
    sma: sma::SmaLegs,
    sma_tx: mpsc::Sender<crate::sma::call::SmaRequest>,
    sma_dial: sma_dial::Dials,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

impl Edge {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut inputs: mpsc::Receiver<Input>,
        mut events: mpsc::Receiver<MeetingEvent>,
        mut sma: mpsc::Receiver<crate::sma::call::SmaRequest>,
    ) {
        loop {
            let deadline = [
                self.ua.poll_timeout(),
                self.table.poll_timeout(),
                self.draining.as_ref().and_then(drain::Draining::next),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                msg = inbound.recv() => {
                    let Some(msg) = msg else { break };
                    let peer = Peer { transport: transport_kind(msg.transport), local: msg.local, remote: msg.remote };
                    if let Some(l) = &self.ctx.admission.siplog {
                        l.log(&sip::log::LoggedMessage::inbound(peer, &msg.bytes));
                    }
                    if let Err(e) = self.ua.handle_datagram(Instant::now(), &msg.bytes, peer) {
                        tracing::debug!(remote = %msg.remote, error = %e, "malformed SIP message");
                    }
                }
                input = inputs.recv() => {
                    let Some(input) = input else { break };
                    self.on_input(input);
                }
                ev = events.recv() => match ev {
                    Some(MeetingEvent::Inactive(leg)) => self.table.media_inactive(Instant::now(), leg),
                    Some(ev) => self.sma_media_event(ev),
                    None => {}
                },
                Some(req) = sma.recv() => self.on_sma(req),
                _ = sleep_until(deadline) => {
                    let now = Instant::now();
                    self.ua.handle_timeout(now);
                    self.table.handle_timeout(now);
                }
            }
            self.check_drain(Instant::now());
            self.pump().await;
            self.check_drain(Instant::now());
        }
    }

    /// Moves the UA's and the table's output until neither has anything more.
    async fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(ev) = self.ua.poll_event() {
                moved = true;
                self.on_ua_event(ev);
            }
            while let Some(c) = self.table.poll_command() {
                moved = true;
                self.on_command(c);
            }
            while let Some(t) = self.ua.poll_transmit() {
                if let Some(l) = &self.ctx.admission.siplog {
                    l.log(&sip::log::LoggedMessage::outbound(&t));
                }
                let Some(transport) = transport_of(t.peer.transport) else {
                    continue;
                };
                let out = Outbound::to(transport, t.peer.remote, t.payload.into());
                if transport != Transport::Udp {
                    // A connect or TLS handshake must not hold up the user agent.
                    self.outbox.send(t.peer, out);
                } else if let Err(e) = self.transports.send(out).await {
                    tracing::warn!(remote = %t.peer.remote, error = %e, "SIP send failed");
                }
            }
            if !moved {
                break;
            }
        }
        let legs = self.legs.len() as i64;
        if legs != self.gauged_legs {
            self.gauged_legs = legs;
            self.ctx.metrics.gauge_set("vc_active_legs", "", legs);
        }
    }

    fn on_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Joined { leg, outcome } => match outcome {
                JoinOutcome::Refused(answer) => self.table.sip_refused(now, leg, answer),
                JoinOutcome::Failed(e) => self.table.sip_join_failed(now, leg, e),
                JoinOutcome::Pstn(setup) => self.pstn_routed(leg, *setup),
                JoinOutcome::Sma(setup) => self.sma_inbound(leg, *setup),
                JoinOutcome::Ready {
                    member,
                    sdp,
                    delayed_offer,
                    media,
                } => {
                    self.legs.insert(leg, *media);
                    self.table
                        .sip_join_ready(now, leg, member, sdp, delayed_offer);
                }
            },
            Input::Attached { leg, meeting } => match (self.legs.get_mut(&leg), meeting) {
                (Some(l), Some(tx)) => {
                    if let Some(stream) = l.stream_later.take() {
                        stream.begin(tx.clone());
                    }
                    l.meeting = Some(tx);
                    self.early_attached(leg);
                    self.sma_attached(leg);
                }
                (Some(_), None) => self.table.media_failed(now, leg),
                // The leg ended meanwhile: take it out of the mixer again.
                (None, Some(tx)) => {
                    let _ = tx.try_send(MeetingMsg::Remove {
                        leg,
                        dropped: false,
                        reply: None,
                    });
                }
                (None, None) => {}
            },
            Input::Respond { txn, response } => {
                let _ = self.ua.respond_request(now, txn, response);
            }
            Input::BrowserOpen {
                session,
                member,
                reply,
            } => {
                let leg = self.table.webrtc_open(now, session, member);
                self.browsers += 1;
                self.ctx
                    .metrics
                    .gauge_set("vc_browser_sessions", "", self.browsers);
                let _ = reply.send(leg);
            }
            Input::BrowserClosed { leg, dropped } => {
                let why = if dropped { "connection lost" } else { "left" };
                self.table.webrtc_closed(now, leg, why);
            }
            Input::DeleteAttendee(id) => self.table.delete_attendee(now, &id),
            Input::DeleteMeeting(id) => self.table.delete_meeting(now, &id),
            Input::Meetings(reply) => {
                let _ = reply.send(self.table.meetings());
            }
            Input::Members(reply) => {
                let members = self.table.legs().filter_map(|l| l.member.clone());
                let _ = reply.send(members.collect());
            }
            Input::PstnDial { a, dial } => self.pstn_dial(a, *dial),
            Input::PstnDialFailed { a, carrier, why } => self.pstn_dial_failed(a, carrier, why),
            Input::Reoffer { leg } => self.reoffer_due(leg),
            Input::SmaRequests(reqs) => self.sma_requests(reqs),
            Input::SmaDial(p) => self.sma_place(*p),
            Input::SmaBridge { a, call_id, dial } => self.sma_bridge_place(a, call_id, dial),
            Input::SmaMoved {
                leg,
                member,
                result,
            } => self.sma_moved(leg, member, result),
            Input::Drain { grace, done } => self.start_drain(now, grace, done),
            Input::Probe(p) => self.probe(now, p),
            Input::Register(tick) => self.register_tick(now, tick),
            Input::TransportError(peer) => self.ua.handle_transport_error(now, peer),
            Input::Live(q) => self.live(now, q),
            Input::MetricsTargets(reply) => {
                let due = self
                    .legs
                    .iter()
                    .filter(|(_, l)| l.media_metrics)
                    .filter_map(|(leg, l)| {
                        Some(MetricsTarget {
                            leg: *leg,
                            meeting: l.meeting.clone()?,
                            meeting_id: l.member.meeting_id.clone(),
                            cdr: l.cdr.clone(),
                        })
                    })
                    .collect();
                let _ = reply.send(due);
            }
        }
    }

    fn on_ua_event(&mut self, ev: UaEvent) {
        let now = Instant::now();
        match ev {
            UaEvent::IncomingCall {
                call,
                request,
                peer,
            } => {
                let leg = self.table.sip_incoming(now, call);
                if self.draining.is_some() {
                    self.ctx.metrics.counter_add(
                        "vc_calls_refused_total",
                        "reason=\"shutting_down\"",
                        1,
                    );
                    self.table
                        .sip_join_failed(now, leg, JoinError::ShuttingDown);
                    return;
                }
                if self.ctx.admission.siplog.is_some()
                    && let Some(id) = request.headers.get(HeaderName::CallId)
                {
                    self.call_ids.insert(call, id.to_string());
                }
                let ctx = self.ctx.clone();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let outcome = join::run(&ctx, leg, &request, &peer).await;
                    let _ = tx.send(Input::Joined { leg, outcome }).await;
                });
            }
            UaEvent::Confirmed { call, ack } => {
                if let Some(leg) = self.table.leg_of_sip(call) {
                    self.ctx
                        .metrics
                        .counter_add("vc_calls_answered_total", "", 1);
                    self.open_record(leg);
                    self.sma_confirmed(leg);
                }
                self.table.sip_confirmed(now, call, &ack.body);
            }
            UaEvent::Terminated { call, reason } => {
                if let Some((l, id)) = self
                    .ctx
                    .admission
                    .siplog
                    .as_ref()
                    .zip(self.call_ids.remove(&call))
                {
                    l.disable(&id);
                }
                let leg = self.table.leg_of_sip(call);
                if let Some(b) = leg.filter(|b| self.pstn_out.contains_key(b)) {
                    self.pstn_attempt_ended(b, reason);
                }
                self.table.sip_ended(now, call, reason);
                if let Some(a) = leg.filter(|a| self.pstn.contains_key(a)) {
                    self.pstn_cancelled(a);
                }
                if let Some(a) = leg.filter(|a| self.sma.contains_key(a)) {
                    self.sma_ended_in_setup(a);
                }
            }
            UaEvent::Reinvite { call, request } => match self.reoffer(call, &request.body) {
                Ok(body) => {
                    let _ = self.ua.answer(now, call, 200, Some(body));
                }
                Err(r) => {
                    if let Ok(mut resp) = self.ua.make_response(call, r.status) {
                        wire::decorate(&mut resp, &r);
                        let _ = self.ua.respond(now, call, resp);
                    }
                }
            },
            UaEvent::Request { call, txn, request } if request.method == Method::Info => {
                self.on_info(now, call, txn, &request)
            }
            UaEvent::Request { call, txn, request } => {
                let mut resp = sip::Response::for_request(&request, 200);
                if request.method == Method::Update && !request.body.is_empty() {
                    match self.reoffer(call, &request.body) {
                        Ok(b) => {
                            resp.headers.set(HeaderName::ContentType, &b.content_type);
                            resp.body = b.bytes;
                        }
                        Err(r) => {
                            resp = sip::Response::for_request(&request, r.status);
                            wire::decorate(&mut resp, &r);
                        }
                    }
                }
                let _ = self.ua.respond_request(now, txn, resp);
            }
            UaEvent::OutOfDialogRequest { txn, request, peer }
                if request.method == Method::Options =>
            {
                let ok = self.ua.options_response(&request);
                let admission = self.ctx.admission.clone();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let response = options::answer(&admission, ok, &request, &peer).await;
                    let _ = tx.send(Input::Respond { txn, response }).await;
                });
            }
            UaEvent::OutOfDialogRequest { txn, request, .. } => {
                let resp = sip::Response::for_request(&request, 405);
                let _ = self.ua.respond_request(now, txn, resp);
            }
            UaEvent::Answered { call, response } => {
                self.table.sip_answered(now, call);
                if let Some(b) = self.table.leg_of_sip(call) {
                    self.pstn_answered(b, &response.body);
                    self.sma_dial_answered(b, &response.body);
                }
            }
            UaEvent::Provisional { call, response } if response.status > 100 => {
                if let Some(b) = self.table.leg_of_sip(call) {
                    self.pstn_provisional(b, &response);
                    self.sma_dial_provisional(b, &response);
                }
            }
            UaEvent::ForeignSource {
                call,
                method,
                source,
            } => {
                // A forged in-dialog request (issue 14): the UA answered it 403.
                let m = &self.ctx.metrics;
                m.counter_add("vc_sip_foreign_source_total", "", 1);
                let leg = self.table.leg_of_sip(call);
                tracing::warn!(?leg, method = method.as_str(), %source, "request for a call from an address that is not its peer: refused");
            }
            UaEvent::OutOfDialogResponse {
                txn,
                status,
                response,
            } => {
                if !self.register_result(txn, status, response.as_ref()) {
                    self.probe_result(txn, status, response.is_some())
                }
            }
            UaEvent::InDialogResponse {
                call,
                method,
                response,
            } => self.relay_response(call, &method, &response),
            UaEvent::Prack { .. } | UaEvent::Provisional { .. } => {}
        }
    }

    /// An in-dialog offer: the table says which leg answers, the leg's SDP state answers.
    fn reoffer(&mut self, call: CallKey, sdp: &[u8]) -> Result<Body, calls::Refusal> {
        let now = Instant::now();
        let leg = self.table.sip_reoffer(call).map_err(|e| e.refusal())?;
        let media = self
            .legs
            .get_mut(&leg)
            .ok_or(calls::ReofferError::UnknownCall)
            .map_err(|e| e.refusal())?;
        let (body, peer_sends) = media.reoffer(leg, sdp).map_err(|e| e.refusal())?;
        self.table.media_direction(now, leg, peer_sends);
        self.relay_offer(leg, sdp);
        Ok(body)
    }

    fn on_command(&mut self, c: Command) {
        let now = Instant::now();
        if let Command::Release { leg, .. } = &c {
            self.limits.release(*leg);
        }
        match c {
            Command::Answer { sip, answer, .. } => self.answer(now, sip, answer),
            Command::HangUp {
                leg,
                endpoint,
                cause,
            } => match endpoint {
                Endpoint::SipUas(k) | Endpoint::SipUac(k) => {
                    if cause == calls::HangupCause::NoAnswer {
                        self.pstn_no_answer(leg);
                    }
                    tracing::info!(call = %leg, ?cause, "hanging up");
                    let reason = wire::reason(&cause);
                    if let Err(sip::UaError::UnknownCall) = self.ua.hangup_with(now, k, &reason) {
                        // The SIP layer forgot the call already: end the leg here too.
                        self.table
                            .sip_ended(now, k, sip::TerminationReason::LocalBye);
                    }
                }
                Endpoint::WebRtc(_) => {
                    let meeting = self
                        .table
                        .leg(leg)
                        .and_then(|l| l.member.as_ref())
                        .and_then(|m| self.ctx.meetings.get(&m.meeting_id));
                    if let Some(tx) = meeting {
                        let end = wire::session_end(&cause);
                        let _ = tx.try_send(MeetingMsg::EndBrowser { leg, end });
                    }
                }
            },
            Command::ApplyAnswer { leg, sdp } => {
                let result = match self.legs.get_mut(&leg) {
                    Some(l) => l.apply_answer(&sdp),
                    None => Err(calls::Refusal::new(481, "call does not exist")),
                };
                if let Err(r) = &result {
                    tracing::info!(call = %leg, status = r.status, reason = %r.warning, "the ACK's answer to our offer is unusable; hanging up");
                }
                self.table.answer_applied(now, leg, result);
            }
            Command::Attach {
                leg,
                to: Attachment::Meeting(_),
            } => self.attach_delayed(leg),
            Command::Attach { to, .. } | Command::Detach { from: to, .. }
                if self.pstn_attachment(&to) => {}
            Command::Attach { leg, to } | Command::Detach { leg, from: to } => {
                tracing::warn!(call = %leg, ?to, "this server does not serve bridges or applications yet");
            }
            Command::Release {
                leg, endpoint, end, ..
            } => match endpoint {
                Endpoint::WebRtc(_) => {
                    self.browsers = (self.browsers - 1).max(0);
                    self.ctx
                        .metrics
                        .gauge_set("vc_browser_sessions", "", self.browsers);
                }
                Endpoint::SipUas(_) | Endpoint::SipUac(_) => {
                    self.relay.forget(leg);
                    if self.sma.contains_key(&leg) {
                        self.sma_released(leg, &end);
                    }
                    if let Some(media) = self.legs.remove(&leg) {
                        let release = self.release.clone();
                        let hold = self.release.records.hold();
                        tokio::spawn(async move {
                            release.sip_leg(leg, media, end).await;
                            drop(hold);
                        });
                    }
                }
            },
        }
    }

    fn answer(&mut self, now: Instant, call: CallKey, answer: Answer) {
        match answer {
            Answer::Accept(body) => {
                if let Err(e) = self.ua.answer(now, call, 200, Some(body)) {
                    tracing::debug!(?call, error = %e, "answer for a call that is gone");
                }
            }
            Answer::Refuse(r) => {
                if let Ok(mut resp) = self.ua.make_response(call, r.status) {
                    wire::decorate(&mut resp, &r);
                    let _ = self.ua.respond(now, call, resp);
                }
            }
            Answer::Challenge {
                challenges,
                warning,
            } => {
                if let Ok(mut resp) = self.ua.make_response(call, 407) {
                    resp.headers
                        .push(HeaderName::Warning, &wire::warning_value(&warning));
                    for c in challenges {
                        resp.headers.push(HeaderName::ProxyAuthenticate, &c);
                    }
                    let _ = self.ua.respond(now, call, resp);
                }
            }
            Answer::Silence => {
                let _ = self.ua.discard(call);
            }
        }
    }

    /// A delayed offer's answer is in: the leg goes into its meeting's mixer.
    fn attach_delayed(&mut self, leg: LegId) {
        let Some(req) = self
            .legs
            .get(&leg)
            .and_then(|l| Some((l.attach_request(l.negotiated.as_ref()?), l.audio)))
        else {
            return;
        };
        let meetings = self.ctx.meetings.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let meeting = join::attach_as(&meetings, leg, req.0, req.1).await.ok();
            let _ = tx.send(Input::Attached { leg, meeting }).await;
        });
    }
}
