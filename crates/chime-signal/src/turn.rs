//! TURN credentials for JOIN_ACK, in the time-limited form TURN servers share with an
//! application through a secret (draft-uberti-behave-turn-rest-00 §2.2, coturn's
//! `use-auth-secret`): the username is `<expiry, Unix seconds>:<AttendeeId>`, the password
//! `base64(HMAC-SHA1(secret, username))`. The TURN server recomputes the password from
//! the username and refuses it once the expiry has passed; nothing is stored, and without
//! the secret a password cannot be made.
//!
//! The SDK (amazon-chime-sdk-js) puts the URIs, username and password of JOIN_ACK in its
//! peer connection's `iceServers` with `iceTransportPolicy: 'relay'`: when TURN is
//! configured, every browser's media goes through it.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::proto::SdkTurnCredentials;

/// How long credentials stay valid (seconds): longer than a browser's session (a
/// reconnection joins again and gets new ones), as a TURN server checks them on its
/// allocation's refreshes too.
pub const DEFAULT_TURN_TTL_S: u32 = 12 * 3600;

/// A TURN server and the secret it shares with this server.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// `turn:` / `turns:` URIs (RFC 7065) the browser is given.
    pub uris: Vec<String>,
    /// The shared secret (coturn's `static-auth-secret`). Never logged.
    pub secret: Vec<u8>,
    /// Credentials' lifetime in seconds.
    pub ttl_s: u32,
}

impl fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnConfig")
            .field("uris", &self.uris)
            .field("secret", &"<redacted>")
            .field("ttl_s", &self.ttl_s)
            .finish()
    }
}

/// Credentials for one attendee.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    /// `<expiry>:<AttendeeId>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`. Never logged.
    pub password: String,
    /// Lifetime in seconds.
    pub ttl_s: u32,
    /// The TURN server's URIs.
    pub uris: Vec<String>,
}

impl fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("ttl_s", &self.ttl_s)
            .field("uris", &self.uris)
            .finish()
    }
}

impl TurnConfig {
    /// Credentials for `attendee_id` made at `unix_s`, valid for [`TurnConfig::ttl_s`].
    pub fn credentials(&self, unix_s: u64, attendee_id: &str) -> TurnCredentials {
        // A colon would split the username where the TURN server looks for the expiry.
        let user: String = attendee_id.chars().filter(|c| *c != ':').collect();
        let username = format!("{}:{user}", unix_s.saturating_add(u64::from(self.ttl_s)));
        TurnCredentials {
            password: password(&self.secret, &username),
            username,
            ttl_s: self.ttl_s,
            uris: self.uris.clone(),
        }
    }
}

/// `base64(HMAC-SHA1(secret, username))`.
pub fn password(secret: &[u8], username: &str) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl TurnCredentials {
    pub(crate) fn frame(&self) -> SdkTurnCredentials {
        SdkTurnCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            ttl: Some(self.ttl_s),
            uris: self.uris.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_credentials() {
        let cfg = TurnConfig {
            uris: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            secret: b"north".to_vec(),
            ttl_s: 600,
        };
        let c = cfg.credentials(1_000, "att:1");
        assert_eq!(c.username, "1600:att1");
        // HMAC-SHA1("north", "1600:att1"), computed independently with
        // `printf %s 1600:att1 | openssl dgst -sha1 -hmac north -binary | base64`.
        assert_eq!(c.password, "5FgZMMBeFwgZeZdOhKzkoRXW7ZQ=");
        assert_ne!(c.password, password(b"south", "1600:att1"));
        assert!(!format!("{cfg:?}{c:?}").contains("north"));
        assert!(!format!("{c:?}").contains(&c.password));
    }
}
