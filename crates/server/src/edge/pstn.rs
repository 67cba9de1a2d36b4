//! PSTN termination through the operator's carrier trunks: a B2BUA. The PBX's INVITE (a
//! UAS leg) is routed to the carriers serving the number, best first (longest prefix, then
//! priority, then a weighted draw); each attempt is our own INVITE (a UAC leg, its own
//! Call-ID, tags and CSeq). A carrier's 408, 5xx or no answer within the answer timeout
//! moves on to the next carrier; any other final answer (404, 486, 603, ...) goes back to
//! the PBX unchanged. Once a carrier answers, the PBX gets our 200 and the two legs are
//! bridged in the call table, so a BYE from either side ends the other.
//!
//! Media is anchored here: each leg is its own RTP/SRTP session (SRTP on the PBX leg when
//! the connector requires it, per the carrier's setting on the other), and both sit in a
//! two-party mixer (a "bridge" in the meeting directory), which translates codecs,
//! telephone-event payload types and packetisation between them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use calls::{Attachment, LegId, Member, Refusal};
use domain::carrier::{Carrier, CarrierTransport, SrtpPolicy};
use sip::{Body, Credentials, OutgoingCall, Peer, Request, TransportKind, Uri};

use super::join::{self, JoinContext, JoinOutcome};
use super::legs::SipLeg;
use super::{Edge, Input};
use crate::offer;
use crate::ports::media_address;
use crate::records::CdrSeed;

/// Meeting-directory ids of two-party bridges start with this; they are not meetings in
/// the store (the reconciler and the auto-end sweep leave them alone).
pub const BRIDGE_PREFIX: &str = "bridge-";

/// True for the id of a private mixer rather than a meeting of the store: a bridge's, or
/// a SIP media application call's own (`edge::sma`).
pub fn is_bridge(meeting_id: &str) -> bool {
    meeting_id.starts_with(BRIDGE_PREFIX) || meeting_id.starts_with(super::sma::SMA_PREFIX)
}

/// Where one attempt of a call goes: a carrier trunk (termination) or a voice
/// connector's origination route to the customer's PBX.
#[derive(Clone, Debug)]
pub struct Target {
    /// The carrier's name, or the route's `host:port`.
    pub name: String,
    pub transport: CarrierTransport,
    pub host: String,
    pub port: u16,
    /// Codecs to offer (empty: all).
    pub codecs: Vec<String>,
    pub srtp: SrtpPolicy,
    pub credentials: Option<Credentials>,
    /// Extra headers (`X-VoiceConnector-ID` on origination).
    pub headers: Vec<(sip::HeaderName, String)>,
    /// The voice connector whose origination route this is (the call is recorded under
    /// the one that took it).
    pub voice_connector_id: Option<String>,
    /// `--max-calls` and `--cps` (`edge::carrier_limits`).
    pub limits: super::carrier_limits::Limits,
}

impl Target {
    /// A carrier trunk (its first address).
    pub fn carrier(c: &Carrier) -> Option<Target> {
        let a = c.addresses.first()?;
        Some(Target {
            name: c.name.clone(),
            transport: c.transport,
            host: a.host.clone(),
            port: a.port,
            codecs: c.codecs.clone(),
            srtp: c.srtp,
            credentials: c
                .username
                .clone()
                .zip(c.password.as_ref())
                .map(|(username, p)| Credentials {
                    username,
                    password: p.expose().to_string(),
                }),
            headers: Vec::new(),
            voice_connector_id: None,
            limits: super::carrier_limits::Limits::of(c),
        })
    }
}

/// A PSTN call admitted by the join task: the PBX leg's media is in its bridge already.
pub struct PstnSetup {
    member: Member,
    answer: Body,
    media: Box<SipLeg>,
    number: String,
    caller: String,
    targets: Vec<Target>,
}

/// One attempt's leg, ready to dial.
pub struct Dial {
    pub(super) carrier: Target,
    pub(super) media: Box<SipLeg>,
    pub(super) offer: Body,
    pub(super) remote: SocketAddr,
}

/// A PSTN call, kept by its PBX leg until it is answered or refused.
pub struct PstnCall {
    member: Member,
    /// Our SDP answer to the PBX (in the 183 of early media and in the 200).
    pub(super) answer: Body,
    number: String,
    caller: String,
    carriers: VecDeque<Target>,
    /// The attempt in progress: where to, its leg once dialled, and whether our answer
    /// timer gave up on it.
    current: Option<(Target, Option<LegId>, bool)>,
    /// Every attempt: carrier and its final status.
    attempts: Vec<(String, u16)>,
    /// The PBX got our 180.
    pub(super) ringing: bool,
    /// The PBX got our 183 with SDP (early media).
    pub(super) early_sent: bool,
    /// The early media of the attempt in progress (`edge::early`).
    pub(super) early: Option<super::early::Early>,
    pub(super) answered: bool,
}

/// Admission said PSTN: the carriers for the number.
pub async fn carriers_for(ctx: &JoinContext, number: &str) -> Result<Vec<Target>, Refusal> {
    let all = all_carriers(ctx).await?;
    let targets: Vec<Target> =
        domain::carrier::carriers_for(number, &all, &mut |n| rand::random::<u32>() % n.max(1))
            .into_iter()
            .filter_map(Target::carrier)
            .collect();
    if targets.is_empty() {
        return Err(Refusal::new(
            404,
            format!(
                "no carrier serves {number}: add one with `voice-connector admin carriers add`"
            ),
        ));
    }
    Ok(targets)
}

/// Admission said emergency: the carriers marked for emergency calls that serve the routing
/// provider's number, or 503 saying none does (the PBX then tries its next route).
pub async fn emergency_carriers_for(
    ctx: &JoinContext,
    route: &domain::emergency::EmergencyRoute,
) -> Result<Vec<Target>, Refusal> {
    let all = all_carriers(ctx).await?;
    let mut pick = |n: u32| rand::random::<u32>() % n.max(1);
    let targets: Vec<Target> =
        domain::carrier::emergency_carriers_for(&route.number, &all, &mut pick)
            .into_iter()
            .filter_map(Target::carrier)
            .collect();
    tracing::warn!(dialled = %route.dialled, country = %route.country, dnis = %route.number,
        carriers = targets.len(), "{} call", route.kind.as_str());
    if targets.is_empty() {
        return Err(Refusal::new(
            503,
            format!(
                "{} call to {} from {}: no carrier marked for emergency calls serves {}; mark one with `voice-connector admin carriers update NAME --emergency`",
                route.kind.as_str(),
                route.dialled,
                route.country,
                route.number
            ),
        ));
    }
    Ok(targets)
}

async fn all_carriers(ctx: &JoinContext) -> Result<Vec<domain::carrier::Carrier>, Refusal> {
    ctx.admission.repo().list_carriers().await.map_err(|e| {
        tracing::error!(error = %e, "listing carriers failed");
        Refusal::new(500, "internal error; see the server log")
    })
}

/// Where an admitted call goes on to.
pub struct Onward {
    /// The voice connector it is recorded under.
    pub vc_id: String,
    /// SRTP required on the incoming leg (the connector's RequireEncryption, or the
    /// carrier's mandatory SRTP).
    pub require_srtp: bool,
    /// The number called.
    pub number: String,
    /// The attempts, best first.
    pub targets: Vec<Target>,
    /// From a carrier to a PBX (the record's Direction `Inbound`), or the reverse.
    pub inbound: bool,
    /// The caller ID in place of the caller's From user (the connector's DefaultPhoneNumber
    /// when that user is not E.164); the record's SourcePhoneNumber too.
    pub caller_id: Option<String>,
}

/// The incoming leg's media (answering its offer), in a new bridge, and the targets to try.
pub async fn prepare(
    ctx: &JoinContext,
    leg: LegId,
    req: &Request,
    peer: &Peer,
    onward: Onward,
) -> Result<JoinOutcome, Refusal> {
    let Onward {
        vc_id,
        require_srtp,
        number,
        targets,
        inbound,
        caller_id,
    } = onward;
    if req.body.is_empty() {
        return Err(Refusal::new(
            488,
            "calls to the phone network need an SDP offer in the INVITE",
        ));
    }
    let ip = media_address(ctx.media_ip, peer).await;
    let (port, rtp, rtcp) = ctx
        .ports
        .bind_pair(ctx.media_ip)
        .await
        .ok_or_else(|| calls::JoinError::NoMediaPorts.refusal())?;
    let give_back = |e: Refusal| {
        ctx.ports.give_back(port);
        e
    };
    let negotiated =
        offer::answer(&req.body, require_srtp, ip, port).map_err(|e| give_back(e.into()))?;
    let mut cdr = CdrSeed::from_invite(&vc_id, req, peer);
    if inbound {
        cdr.direction = "Inbound";
    }
    if let Some(id) = caller_id {
        cdr.source_phone_number = id;
    }
    let member = Member {
        meeting_id: format!("{BRIDGE_PREFIX}{}", uuid::Uuid::new_v4()),
        attendee_id: format!("pbx-{}", cdr.transaction_id),
    };
    let caller = cdr.source_phone_number.clone();
    let mut media = SipLeg::new(member.clone(), caller, port, (rtp, rtcp), cdr);
    let answer = Body::sdp(negotiated.answer.clone());
    match join::attach(&ctx.meetings, leg, media.attach_request(&negotiated)).await {
        Ok(tx) => media.meeting = Some(tx),
        Err(e) => return Err(give_back(e.refusal())),
    }
    media.negotiated = Some(negotiated);
    join::stream(ctx, leg, &media, req, crate::streaming::OtherSide::Callee);
    let caller = media.caller.clone();
    tracing::info!(call = %leg, %number, routes = targets.len(), "routing onward");
    Ok(JoinOutcome::Pstn(Box::new(PstnSetup {
        member,
        answer,
        media: Box::new(media),
        number,
        caller,
        targets,
    })))
}

/// Binds a carrier leg's ports and makes our offer for it.
pub(super) async fn make_dial(
    ctx: &JoinContext,
    template: &CdrSeed,
    member: &Member,
    carrier: Target,
) -> Result<Dial, String> {
    let first = format!("{}:{}", carrier.host, carrier.port);
    let remote = tokio::net::lookup_host((carrier.host.as_str(), carrier.port))
        .await
        .map_err(|e| format!("resolving {first}: {e}"))?
        .next()
        .ok_or_else(|| format!("{first} resolves to nothing"))?;
    let ip = match ctx.media_ip {
        Some(ip) => ip,
        None => local_ip_towards(remote).await,
    };
    let (port, rtp, rtcp) = ctx
        .ports
        .bind_pair(ctx.media_ip)
        .await
        .ok_or_else(|| "no free RTP ports".to_string())?;
    let (session, sdp) = offer::outbound(
        &carrier.codecs,
        carrier.srtp != SrtpPolicy::Off,
        carrier.srtp == SrtpPolicy::Mandatory,
        ip,
        port,
    );
    let leg_member = Member {
        meeting_id: member.meeting_id.clone(),
        attendee_id: format!("carrier-{}", uuid::Uuid::new_v4()),
    };
    let name = carrier.name.clone();
    let mut media = SipLeg::new(leg_member, name, port, (rtp, rtcp), template.clone());
    media.pending = Some(session);
    media.record = false;
    Ok(Dial {
        carrier,
        media: Box::new(media),
        offer: Body::sdp(sdp),
        remote,
    })
}

/// The local address the kernel would use towards `remote` (for our SDP).
async fn local_ip_towards(remote: SocketAddr) -> std::net::IpAddr {
    let any: SocketAddr = if remote.is_ipv4() {
        "0.0.0.0:0".parse().expect("addr")
    } else {
        "[::]:0".parse().expect("addr")
    };
    match tokio::net::UdpSocket::bind(any).await {
        Ok(s) if s.connect(remote).await.is_ok() => {
            s.local_addr().map(|a| a.ip()).unwrap_or_else(|_| any.ip())
        }
        _ => any.ip(),
    }
}

pub(super) fn transport_kind(t: CarrierTransport) -> TransportKind {
    match t {
        CarrierTransport::Udp => TransportKind::Udp,
        CarrierTransport::Tcp => TransportKind::Tcp,
        CarrierTransport::Tls => TransportKind::Tls,
    }
}

/// Whether a carrier's final answer moves the call on to the next carrier.
fn fails_over(status: u16) -> bool {
    status == 408 || (500..600).contains(&status)
}

impl Edge {
    /// The join task routed the PBX's INVITE to the phone network.
    pub(super) fn pstn_routed(&mut self, a: LegId, setup: PstnSetup) {
        let now = Instant::now();
        let PstnSetup {
            member,
            answer,
            media,
            number,
            caller,
            targets,
        } = setup;
        self.legs.insert(a, *media);
        self.table.sip_routing(now, a);
        self.pstn.insert(
            a,
            PstnCall {
                member,
                answer,
                number,
                caller,
                carriers: targets.into(),
                current: None,
                attempts: Vec::new(),
                ringing: false,
                early_sent: false,
                early: None,
                answered: false,
            },
        );
        self.pstn_next(a);
    }

    /// Copies the attempts so far (and the carrier that answered) into the PBX leg's
    /// record.
    fn pstn_note(&mut self, a: LegId, answered_by: Option<String>) {
        let Some(call) = self.pstn.get(&a) else {
            return;
        };
        let attempts = call
            .attempts
            .iter()
            .map(|(route, status_code)| domain::call_record::Attempt {
                route: route.clone(),
                status_code: *status_code,
            })
            .collect();
        if let Some(l) = self.legs.get_mut(&a) {
            l.cdr.attempts = attempts;
            l.cdr.carrier = answered_by;
        }
    }

    /// Tries the next carrier, or refuses the PBX's INVITE when none is left.
    fn pstn_next(&mut self, a: LegId) {
        let Some(call) = self.pstn.get_mut(&a) else {
            return;
        };
        let Some(carrier) = call.carriers.pop_front() else {
            let tried: Vec<String> = call
                .attempts
                .iter()
                .map(|(c, s)| match self.limits.skipped(a, c) {
                    Some(why) => format!("{c} {s} {why}"),
                    None => format!("{c} {s}"),
                })
                .collect();
            let refusal = Refusal {
                status: 503,
                warning: format!("no carrier took the call ({})", tried.join(", ")),
                retry_after: Some(5),
            };
            tracing::info!(call = %a, reason = %refusal.warning, "PSTN call failed");
            self.pstn_note(a, None);
            self.pstn.remove(&a);
            self.table.sip_routing_failed(Instant::now(), a, refusal);
            return;
        };
        let limits = carrier.limits;
        if let Err(why) = self.limits.admit(Instant::now(), a, &carrier.name, limits) {
            tracing::info!(call = %a, carrier = %carrier.name, %why, "carrier skipped");
            call.attempts.push((carrier.name, 503));
            return self.pstn_next(a);
        }
        call.current = Some((carrier.clone(), None, false));
        let Some(template) = self.legs.get(&a).map(|l| l.cdr.clone()) else {
            return;
        };
        let member = call.member.clone();
        let (ctx, tx) = (self.ctx.clone(), self.tx.clone());
        tokio::spawn(async move {
            let name = carrier.name.clone();
            let input = match make_dial(&ctx, &template, &member, carrier).await {
                Ok(d) => Input::PstnDial {
                    a,
                    dial: Box::new(d),
                },
                Err(why) => Input::PstnDialFailed {
                    a,
                    carrier: name,
                    why,
                },
            };
            let _ = tx.send(input).await;
        });
    }

    /// A carrier attempt could not even be dialled (resolution, ports).
    pub(super) fn pstn_dial_failed(&mut self, a: LegId, carrier: String, why: String) {
        tracing::warn!(call = %a, %carrier, %why, "carrier not dialled");
        if let Some(call) = self.pstn.get_mut(&a) {
            call.attempts.push((carrier, 503));
            self.pstn_next(a);
        }
    }

    /// Sends our INVITE to the carrier.
    pub(super) fn pstn_dial(&mut self, a: LegId, dial: Dial) {
        let now = Instant::now();
        let Dial {
            carrier,
            media,
            offer,
            remote,
        } = dial;
        let Some(call) = self.pstn.get(&a) else {
            // The PBX gave up meanwhile.
            self.release.unused(*media);
            return;
        };
        let transport = transport_kind(carrier.transport);
        let local = super::transport_of(transport)
            .and_then(|t| self.transports.local_addr(t))
            .unwrap_or_else(|| "0.0.0.0:0".parse().expect("addr"));
        let scheme = if carrier.transport == CarrierTransport::Tls {
            "sips"
        } else {
            "sip"
        };
        let tp = carrier.transport.as_str();
        let target = format!(
            "{scheme}:{}@{}:{};transport={tp}",
            call.number,
            remote.ip(),
            remote.port()
        );
        let Ok(target) = Uri::parse(&target) else {
            self.release.unused(*media);
            self.pstn_dial_failed(a, carrier.name, format!("bad target {target}"));
            return;
        };
        let host = self.sip_domain.clone();
        let outgoing = OutgoingCall {
            target,
            from: format!("<sip:{}@{host}>", call.caller),
            to: format!("<sip:{}@{}>", call.number, remote.ip()),
            body: Some(offer),
            headers: carrier.headers.clone(),
            credentials: carrier.credentials.clone(),
        };
        let peer = Peer {
            transport,
            local,
            remote,
        };
        match self.ua.invite(now, peer, outgoing) {
            Ok(k) => {
                let call_a = self.table.leg(a).map(|l| l.call);
                let b = self.table.sip_dial(now, k, call_a);
                self.legs.insert(b, *media);
                self.pstn_out.insert(b, a);
                let label = format!("carrier=\"{}\"", carrier.name);
                self.ctx
                    .metrics
                    .counter_add("vc_carrier_attempts_total", &label, 1);
                tracing::info!(call = %a, leg = %b, carrier = %carrier.name, %remote, "dialling carrier");
                if let Some(c) = self.pstn.get_mut(&a) {
                    c.current = Some((carrier, Some(b), false));
                }
            }
            Err(e) => {
                self.release.unused(*media);
                self.pstn_dial_failed(a, carrier.name, e.to_string());
            }
        }
    }

    /// The PBX leg of a PSTN call in set-up, if `leg` is the carrier side of one.
    pub(super) fn pstn_pbx_of(&self, leg: LegId) -> Option<LegId> {
        self.pstn_out.get(&leg).copied()
    }

    /// A carrier answered: its media goes into the bridge, the PBX gets our 200, and the
    /// legs are bridged.
    pub(super) fn pstn_answered(&mut self, b: LegId, sdp: &[u8]) {
        let now = Instant::now();
        let Some(a) = self.pstn_pbx_of(b) else { return };
        let Some(call) = self.pstn.get_mut(&a) else {
            return;
        };
        let carrier = call
            .current
            .as_ref()
            .map(|c| c.0.name.clone())
            .unwrap_or_default();
        // The 200's SDP: the answer to our offer, or the early media's again (or a new one).
        let applied = match self.carrier_final_sdp(a, b, sdp) {
            Ok(applied) => applied,
            Err(r) => {
                tracing::info!(call = %a, %carrier, status = r.status, reason = %r.warning, "the carrier's answer is unusable");
                if let Some(call) = self.pstn.get_mut(&a) {
                    call.attempts.push((carrier, r.status));
                }
                if let Some(k) = self.table.leg(b).and_then(|l| l.endpoint.sip()) {
                    let _ = self
                        .ua
                        .hangup_with(now, k, &sip::Reason::sip(r.status, &r.warning));
                }
                return;
            }
        };
        let Some(call) = self.pstn.get_mut(&a) else {
            return;
        };
        call.answered = true;
        call.attempts.push((carrier.clone(), 200));
        let label = format!("carrier=\"{carrier}\"");
        self.ctx
            .metrics
            .counter_add("vc_carrier_answered_total", &label, 1);
        let (member, answer) = (call.member.clone(), call.answer.clone());
        let vc = call
            .current
            .as_ref()
            .and_then(|c| c.0.voice_connector_id.clone());
        self.pstn_note(a, Some(carrier.clone()));
        if let (Some(vc), Some(l)) = (vc, self.legs.get_mut(&a)) {
            l.cdr.voice_connector_id = vc;
        }
        self.pstn_out.remove(&b);
        self.pstn.remove(&a);
        self.early_answered(b, applied);
        self.table.sip_join_ready(now, a, member, answer, false);
        if let Err(e) = self.table.bridge(now, a, b) {
            tracing::warn!(call = %a, error = ?e, "bridging the PSTN legs failed");
        }
        tracing::info!(call = %a, leg = %b, %carrier, "carrier answered; legs bridged");
    }

    /// Our answer timer gave up on a carrier leg (we CANCEL it): fail over when it ends.
    pub(super) fn pstn_no_answer(&mut self, b: LegId) {
        if let Some(a) = self.pstn_pbx_of(b)
            && let Some(call) = self.pstn.get_mut(&a)
            && let Some(cur) = call.current.as_mut()
        {
            cur.2 = true;
        }
    }

    /// A carrier leg ended before it was answered: fail over, or give its answer to the PBX.
    pub(super) fn pstn_attempt_ended(&mut self, b: LegId, reason: sip::TerminationReason) {
        let Some(a) = self.pstn_out.remove(&b) else {
            return;
        };
        let Some(call) = self.pstn.get_mut(&a) else {
            return;
        };
        let Some((carrier, _, timed_out)) = call.current.take() else {
            return;
        };
        let status = match reason {
            _ if timed_out => 408,
            sip::TerminationReason::Failed(s) | sip::TerminationReason::Rejected(s) => s,
            _ => 500,
        };
        call.attempts.push((carrier.name.clone(), status));
        let label = format!("carrier=\"{}\",status=\"{status}\"", carrier.name);
        self.ctx
            .metrics
            .counter_add("vc_carrier_failed_total", &label, 1);
        tracing::info!(call = %a, carrier = %carrier.name, status, "carrier attempt ended");
        if fails_over(status) {
            self.pstn_next(a);
        } else {
            // A final answer of the callee's side (busy, not found, declined): the PBX gets it.
            let refusal = Refusal::new(
                status,
                format!("carrier {} answered {status}", carrier.name),
            );
            self.pstn_note(a, None);
            self.pstn.remove(&a);
            self.table.sip_routing_failed(Instant::now(), a, refusal);
        }
    }

    /// The PBX gave up (CANCEL) while carriers were being tried.
    pub(super) fn pstn_cancelled(&mut self, a: LegId) {
        let Some(call) = self.pstn.remove(&a) else {
            return;
        };
        if let Some((_, Some(b), _)) = call.current {
            self.pstn_out.remove(&b);
            if let Some(k) = self.table.leg(b).and_then(|l| l.endpoint.sip()) {
                let _ = self.ua.hangup(Instant::now(), k);
            }
        }
        self.table
            .sip_routing_failed(Instant::now(), a, Refusal::new(487, "request terminated"));
    }

    /// Attach/detach commands for PSTN legs: their media is in the bridge's mixer already.
    pub(super) fn pstn_attachment(&self, to: &Attachment) -> bool {
        match to {
            Attachment::Bridge(_) => true,
            Attachment::Meeting(m) => is_bridge(&m.meeting_id),
            Attachment::App(_) => false,
        }
    }
}
