//! Admission of INVITEs: which voice connector an INVITE is for, whether its termination policy lets
//! the call in, and which meeting a join token opens. It reads the store and returns a
//! [`Decision`]; the SIP edge turns the decision into a wire answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::meeting::{AttendeeRecord, MeetingRecord};
use domain::policy::{self, CallFacts, Destination, Refusal};
use domain::voice_connector::{Termination, VoiceConnector};
use sip::auth::{Algorithm, DigestConfig, DigestServer};
use store::{Repository, SettingKind};

mod emergency;

/// What the edge learned from an INVITE.
#[derive(Debug, Clone)]
pub struct InviteFacts {
    pub host: String,
    pub user: String,
    pub join_token: Option<String>,
    pub from_user: String,
    pub source: IpAddr,
    pub over_tls: bool,
    /// `INVITE` and the Request-URI as sent, for digest verification.
    pub request_uri: String,
    /// The Proxy-Authorization header, if any.
    pub proxy_authorization: Option<String>,
}

/// The outcome of routing one INVITE.
#[derive(Debug)]
pub enum Decision {
    Refuse(Refusal),
    /// Ask for credentials (407) with these Proxy-Authenticate values.
    Challenge {
        challenges: Vec<String>,
        reason: &'static str,
    },
    /// Too many failed digest attempts from this source or for this username
    /// ([`DigestThrottle`]): answered 403 with this Warning and Retry-After, credentials
    /// not even checked.
    Throttled {
        warning: String,
        retry_after: u32,
    },
    /// A call for the phone network through the operator's carriers (termination).
    Pstn {
        connector: Box<VoiceConnector>,
        /// The E.164 number called.
        number: String,
        /// The caller ID to send instead of a From user that is not E.164 (the termination's
        /// DefaultPhoneNumber).
        caller_id: Option<String>,
        /// An emergency call: `number` is the routing provider's, and only carriers marked
        /// for emergency calls take it.
        emergency: Option<domain::emergency::EmergencyRoute>,
    },
    /// A valid join: the caller becomes this attendee of this meeting.
    Join {
        connector: Box<VoiceConnector>,
        meeting: Box<MeetingRecord>,
        attendee: Box<AttendeeRecord>,
    },
}

/// Errors of our own (the store failed): answered 500 by the edge.
#[derive(Debug, thiserror::Error)]
#[error("routing failed: {0}")]
pub struct RouteError(#[from] store::StoreError);

/// Per-connector calls-per-second window.
struct CpsWindow {
    start: Instant,
    count: u32,
}

pub struct Admission {
    repo: Arc<dyn Repository>,
    /// SIP message logs for connectors with EnableSIPLogs.
    pub siplog: Option<Arc<crate::siplog::SipLogger>>,
    /// Answer nothing (instead of 403) to sources outside a connector's CidrAllowedList.
    pub drop_unallowed_sources: bool,
    sip_domain: String,
    digest: Mutex<HashMap<String, DigestServer>>,
    /// Failed digest attempts per source and per username.
    pub throttle: Mutex<DigestThrottle>,
    cps: Mutex<HashMap<String, CpsWindow>>,
}

impl Admission {
    pub fn new(repo: Arc<dyn Repository>, sip_domain: String) -> Self {
        Admission {
            repo,
            siplog: None,
            drop_unallowed_sources: false,
            sip_domain,
            digest: Mutex::new(HashMap::new()),
            throttle: Mutex::new(DigestThrottle::new(ThrottleConfig::default())),
            cps: Mutex::new(HashMap::new()),
        }
    }

    pub fn sip_domain(&self) -> &str {
        &self.sip_domain
    }

    pub fn repo(&self) -> &Arc<dyn Repository> {
        &self.repo
    }

    /// Looks up the connector a Request-URI host names.
    pub async fn connector_for_host(
        &self,
        host: &str,
    ) -> Result<Option<VoiceConnector>, RouteError> {
        let Some(id) = policy::connector_id_from_host(host, &self.sip_domain) else {
            return Ok(None);
        };
        Ok(self.repo.get_voice_connector(&id).await?)
    }

    /// The connector's logging settings (all off when none were put).
    pub async fn logging(
        &self,
        vc_id: &str,
    ) -> Result<domain::voice_connector::LoggingConfiguration, RouteError> {
        let doc = self.repo.get_setting(vc_id, SettingKind::Logging).await?;
        Ok(doc
            .and_then(|d| serde_json::from_value(d).ok())
            .unwrap_or_default())
    }

    /// Starts the SIP message log of this call if its connector has EnableSIPLogs, logging
    /// the INVITE that started it.
    pub async fn start_sip_log(&self, vc_id: &str, invite: &sip::Request, peer: &sip::Peer) {
        let Some(logger) = &self.siplog else { return };
        if !matches!(self.logging(vc_id).await, Ok(l) if l.enable_sip_logs == Some(true)) {
            return;
        }
        let Some(call_id) = invite.headers.get(sip::HeaderName::CallId) else {
            return;
        };
        logger.enable(call_id, vc_id);
        let bytes = invite.to_bytes();
        logger.log(&sip::log::LoggedMessage::inbound(*peer, &bytes));
    }

    /// Whether the connector's LoggingConfiguration has EnableMediaMetricLogs.
    pub async fn media_metrics_enabled(&self, vc_id: &str) -> bool {
        let doc = self
            .repo
            .get_setting(vc_id, SettingKind::Logging)
            .await
            .ok()
            .flatten();
        doc.and_then(|d| {
            serde_json::from_value::<domain::voice_connector::LoggingConfiguration>(d).ok()
        })
        .and_then(|l| l.enable_media_metric_logs)
        .unwrap_or(false)
    }

    pub async fn termination(&self, vc_id: &str) -> Result<Option<Termination>, RouteError> {
        let doc = self
            .repo
            .get_setting(vc_id, SettingKind::Termination)
            .await?;
        Ok(doc.and_then(|d| serde_json::from_value(d).ok()))
    }

    /// Applies the termination policy in the documented order, then the join token.
    pub async fn route_invite(
        &self,
        now: Instant,
        f: &InviteFacts,
    ) -> Result<Decision, RouteError> {
        let unknown = || Refusal::UnknownHost {
            host: f.host.clone(),
            sip_domain: self.sip_domain.clone(),
        };
        let Some(vc) = self.connector_for_host(&f.host).await? else {
            return Ok(Decision::Refuse(unknown()));
        };
        let term = self.termination(&vc.voice_connector_id).await?;
        let destination = match (&f.join_token, f.user.as_str()) {
            (Some(t), policy::MEETING_JOIN_NUMBER) => Destination::MeetingJoin { token: t.clone() },
            _ => Destination::Pstn {
                number: f.user.clone(),
            },
        };
        // Allowlist and enabled first: nobody outside learns whether credentials exist.
        let facts = CallFacts {
            source: f.source,
            over_tls: f.over_tls,
            from_user: &f.from_user,
            destination: &destination,
        };
        let early = policy::check_termination(&vc, term.as_ref(), &facts);
        let caller_id = term.as_ref().and_then(|t| policy::caller_id(t, &facts));
        if let Err(
            r @ (Refusal::TerminationNotConfigured(_)
            | Refusal::TerminationDisabled(_)
            | Refusal::SourceNotAllowed { .. }),
        ) = early
        {
            return Ok(Decision::Refuse(r));
        }
        // Credentials (RFC 7616 digest, proxy-style 407 as a trunk would).
        let usernames = self
            .repo
            .list_credential_usernames(&vc.voice_connector_id)
            .await?;
        if !usernames.is_empty()
            && let Some(d) = self.check_credentials(now, &vc, f).await?
        {
            return Ok(d);
        }
        let emergency = match &destination {
            Destination::Pstn { number } => {
                let from = &f.from_user;
                let route = self
                    .emergency_route(&vc.voice_connector_id, number, from, caller_id.as_deref())
                    .await?;
                match route {
                    Ok(e) => e,
                    Err(r) => return Ok(Decision::Refuse(r)),
                }
            }
            Destination::MeetingJoin { .. } => None,
        };
        // An emergency number is no E.164 number and needs no CallingRegions entry; the
        // checks before those two still hold.
        if let Err(r) = early
            && !(emergency.is_some()
                && matches!(
                    r,
                    Refusal::DestinationNotE164(_) | Refusal::RegionNotAllowed { .. }
                ))
        {
            return Ok(Decision::Refuse(r));
        }
        if let Some(e) = emergency {
            // Never held back by the CpsLimit.
            return Ok(Decision::Pstn {
                connector: Box::new(vc),
                number: e.number.clone(),
                caller_id,
                emergency: Some(e),
            });
        }
        let limit = term
            .as_ref()
            .and_then(|t| t.cps_limit)
            .unwrap_or(domain::voice_connector::DEFAULT_CPS_LIMIT);
        if !self.admit_cps(&vc.voice_connector_id, limit, now) {
            return Ok(Decision::Refuse(Refusal::CpsExceeded {
                limit,
                vc: vc.voice_connector_id.clone(),
            }));
        }
        match destination {
            Destination::Pstn { number } => Ok(Decision::Pstn {
                connector: Box::new(vc),
                number,
                caller_id,
                emergency: None,
            }),
            Destination::MeetingJoin { token } => self.join(vc, &token).await,
        }
    }

    async fn join(&self, vc: VoiceConnector, token: &str) -> Result<Decision, RouteError> {
        if !domain::token::well_formed(token) {
            return Ok(Decision::Refuse(Refusal::InvalidJoinToken));
        }
        let hash = domain::token::token_hash(token);
        let Some(attendee) = self.repo.find_attendee_by_token_hash(&hash).await? else {
            return Ok(Decision::Refuse(Refusal::InvalidJoinToken));
        };
        let Some(meeting) = self.repo.get_meeting(&attendee.meeting_id).await? else {
            return Ok(Decision::Refuse(Refusal::MeetingEnded(attendee.meeting_id)));
        };
        if meeting.expired(domain::timestamp::now_millis(), None) {
            return Ok(Decision::Refuse(Refusal::MeetingEnded(attendee.meeting_id)));
        }
        Ok(Decision::Join {
            connector: Box::new(vc),
            meeting: Box::new(meeting),
            attendee: Box::new(attendee),
        })
    }

    async fn check_credentials(
        &self,
        now: Instant,
        vc: &VoiceConnector,
        f: &InviteFacts,
    ) -> Result<Option<Decision>, RouteError> {
        let realm = vc.outbound_host_name.clone();
        let Some(header) = &f.proxy_authorization else {
            let challenges =
                self.with_digest(&vc.voice_connector_id, &realm, |d| d.challenges(now, false));
            return Ok(Some(Decision::Challenge {
                challenges,
                reason: "credentials required",
            }));
        };
        let username = sip::auth::AuthParams::parse(header)
            .and_then(|p| p.get("username").map(|u| u.to_string()))
            .unwrap_or_default();
        let vc_id = &vc.voice_connector_id;
        let blocked = self.throttle().blocked(now, f.source, vc_id, &username);
        if let Some(wait) = blocked {
            let retry_after = u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX);
            return Ok(Some(Decision::Throttled {
                warning: format!(
                    "too many failed authentication attempts; retry in {retry_after} s"
                ),
                retry_after,
            }));
        }
        let stored = self
            .repo
            .get_credential(&vc.voice_connector_id, &username)
            .await?;
        let result = self.with_digest(&vc.voice_connector_id, &realm, |d| {
            d.verify(now, "INVITE", &f.request_uri, header, |_, alg| {
                let s = stored.as_ref()?;
                (s.realm == realm).then(|| match alg {
                    Algorithm::Md5 => Some(s.ha1_md5.clone()),
                    Algorithm::Sha256 => Some(s.ha1_sha256.clone()),
                    _ => None,
                })?
            })
        });
        match result {
            Ok(_) => {
                self.throttle().succeeded(now, f.source, vc_id, &username);
                Ok(None)
            }
            Err(e) => {
                let (_, stale) = e.answer(true);
                if !stale {
                    self.throttle().failed(now, f.source, vc_id, &username);
                }
                let challenges =
                    self.with_digest(&vc.voice_connector_id, &realm, |d| d.challenges(now, stale));
                Ok(Some(Decision::Challenge {
                    challenges,
                    reason: "credentials refused",
                }))
            }
        }
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, DigestThrottle> {
        self.throttle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_digest<T>(
        &self,
        vc_id: &str,
        realm: &str,
        f: impl FnOnce(&mut DigestServer) -> T,
    ) -> T {
        let mut map = self.digest.lock().unwrap_or_else(|p| p.into_inner());
        let server = map.entry(vc_id.to_string()).or_insert_with(|| {
            DigestServer::new(DigestConfig {
                realm: realm.to_string(),
                algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
                nonce_lifetime: Duration::from_secs(300),
                max_nonces: 10_000,
                secret: rand::random(),
            })
        });
        f(server)
    }

    /// A fixed one-second window per connector (AWS counts calls per second).
    fn admit_cps(&self, vc_id: &str, limit: u32, now: Instant) -> bool {
        let mut map = self.cps.lock().unwrap_or_else(|p| p.into_inner());
        let w = map.entry(vc_id.to_string()).or_insert(CpsWindow {
            start: now,
            count: 0,
        });
        if now.saturating_duration_since(w.start) >= Duration::from_secs(1) {
            w.start = now;
            w.count = 0;
        }
        if w.count >= limit {
            return false;
        }
        w.count += 1;
        true
    }
}

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
