//! Per-carrier limits (`admin carriers add --max-calls N --cps N`), sans-IO and owned by
//! the edge task (no lock): how many calls each carrier carries now and how many new
//! calls it was sent in the last second.
//!
//! A call holds one place, keyed by its PBX leg, from the moment an attempt to a carrier
//! is admitted until the PBX leg is released; moving on to the next carrier moves the
//! place with it. So a carrier's count is its calls in set-up plus its answered calls.
//! New calls per second are a token bucket per carrier: `cps` tokens at most, refilled at
//! `cps` per second, one taken per attempt.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::time::Instant;

use domain::carrier::Carrier;

/// A carrier's limits; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_calls: Option<u32>,
    pub cps: Option<u32>,
}

impl Limits {
    pub fn of(c: &Carrier) -> Limits {
        Limits {
            max_calls: c.max_calls,
            cps: c.cps,
        }
    }
}

/// Why a carrier was passed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// It carries its `--max-calls` already.
    MaxCalls(u32),
    /// It was sent its `--cps` new calls in the last second.
    Cps(u32),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::MaxCalls(n) => write!(f, "carrier at max calls ({n})"),
            Skip::Cps(n) => write!(f, "carrier at its calls per second ({n})"),
        }
    }
}

#[derive(Debug)]
struct Usage {
    active: u32,
    /// Tokens and when they were last counted.
    tokens: f64,
    at: Instant,
}

/// The counters of every carrier with a call or a recent attempt; calls are named by
/// `K` (the PBX leg's id in the edge).
#[derive(Debug)]
pub struct CarrierLimits<K> {
    usage: HashMap<String, Usage>,
    /// Which carrier each call's place is on.
    places: HashMap<K, String>,
    /// Carriers passed over per call, with why (for the refusal's Warning).
    skipped: HashMap<K, Vec<(String, Skip)>>,
}

impl<K> Default for CarrierLimits<K> {
    fn default() -> Self {
        CarrierLimits {
            usage: HashMap::new(),
            places: HashMap::new(),
            skipped: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> CarrierLimits<K> {
    /// Admits call `a`'s attempt to `carrier` (taking a place and a token; the call's
    /// place on a previous carrier is given back), or says why not.
    pub fn admit(&mut self, now: Instant, a: K, carrier: &str, limits: Limits) -> Result<(), Skip> {
        self.give_back(a);
        match self.admit_unnamed(now, carrier, limits) {
            Ok(()) => {
                self.places.insert(a, carrier.to_string());
                Ok(())
            }
            Err(why) => Err(self.skip(a, carrier, why)),
        }
    }

    /// Admits an attempt whose call has no name yet (an application's outbound leg, named
    /// by the INVITE it is about to send): [`Self::name`] gives it its name once it has one,
    /// [`Self::unnamed_gone`] gives its place back when the INVITE is not sent.
    pub fn admit_unnamed(
        &mut self,
        now: Instant,
        carrier: &str,
        limits: Limits,
    ) -> Result<(), Skip> {
        let u = self.usage.entry(carrier.to_string()).or_insert(Usage {
            active: 0,
            tokens: f64::from(limits.cps.unwrap_or(0)),
            at: now,
        });
        if let Some(max) = limits.max_calls
            && u.active >= max
        {
            return Err(Skip::MaxCalls(max));
        }
        if let Some(cps) = limits.cps {
            let rate = f64::from(cps);
            let elapsed = now.saturating_duration_since(u.at).as_secs_f64();
            u.tokens = (u.tokens + elapsed * rate).min(rate);
            u.at = now;
            if u.tokens < 1.0 {
                return Err(Skip::Cps(cps));
            }
            u.tokens -= 1.0;
        }
        u.active += 1;
        Ok(())
    }

    /// The attempt admitted by [`Self::admit_unnamed`] is call `a`'s (released with it).
    pub fn name(&mut self, a: K, carrier: &str) {
        self.places.insert(a, carrier.to_string());
    }

    /// The attempt admitted by [`Self::admit_unnamed`] was not made.
    pub fn unnamed_gone(&mut self, carrier: &str) {
        if let Some(u) = self.usage.get_mut(carrier) {
            u.active = u.active.saturating_sub(1);
        }
    }

    fn skip(&mut self, a: K, carrier: &str, why: Skip) -> Skip {
        self.skipped
            .entry(a)
            .or_default()
            .push((carrier.to_string(), why));
        why
    }

    /// Why `carrier` was passed over for call `a`, if it was.
    pub fn skipped(&self, a: K, carrier: &str) -> Option<Skip> {
        self.skipped
            .get(&a)?
            .iter()
            .find(|(c, _)| c == carrier)
            .map(|(_, s)| *s)
    }

    fn give_back(&mut self, a: K) {
        if let Some(c) = self.places.remove(&a)
            && let Some(u) = self.usage.get_mut(&c)
        {
            u.active = u.active.saturating_sub(1);
        }
    }

    /// The leg is released: its call's place (if it held one) is free.
    pub fn release(&mut self, leg: K) {
        self.give_back(leg);
        self.skipped.remove(&leg);
    }

    /// Calls a carrier carries now.
    #[cfg(test)]
    pub fn active(&self, carrier: &str) -> u32 {
        self.usage.get(carrier).map_or(0, |u| u.active)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn legs() -> impl Iterator<Item = u64> {
        0..
    }

    const CALLS_1: Limits = Limits {
        max_calls: Some(1),
        cps: None,
    };

    #[test]
    fn max_calls_counts_calls_until_their_leg_is_released() {
        let now = Instant::now();
        let mut l = CarrierLimits::default();
        let mut ids = legs();
        let (a1, a2) = (ids.next().unwrap(), ids.next().unwrap());
        assert_eq!(l.admit(now, a1, "c1", CALLS_1), Ok(()));
        assert_eq!(l.admit(now, a2, "c1", CALLS_1), Err(Skip::MaxCalls(1)));
        assert_eq!(l.skipped(a2, "c1"), Some(Skip::MaxCalls(1)));
        assert_eq!(l.admit(now, a2, "c2", CALLS_1), Ok(()));
        assert_eq!((l.active("c1"), l.active("c2")), (1, 1));
        l.release(a1);
        assert_eq!(l.active("c1"), 0);
        assert_eq!(l.admit(now, a1, "c1", CALLS_1), Ok(()));
    }

    #[test]
    fn failing_over_moves_the_place() {
        let now = Instant::now();
        let mut l = CarrierLimits::default();
        let a = legs().next().unwrap();
        l.admit(now, a, "c1", CALLS_1).unwrap();
        l.admit(now, a, "c2", CALLS_1).unwrap();
        assert_eq!((l.active("c1"), l.active("c2")), (0, 1));
        l.release(a);
        assert_eq!(l.active("c2"), 0);
    }

    #[test]
    fn cps_is_a_bucket_refilled_each_second() {
        let t0 = Instant::now();
        let mut l = CarrierLimits::default();
        let two = Limits {
            max_calls: None,
            cps: Some(2),
        };
        let ids: Vec<u64> = legs().take(6).collect();
        assert_eq!(l.admit(t0, ids[0], "c", two), Ok(()));
        assert_eq!(l.admit(t0, ids[1], "c", two), Ok(()));
        assert_eq!(l.admit(t0, ids[2], "c", two), Err(Skip::Cps(2)));
        // Half a second gives one token back, a whole one two (never more than two).
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(l.admit(t1, ids[3], "c", two), Ok(()));
        assert_eq!(l.admit(t1, ids[4], "c", two), Err(Skip::Cps(2)));
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(l.admit(t2, ids[4], "c", two), Ok(()));
        assert_eq!(l.admit(t2, ids[5], "c", two), Ok(()));
        assert_eq!(l.admit(t2, ids[2], "c", two), Err(Skip::Cps(2)));
        assert_eq!(
            Skip::Cps(2).to_string(),
            "carrier at its calls per second (2)"
        );
    }

    #[test]
    fn no_limits_admit_everything() {
        let now = Instant::now();
        let mut l = CarrierLimits::default();
        for a in legs().take(100) {
            assert_eq!(l.admit(now, a, "c", Limits::default()), Ok(()));
        }
        assert_eq!(l.active("c"), 100);
    }

    #[test]
    fn unnamed_attempts_count_once_named_or_given_back() {
        let now = Instant::now();
        let mut l = CarrierLimits::default();
        assert_eq!(l.admit_unnamed(now, "c1", CALLS_1), Ok(()));
        assert_eq!(l.admit_unnamed(now, "c1", CALLS_1), Err(Skip::MaxCalls(1)));
        l.unnamed_gone("c1");
        assert_eq!(l.admit_unnamed(now, "c1", CALLS_1), Ok(()));
        l.name(7u64, "c1");
        assert_eq!(l.admit(now, 8, "c1", CALLS_1), Err(Skip::MaxCalls(1)));
        l.release(7);
        assert_eq!(l.active("c1"), 0);
    }
}
