//! What the SIP edge last saw of each carrier: its OPTIONS keep-alive ([`CarrierStatus`])
//! and its registration ([`CarrierRegistration`]). The edge writes them to the store,
//! `admin carriers list` shows them.

use serde::{Deserialize, Serialize};

/// What the SIP edge's OPTIONS keep-alive last saw of a carrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CarrierStatus {
    /// The carrier's name.
    pub carrier: String,
    /// Answered its last OPTIONS (any final response counts as alive).
    pub up: bool,
    /// When that OPTIONS was sent (Unix milliseconds).
    pub last_options_ms: Option<i64>,
    /// Its final status code, or `None` when it timed out.
    pub last_status: Option<u16>,
}

/// A status older than this is shown as `unknown`: nobody is probing the carrier.
pub const STATUS_STALE_MS: i64 = 300_000;

impl CarrierStatus {
    /// `up`, `down` or `unknown` (no status, or none for [`STATUS_STALE_MS`]).
    pub fn label(status: Option<&CarrierStatus>, now_ms: i64) -> &'static str {
        match status {
            Some(s)
                if s.last_options_ms
                    .is_some_and(|t| now_ms - t <= STATUS_STALE_MS) =>
            {
                if s.up {
                    "up"
                } else {
                    "down"
                }
            }
            _ => "unknown",
        }
    }
}

/// Where a carrier's registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistrationState {
    /// The registrar accepted our binding (until `expires_ms`).
    Registered,
    /// The last REGISTER failed (timeout, transport error, 4xx, 5xx, 6xx); retried with
    /// backoff.
    Failing,
    /// We removed our binding (Expires: 0): registering was turned off.
    Unregistered,
}

impl RegistrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationState::Registered => "registered",
            RegistrationState::Failing => "failing",
            RegistrationState::Unregistered => "unregistered",
        }
    }

    pub fn parse(s: &str) -> Option<RegistrationState> {
        [
            RegistrationState::Registered,
            RegistrationState::Failing,
            RegistrationState::Unregistered,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// What the SIP edge's last REGISTER to a carrier (`--register`) got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CarrierRegistration {
    /// The carrier's name.
    pub carrier: String,
    pub state: RegistrationState,
    /// The final status of the last REGISTER (`None` when it timed out or could not be
    /// sent).
    pub last_status: Option<u16>,
    /// When the binding runs out (Unix milliseconds), while registered.
    pub expires_ms: Option<i64>,
    /// When this was written (Unix milliseconds).
    pub updated_ms: i64,
}

impl CarrierRegistration {
    /// `registered`, `failing`, `unregistered`, or `expired` for a binding past its
    /// expiry (nobody refreshed it: no node is running, or none registers this carrier).
    pub fn label(&self, now_ms: i64) -> &'static str {
        match self.state {
            RegistrationState::Registered if self.expires_ms.is_some_and(|e| e <= now_ms) => {
                "expired"
            }
            s => s.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels() {
        let s = |up, at| CarrierStatus {
            carrier: "c".into(),
            up,
            last_options_ms: Some(at),
            last_status: up.then_some(200),
        };
        assert_eq!(CarrierStatus::label(None, 1_000_000), "unknown");
        assert_eq!(
            CarrierStatus::label(Some(&s(true, 990_000)), 1_000_000),
            "up"
        );
        assert_eq!(
            CarrierStatus::label(Some(&s(false, 990_000)), 1_000_000),
            "down"
        );
        assert_eq!(
            CarrierStatus::label(Some(&s(true, 1)), 1_000_000),
            "unknown"
        );
    }

    #[test]
    fn registration_labels() {
        let r = |state, expires_ms| CarrierRegistration {
            carrier: "c".into(),
            state,
            last_status: Some(200),
            expires_ms,
            updated_ms: 0,
        };
        assert_eq!(
            r(RegistrationState::Registered, Some(2000)).label(1000),
            "registered"
        );
        assert_eq!(
            r(RegistrationState::Registered, Some(1000)).label(1000),
            "expired"
        );
        assert_eq!(r(RegistrationState::Failing, None).label(1000), "failing");
        for s in ["registered", "failing", "unregistered"] {
            assert_eq!(
                RegistrationState::parse(s).map(RegistrationState::as_str),
                Some(s)
            );
        }
        assert_eq!(RegistrationState::parse("up"), None);
    }
}
