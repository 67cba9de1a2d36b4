//! What every calling user agent of the load generator shares (`--joins`, `--pstn`,
//! `--ivr`): its configuration, sending what it queued, the events only the UA needs, and
//! the BYE bookkeeping of a call.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use sip::{CallKey, UaConfig, UaEvent, UserAgent};
use tokio::net::UdpSocket;

/// Whether a call's BYE went out, and the Call-ID that matches the answer to it.
#[derive(Debug, Default)]
pub(crate) struct ByeState {
    pub sent: bool,
    /// Call-ID of the answered call, to match the response to our BYE.
    pub call_id: Option<String>,
}

impl ByeState {
    /// Sends the call's BYE once; an answer is then awaited in `pending`.
    pub fn send(
        &mut self,
        ua: &mut UserAgent,
        now: Instant,
        key: CallKey,
        pending: &mut HashSet<String>,
    ) {
        if self.sent {
            return;
        }
        self.sent = true;
        if ua.hangup(now, key).is_ok()
            && let Some(id) = &self.call_id
        {
            pending.insert(id.clone());
        }
    }
}

/// Sends what the UA has queued. A full socket buffer loses a copy; the transaction layer
/// retransmits.
pub(crate) async fn transmit(ua: &mut UserAgent, sock: &UdpSocket) {
    while let Some(t) = ua.poll_transmit() {
        let _ = sock.send_to(&t.payload, t.peer.remote).await;
    }
}

/// A calling UA's event: what only the UA needs is done here (an incoming call refused
/// 603, requests in and out of dialogs answered 200); the rest is handed back.
pub(crate) fn caller_event(ua: &mut UserAgent, now: Instant, ev: UaEvent) -> Option<UaEvent> {
    match ev {
        UaEvent::IncomingCall { call, .. } => {
            let _ = ua.answer(now, call, 603, None);
            None
        }
        UaEvent::Request { txn, request, .. }
        | UaEvent::OutOfDialogRequest { txn, request, .. } => {
            let r = sip::Response::for_request(&request, 200);
            let _ = ua.respond_request(now, txn, r);
            None
        }
        other => Some(other),
    }
}

/// The calls whose BYE has not gone out.
pub(crate) fn not_hung_up<C>(
    calls: &HashMap<CallKey, C>,
    bye: impl Fn(&C) -> &ByeState,
) -> Vec<CallKey> {
    calls
        .iter()
        .filter(|(_, c)| !bye(c).sent)
        .map(|(k, _)| *k)
        .collect()
}

pub(crate) fn ua_config() -> UaConfig {
    let mut cfg = UaConfig {
        contact_user: "loadgen".into(),
        session_timer: None,
        user_agent: "vc-loadgen".into(),
        max_calls: 1_000_000,
        ..UaConfig::default()
    };
    cfg.transaction.max_transactions_per_source = 1_000_000;
    cfg.transaction.max_transactions = 1_000_000;
    cfg
}
