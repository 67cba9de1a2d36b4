//! SDP model, parse/print, offer/answer, codec and SDES crypto selection (sans-IO).
#![forbid(unsafe_code)]

pub mod attributes;
pub mod error;
pub mod model;
pub mod negotiate;
pub mod parse;

pub use attributes::{Direction, FormatParams, RtcpAttribute, RtpMap};
pub use error::{AnswerError, AnswerMismatch, CryptoRejectReason, CryptoRejection};
pub use model::{
    AddrType, Attribute, Bandwidth, Connection, KeyLine, MediaDescription, Origin,
    SessionDescription, Timing,
};
pub use negotiate::{
    Answer, Host, LocalTransport, MediaConfig, MediaSession, NegotiatedAudio, OpusParams, SrtpKeys,
    TelephoneEvent, TransportAddress,
};
pub use parse::{ParseError, ParseErrorKind, ParseLimits};
