//! OPTIONS keep-alives to carrier trunks: each probe is an OPTIONS outside any dialog; any
//! final response from the carrier (but 503) marks it up, a timeout (408 after Timer F), a
//! transport error or a 503 marks it down. The status goes to the store (every node and
//! `admin carriers list` see it) and to `/metrics` as `vc_carrier_up{carrier=".."}`.

use std::net::SocketAddr;
use std::time::Instant;

use domain::carrier::{CarrierStatus, CarrierTransport};
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

impl Edge {
    pub(super) fn probe(&mut self, now: Instant, p: Probe) {
        let transport = super::pstn::transport_kind(p.transport);
        let local = super::transport_of(transport)
            .and_then(|t| self.transports.local_addr(t))
            .unwrap_or_else(|| "0.0.0.0:0".parse().expect("addr"));
        let scheme = if p.transport == CarrierTransport::Tls {
            "sips"
        } else {
            "sip"
        };
        let port = p.remote.port();
        let Ok(target) = Uri::parse(&format!("{scheme}:{}:{port}", p.host)) else {
            return;
        };
        let to = format!("<{target}>");
        let from = format!("<sip:keepalive@{}>", self.sip_domain);
        let req = OutOfDialog::new(Method::Options, target, from, to);
        let peer = Peer {
            transport,
            local,
            remote: p.remote,
        };
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
