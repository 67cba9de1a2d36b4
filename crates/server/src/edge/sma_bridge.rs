//! CallAndBridge of SIP media applications (issue 13), at the edge. The call's flow asks
//! for LEG-B ([`SmaRequest::Bridge`](crate::sma::call::SmaRequest::Bridge)); a task
//! resolves the endpoint: a `PSTN` Uri goes to the best carrier for the number, an `AWS`
//! endpoint to the first origination route (by priority) of the voice connector its Arn
//! names (`arn:aws:chime:REGION:ACCOUNT:vc/<id>`), the Uri in the Request-URI. The leg is
//! prepared as an outbound application call's (`pstn::make_dial`) with its media bound
//! for LEG-A's mixer (`sma-<TransactionId>`, as attendee LEG-B's CallId), so the two legs
//! hear each other through the mixer, which transcodes. Our INVITE carries From
//! CallerIdNumber and the action's SipHeaders. From then on LEG-B is an application leg
//! like a dialled LEG-A (`edge::sma_dial`): 18x, the answer once its media is in the mixer,
//! and its end reach the same flow, which decides (CallTimeoutSeconds, ACTION_SUCCESSFUL
//! or ACTION_FAILED, HANGUP of LEG-B alone). The legs are not bridged in the call table,
//! so either can end without the other.

use calls::{LegId, Member};
use domain::sma::action::{BridgeEndpointType, CallAndBridge};
use sip::HeaderName;
use store::SettingKind;

use super::join::JoinContext;
use super::pstn::{self, Dial, Target};
use super::sma::{SMA_PREFIX, SmaLeg};
use super::{Edge, Input};
use crate::records::CdrSeed;
use crate::sma::call::SmaMsg;

/// Why LEG-B is not dialled: the ACTION_FAILED's ErrorType and message.
pub type NotDialled = (&'static str, String);

/// LEG-B of a CallAndBridge, ready to dial.
pub struct BridgeDial {
    dial: Dial,
    from: String,
    to: String,
    headers: Vec<(HeaderName, String)>,
}

/// The connector id an `AWS` endpoint's Arn names (`…:vc/<id>`); a bare id is taken as
/// it is.
fn connector_id(arn: &str) -> Option<&str> {
    match arn.strip_prefix("arn:aws:chime:") {
        Some(rest) => rest.rsplit_once(":vc/").map(|(_, id)| id),
        None => Some(arn),
    }
    .filter(|id| !id.is_empty() && !id.contains(['/', ':']))
}

fn invalid(why: String) -> NotDialled {
    ("InvalidActionParameter", why)
}

/// Where LEG-B goes, and the number or user in its Request-URI.
async fn target(ctx: &JoinContext, action: &CallAndBridge) -> Result<(Target, String), NotDialled> {
    let [e] = action.endpoints.as_slice() else {
        return Err(invalid("CallAndBridge needs exactly one endpoint".into()));
    };
    let uri = e.uri.clone().unwrap_or_default();
    let system = |e: store::StoreError| ("SystemException", format!("the store failed: {e}"));
    match e.bridge_endpoint_type {
        BridgeEndpointType::Pstn => {
            let carriers = pstn::carriers_for(ctx, &uri)
                .await
                .map_err(|r| ("CallNotAnswered", r.warning))?;
            let first = carriers.into_iter().next();
            first
                .map(|t| (t, uri.clone()))
                .ok_or_else(|| ("CallNotAnswered", format!("no carrier serves {uri}")))
        }
        BridgeEndpointType::Aws => {
            let arn = e.arn.as_deref().unwrap_or_default();
            let id = connector_id(arn)
                .ok_or_else(|| invalid(format!("{arn} is not a voice connector's Arn")))?;
            let repo = ctx.admission.repo();
            let vc = repo
                .get_voice_connector(id)
                .await
                .map_err(system)?
                .ok_or_else(|| invalid(format!("voice connector {id} does not exist")))?;
            let origination: Option<domain::voice_connector::Origination> = repo
                .get_setting(id, SettingKind::Origination)
                .await
                .map_err(system)?
                .and_then(|d| serde_json::from_value(d).ok());
            let no_route = || {
                (
                    "CallNotAnswered",
                    format!("voice connector {id} has no enabled origination route"),
                )
            };
            let o = origination
                .filter(|o| o.disabled != Some(true))
                .ok_or_else(no_route)?;
            let pick = &mut |n: u32| rand::random::<u32>() % n.max(1);
            o.order(pick)
                .into_iter()
                .find_map(|r| super::origination::route_target(id, vc.require_encryption, r))
                .map(|t| (t, uri))
                .ok_or_else(no_route)
        }
        BridgeEndpointType::SipMediaApp => Err(invalid(
            "bridging to another SIP media application is not supported by this server".into(),
        )),
    }
}

/// Resolves LEG-B's endpoint and prepares its leg for the mixer `meeting_id`.
async fn prepare(
    ctx: &JoinContext,
    meeting_id: String,
    call_id: String,
    action: &CallAndBridge,
    sma: Option<crate::records::SmaSeed>,
) -> Result<BridgeDial, NotDialled> {
    let (target, to) = target(ctx, action).await?;
    let from = action.caller_id_number.clone();
    let transaction_id = meeting_id
        .strip_prefix(SMA_PREFIX)
        .unwrap_or(&meeting_id)
        .to_string();
    let cdr = CdrSeed {
        transaction_id,
        call_id: call_id.clone(),
        voice_connector_id: target.voice_connector_id.clone().unwrap_or_default(),
        source_phone_number: from.clone(),
        destination_phone_number: to.clone(),
        source_address: String::new(),
        transport: target.transport.as_str().to_ascii_uppercase(),
        start_ms: domain::timestamp::now_millis(),
        direction: "Outbound",
        answered_ms: None,
        carrier: Some(target.name.clone()),
        attempts: Vec::new(),
        sma: sma.map(|s| crate::records::SmaSeed {
            trigger: "CallAndBridge",
            ..s
        }),
    };
    let member = Member {
        meeting_id,
        attendee_id: call_id,
    };
    let mut dial = pstn::make_dial(ctx, &cdr, &member, target)
        .await
        .map_err(|why| ("SystemException", why))?;
    dial.media.member = member;
    dial.media.caller = to.clone();
    dial.media.record = true;
    dial.media.cdr.source_address = dial.remote.to_string();
    let headers = serde_json::json!({ "SipHeaders": action.sip_headers });
    Ok(BridgeDial {
        dial,
        from,
        to,
        headers: super::sma_dial::extra_headers(&headers),
    })
}

impl Edge {
    /// A flow's CallAndBridge for LEG-A `a`: LEG-B is prepared in a task
    /// ([`Self::sma_bridge_place`] goes on).
    pub(super) fn sma_bridge(&mut self, a: LegId, call_id: String, action: CallAndBridge) {
        let meeting = self.legs.get(&a).map(|l| l.member.meeting_id.clone());
        // LEG-B's record names LEG-A's application.
        let sma = self.legs.get(&a).and_then(|l| l.cdr.sma.clone());
        let Some(meeting_id) = meeting.filter(|_| self.draining.is_none()) else {
            let why = "LEG-A has no media to bridge to".to_string();
            self.tell(a, SmaMsg::Dialling(call_id, Err(("SystemException", why))));
            return;
        };
        let (ctx, tx) = (self.ctx.clone(), self.tx.clone());
        tokio::spawn(async move {
            let dial = prepare(&ctx, meeting_id, call_id.clone(), &action, sma)
                .await
                .map(Box::new);
            let _ = tx.send(Input::SmaBridge { a, call_id, dial }).await;
        });
    }

    /// LEG-B (`call_id`) is prepared (or not): our INVITE goes out and the flow hears of
    /// its leg.
    pub(super) fn sma_bridge_place(
        &mut self,
        a: LegId,
        call_id: String,
        dial: Result<Box<BridgeDial>, NotDialled>,
    ) {
        let flow = self.sma.get(&a).filter(|s| s.running()).map(SmaLeg::sender);
        let (d, flow) = match (dial, flow) {
            (Ok(d), Some(flow)) if self.draining.is_none() => (d, flow),
            (Ok(d), _) => {
                // The call or the server is going away.
                self.release.unused(*d.dial.media);
                return;
            }
            (Err(e), _) => return self.tell(a, SmaMsg::Dialling(call_id, Err(e))),
        };
        let BridgeDial {
            dial,
            from,
            to,
            headers,
        } = *d;
        let b = match self.sma_invite(dial, &from, &to, headers) {
            Ok(b) => b,
            Err(why) => {
                let why = format!("LEG-B to {to} was not dialled: {why}");
                return self.tell(a, SmaMsg::Dialling(call_id, Err(("SystemException", why))));
            }
        };
        tracing::info!(leg_a = %a, leg_b = %b, %to, "CallAndBridge: LEG-B dialling");
        self.sma.insert(b, SmaLeg::dialled(flow));
        self.sma_ringing(b);
        self.tell(a, SmaMsg::Dialling(call_id, Ok(b)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_ids_of_arns() {
        let arn = "arn:aws:chime:us-east-1:000000000000:vc/abcdef";
        assert_eq!(connector_id(arn), Some("abcdef"));
        assert_eq!(connector_id("abcdef"), Some("abcdef"));
        assert_eq!(connector_id("arn:aws:chime:us-east-1:0:meeting/x"), None);
        assert_eq!(connector_id("arn:aws:chime:us-east-1:0:vc/"), None);
        assert_eq!(connector_id("arn:aws:chime:us-east-1:0:vc/a/b"), None);
    }
}
