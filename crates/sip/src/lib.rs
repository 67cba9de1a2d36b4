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
//!   [`Headers::session_expires`], [`Headers::rack`], ... and [`Uri`] / [`UriRef`] for
//!   `sip:`, `sips:`, `tel:` and opaque URIs with parameters (`Uri::param`).
//! * Errors: [`ParseError::status_and_reason`] is the one mapping from a parse failure to a
//!   wire answer ([`Disposition::Reply`] with 400/505/513, or [`Disposition::Drop`]);
//!   [`bad_request_response`] builds that answer from the raw bytes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
mod error;
mod headers;
mod message;
mod params;
mod parse;
mod text;
pub mod typed;
mod uri;
mod util;

pub use error::{Disposition, ParseError, ParseErrorKind, StartKind, bad_request_response};
pub use headers::{HeaderName, Headers};
pub use message::{Message, Method, Request, Response, reason_phrase};
pub use params::{ParamIter, Params};
pub use parse::{ParseLimits, StreamParse, parse_datagram, parse_stream};
pub use text::{CommaList, percent_decode, unquote};
pub use typed::{CSeq, Contact, MediaType, NameAddr, RAck, Refresher, SessionExpires, Via};
pub use uri::{Scheme, Uri, UriError, UriRef};
