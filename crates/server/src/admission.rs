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
mod throttle;

pub use throttle::{DigestThrottle, ThrottleConfig};

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
