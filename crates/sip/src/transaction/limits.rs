//! Budgets and the reflection guard (see the module documentation of
//! [`crate::transaction`]): what each transaction is charged, per-source and global caps,
//! verified sources and the per-source response token bucket.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::message::Request;

use super::{Peer, TransactionKey, TransactionKind, TransactionLayer, Transmit, Txn};

/// Warning text of the 503 for a source over its budget.
pub const SOURCE_LIMIT_WARNING: &str = "too many transactions from this source";

/// Warning text of the 503 when the whole table is at its caps.
pub const GLOBAL_LIMIT_WARNING: &str =
    "server is at its transaction limit (all sources); retry later";

/// What a transaction is charged besides its messages: the entry, its two index entries,
/// its timers in the heap and the TU's bookkeeping (an estimate).
pub const TXN_OVERHEAD: usize = 512;

/// How long a verified source stays verified after its last proof.
pub const VERIFIED_TTL: Duration = Duration::from_secs(3600);

/// Most verified sources remembered (the oldest is forgotten first).
const MAX_VERIFIED: usize = 65_536;

/// The key a source's budget and rate limit are kept under: the address for IPv4 (an
/// IPv4-mapped IPv6 address counts as its IPv4 address), the /64 prefix for IPv6 (RFC 4291
/// §2.5.4: one interface, or one customer, holds a whole /64).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// What a request of this shape occupies: its printed size, estimated from the parsed form.
pub(super) fn request_size(req: &Request) -> usize {
    req.method.as_str().len()
        + req.uri.as_str().len()
        + 12
        + req
            .headers
            .iter()
            .map(|(n, _, v)| n.len() + v.len() + 4)
            .sum::<usize>()
        + req.body.len()
        + 20
}

impl Txn {
    /// What the transaction keeps, estimated ([`TXN_OVERHEAD`] plus its messages).
    pub(super) fn footprint(&self) -> usize {
        TXN_OVERHEAD
            + self.match_key.len()
            + if self.request.is_some() {
                self.request_len
            } else {
                0
            }
            + self.request_bytes.len()
            + self.last_bytes.as_ref().map_or(0, Vec::len)
    }
}

/// Count and bytes of the live server transactions of one source.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Usage {
    pub(super) count: usize,
    pub(super) bytes: usize,
}

/// A per-source token bucket in bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    pub(super) tokens: f64,
    pub(super) at: Instant,
}

impl TransactionLayer {
    /// Bytes all live transactions keep, estimated as the budgets count them (see the
    /// module documentation, "Budgets").
    pub fn retained_bytes(&self) -> usize {
        self.total_bytes
    }

    /// (live server transactions, their bytes) charged to the source of `ip`
    /// ([`source_key`]: its IPv6 /64).
    pub fn source_usage(&self, ip: IpAddr) -> (usize, usize) {
        self.per_source
            .get(&source_key(ip))
            .map_or((0, 0), |u| (u.count, u.bytes))
    }

    /// Marks `ip` as a source that receives what we send (reflection guard): e.g. the UA
    /// got the ACK for its 2xx, which carries the To tag only that 2xx told. Lasts
    /// [`VERIFIED_TTL`] from `now`.
    pub fn verify_source(&mut self, now: Instant, ip: IpAddr) {
        if !self.cfg.reflection_guard {
            return;
        }
        if self.verified.len() >= MAX_VERIFIED && !self.verified.contains_key(&ip) {
            self.verified
                .retain(|_, at| now.saturating_duration_since(*at) < VERIFIED_TTL);
            if self.verified.len() >= MAX_VERIFIED
                && let Some(oldest) = self
                    .verified
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| *k)
            {
                self.verified.remove(&oldest);
            }
        }
        self.verified.insert(ip, now);
    }

    /// Whether `ip` is verified at `now` (always false without the reflection guard).
    pub fn is_verified(&self, now: Instant, ip: IpAddr) -> bool {
        self.verified
            .get(&ip)
            .is_some_and(|at| now.saturating_duration_since(*at) < VERIFIED_TTL)
    }

    /// Takes `n` bytes from the response bucket of `source` (a [`source_key`]).
    pub(super) fn take_tokens(&mut self, now: Instant, source: IpAddr, n: usize) -> bool {
        let rate = f64::from(self.cfg.response_rate_per_source);
        let burst = f64::from(self.cfg.response_burst_per_source);
        if self.buckets.len() >= self.buckets_prune_at {
            // A full bucket is the same as none.
            self.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            self.buckets_prune_at = (self.buckets.len() * 2).max(1024);
        }
        let b = self.buckets.entry(source).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= n as f64 {
            b.tokens -= n as f64;
            true
        } else {
            false
        }
    }

    /// A response sent outside any transaction (400 to a malformed datagram, 503 over a
    /// budget), answering `received` bytes: under the reflection guard only when no larger
    /// than them (unverified UDP source) and within the source's bucket.
    pub(super) fn send_stateless_answer(
        &mut self,
        now: Instant,
        peer: Peer,
        payload: Vec<u8>,
        received: usize,
    ) {
        if self.cfg.reflection_guard && !peer.transport.is_reliable() {
            let ip = peer.remote.ip();
            if !self.is_verified(now, ip) && payload.len() > received {
                return;
            }
            if !self.take_tokens(now, source_key(ip), payload.len()) {
                return;
            }
        }
        self.transmits.push_back(Transmit { peer, payload });
    }

    /// Sends the last response of server transaction `key`, a first answer or (`repeat`)
    /// a retransmission, as the reflection guard allows; without the guard, or over a
    /// reliable transport, always.
    /// Returns whether it was sent.
    pub(super) fn emit_last(&mut self, now: Instant, key: TransactionKey, repeat: bool) -> bool {
        let guard = self.cfg.reflection_guard;
        let Some(t) = self.txns.get(&key) else {
            return false;
        };
        let Some(len) = t.last_bytes.as_ref().map(Vec::len) else {
            return false;
        };
        let (ip, reliable, credit) = (t.peer.remote.ip(), t.reliable(), t.credit);
        let source = t.source.unwrap_or_else(|| source_key(ip));
        // After a provisional the caller no longer retransmits: no credit to wait for.
        let no_credit = t.kind == TransactionKind::ServerInvite && t.provisional_sent;
        let mut unverified = false;
        if guard && !reliable {
            unverified = !self.is_verified(now, ip);
            if unverified && !no_credit && len > credit {
                return false; // held until a retransmission of the request brings credit
            }
            if (unverified || repeat) && !self.take_tokens(now, source, len) {
                return false;
            }
        }
        let Some(t) = self.txns.get_mut(&key) else {
            return false;
        };
        if unverified {
            t.credit = t.credit.saturating_sub(len);
        }
        let Some(b) = &t.last_bytes else {
            return false;
        };
        self.transmits.push_back(Transmit {
            peer: t.peer,
            payload: b.clone(),
        });
        true
    }

    /// Charges transaction `key` again after what it keeps changed.
    pub(super) fn recharge(&mut self, key: TransactionKey) {
        let Some(t) = self.txns.get_mut(&key) else {
            return;
        };
        let new = t.footprint();
        let old = std::mem::replace(&mut t.charged, new);
        self.total_bytes = self.total_bytes + new - old;
        if let Some(src) = t.source
            && let Some(u) = self.per_source.get_mut(&src)
        {
            u.bytes = u.bytes + new - old;
        }
    }

    /// Why a new server transaction from `source` that needs `need` bytes is refused, if it
    /// is: (Retry-After seconds, Warning text) for the source's budget, then the global caps.
    pub(super) fn over_budget(
        &self,
        source: IpAddr,
        need: usize,
    ) -> Option<(&'static str, &'static str)> {
        let used = self.per_source.get(&source).copied().unwrap_or_default();
        let cfg = &self.cfg;
        if used.count >= cfg.max_transactions_per_source
            || used.bytes + need > cfg.max_transaction_bytes_per_source
        {
            Some(("5", SOURCE_LIMIT_WARNING))
        } else if self.txns.len() >= cfg.max_transactions
            || self.total_bytes + need > cfg.max_transaction_bytes
        {
            Some(("10", GLOBAL_LIMIT_WARNING))
        } else {
            None
        }
    }
}
