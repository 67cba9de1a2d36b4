//! SIP media applications' outbound calls and call updates (issue 13), at the edge.
//!
//! CreateSipMediaApplicationCall: the API queues the request; `crate::sma::requests` hands
//! it here. A task resolves the application, its function and the carriers serving
//! ToPhoneNumber, and prepares the leg as a PSTN attempt is prepared (`pstn::make_dial`:
//! ports, our offer for the carrier's codecs and SRTP). The edge then sends our INVITE
//! (From FromPhoneNumber at our SIP domain, To ToPhoneNumber, the request's SipHeaders)
//! and starts the call's flow at once (`CallFlow::outbound`: NEW_OUTBOUND_CALL with the
//! ArgumentsMap as its attributes). A 180 or 183 is RINGING; the 200's answer is applied
//! to the leg, its media goes into the call's own mixer (`sma-<TransactionId>`, as an
//! inbound application call's), and then the flow hears CALL_ANSWERED. A final failure
//! (486, 503, no answer within the ring timer) releases the leg, and the release tells the
//! flow (HANGUP). One carrier is tried: the best for the number, within its `--max-calls`
//! and `--cps`. A call that cannot be placed (no carrier serves the number, the carrier is
//! at its limits, the INVITE cannot be sent) still runs its flow: the function hears
//! NEW_OUTBOUND_CALL and then HANGUP with 503, and the log says why.
//!
//! UpdateSipMediaApplicationCall: the request reaches the flow of its TransactionId as
//! CALL_UPDATE_REQUESTED. Only the node running the call can do that; with several nodes
//! sharing a database, the node that takes the request from the queue may not be it, and
//! then the request is logged and dropped. Inbound calls are made known to the API as they
//! start (a request of kind "inbound", which the queue's reader drops), so that an update
//! naming them is accepted.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use calls::{HangupCause, LegId, Member};
use domain::sma::FunctionEndpoint;
use domain::sma::event::{Direction, ParticipantTag};
use domain::sma::flow::{CallFlow, FlowContext, FlowLeg};
use sip::{HeaderName, OutgoingCall, Peer, Response, Uri};
use store::SmaCallRequest;

use super::join::JoinContext;
use super::pstn::{self, Dial};
use super::sma::{SMA_PREFIX, SmaLeg, SmaSetup};
use super::{Edge, Input};
use crate::records::CdrSeed;
use crate::sma::call::SmaMsg;
use crate::sma::requests;

/// Most SipHeaders put in our INVITE (the API allows a handful).
const MAX_EXTRA_HEADERS: usize = 16;
/// Largest early SDP kept for a 200 that comes without one.
const MAX_EARLY_SDP: usize = 16 * 1024;

/// An outbound call ready to dial: its flow and function, and its leg or why there is none
/// (the function then hears NEW_OUTBOUND_CALL and HANGUP with 503, never nothing).
pub struct Prepared {
    transaction_id: String,
    from: String,
    to: String,
    call_id: String,
    flow: CallFlow,
    function: FunctionEndpoint,
    dial: Result<Dial, String>,
    headers: Vec<(HeaderName, String)>,
}

/// The status a dial-out that could not be placed ends with, as the function hears it.
const NOT_PLACED: u16 = 503;

/// What the edge keeps of application calls for dialling and updates.
#[derive(Default)]
pub(super) struct Dials {
    /// TransactionId → LEG-A, for updates (inbound and outbound calls).
    transactions: HashMap<String, LegId>,
    /// Outbound legs not answered yet: whether they rang, and the early SDP of a 183.
    ringing: HashMap<LegId, (bool, Option<Vec<u8>>)>,
    /// Outbound legs answered whose media is on its way into their mixer.
    attaching: HashSet<LegId>,
}

/// The SipHeaders of a request as extra headers of our INVITE (names and values were
/// checked by the API; a line break is refused here again).
pub(super) fn extra_headers(body: &serde_json::Value) -> Vec<(HeaderName, String)> {
    let Some(map) = body.get("SipHeaders").and_then(|h| h.as_object()) else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| Some((k, v.as_str()?)))
        .filter(|(k, v)| !k.is_empty() && !format!("{k}{v}").contains(['\r', '\n', '\0']))
        .take(MAX_EXTRA_HEADERS)
        .map(|(k, v)| match HeaderName::from_name(k) {
            HeaderName::Other => (HeaderName::Other, format!("{k}: {v}")),
            known => (known, v.to_string()),
        })
        .collect()
}

/// Resolves what a create request needs and prepares its leg; `Err` says why the call is
/// not placed.
async fn prepare(ctx: &JoinContext, req: &SmaCallRequest) -> Result<Prepared, String> {
    let repo = ctx.admission.repo();
    let failed = |e: store::StoreError| format!("the store failed: {e}");
    let app_id = &req.sip_media_application_id;
    let app = repo
        .get_sip_media_application(app_id)
        .await
        .map_err(failed)?
        .ok_or_else(|| format!("SIP media application {app_id} no longer exists"))?;
    let arn = app
        .lambda_arn()
        .ok_or_else(|| format!("SIP media application {app_id} has no endpoint"))?;
    let function = repo.function(arn).await.map_err(failed)?.ok_or_else(|| {
        format!(
            "no endpoint is registered for function {arn} (voice-connector admin functions add)"
        )
    })?;
    let field = |name: &str| {
        req.body
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (from, to) = (field("FromPhoneNumber"), field("ToPhoneNumber"));
    let transaction_id = req.transaction_id.clone();
    let call_id = uuid::Uuid::new_v4().to_string();
    let now_ms = domain::timestamp::now_millis();
    let leg_a = FlowLeg {
        call_id: call_id.clone(),
        tag: ParticipantTag::LegA,
        to: to.clone(),
        from: from.clone(),
        direction: Direction::Outbound,
        start_ms: now_ms,
    };
    let context = FlowContext {
        transaction_id: transaction_id.clone(),
        aws_region: app.aws_region.clone(),
        sip_rule_id: None,
        sip_media_application_id: app.sip_media_application_id.clone(),
    };
    let seed = DialSeed {
        transaction_id: &transaction_id,
        call_id: &call_id,
        app_id,
        from: &from,
        to: &to,
        now_ms,
    };
    let dial = dial_leg(ctx, seed).await;
    let arguments = requests::arguments(&req.body, "ArgumentsMap");
    Ok(Prepared {
        transaction_id,
        from,
        to,
        call_id,
        flow: CallFlow::outbound(Instant::now(), context, leg_a, arguments),
        function,
        dial,
        headers: extra_headers(&req.body),
    })
}

/// What names a dial-out's leg.
struct DialSeed<'a> {
    transaction_id: &'a str,
    call_id: &'a str,
    app_id: &'a str,
    from: &'a str,
    to: &'a str,
    now_ms: i64,
}

/// The dial-out's leg through the best carrier for its number, or why there is none.
async fn dial_leg(ctx: &JoinContext, s: DialSeed<'_>) -> Result<Dial, String> {
    let to = s.to.to_string();
    let carrier = pstn::carriers_for(ctx, &to)
        .await
        .map_err(|r| r.warning)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("no carrier serves {to}"))?;
    let cdr = CdrSeed {
        transaction_id: s.transaction_id.to_string(),
        call_id: s.call_id.to_string(),
        voice_connector_id: String::new(),
        source_phone_number: s.from.to_string(),
        destination_phone_number: to.clone(),
        source_address: String::new(),
        transport: carrier.transport.as_str().to_ascii_uppercase(),
        start_ms: s.now_ms,
        direction: "Outbound",
        answered_ms: None,
        carrier: Some(carrier.name.clone()),
        attempts: Vec::new(),
        sma: Some(crate::records::SmaSeed {
            sip_application_id: s.app_id.to_string(),
            sip_rule_id: None,
            trigger: "CreateSipMediaApplicationCall",
        }),
    };
    let member = Member {
        meeting_id: format!("{SMA_PREFIX}{}", s.transaction_id),
        attendee_id: s.call_id.to_string(),
    };
    let mut dial = pstn::make_dial(ctx, &cdr, &member, carrier).await?;
    // The leg is the call itself here, not one attempt of another leg's call.
    dial.media.member = member;
    dial.media.caller = to;
    dial.media.record = true;
    dial.media.cdr.source_address = dial.remote.to_string();
    Ok(dial)
}

impl Edge {
    /// Requests taken from the queue.
    pub(super) fn sma_requests(&mut self, requests: Vec<SmaCallRequest>) {
        for req in requests {
            match req.kind.as_str() {
                requests::UPDATE => self.sma_update(&req),
                requests::CREATE if self.draining.is_some() => {
                    tracing::warn!(transaction = %req.transaction_id, "shutting down: the SIP media application call is not placed");
                }
                requests::CREATE => {
                    let (ctx, tx) = (self.ctx.clone(), self.tx.clone());
                    tokio::spawn(async move {
                        match prepare(&ctx, &req).await {
                            Ok(p) => {
                                let _ = tx.send(Input::SmaDial(Box::new(p))).await;
                            }
                            Err(why) => {
                                tracing::warn!(transaction = %req.transaction_id, application = %req.sip_media_application_id, reason = %why, "the SIP media application call is not placed")
                            }
                        }
                    });
                }
                _ => {}
            }
        }
    }

    /// UpdateSipMediaApplicationCall: CALL_UPDATE_REQUESTED to the call's flow.
    fn sma_update(&mut self, req: &SmaCallRequest) {
        let tid = &req.transaction_id;
        match self.sma_dial.transactions.get(tid) {
            Some(leg) if self.sma.contains_key(leg) => {
                let arguments = requests::arguments(&req.body, "Arguments");
                tracing::info!(transaction = %tid, "SIP media application call update");
                self.tell(*leg, SmaMsg::Update(arguments));
            }
            _ => {
                tracing::info!(transaction = %tid, "update of a SIP media application call that is not running on this node; dropped")
            }
        }
    }

    /// Remembers an application call's transaction (its LEG-A) for updates; the ones whose
    /// call is over are forgotten.
    fn sma_known(&mut self, transaction_id: String, leg: LegId) {
        let sma = &self.sma;
        let d = &mut self.sma_dial;
        d.transactions.retain(|_, l| sma.contains_key(l));
        d.ringing.retain(|l, _| sma.contains_key(l));
        d.attaching.retain(|l| sma.contains_key(l));
        d.transactions.insert(transaction_id, leg);
    }

    /// An inbound application call starts: its transaction becomes known to
    /// UpdateSipMediaApplicationCall (a request of kind "inbound" in the store).
    pub(super) fn sma_inbound(&mut self, leg: LegId, setup: SmaSetup) {
        let ctx = setup.flow.context();
        let request = SmaCallRequest {
            id: uuid::Uuid::new_v4().to_string(),
            transaction_id: ctx.transaction_id.clone(),
            sip_media_application_id: ctx.sip_media_application_id.clone(),
            kind: requests::INBOUND.to_string(),
            body: serde_json::json!({}),
            created_ms: domain::timestamp::now_millis(),
        };
        self.sma_known(request.transaction_id.clone(), leg);
        let repo = self.ctx.admission.repo().clone();
        tokio::spawn(async move {
            if let Err(e) = repo.insert_sma_call_request(&request).await {
                tracing::warn!(transaction = %request.transaction_id, error = %e, "the call's transaction could not be stored; UpdateSipMediaApplicationCall will not find it");
            }
        });
        self.sma_started(leg, setup);
    }

    /// Sends our INVITE for a prepared outbound call and starts its flow.
    pub(super) fn sma_place(&mut self, p: Prepared) {
        let Prepared {
            transaction_id,
            from,
            to,
            call_id,
            mut flow,
            function,
            dial,
            headers,
        } = p;
        let placed = match dial {
            Ok(dial) if self.draining.is_some() => {
                self.release.unused(*dial.media);
                Err("the server is shutting down".to_string())
            }
            Ok(dial) => self.sma_invite(dial, &from, &to, headers),
            Err(why) => Err(why),
        };
        let leg = match placed {
            Ok(leg) => leg,
            Err(why) => {
                tracing::warn!(transaction = %transaction_id, reason = %why, "the SIP media application call is not placed; its function hears HANGUP {NOT_PLACED}");
                flow.on_leg_ended(Instant::now(), &call_id, Some(NOT_PLACED));
                let sma = self.ctx.sma.clone();
                crate::sma::call::spawn(flow, (call_id, None), function, sma, self.sma_tx.clone());
                return;
            }
        };
        tracing::info!(%leg, transaction = %transaction_id, "SIP media application call dialling");
        let tx = crate::sma::call::spawn(
            flow,
            (call_id, Some(leg)),
            function,
            self.ctx.sma.clone(),
            self.sma_tx.clone(),
        );
        self.sma.insert(leg, SmaLeg::dialled(tx));
        self.sma_known(transaction_id, leg);
        self.sma_ringing(leg);
    }

    /// Sends our INVITE to `to` through the dial's carrier or route (From `from` at our
    /// SIP domain, with `headers` after the target's own) and keeps its leg; `Err` (why, the
    /// media released) when it cannot be sent, a carrier's `--max-calls` or `--cps` among
    /// the reasons. The caller registers the leg with a flow ([`SmaLeg::dialled`]) and
    /// calls [`Self::sma_ringing`].
    pub(super) fn sma_invite(
        &mut self,
        dial: Dial,
        from: &str,
        to: &str,
        headers: Vec<(HeaderName, String)>,
    ) -> Result<LegId, String> {
        let now = Instant::now();
        let (carrier, media, remote) = (dial.carrier, dial.media, dial.remote);
        if let Err(why) = self
            .limits
            .admit_unnamed(now, &carrier.name, carrier.limits)
        {
            self.release.unused(*media);
            return Err(format!("{}: {why}", carrier.name));
        }
        let transport = pstn::transport_kind(carrier.transport);
        let local = super::transport_of(transport)
            .and_then(|t| self.transports.local_addr(t))
            .unwrap_or_else(|| "0.0.0.0:0".parse().expect("addr"));
        let tp = carrier.transport.as_str();
        let scheme = if tp == "tls" { "sips" } else { "sip" };
        let (ip, port) = (remote.ip(), remote.port());
        let uri = format!("{scheme}:{to}@{ip}:{port};transport={tp}");
        let Ok(target) = Uri::parse(&uri) else {
            self.release.unused(*media);
            self.limits.unnamed_gone(&carrier.name);
            return Err(format!("the target {uri} is not a SIP URI"));
        };
        let mut extra = carrier.headers.clone();
        extra.extend(headers);
        let outgoing = OutgoingCall {
            target,
            from: format!("<sip:{from}@{}>", self.sip_domain),
            to: format!("<sip:{to}@{ip}>"),
            body: Some(dial.offer),
            headers: extra,
            credentials: carrier.credentials.clone(),
        };
        let peer = Peer {
            transport,
            local,
            remote,
        };
        let key = match self.ua.invite(now, peer, outgoing) {
            Ok(k) => k,
            Err(e) => {
                self.release.unused(*media);
                self.limits.unnamed_gone(&carrier.name);
                return Err(format!(
                    "the INVITE to carrier {} was not sent: {e}",
                    carrier.name
                ));
            }
        };
        let leg = self.table.sip_dial(now, key, None);
        self.limits.name(leg, &carrier.name);
        self.legs.insert(leg, *media);
        let label = format!("carrier=\"{}\"", carrier.name);
        self.ctx
            .metrics
            .counter_add("vc_carrier_attempts_total", &label, 1);
        tracing::info!(%leg, carrier = %carrier.name, %remote, %to, "application leg dialling");
        Ok(leg)
    }

    /// An application's dialled leg is to be told of its 18x and 200 ([`SmaMsg::Ringing`],
    /// [`SmaMsg::Answered`]).
    pub(super) fn sma_ringing(&mut self, leg: LegId) {
        self.sma_dial.ringing.insert(leg, (false, None));
    }

    /// Gives up on a dialled leg not answered yet (CANCEL); false when it is not ringing.
    pub(super) fn sma_cancel(&mut self, leg: LegId) -> bool {
        if !self.sma_dial.ringing.contains_key(&leg) {
            return false;
        }
        if let Some(k) = self.table.leg(leg).and_then(|l| l.endpoint.sip()) {
            let _ = self.ua.hangup(Instant::now(), k);
        }
        true
    }

    /// A provisional answer to an application's INVITE: RINGING once; an early SDP is
    /// kept for a 200 without one.
    pub(super) fn sma_dial_provisional(&mut self, leg: LegId, resp: &Response) {
        let Some((rang, early)) = self.sma_dial.ringing.get_mut(&leg) else {
            return;
        };
        if let Some(sdp) = super::early::sdp_body(resp).filter(|s| s.len() <= MAX_EARLY_SDP) {
            *early = Some(sdp.to_vec());
        }
        if !std::mem::replace(rang, true) {
            self.tell(leg, SmaMsg::Ringing(leg));
        }
    }

    /// An application's INVITE was answered: the answer applied, the media into the call's
    /// mixer (the flow hears of the answer once it is there, [`Self::sma_attached`]).
    pub(super) fn sma_dial_answered(&mut self, leg: LegId, sdp: &[u8]) {
        let now = Instant::now();
        let Some((_, early)) = self.sma_dial.ringing.remove(&leg) else {
            return;
        };
        let sdp = match (sdp.is_empty(), &early) {
            (true, Some(e)) => e.as_slice(),
            _ => sdp,
        };
        let applied = match self.legs.get_mut(&leg) {
            _ if !self.sma.get(&leg).is_some_and(SmaLeg::running) => Err(calls::Refusal::new(
                480,
                "the SIP media application call is over",
            )),
            Some(l) => l.apply_answer(sdp),
            None => Err(calls::Refusal::new(481, "call does not exist")),
        };
        if let Err(r) = applied {
            tracing::info!(%leg, status = r.status, reason = %r.warning, "the callee's answer is not used; hanging up");
            let cause = HangupCause::Application {
                code: r.status,
                text: r.warning,
            };
            self.table.hang_up(now, leg, cause);
            return;
        }
        self.ctx
            .metrics
            .counter_add("vc_calls_answered_total", "", 1);
        self.open_record(leg);
        if let Some(member) = self.legs.get(&leg).map(|l| l.member.clone()) {
            self.table.move_member(now, leg, member);
        }
        self.sma_dial.attaching.insert(leg);
        self.attach_delayed(leg);
    }

    /// A leg's media is in its mixer: an answered outbound leg's flow hears CALL_ANSWERED.
    pub(super) fn sma_attached(&mut self, leg: LegId) {
        if self.sma_dial.attaching.remove(&leg) {
            self.tell(leg, SmaMsg::Answered(leg));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sip_headers_become_extension_headers() {
        let body = json!({"SipHeaders": {
            "X-Case": "42", "User-to-User": "abc;encoding=hex", "X-Bad": "a\r\nVia: x", "X-Num": 5}});
        let h = extra_headers(&body);
        assert_eq!(h.len(), 2, "{h:?}");
        assert!(h.contains(&(HeaderName::Other, "X-Case: 42".into())));
        assert!(h.contains(&(HeaderName::Other, "User-to-User: abc;encoding=hex".into())));
        assert!(extra_headers(&json!({})).is_empty());
    }

    #[test]
    fn extra_headers_are_bounded() {
        let many: serde_json::Map<String, serde_json::Value> =
            (0..40).map(|i| (format!("X-H{i}"), json!("v"))).collect();
        let h = extra_headers(&json!({ "SipHeaders": many }));
        assert_eq!(h.len(), MAX_EXTRA_HEADERS);
    }
}
