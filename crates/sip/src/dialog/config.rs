//! What the application gives a [`UserAgent`](super::UserAgent): its configuration
//! ([`UaConfig`], [`SessionTimerConfig`]) and what an outgoing call carries
//! ([`OutgoingCall`], [`Body`], [`Credentials`]).

use std::fmt;

use crate::headers::HeaderName;
use crate::message::Method;
use crate::transaction::TransactionConfig;
use crate::uri::Uri;

/// A body with its Content-Type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    /// Content-Type value, e.g. `application/sdp`.
    pub content_type: String,
    /// Bytes.
    pub bytes: Vec<u8>,
}

impl Body {
    /// An SDP body.
    pub fn sdp(bytes: impl Into<Vec<u8>>) -> Body {
        Body {
            content_type: "application/sdp".into(),
            bytes: bytes.into(),
        }
    }
}

/// What [`UserAgent::invite`](super::UserAgent::invite) sends.
#[derive(Clone, Debug)]
pub struct OutgoingCall {
    /// Request-URI.
    pub target: Uri,
    /// From value without tag (a tag is added), e.g. `<sip:+12065550100@vc.example.com>`.
    pub from: String,
    /// To value without tag.
    pub to: String,
    /// The offer, if any.
    pub body: Option<Body>,
    /// Extra headers (e.g. `Require: 100rel`, P-Asserted-Identity); an extension header as
    /// `(HeaderName::Other, "X-Name: value")`.
    pub headers: Vec<(HeaderName, String)>,
    /// Digest credentials to answer one 401/407 challenge with (RFC 3261 §22.2), e.g.
    /// for a carrier trunk.
    pub credentials: Option<Credentials>,
}

/// A user name and password for UAC digest authentication. Debug hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Session timer preferences (RFC 4028).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// Session-Expires we ask for / accept at most (seconds; RFC 4028 recommends 1800).
    pub session_expires: u32,
    /// Smallest interval we accept (Min-SE; at least 90, RFC 4028 §4).
    pub min_se: u32,
}

impl Default for SessionTimerConfig {
    fn default() -> Self {
        SessionTimerConfig {
            session_expires: 1800,
            min_se: 90,
        }
    }
}

/// Configuration of a [`UserAgent`](super::UserAgent).
#[derive(Clone, Debug)]
pub struct UaConfig {
    /// Transaction timers and limits.
    pub transaction: TransactionConfig,
    /// User part of our Contact URI.
    pub contact_user: String,
    /// Methods we accept (sent in Allow; others get 405, RFC 3261 §8.2.1).
    pub allow: Vec<Method>,
    /// Option tags we support (Supported; a Require outside this list gets 420).
    pub supported: Vec<String>,
    /// Accept header for OPTIONS answers.
    pub accept: String,
    /// Session timers, if wanted.
    pub session_timer: Option<SessionTimerConfig>,
    /// Value of User-Agent / Server headers.
    pub user_agent: String,
    /// Hand out-of-dialog OPTIONS to the application as
    /// [`UaEvent::OutOfDialogRequest`](super::UaEvent::OutOfDialogRequest) instead of
    /// answering 200 here (RFC 3261 §11.2: the answer should be what an INVITE to the same
    /// Request-URI would get, which only the application knows). Build the 200 with
    /// [`UserAgent::options_response`](super::UserAgent::options_response).
    pub options_to_app: bool,
    /// Most concurrent calls; further INVITEs get 503 (RFC 3261 §21.5.4).
    pub max_calls: usize,
}

impl Default for UaConfig {
    fn default() -> Self {
        UaConfig {
            transaction: TransactionConfig::default(),
            contact_user: "vc".into(),
            allow: vec![
                Method::Invite,
                Method::Ack,
                Method::Bye,
                Method::Cancel,
                Method::Options,
                Method::Prack,
                Method::Update,
                Method::Info,
            ],
            supported: vec!["100rel".into(), "timer".into()],
            accept: "application/sdp".into(),
            session_timer: Some(SessionTimerConfig::default()),
            user_agent: "voice-connector".into(),
            options_to_app: false,
            max_calls: 10_000,
        }
    }
}
