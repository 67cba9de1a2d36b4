//! OPTIONS keep-alives to carrier trunks: each probe is an OPTIONS outside any dialog; any
//! final response from the carrier (but 503) marks it up, a timeout (408 after Timer F), a
//! transport error or a 503 marks it down. The status goes to the store (every node and
//! `admin carriers list` see it) and to `/metrics` as `vc_carrier_up{carrier=".."}`.
//!
//! The pieces every request to a carrier outside a call needs (the carriers with their
//! addresses resolved, our peer for one) serve the REGISTERs of `register.rs` too.

use std::net::SocketAddr;
use std::time::Instant;

use domain::carrier::{Carrier, CarrierStatus, CarrierTransport};
use sip::{Method, OutOfDialog, Peer, TransactionKey, Uri};

use super::Edge;

/// One keep-alive to send.
#[derive(Debug, Clone)]
pub struct Probe {
    pub carrier: String,
    pub transport: CarrierTransport,
    pub remote: SocketAddr,
    /// The carrier's host as configured (the Request-URI's host).
    pub host: String,
}

/// Every carrier, and those `keep` picks with their first address resolved (one that does
/// not resolve is logged, for `purpose`, and left out); `None` when the store cannot list
/// them.
pub async fn resolve_carriers(
    repo: &dyn store::Repository,
    purpose: &str,
    keep: fn(&Carrier) -> bool,
) -> Option<(Vec<Carrier>, Vec<(Carrier, SocketAddr)>)> {
    let carriers = match repo.list_carriers().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "{purpose}: listing carriers failed");
            return None;
        }
    };
    let mut out = Vec::new();
    for c in carriers.iter().filter(|c| keep(c)) {
        let Some(a) = c.addresses.first() else {
            continue;
        };
        let resolved = tokio::net::lookup_host((a.host.as_str(), a.port)).await;
        match resolved.ok().and_then(|mut r| r.next()) {
            Some(remote) => out.push((c.clone(), remote)),
            None => {
                tracing::warn!(carrier = %c.name, address = %a, "{purpose}: address does not resolve")
            }
        }
    }
    Some((carriers, out))
}

impl Edge {
    /// Our side of a request to a carrier at `remote`, and the URI scheme (`sips` over TLS).
    pub(super) fn carrier_peer(
        &self,
        transport: CarrierTransport,
        remote: SocketAddr,
    ) -> (Peer, &'static str) {
        let kind = super::pstn::transport_kind(transport);
        let local = super::transport_of(kind)
            .and_then(|t| self.transports.local_addr(t))
            .unwrap_or_else(|| "0.0.0.0:0".parse().expect("addr"));
        let scheme = if transport == CarrierTransport::Tls {
            "sips"
        } else {
            "sip"
        };
        let peer = Peer {
            transport: kind,
            local,
            remote,
        };
        (peer, scheme)
    }

    pub(super) fn probe(&mut self, now: Instant, p: Probe) {
        let (peer, scheme) = self.carrier_peer(p.transport, p.remote);
        let port = p.remote.port();
        let Ok(target) = Uri::parse(&format!("{scheme}:{}:{port}", p.host)) else {
            return;
        };
        let to = format!("<{target}>");
        let from = format!("<sip:keepalive@{}>", self.sip_domain);
        let req = OutOfDialog::new(Method::Options, target, from, to);
        match self.ua.send_out_of_dialog(now, peer, req) {
            Ok(txn) => {
                let sent = domain::timestamp::now_millis();
                self.probes.insert(txn, (p.carrier, sent));
            }
            Err(e) => {
                tracing::warn!(carrier = %p.carrier, error = %e, "OPTIONS keep-alive not sent")
            }
        }
    }

    pub(super) fn probe_result(&mut self, txn: TransactionKey, status: u16, answered: bool) {
        let Some((carrier, sent)) = self.probes.remove(&txn) else {
            return;
        };
        let up = answered && status != 503;
        let label = format!("carrier=\"{carrier}\"");
        self.ctx
            .metrics
            .gauge_set("vc_carrier_up", &label, i64::from(up));
        if !up {
            tracing::warn!(%carrier, status, "carrier down: its OPTIONS keep-alive failed");
        }
        let st = CarrierStatus {
            carrier,
            up,
            last_options_ms: Some(sent),
            last_status: answered.then_some(status),
        };
        let repo = self.ctx.admission.repo().clone();
        tokio::spawn(async move {
            if let Err(e) = repo.put_carrier_status(&st).await {
                tracing::warn!(carrier = %st.carrier, error = %e, "storing the carrier's status failed");
            }
        });
    }
}
