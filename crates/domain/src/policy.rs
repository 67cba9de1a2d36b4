//! Termination policy: the decisions the SIP edge applies to every INVITE before any dialog
//! state, media port or database write is spent. Pure functions over the connector's settings;
//! the edge turns a [`Refusal`] into a SIP status with a `Warning: 399` that tells the
//! operator what to fix.

use std::net::IpAddr;

use crate::voice_connector::{Termination, VoiceConnector, country_of, is_e164};

/// The number a caller dials to join an SDK meeting (the seed, step 4).
pub const MEETING_JOIN_NUMBER: &str = "+17035550122";

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{host} is not a voice connector host name here; dial <voice connector id>.{sip_domain}"
    )]
    UnknownHost { host: String, sip_domain: String },
    #[error(
        "termination is not configured on voice connector {0}; call PutVoiceConnectorTermination"
    )]
    TerminationNotConfigured(String),
    #[error("termination is disabled on voice connector {0}")]
    TerminationDisabled(String),
    #[error("source address {ip} is not in the CidrAllowedList of voice connector {vc}")]
    SourceNotAllowed { ip: IpAddr, vc: String },
    #[error(
        "voice connector {0} requires encryption: send the call over SIP TLS (transport=tls) with SRTP"
    )]
    EncryptionRequiredTransport(String),
    #[error(
        "From user {0:?} is not an E.164 number; send +<country code><number>, e.g. +12065550100 (calls to the phone network may use the connector's Termination DefaultPhoneNumber instead)"
    )]
    FromNotE164(String),
    #[error(
        "destination {number} ({country}) is not in the CallingRegions of voice connector {vc}"
    )]
    RegionNotAllowed {
        number: String,
        country: String,
        vc: String,
    },
    #[error("destination {0:?} is not an E.164 number")]
    DestinationNotE164(String),
    #[error("over the CpsLimit of {limit} calls per second on voice connector {vc}")]
    CpsExceeded { limit: u32, vc: String },
    #[error(
        "PSTN termination to {0} has no carrier trunk on this server; to join a meeting dial {MEETING_JOIN_NUMBER} with X-chime-join-token"
    )]
    NoPstnRoute(String),
    #[error("invalid join token")]
    InvalidJoinToken,
    #[error("meeting {0} has ended")]
    MeetingEnded(String),
    #[error("meeting {0} is full")]
    MeetingFull(String),
    /// An emergency number dialled that this connector cannot route ([`crate::emergency`]).
    #[error(transparent)]
    Emergency(#[from] crate::emergency::EmergencyRefusal),
}

impl Refusal {
    /// The SIP status for this refusal (RFC 3261 §21).
    pub fn status(&self) -> u16 {
        match self {
            Refusal::UnknownHost { .. } | Refusal::MeetingEnded(_) | Refusal::NoPstnRoute(_) => 404,
            // 503 so that a PBX tries its next route for an emergency call at once.
            Refusal::CpsExceeded { .. } | Refusal::Emergency(_) => 503,
            Refusal::MeetingFull(_) => 486,
            Refusal::DestinationNotE164(_) => 484,
            _ => 403,
        }
    }
}

/// What the Request-URI asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `+17035550122` with a join token.
    MeetingJoin { token: String },
    /// Any other number: PSTN termination.
    Pstn { number: String },
}

/// Extracts the connector id from a Request-URI host `<id>.<sip-domain>`, case-insensitively.
pub fn connector_id_from_host(host: &str, sip_domain: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let id = host.strip_suffix(sip_domain)?.strip_suffix('.')?;
    crate::ids::is_voice_connector_id(id).then(|| id.to_string())
}

/// The facts about one INVITE that the checks need.
#[derive(Debug, Clone)]
pub struct CallFacts<'a> {
    pub source: IpAddr,
    pub over_tls: bool,
    pub from_user: &'a str,
    pub destination: &'a Destination,
}

/// The caller ID a call to the phone network goes out with in place of a From user that
/// is not E.164: the termination's DefaultPhoneNumber. None when the From is E.164, the call
/// joins a meeting, or there is no default.
pub fn caller_id(term: &Termination, facts: &CallFacts<'_>) -> Option<String> {
    if is_e164(facts.from_user) || !matches!(facts.destination, Destination::Pstn { .. }) {
        return None;
    }
    term.default_phone_number.clone()
}

/// Checks, in order: termination configured and enabled, source allowlist, encryption
/// transport, E.164 From (for a call to the phone network, a From that is not E.164 passes
/// when the termination has a DefaultPhoneNumber, which [`caller_id`] then gives), calling
/// region. Credentials (407) and the CPS limit (503) are
/// stateful and applied by the edge around this. `SourceNotAllowed` comes back before
/// anything that would tell an outsider more.
pub fn check_termination(
    vc: &VoiceConnector,
    term: Option<&Termination>,
    facts: &CallFacts<'_>,
) -> Result<(), Refusal> {
    let id = &vc.voice_connector_id;
    let term = term.ok_or_else(|| Refusal::TerminationNotConfigured(id.clone()))?;
    if !term.is_enabled() {
        return Err(Refusal::TerminationDisabled(id.clone()));
    }
    if !term.allows_source(facts.source) {
        return Err(Refusal::SourceNotAllowed {
            ip: facts.source,
            vc: id.clone(),
        });
    }
    if vc.require_encryption && !facts.over_tls {
        return Err(Refusal::EncryptionRequiredTransport(id.clone()));
    }
    if !is_e164(facts.from_user) && caller_id(term, facts).is_none() {
        return Err(Refusal::FromNotE164(facts.from_user.to_string()));
    }
    if let Destination::Pstn { number } = facts.destination {
        if !is_e164(number) {
            return Err(Refusal::DestinationNotE164(number.clone()));
        }
        let country = country_of(number).unwrap_or_else(|| "unknown country".to_string());
        if !term.calling_regions.contains(&country) {
            return Err(Refusal::RegionNotAllowed {
                number: number.clone(),
                country,
                vc: id.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vc(require_encryption: bool) -> VoiceConnector {
        VoiceConnector {
            voice_connector_id: "abcdef1ghij2klmno3pqr4".into(),
            aws_region: None,
            name: "pbx".into(),
            outbound_host_name: "abcdef1ghij2klmno3pqr4.vc.test".into(),
            require_encryption,
            created_timestamp: String::new(),
            updated_timestamp: String::new(),
            voice_connector_arn: String::new(),
            integration_type: None,
            network_type: None,
        }
    }

    fn term() -> Termination {
        Termination {
            cidr_allowed_list: vec!["127.0.0.1/32".into()],
            calling_regions: vec!["US".into()],
            ..Default::default()
        }
    }

    #[test]
    fn host_to_connector() {
        assert_eq!(
            connector_id_from_host("ABCDEF1GHIJ2KLMNO3PQR4.VC.test", "vc.test").as_deref(),
            Some("abcdef1ghij2klmno3pqr4")
        );
        assert_eq!(connector_id_from_host("127.0.0.1", "vc.test"), None);
        assert_eq!(connector_id_from_host("x.vc.test", "vc.test"), None);
        assert_eq!(
            connector_id_from_host("abcdef1ghij2klmno3pqr4vc.test", "vc.test"),
            None
        );
    }

    #[test]
    fn checks_in_order() {
        let join = Destination::MeetingJoin { token: "t".into() };
        let pstn_gb = Destination::Pstn {
            number: "+442079460000".into(),
        };
        let pstn_us = Destination::Pstn {
            number: "+12065550100".into(),
        };
        let facts = |src: &str, tls: bool, from: &'static str, d: &'static Destination| CallFacts {
            source: src.parse().expect("ip"),
            over_tls: tls,
            from_user: from,
            destination: d,
        };
        let join: &'static Destination = Box::leak(Box::new(join));
        let pstn_gb: &'static Destination = Box::leak(Box::new(pstn_gb));
        let pstn_us: &'static Destination = Box::leak(Box::new(pstn_us));
        let t = term();
        assert_eq!(
            check_termination(
                &vc(true),
                Some(&t),
                &facts("127.0.0.1", true, "+12065550100", join)
            ),
            Ok(())
        );
        let r = check_termination(
            &vc(true),
            None,
            &facts("127.0.0.1", true, "+12065550100", join),
        )
        .expect_err("none");
        assert_eq!(r.status(), 403);
        let mut disabled = term();
        disabled.disabled = Some(true);
        assert!(matches!(
            check_termination(
                &vc(true),
                Some(&disabled),
                &facts("127.0.0.1", true, "+1", join)
            ),
            Err(Refusal::TerminationDisabled(_))
        ));
        assert!(matches!(
            check_termination(
                &vc(true),
                Some(&t),
                &facts("127.0.0.2", true, "+12065550100", join)
            ),
            Err(Refusal::SourceNotAllowed { .. })
        ));
        assert!(matches!(
            check_termination(
                &vc(true),
                Some(&t),
                &facts("127.0.0.1", false, "+12065550100", join)
            ),
            Err(Refusal::EncryptionRequiredTransport(_))
        ));
        assert_eq!(
            check_termination(
                &vc(false),
                Some(&t),
                &facts("127.0.0.1", false, "+12065550100", join)
            ),
            Ok(())
        );
        assert!(matches!(
            check_termination(
                &vc(false),
                Some(&t),
                &facts("127.0.0.1", false, "alice", join)
            ),
            Err(Refusal::FromNotE164(_))
        ));
        // A DefaultPhoneNumber stands in for a From that is not E.164 on calls to the
        // phone network only, never on meeting joins.
        let with_default = Termination {
            default_phone_number: Some("+12065550199".into()),
            ..term()
        };
        let alice_us = facts("127.0.0.1", false, "alice", pstn_us);
        assert!(matches!(
            check_termination(&vc(false), Some(&t), &alice_us),
            Err(Refusal::FromNotE164(_))
        ));
        assert_eq!(
            check_termination(&vc(false), Some(&with_default), &alice_us),
            Ok(())
        );
        assert_eq!(
            caller_id(&with_default, &alice_us).as_deref(),
            Some("+12065550199")
        );
        let alice_join = facts("127.0.0.1", false, "alice", join);
        assert!(matches!(
            check_termination(&vc(false), Some(&with_default), &alice_join),
            Err(Refusal::FromNotE164(_))
        ));
        assert_eq!(caller_id(&with_default, &alice_join), None);
        assert_eq!(
            caller_id(
                &with_default,
                &facts("127.0.0.1", false, "+12065550100", pstn_us)
            ),
            None
        );
        let r = check_termination(
            &vc(false),
            Some(&t),
            &facts("127.0.0.1", false, "+12065550100", pstn_gb),
        )
        .expect_err("gb");
        assert!(r.to_string().contains("GB"), "{r}");
        assert_eq!(
            check_termination(
                &vc(false),
                Some(&t),
                &facts("127.0.0.1", false, "+12065550100", pstn_us)
            ),
            Ok(())
        );
    }
}
