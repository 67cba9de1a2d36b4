//! The dialog timers (the transaction timers live in [`crate::transaction`]): one typed
//! [`DialogTimer`] per purpose, a [`DialogTimers`] table per call holding the armed
//! instant of each, and `handle_timeout`, which fires what is due.

use std::cmp::Reverse;
use std::time::Instant;

use super::{CallKey, UserAgent};

/// A timer a dialog runs itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum DialogTimer {
    /// UAS: 2xx retransmission until the ACK, T1 doubling up to T2, given up after 64*T1
    /// (RFC 3261 §13.3.1.4).
    Retransmit2xx,
    /// UAS: reliable provisional retransmission until the PRACK, T1 doubling, given up
    /// after 64*T1 (RFC 3262 §3).
    Reliable1xx,
    /// The refresher's session refresh at half the interval (RFC 4028 §10).
    SessionRefresh,
    /// Session expiry: `interval - min(32, interval/3)` seconds without a refresh (RFC 4028
    /// §10).
    SessionExpiry,
}

impl DialogTimer {
    /// The timer's slot in a [`DialogTimers`] table.
    fn slot(self) -> usize {
        match self {
            DialogTimer::Retransmit2xx => 0,
            DialogTimer::Reliable1xx => 1,
            DialogTimer::SessionRefresh => 2,
            DialogTimer::SessionExpiry => 3,
        }
    }
}

/// When each [`DialogTimer`] of one dialog fires (`None`: not armed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct DialogTimers([Option<Instant>; 4]);

impl DialogTimers {
    /// When `t` fires, if armed.
    pub(super) fn get(&self, t: DialogTimer) -> Option<Instant> {
        self.0[t.slot()]
    }

    /// Arms (or re-arms) `t`.
    pub(super) fn set(&mut self, t: DialogTimer, at: Instant) {
        self.0[t.slot()] = Some(at);
    }

    /// Disarms `t`.
    pub(super) fn clear(&mut self, t: DialogTimer) {
        self.0[t.slot()] = None;
    }
}

impl UserAgent {
    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.txn.handle_timeout(now);
        self.process(now);
        while let Some(Reverse((at, call, timer))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            // The entry is live only if the dialog still holds this instant for the timer
            // (re-arming or clearing leaves the old entry in the heap).
            let Some(d) = self.calls.get_mut(&call) else {
                continue;
            };
            if d.timers.get(timer) != Some(at) {
                continue;
            }
            d.timers.clear(timer);
            self.fire(now, call, timer);
            self.process(now);
        }
    }

    pub(super) fn set_timer(&mut self, call: CallKey, t: DialogTimer, at: Instant) {
        if let Some(d) = self.calls.get_mut(&call) {
            d.timers.set(t, at);
            self.heap.push(Reverse((at, call, t)));
        }
    }

    pub(super) fn clear_timer(&mut self, call: CallKey, t: DialogTimer) {
        if let Some(d) = self.calls.get_mut(&call) {
            d.timers.clear(t);
        }
    }

    fn fire(&mut self, now: Instant, call: CallKey, timer: DialogTimer) {
        match timer {
            DialogTimer::Retransmit2xx => self.retransmit_2xx(now, call),
            DialogTimer::Reliable1xx => self.retransmit_reliable_1xx(now, call),
            DialogTimer::SessionRefresh => {
                let _ = self.refresh_session(now, call);
            }
            DialogTimer::SessionExpiry => self.expire_session(now, call),
        }
    }
}
