//! The work of one incoming INVITE that waits on the database and the network: admission
//! (connector, termination policy, digest, CPS, join token), then the join's media (an RTP
//! port pair, the SDP answer or our delayed offer, the leg in its meeting's mixer). It runs
//! in its own task and reports one [`JoinOutcome`] to the edge task, which decides with
//! the call table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use calls::{Answer, JoinError, LegId, Member, Refusal};
use domain::meeting::Capability;
use domain::policy::Refusal as PolicyRefusal;
use sip::{Body, HeaderName, Peer, Request, TransportKind};
use tokio::sync::{mpsc, oneshot};

use crate::admission::{Admission, Decision, InviteFacts};
use crate::directory::Meetings;
use crate::meeting::MeetingMsg;
use crate::offer;
use crate::ports::{PortPool, media_address};
use crate::records::{CdrSeed, RecordWriter};

use super::legs::SipLeg;

/// What the join tasks share.
pub struct JoinContext {
    pub admission: Arc<Admission>,
    pub meetings: Arc<Meetings>,
    pub ports: Arc<PortPool>,
    pub media_ip: Option<std::net::IpAddr>,
    pub records: RecordWriter,
    pub metrics: Arc<api::metrics::Metrics>,
    /// The sampled log of refusals nobody vouched for (see [`unscreened`]).
    pub refusals: RefusalSampler,
    /// What SIP media application calls use (invoker, prompts, store).
    pub sma: Arc<crate::sma::call::Services>,
    /// This node among the nodes sharing the database: a meeting's first join places it.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// How often one source's unscreened refusals get an INFO line.
const SAMPLE_PERIOD: Duration = Duration::from_secs(10);
/// Sources remembered by the sampler; past this (a flood from many addresses at once) new
/// sources are not logged until old ones age out, while the counter still counts them.
const SAMPLED_SOURCES: usize = 10_000;

/// Rate-limits the log lines of refusals an outsider can cause at will: at most one line
/// per source address per [`SAMPLE_PERIOD`], saying how many were not logged since.
#[derive(Default)]
pub struct RefusalSampler {
    sources: Mutex<HashMap<IpAddr, Sample>>,
}

struct Sample {
    logged_at: Instant,
    suppressed: u64,
}

impl RefusalSampler {
    /// `Some(refusals not logged since the last line)` when this one should be logged.
    fn admit(&self, now: Instant, source: IpAddr) -> Option<u64> {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sources.get_mut(&source) {
            if now.saturating_duration_since(s.logged_at) < SAMPLE_PERIOD {
                s.suppressed += 1;
                return None;
            }
            let suppressed = std::mem::take(&mut s.suppressed);
            s.logged_at = now;
            return Some(suppressed);
        }
        if sources.len() >= SAMPLED_SOURCES {
            sources.retain(|_, s| now.saturating_duration_since(s.logged_at) < SAMPLE_PERIOD);
            if sources.len() >= SAMPLED_SOURCES {
                return None;
            }
        }
        sources.insert(
            source,
            Sample {
                logged_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }
}

/// How an INVITE's admission and join ended.
pub enum JoinOutcome {
    /// Refused by admission (policy, token, digest challenge) or silently dropped.
    Refused(Answer),
    /// Admitted, but the join could not be completed.
    Failed(JoinError),
    /// A call for the phone network: the carriers are tried next.
    Pstn(Box<super::pstn::PstnSetup>),
    /// A call a SIP rule sends to a SIP media application: its flow starts.
    Sma(Box<super::sma::SmaSetup>),
    /// Ready: answer 200 with `sdp`.
    Ready {
        member: Member,
        sdp: Body,
        delayed_offer: bool,
        media: Box<SipLeg>,
    },
}

/// Reads what admission needs from an INVITE.
fn invite_facts(req: &Request, peer: &Peer) -> InviteFacts {
    let uri = &req.uri;
    let token = uri
        .param("X-chime-join-token")
        .flatten()
        .or_else(|| uri.param("X-joinToken").flatten())
        .map(|t| String::from_utf8_lossy(&sip::percent_decode(t)).into_owned())
        .or_else(|| {
            req.headers
                .get_raw("X-chime-join-token")
                .next()
                .map(|v| v.trim().to_string())
        });
    let from_user = req
        .headers
        .from()
        .and_then(|f| f.uri.user_decoded().map(|u| u.into_owned()))
        .unwrap_or_default();
    InviteFacts {
        host: uri
            .host()
            .trim_matches(|c| c == '[' || c == ']')
            .to_string(),
        user: uri
            .user()
            .map(|u| String::from_utf8_lossy(&sip::percent_decode(u)).into_owned())
            .unwrap_or_default(),
        join_token: token,
        from_user,
        source: peer.remote.ip(),
        over_tls: peer.transport == TransportKind::Tls,
        request_uri: uri.to_string(),
        proxy_authorization: req
            .headers
            .get(HeaderName::ProxyAuthorization)
            .map(str::to_string),
    }
}

fn refusal_of(r: &PolicyRefusal) -> Refusal {
    Refusal {
        status: r.status(),
        warning: r.to_string(),
        retry_after: matches!(r, PolicyRefusal::CpsExceeded { .. }).then_some(1),
    }
}

/// The `reason` label of `vc_calls_refused_total`.
fn reason_label(r: &PolicyRefusal) -> &'static str {
    match r {
        PolicyRefusal::UnknownHost { .. } => "unknown_host",
        PolicyRefusal::TerminationNotConfigured(_) => "termination_not_configured",
        PolicyRefusal::TerminationDisabled(_) => "termination_disabled",
        PolicyRefusal::SourceNotAllowed { .. } => "source_not_allowed",
        PolicyRefusal::EncryptionRequiredTransport(_) => "encryption_required",
        PolicyRefusal::FromNotE164(_) => "from_not_e164",
        PolicyRefusal::RegionNotAllowed { .. } => "region_not_allowed",
        PolicyRefusal::DestinationNotE164(_) => "destination_not_e164",
        PolicyRefusal::CpsExceeded { .. } => "cps_exceeded",
        PolicyRefusal::NoPstnRoute(_) => "no_pstn_route",
        PolicyRefusal::InvalidJoinToken => "invalid_join_token",
        PolicyRefusal::MeetingEnded(_) => "meeting_ended",
        PolicyRefusal::MeetingFull(_) => "meeting_full",
        PolicyRefusal::Emergency(_) => "emergency_not_routable",
    }
}

/// True for a refusal that anyone can cause by sending INVITEs, before the source passed a
/// connector's CidrAllowedList: an unknown host, a connector without termination, a source
/// outside the list (and a disabled connector, unless the source is on its list). These
/// are counted and logged by sample, never stored one by one: a flood of them must not
/// become a flood of durable writes.
async fn unscreened(ctx: &JoinContext, r: &PolicyRefusal, source: IpAddr) -> bool {
    match r {
        PolicyRefusal::UnknownHost { .. }
        | PolicyRefusal::TerminationNotConfigured(_)
        | PolicyRefusal::SourceNotAllowed { .. } => true,
        PolicyRefusal::TerminationDisabled(vc_id) => !matches!(
            ctx.admission.termination(vc_id).await,
            Ok(Some(t)) if t.allows_source(source)
        ),
        _ => false,
    }
}

/// Refused calls from sources a connector's allowlist admitted get a call record, with
/// anything shaped like a join token taken out of the reason.
async fn record_refusal(ctx: &JoinContext, req: &Request, peer: &Peer, host: &str, r: &Refusal) {
    let Ok(Some(vc)) = ctx.admission.connector_for_host(host).await else {
        return;
    };
    let seed = CdrSeed::from_invite(&vc.voice_connector_id, req, peer);
    let reason = sip::log::redact_join_tokens(&r.warning);
    let rec = seed.finish("Refused", r.status, Some(reason));
    ctx.records.write(rec, seed.start_ms).await;
}

/// Admits and joins one INVITE.
pub async fn run(ctx: &JoinContext, leg: LegId, req: &Request, peer: &Peer) -> JoinOutcome {
    ctx.metrics.counter_add("vc_calls_attempted_total", "", 1);
    let outcome = decide(ctx, leg, req, peer).await;
    let status = match &outcome {
        JoinOutcome::Refused(Answer::Refuse(r)) => Some(r.status),
        JoinOutcome::Refused(Answer::Challenge { .. }) => Some(407),
        JoinOutcome::Failed(e) => Some(e.refusal().status),
        _ => None,
    };
    if let Some(s) = status.filter(|s| *s >= 300) {
        ctx.metrics
            .counter_add("vc_calls_failed_total", &format!("status=\"{s}\""), 1);
    }
    outcome
}

async fn decide(ctx: &JoinContext, leg: LegId, req: &Request, peer: &Peer) -> JoinOutcome {
    let facts = invite_facts(req, peer);
    // A carrier's INVITE for a number a SIP rule sends to an application.
    if let Some(outcome) = super::sma::for_number(ctx, leg, req, peer, &facts.user).await {
        return outcome;
    }
    // A carrier's INVITE for one of our numbers: origination.
    if let Some(routed) = super::origination::route(ctx.admission.repo().as_ref(), req, peer).await
    {
        let outcome = match routed {
            Ok(r) => {
                let onward = super::pstn::Onward {
                    vc_id: r.voice_connector_id,
                    require_srtp: r.carrier.srtp == domain::carrier::SrtpPolicy::Mandatory,
                    number: r.number,
                    targets: r.targets,
                    inbound: true,
                    caller_id: None,
                };
                super::pstn::prepare(ctx, leg, req, peer, onward).await
            }
            Err(r) => Err(r),
        };
        return outcome.unwrap_or_else(|r| {
            tracing::info!(%leg, status = r.status, reason = %r.warning, source = %peer.remote, "carrier call refused");
            JoinOutcome::Refused(Answer::Refuse(r))
        });
    }
    // Neither from a carrier nor addressed to a connector's host name: nobody's call.
    let domain = ctx.admission.sip_domain();
    let host = facts.host.to_ascii_lowercase();
    if !host.ends_with(&format!(".{domain}")) {
        ctx.metrics
            .counter_add("vc_calls_refused_total", "reason=\"not_a_carrier\"", 1);
        if let Some(suppressed) = ctx.refusals.admit(Instant::now(), peer.remote.ip()) {
            tracing::info!(%leg, source = %peer.remote, host = %facts.host, suppressed,
                "call refused: neither from a carrier nor to a voice connector host (logged once per source per 10 s)");
        }
        return JoinOutcome::Refused(Answer::Refuse(Refusal::new(
            403,
            format!(
                "{} is not a carrier of this service, and {} is not a voice connector host (<id>.{domain})",
                peer.remote.ip(),
                facts.host
            ),
        )));
    }
    let decision = match ctx.admission.route_invite(Instant::now(), &facts).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "routing failed");
            return JoinOutcome::Failed(JoinError::Internal);
        }
    };
    match decision {
        Decision::Refuse(r) => {
            ctx.metrics.counter_add(
                "vc_calls_refused_total",
                &format!("reason=\"{}\"", reason_label(&r)),
                1,
            );
            let silent = matches!(r, PolicyRefusal::SourceNotAllowed { .. })
                && ctx.admission.drop_unallowed_sources;
            let reason = sip::log::redact_join_tokens(&r.to_string());
            if unscreened(ctx, &r, peer.remote.ip()).await {
                if let Some(suppressed) = ctx.refusals.admit(Instant::now(), peer.remote.ip()) {
                    tracing::info!(%leg, status = r.status(), %reason, source = %peer.remote, silent, suppressed,
                        "call refused (logged once per source per 10 s; vc_calls_refused_total counts them all)");
                }
            } else {
                tracing::info!(%leg, status = r.status(), %reason, source = %peer.remote, "call refused");
                record_refusal(ctx, req, peer, &facts.host, &refusal_of(&r)).await;
            }
            if silent {
                JoinOutcome::Refused(Answer::Silence)
            } else {
                JoinOutcome::Refused(Answer::Refuse(refusal_of(&r)))
            }
        }
        Decision::Challenge { challenges, reason } => JoinOutcome::Refused(Answer::Challenge {
            challenges,
            warning: reason.to_string(),
        }),
        Decision::Throttled {
            warning,
            retry_after,
        } => {
            let label = "reason=\"auth_throttled\"";
            ctx.metrics.counter_add("vc_calls_refused_total", label, 1);
            if let Some(suppressed) = ctx.refusals.admit(Instant::now(), peer.remote.ip()) {
                tracing::warn!(%leg, source = %peer.remote, suppressed,
                    "failed digest attempts throttled (logged once per source per 10 s)");
            }
            let retry_after = Some(retry_after);
            JoinOutcome::Refused(Answer::Refuse(Refusal {
                status: 403,
                warning,
                retry_after,
            }))
        }
        Decision::Pstn {
            connector,
            number,
            caller_id,
            emergency,
        } => {
            ctx.admission
                .start_sip_log(&connector.voice_connector_id, req, peer)
                .await;
            let owner = MediaOwner {
                voice_connector_id: connector.voice_connector_id.clone(),
                require_encryption: connector.require_encryption,
            };
            if emergency.is_none()
                && let Some(o) = super::sma::for_host(ctx, leg, req, peer, &host, owner).await
            {
                return o;
            }
            let targets = match &emergency {
                Some(e) => super::pstn::emergency_carriers_for(ctx, e).await,
                None => super::pstn::carriers_for(ctx, &number).await,
            };
            let routed = match targets {
                Ok(targets) => {
                    let onward = super::pstn::Onward {
                        vc_id: connector.voice_connector_id.clone(),
                        require_srtp: connector.require_encryption,
                        number,
                        targets,
                        inbound: false,
                        caller_id,
                    };
                    super::pstn::prepare(ctx, leg, req, peer, onward).await
                }
                Err(r) => Err(r),
            };
            match routed {
                Ok(outcome) => outcome,
                Err(r) => {
                    tracing::info!(%leg, status = r.status, reason = %r.warning, "PSTN call refused");
                    record_refusal(ctx, req, peer, &facts.host, &r).await;
                    JoinOutcome::Refused(Answer::Refuse(r))
                }
            }
        }
        Decision::Join {
            connector,
            meeting,
            attendee,
        } => {
            ctx.admission
                .start_sip_log(&connector.voice_connector_id, req, peer)
                .await;
            let member = Member {
                meeting_id: meeting.meeting.meeting_id.clone(),
                attendee_id: attendee.attendee_id.clone(),
            };
            let owner = MediaOwner {
                voice_connector_id: connector.voice_connector_id.clone(),
                require_encryption: connector.require_encryption,
            };
            let audio = attendee.capabilities.audio;
            if let Some(c) = &ctx.cluster {
                c.place_join(&member.meeting_id).await;
            }
            match join_as(ctx, leg, req, peer, &owner, member, audio).await {
                Ok(ready) => ready,
                Err(e) => {
                    let r = e.refusal();
                    let reason = sip::log::redact_join_tokens(&r.warning);
                    tracing::info!(%leg, status = r.status, %reason, "join refused");
                    record_refusal(ctx, req, peer, &facts.host, &r).await;
                    JoinOutcome::Failed(e)
                }
            }
        }
    }
}

/// Whose call a joined leg is: the connector its record goes under (empty for a carrier's
/// call to a SIP media application), and whether its media must be SRTP.
pub struct MediaOwner {
    pub voice_connector_id: String,
    pub require_encryption: bool,
}

/// The join's media: ports, SDP, and (unless the offer is ours) the leg in the mixer.
pub(super) async fn join(
    ctx: &JoinContext,
    leg: LegId,
    req: &Request,
    peer: &Peer,
    connector: &MediaOwner,
    member: Member,
) -> Result<JoinOutcome, JoinError> {
    let audio = Capability::SendReceive;
    join_as(ctx, leg, req, peer, connector, member, audio).await
}

/// [`join`] for an attendee whose audio capability is `audio`.
async fn join_as(
    ctx: &JoinContext,
    leg: LegId,
    req: &Request,
    peer: &Peer,
    connector: &MediaOwner,
    member: Member,
    audio: Capability,
) -> Result<JoinOutcome, JoinError> {
    let ip = media_address(ctx.media_ip, peer).await;
    let (port, rtp, rtcp) = ctx
        .ports
        .bind_pair(ctx.media_ip)
        .await
        .ok_or(JoinError::NoMediaPorts)?;
    let cdr = CdrSeed::from_invite(&connector.voice_connector_id, req, peer);
    let media_metrics = ctx
        .admission
        .media_metrics_enabled(&connector.voice_connector_id)
        .await;
    let caller = cdr.source_phone_number.clone();
    let mut media = SipLeg::new(member.clone(), caller, port, (rtp, rtcp), cdr);
    media.media_metrics = media_metrics;
    media.audio = audio;
    let delayed_offer = req.body.is_empty();
    let sdp = if delayed_offer {
        let over_tls = peer.transport == TransportKind::Tls;
        let (session, offer) = offer::offer(connector.require_encryption, over_tls, ip, port);
        media.pending = Some(session);
        Body::sdp(offer)
    } else {
        let negotiated = match offer::answer(&req.body, connector.require_encryption, ip, port) {
            Ok(n) => n,
            Err(e) => {
                drop(media);
                ctx.ports.give_back(port);
                return Err(e.into());
            }
        };
        let body = Body::sdp(negotiated.answer.clone());
        let req = media.attach_request(&negotiated);
        match attach_as(&ctx.meetings, leg, req, audio).await {
            Ok(tx) => media.meeting = Some(tx),
            Err(e) => {
                drop(media);
                ctx.ports.give_back(port);
                return Err(e);
            }
        }
        media.negotiated = Some(negotiated);
        body
    };
    if delayed_offer {
        // Streamed once the ACK's answer puts the leg in its mixer (`Input::Attached`).
        let (repo, metrics) = (ctx.admission.repo().clone(), ctx.metrics.clone());
        let other = crate::streaming::OtherSide::Meeting;
        let later = crate::streaming::later(repo, metrics, leg, &media.cdr, req, other);
        media.stream_later = Some(later);
    } else {
        stream(ctx, leg, &media, req, crate::streaming::OtherSide::Meeting);
    }
    let (codec, suite) = media
        .negotiated
        .as_ref()
        .map(|n| {
            (
                n.codec.clone(),
                n.srtp_suite.clone().unwrap_or_else(|| "none".into()),
            )
        })
        .unwrap_or_else(|| ("pending".into(), "pending".into()));
    tracing::info!(call = %leg, meeting = %member.meeting_id, attendee = %member.attendee_id, port, delayed_offer, %codec, srtp = %suite, "joined meeting");
    Ok(JoinOutcome::Ready {
        member,
        sdp,
        delayed_offer,
        media: Box::new(media),
    })
}

/// What a SIP leg's media needs to go into its meeting's mixer.
pub struct AttachRequest {
    pub member: Member,
    /// The caller's number, as browsers list it.
    pub caller: String,
    pub rtp: Arc<tokio::net::UdpSocket>,
    pub rtcp: Arc<tokio::net::UdpSocket>,
    pub cfg: engine::LegConfig,
}

/// Puts a SIP leg's negotiated media into its meeting's mixer. A meeting task that was
/// retiring at that moment refuses; a new one is started then.
pub async fn attach(
    meetings: &Arc<Meetings>,
    leg: LegId,
    req: AttachRequest,
) -> Result<mpsc::Sender<MeetingMsg>, JoinError> {
    attach_as(meetings, leg, req, Capability::SendReceive).await
}

/// [`attach`] for an attendee whose audio capability is `audio` (what its join token's
/// attendee record says).
pub async fn attach_as(
    meetings: &Arc<Meetings>,
    leg: LegId,
    req: AttachRequest,
    audio: Capability,
) -> Result<mpsc::Sender<MeetingMsg>, JoinError> {
    for _ in 0..2 {
        let tx = meetings.get_or_start(&req.member.meeting_id);
        let (reply, rx) = oneshot::channel();
        let msg = MeetingMsg::AddSip {
            leg,
            attendee_id: req.member.attendee_id.clone(),
            external_user_id: req.caller.clone(),
            cfg: req.cfg.clone(),
            audio,
            rtp: req.rtp.clone(),
            rtcp: req.rtcp.clone(),
            reply,
        };
        if tx.send(msg).await.is_err() {
            continue;
        }
        match rx.await {
            Ok(Ok(())) => return Ok(tx),
            Ok(Err(e)) => {
                tracing::warn!(%leg, error = %e, "the meeting's media refused the leg");
                return Err(JoinError::MeetingUnavailable);
            }
            Err(_) => continue,
        }
    }
    Err(JoinError::MeetingUnavailable)
}

/// Streams the call of `leg` (its media in its mixer) when its connector says so.
pub(super) fn stream(
    ctx: &JoinContext,
    leg: LegId,
    media: &SipLeg,
    req: &Request,
    other: crate::streaming::OtherSide,
) {
    crate::streaming::start(
        ctx.admission.repo().clone(),
        ctx.metrics.clone(),
        media.meeting.clone(),
        leg,
        &media.cdr,
        req,
        other,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_once_per_source_per_period() {
        let s = RefusalSampler::default();
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(s.admit(t0, a), Some(0));
        assert_eq!(s.admit(t0, b), Some(0), "each source has its own budget");
        for i in 1..1000u64 {
            assert_eq!(s.admit(t0 + Duration::from_millis(i), a), None);
        }
        assert_eq!(
            s.admit(t0 + SAMPLE_PERIOD, a),
            Some(999),
            "says how many it left out"
        );
        assert_eq!(s.admit(t0 + SAMPLE_PERIOD, a), None);
    }

    #[test]
    fn the_sampler_stays_bounded_under_many_sources() {
        let s = RefusalSampler::default();
        let t0 = Instant::now();
        let ip = |n: usize| IpAddr::from([10, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
        for n in 0..SAMPLED_SOURCES {
            assert_eq!(s.admit(t0, ip(n)), Some(0));
        }
        assert_eq!(s.admit(t0, ip(SAMPLED_SOURCES)), None, "full: not logged");
        let later = t0 + SAMPLE_PERIOD;
        assert_eq!(
            s.admit(later, ip(SAMPLED_SOURCES)),
            Some(0),
            "old sources aged out"
        );
        assert!(s.sources.lock().unwrap().len() <= SAMPLED_SOURCES);
    }
}
