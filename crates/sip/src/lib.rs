//! SIP message model, parser, printer, transactions, dialogs and digest auth (sans-IO).
//!
//! Everything here is sans-IO: bytes and `Instant`s come in as arguments, output is pulled.
//! Written here rather than taken from crates.io because no maintained Rust SIP stack is
//! both sans-IO and passes RFC 4475 (see ARCHITECTURE.md).
//!
//! # Messages (RFC 3261 §7, §20, §25)
//!
//! * [`parse_datagram`] / [`parse_stream`] turn bytes into a [`Message`] under
//!   [`ParseLimits`]; [`Message::to_bytes`] prints (Content-Length is always recomputed).
//! * [`Headers`] keeps every header (unknown ones round-trip unchanged) in one buffer;
//!   typed zero-copy views: [`Headers::top_via`], [`Headers::from`], [`Headers::to`],
//!   [`Headers::cseq`], [`Headers::contacts`], [`Headers::routes`],
//!   [`Headers::session_expires`], [`Headers::rack`], [`Headers::credentials`],
//!   [`Headers::challenges`], ... and [`Uri`] / [`UriRef`] for
//!   `sip:`, `sips:`, `tel:` and opaque URIs with parameters (`Uri::param`).
//! * Errors: [`ParseError::status_and_reason`] is the one mapping from a parse failure to a
//!   wire answer ([`Disposition::Reply`] with 400/505/513, or [`Disposition::Drop`]);
//!   [`bad_request_response`] builds that answer from the raw bytes.
//!
//! # Transactions (RFC 3261 §17, RFC 6026)
//!
//! [`TransactionLayer`] holds every client and server transaction. The transport calls
//! `handle_datagram(now, bytes, peer)` (or `handle_message` after `parse_stream`); the TU
//! calls `send_request(now, req, peer) -> TransactionKey`, `send_response(now, key, resp)`,
//! `cancel(now, invite_key)` and `send_stateless(peer, msg)` (ACK for 2xx). Output is
//! pulled: `poll_transmit() -> Option<Transmit>` (bytes + [`Peer`]), `poll_event() ->
//! Option<Event>` (new request, CANCEL, ACK for 2xx, response, timeout, terminated), and
//! `poll_timeout() -> Option<Instant>`; call `handle_timeout(now)` then (early is fine).
//! [`TransactionConfig`] sets T1/T2/T4, the 100 Trying delay and the per-source limit (503).
//! Stream transports frame with [`parse_stream`] and pass messages to `handle_message`; on
//! a stream parse error they answer with [`bad_request_response`] and close the connection.
//!
//! # Dialogs and UA cores (RFC 3261 §12-15, RFC 3262, RFC 3311, RFC 4028)
//!
//! [`UserAgent`] wraps the transaction layer with the same pull interface and speaks in
//! calls ([`CallKey`]) and [`UaEvent`]s. UAS: `IncomingCall` → `answer(now, call, status,
//! body)` (or `make_response` + `respond`); the UA retransmits 2xx until the ACK
//! (`Confirmed`), sends 100rel provisionals reliably when the peer requires it, answers
//! CANCEL (487), BYE, PRACK, OPTIONS (Allow/Accept/Supported), unknown methods (405), 481,
//! 483, 420, 422, 491, and runs session timers (refresh by UPDATE or re-INVITE, expiry →
//! BYE + `Terminated`). UAC: `invite(now, peer, OutgoingCall)` → `Provisional` (PRACKed) /
//! `Answered` (ACKed) / `Terminated(Failed)`; `send_in_dialog` for re-INVITE/UPDATE/INFO,
//! `hangup` (BYE, CANCEL or 480; a UAS waits for the ACK first), one automatic answer to a
//! 401/407 when [`OutgoingCall::credentials`] is set. Merged requests get 482 (§8.2.2.2),
//! calls beyond [`UaConfig::max_calls`] 503. [`stamp_via`] adds received/rport (RFC 3581);
//! [`UriRef::equivalent`] compares URIs per §19.1.4.
//!
//! # Identifiers
//!
//! Branches, tags, Call-IDs and cnonces come from [`IdGenerator`], a CSPRNG: 128 random
//! bits per tag and Call-ID, so a dialog cannot be guessed from others. A server builds its
//! UA with [`UserAgent::with_ids`]`(cfg, IdGenerator::from_os())`; `UserAgent::new(cfg,
//! seed)` is reproducible, for tests.
//!
//! # Writing header values
//!
//! [`HeaderValue`] builds values with parameters (name-addr with display name and URI,
//! `;name=value` joining that never writes `;;`), [`Reason`] writes an RFC 3326 Reason
//! (`SIP;cause=410;text="meeting ended"`, used by [`UserAgent::hangup_with`]) and
//! [`Warning`] an RFC 3261 §20.43 Warning (`399 voice-connector "text"`); free text is
//! written as a quoted-string with quotes and backslashes escaped and control characters
//! dropped.
//!
//! # Digest authentication (RFC 7616, RFC 8760)
//!
//! [`auth::DigestServer`] issues challenges (`challenges(now, stale)`, one per algorithm,
//! MD5 / SHA-256 / SHA-512-256, qop=auth) and verifies credentials with
//! `verify(now, method, request_uri, header_value, lookup_ha1)` against a stored HA1
//! ([`auth::ha1`]), in constant time, with nonce expiry and nonce-count replay refusal.
//! [`auth::AuthError::answer`] maps failures to 400/401/407 (+stale). The client side is
//! [`auth::respond_to_challenge`].
//!
//! # Message log
//!
//! [`log::LoggedMessage`] (direction, transport, addresses, bytes) is what the edge emits
//! per message; its `Display`/`Debug` redact credentials, join tokens and SDES keys.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod dialog;
mod error;
mod headers;
mod ids;
pub mod log;
mod message;
mod params;
mod parse;
mod text;
pub mod transaction;
pub mod typed;
mod uri;
mod util;
mod write;

pub use dialog::{
    Body, CallKey, Credentials, FOREIGN_SOURCE_WARNING, OutOfDialog, OutgoingCall,
    SessionTimerConfig, TerminationReason, UaConfig, UaError, UaEvent, UserAgent,
};
pub use error::{Disposition, ParseError, ParseErrorKind, StartKind, bad_request_response};
pub use headers::{HeaderName, Headers};
pub use ids::IdGenerator;
pub use message::{Message, Method, Request, Response, reason_phrase};
pub use params::{ParamIter, Params};
pub use parse::{ParseLimits, StreamParse, parse_datagram, parse_stream};
pub use text::{CommaList, percent_decode, unquote};
pub use transaction::{
    Event, Peer, State, Timer, TransactionConfig, TransactionError, TransactionKey,
    TransactionKind, TransactionLayer, Transmit, TransportKind, stamp_via,
};
pub use typed::{CSeq, Contact, MediaType, NameAddr, RAck, Refresher, SessionExpires, Via};
pub use uri::{Scheme, Uri, UriError, UriRef};
pub use write::{HeaderValue, Reason, ReasonProtocol, Warning};
