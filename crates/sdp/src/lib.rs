//! SDP model, parse/print, offer/answer, codec and SDES crypto selection (sans-IO).
//!
//! This crate is the SDP layer of a call leg: it turns the peer's session description
//! into what the media engine needs (codec, payload types, addresses, SRTP keys,
//! direction), and produces ours. It never touches a socket or a clock; randomness is
//! used only for fresh SRTP keys (`rtp::sdes`, from the operating system's CSPRNG).
//!
//! # Model, parser, printer (RFC 8866)
//!
//! - [`SessionDescription`] holds every line type (`v o s i u e p c b t r z k a m`),
//!   session- and media-level attributes in order (unknown ones kept verbatim), every
//!   `m=` section (so an answer can reject the ones we do not take, in order), per-media
//!   `c=` and `b=` lines.
//! - [`SessionDescription::parse`] / [`parse_with_limits`](SessionDescription::parse_with_limits)
//!   accept CRLF or LF, enforce [`ParseLimits`] (size, lines, `m=` sections), and fail
//!   with a [`ParseError`] naming the line and the problem; `Display` prints with CRLF.
//! - Typed attribute views in [`attributes`]: [`RtpMap`], [`FormatParams`],
//!   [`Direction`], [`RtcpAttribute`], and `MediaDescription::{rtpmap, fmtp, ptime,
//!   rtcp, rtcp_mux}`.
//!
//! # Offer/answer (RFC 3264) with SDES-SRTP (RFC 4568)
//!
//! A [`MediaSession`] per call leg, built from a [`MediaConfig`] (codec and SRTP suite
//! preferences, `require_srtp`, best-effort SRTP on `RTP/AVP`, rtcp-mux, ptime, Opus
//! parameters) and the [`LocalTransport`] where we receive:
//!
//! - [`MediaSession::answer`] (or [`answer_body`](MediaSession::answer_body) from bytes):
//!   one audio stream, one codec in our preference order with the offerer's payload type,
//!   plus `telephone-event`; the strongest usable SDES suite answered with the offer's
//!   tag and a fresh key; direction per RFC 3264 §6.1 (hold, `c=0.0.0.0`); rtcp-mux if
//!   offered; every other stream rejected with port 0.
//! - [`MediaSession::create_offer`] then [`accept_answer`](MediaSession::accept_answer)
//!   for delayed offers (INVITE without SDP) and our own re-offers.
//! - Re-offers keep the `o=` session id and bump the version only on change (RFC 3264
//!   §8); our key is kept while the peer keeps theirs (RFC 4568 §7.1.4).
//! - The result is a [`NegotiatedAudio`] (codec, payload types, clock rate, Opus
//!   parameters, telephone-event, remote RTP/RTCP addresses or mux, direction,
//!   [`SrtpKeys`] with the peer's and our key, ptime); [`Answer`] adds the answer SDP.
//! - Failures are [`AnswerError`] (or [`SdpError`] for bytes), each with
//!   `sip_status()` (488, or 400 for malformed input) and `warning_header_value(host)`
//!   for a `Warning` header a PBX operator can act on, e.g. `305 host "no common codec:
//!   offered GSM/8000; we accept opus, G722, PCMU, PCMA"`.
//!
//! Secrets: printed SDP contains SRTP keys (send it over TLS only); `Debug` output of every
//! type here redacts them.
//!
//! ```
//! use sdp::{LocalTransport, MediaConfig, MediaSession};
//! use std::net::{IpAddr, Ipv4Addr};
//!
//! let offer = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
//!              m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
//! let local = LocalTransport {
//!     address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
//!     rtp_port: 20000,
//!     rtcp_port: None,
//! };
//! let mut leg = MediaSession::new(MediaConfig::default(), local, 1);
//! let answer = leg.answer_body(offer.as_bytes()).unwrap();
//! assert_eq!(answer.audio.payload_type, 0); // PCMU before PCMA by default
//! assert_eq!(answer.audio.telephone_event.unwrap().payload_type, 101);
//! let body = answer.sdp.to_string(); // goes into the 200 OK
//! assert!(body.contains("m=audio 20000 RTP/AVP 0 101\r\n"));
//!
//! // With SRTP required, the same offer is refused with a 488 and a Warning.
//! let config = MediaConfig { require_srtp: true, ..MediaConfig::default() };
//! let err = MediaSession::new(config, local, 1).answer_body(offer.as_bytes()).unwrap_err();
//! assert_eq!(err.sip_status(), 488);
//! assert!(err.warning_header_value("vc.example").starts_with("399 vc.example \"encryption required"));
//! ```
#![forbid(unsafe_code)]

pub mod attributes;
pub mod error;
pub mod model;
pub mod negotiate;
pub mod parse;

pub use attributes::{Direction, FormatParams, RtcpAttribute, RtpMap};
pub use error::{AnswerError, AnswerMismatch, CryptoRejectReason, CryptoRejection, SdpError};
pub use model::{
    AddrType, Attribute, Bandwidth, Connection, KeyLine, MediaDescription, Origin,
    SessionDescription, Timing,
};
pub use negotiate::{
    Answer, ConfigError, Host, LocalTransport, MediaConfig, MediaSession, NegotiatedAudio,
    OpusParams, SrtpKeys, TelephoneEvent, TransportAddress,
};
pub use parse::{ParseError, ParseErrorKind, ParseLimits};
