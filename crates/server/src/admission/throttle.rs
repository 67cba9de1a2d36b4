//! Failed digest attempts counted per source and per username ([`DigestThrottle`]), so a
//! password guesser is blocked before its guesses are even checked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Limits of [`DigestThrottle`].
#[derive(Clone, Copy, Debug)]
pub struct ThrottleConfig {
    /// Failed attempts from one source (an IPv4 address or IPv6 /64) within `window`
    /// that block it for `block`. Default 5.
    pub max_failures_per_source: u32,
    /// Failed attempts for one username of one connector, from any source, within
    /// `window` that block it for `block`, except from sources where it recently
    /// succeeded. Default 20 (a spray from many addresses).
    pub max_failures_per_user: u32,
    /// Default 60 s.
    pub window: Duration,
    /// Default 60 s.
    pub block: Duration,
    /// How long a source where a username succeeded stays exempt from that username's
    /// block. Default 24 h.
    pub trusted_for: Duration,
    /// Most keys remembered (sources, usernames, trusted pairs each); the oldest are
    /// forgotten first. Default 16,384.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures_per_source: 5,
            max_failures_per_user: 20,
            window: Duration::from_secs(60),
            block: Duration::from_secs(60),
            trusted_for: Duration::from_secs(24 * 3600),
            max_entries: 16_384,
        }
    }
}

/// Failures of one key: the window they fall in and the block they caused.
#[derive(Clone, Copy, Debug)]
struct Failures {
    since: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

/// Failed digest attempts, counted per source and per (connector, username), sans-IO (the
/// caller passes `now`), in bounded memory. Over a limit the key is blocked: attempts are
/// refused without checking credentials (a password guesser learns nothing more), and
/// successful sources of a username stay exempt from that username's block, so a spray
/// aimed at a trunk's username does not lock the trunk out.
#[derive(Debug)]
pub struct DigestThrottle {
    cfg: ThrottleConfig,
    sources: HashMap<IpAddr, Failures>,
    users: HashMap<(String, String), Failures>,
    trusted: HashMap<(String, String, IpAddr), Instant>,
    /// Attempts refused while blocked, and failures counted (for metrics).
    pub refused: u64,
    pub failures: u64,
}

impl DigestThrottle {
    pub fn new(cfg: ThrottleConfig) -> Self {
        DigestThrottle {
            cfg,
            sources: HashMap::new(),
            users: HashMap::new(),
            trusted: HashMap::new(),
            refused: 0,
            failures: 0,
        }
    }

    /// How long attempts from `source` for `user` of `vc` stay refused, if they are
    /// blocked at `now` (each refused attempt is counted in `refused`).
    pub fn blocked(
        &mut self,
        now: Instant,
        source: IpAddr,
        vc: &str,
        user: &str,
    ) -> Option<Duration> {
        let src = sip::transaction::source_key(source);
        let remaining = |f: Option<&Failures>| {
            f.and_then(|f| f.blocked_until)
                .map(|until| until.saturating_duration_since(now))
                .filter(|d| !d.is_zero())
        };
        let by_source = remaining(self.sources.get(&src));
        let key = (vc.to_string(), user.to_string());
        let trusted = self
            .trusted
            .get(&(key.0.clone(), key.1.clone(), src))
            .is_some_and(|at| now.saturating_duration_since(*at) < self.cfg.trusted_for);
        let by_user = if trusted {
            None
        } else {
            remaining(self.users.get(&key))
        };
        let wait = by_source.max(by_user);
        if wait.is_some() {
            self.refused += 1;
        }
        wait
    }

    /// Records a failed attempt (wrong password, unknown user, malformed credentials).
    pub fn failed(&mut self, now: Instant, source: IpAddr, vc: &str, user: &str) {
        self.failures += 1;
        let cfg = self.cfg;
        let src = sip::transaction::source_key(source);
        count_failure(
            &mut self.sources,
            src,
            now,
            cfg.max_failures_per_source,
            &cfg,
        );
        let key = (vc.to_string(), user.to_string());
        count_failure(&mut self.users, key, now, cfg.max_failures_per_user, &cfg);
    }

    /// Records a success: the source's failures are forgotten and it is exempt from this
    /// username's block for [`ThrottleConfig::trusted_for`].
    pub fn succeeded(&mut self, now: Instant, source: IpAddr, vc: &str, user: &str) {
        let src = sip::transaction::source_key(source);
        self.sources.remove(&src);
        let key = (vc.to_string(), user.to_string(), src);
        let cfg = self.cfg;
        let over = |at: &Instant| now.saturating_duration_since(*at) >= cfg.trusted_for;
        make_room(&mut self.trusted, &key, cfg.max_entries, over, |at| {
            (false, *at)
        });
        self.trusted.insert(key, now);
    }

    /// Keys remembered (sources, usernames, trusted pairs).
    pub fn len(&self) -> usize {
        self.sources.len() + self.users.len() + self.trusted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counts one failure of `key` in its window; at `limit` failures the key is blocked.
fn count_failure<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Failures>,
    key: K,
    now: Instant,
    limit: u32,
    cfg: &ThrottleConfig,
) {
    let stale = |f: &Failures| {
        now.saturating_duration_since(f.since) >= cfg.window
            && f.blocked_until.is_none_or(|u| u <= now)
    };
    // Blocked keys are evicted last, so a flood of new keys cannot lift a block.
    let order = |f: &Failures| (f.blocked_until.is_some_and(|u| u > now), f.since);
    make_room(map, &key, cfg.max_entries, stale, order);
    let f = map.entry(key).or_insert(Failures {
        since: now,
        count: 0,
        blocked_until: None,
    });
    if stale(f) {
        *f = Failures {
            since: now,
            count: 0,
            blocked_until: None,
        };
    }
    f.count += 1;
    if f.count >= limit && f.blocked_until.is_none_or(|u| u <= now) {
        f.blocked_until = Some(now + cfg.block);
    }
}

/// Before inserting `key` into a full `map`: forgets what `stale` says is over, then, if
/// still full, the first eighth in `order` (amortized, so a flood of new keys costs
/// little).
fn make_room<K: std::hash::Hash + Eq + Clone, V>(
    map: &mut HashMap<K, V>,
    key: &K,
    cap: usize,
    stale: impl Fn(&V) -> bool,
    order: impl Fn(&V) -> (bool, Instant),
) {
    if map.len() < cap.max(1) || map.contains_key(key) {
        return;
    }
    map.retain(|_, v| !stale(v));
    if map.len() < cap.max(1) {
        return;
    }
    let mut ranked: Vec<_> = map.iter().map(|(k, v)| (order(v), k.clone())).collect();
    ranked.sort_unstable_by_key(|(rank, _)| *rank);
    for (_, k) in ranked.into_iter().take(cap.max(8) / 8) {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VC: &str = "abcdefghijklmnopqrstuv";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_is_blocked_after_five_failures_for_a_while() {
        let mut t = DigestThrottle::new(ThrottleConfig::default());
        let now = Instant::now();
        let a = ip("192.0.2.1");
        for i in 0..5 {
            assert_eq!(t.blocked(now, a, VC, "trunk"), None, "attempt {i}");
            t.failed(now, a, VC, &format!("user{i}"));
        }
        let wait = t.blocked(now, a, VC, "anyone").unwrap();
        assert_eq!(wait, Duration::from_secs(60));
        assert_eq!(t.refused, 1);
        // Another source, and the same username from it, are not affected.
        assert_eq!(t.blocked(now, ip("192.0.2.2"), VC, "user0"), None);
        // Over after the block.
        let later = now + Duration::from_secs(61);
        assert_eq!(t.blocked(later, a, VC, "trunk"), None);
        t.failed(later, a, VC, "x");
        assert_eq!(t.blocked(later, a, VC, "x"), None, "a new window");
    }

    #[test]
    fn failures_spread_over_time_do_not_add_up() {
        let mut t = DigestThrottle::new(ThrottleConfig::default());
        let start = Instant::now();
        let a = ip("192.0.2.1");
        for i in 0..20 {
            let now = start + Duration::from_secs(i * 20);
            assert_eq!(t.blocked(now, a, VC, "trunk"), None, "attempt {i}");
            t.failed(now, a, VC, "trunk");
        }
    }

    #[test]
    fn a_username_spray_blocks_the_username_but_not_where_it_succeeded() {
        let mut t = DigestThrottle::new(ThrottleConfig::default());
        let now = Instant::now();
        let home = ip("198.51.100.7");
        t.succeeded(now, home, VC, "trunk");
        // 20 attackers, one failure each (no source reaches its own limit).
        for i in 0..20u8 {
            t.failed(now, IpAddr::from([203, 0, 113, i]), VC, "trunk");
        }
        assert!(t.blocked(now, ip("203.0.113.200"), VC, "trunk").is_some());
        assert_eq!(t.blocked(now, home, VC, "trunk"), None, "trusted source");
        assert_eq!(
            t.blocked(now, ip("203.0.113.200"), VC, "other"),
            None,
            "other usernames"
        );
        assert_eq!(
            t.blocked(now, ip("203.0.113.200"), "zzzzzzzzzzzzzzzzzzzzzz", "trunk"),
            None,
            "same username on another connector"
        );
    }

    #[test]
    fn ipv6_sources_count_by_64() {
        let mut t = DigestThrottle::new(ThrottleConfig::default());
        let now = Instant::now();
        for i in 0..5u16 {
            let a = IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i]);
            t.failed(now, a, VC, "u");
        }
        assert!(t.blocked(now, ip("2001:db8:0:1::ffff"), VC, "v").is_some());
        assert!(t.blocked(now, ip("2001:db8:0:2::1"), VC, "v").is_none());
    }

    #[test]
    fn memory_is_bounded_and_blocks_survive_a_flood_of_new_keys() {
        let cfg = ThrottleConfig {
            max_entries: 64,
            ..ThrottleConfig::default()
        };
        let mut t = DigestThrottle::new(cfg);
        let start = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            t.failed(start, a, VC, "u");
        }
        // 10,000 other sources and usernames, each failing once, a second later (their
        // windows are young, so the oldest go first).
        for i in 0..10_000u32 {
            let now = start + Duration::from_millis(1000 + u64::from(i));
            t.failed(now, IpAddr::from(i.to_be_bytes()), VC, &format!("n{i}"));
            assert!(t.len() <= 3 * 64, "{}", t.len());
        }
        assert!(t.sources.len() <= 64 && t.users.len() <= 64);
        // The blocked source is the oldest key, yet still blocked: blocks go last.
        let now = start + Duration::from_secs(12);
        assert!(t.blocked(now, a, VC, "u").is_some());
    }
}
