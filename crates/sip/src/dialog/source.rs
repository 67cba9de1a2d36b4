//! Where a dialog's requests may come from.
//!
//! RFC 3261 §12.2.2 matches an in-dialog request by Call-ID and tags alone, so whoever
//! learns them (a tap on the path, a log) could end or re-target someone else's call from
//! anywhere. A request inside a dialog (BYE, re-INVITE, UPDATE, INFO, PRACK...), a CANCEL
//! of its INVITE and the ACK of its 2xx are therefore accepted only from an address the
//! dialog knows: the one its INVITE came from or went to ([`Peer`]), its remote target's
//! host, or a hop of its route set (the proxies that Record-Routed it), where those are IP
//! literals (no name is resolved here). Anything else gets 403 with a Warning (an ACK is
//! dropped) and is reported as [`UaEvent::ForeignSource`]; the dialog goes on.

use std::net::IpAddr;
use std::time::Instant;

use super::{CallKey, Dialog, UaEvent, UserAgent};
use crate::headers::HeaderName;
use crate::message::Request;
use crate::transaction::{Peer, TransactionKey};
use crate::typed::NameAddr;

/// Warning text of the 403 to a request from an address the dialog does not know.
pub const FOREIGN_SOURCE_WARNING: &str = "request not from this dialog's peer";

impl UserAgent {
    /// Refuses `req` for `call` when it comes from an address the dialog does not know:
    /// answers 403 with [`FOREIGN_SOURCE_WARNING`] through `key` (none for an ACK) and
    /// reports [`UaEvent::ForeignSource`]. Returns whether it refused.
    pub(super) fn refuse_foreign(
        &mut self,
        now: Instant,
        call: CallKey,
        key: Option<TransactionKey>,
        req: &Request,
        peer: Peer,
    ) -> bool {
        let Some(d) = self.calls.get(&call) else {
            return false;
        };
        if d.knows_source(peer.remote.ip()) {
            return false;
        }
        if let Some(key) = key {
            let w = self.warning(FOREIGN_SOURCE_WARNING);
            self.reply(now, key, req, 403, &[(HeaderName::Warning, &w)]);
        }
        self.events.push_back(UaEvent::ForeignSource {
            call,
            method: req.method.clone(),
            source: peer.remote,
        });
        true
    }
}

impl Dialog {
    /// Whether requests of this dialog may come from `ip` (see the module documentation).
    fn knows_source(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        canonical(self.peer.remote.ip()) == ip
            || literal(self.remote_target.host()) == Some(ip)
            || self
                .route_set
                .iter()
                .filter_map(|r| NameAddr::parse(r).ok())
                .any(|hop| literal(hop.uri.host()) == Some(ip))
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The address a URI host names when it is an IP literal (`[...]` for IPv6).
fn literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
        .map(canonical)
}
