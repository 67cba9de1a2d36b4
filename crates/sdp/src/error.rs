//! Offer/answer failures, by blame, each mapped once to a SIP status and `Warning` text.
//!
//! [`AnswerError::sip_status`] and [`AnswerError::warning_header_value`] are the one place
//! where a negotiation failure becomes a SIP response: 488 Not Acceptable Here (RFC 3261
//! §21.4.26) with a `Warning` header (RFC 3261 §20.43) whose text tells a PBX operator what
//! was offered and what we accept. Warning texts carry no key material.

use crate::parse::ParseError;
use rtp::sdes::{SdesError, Unsupported};
use std::fmt;
use thiserror::Error;

/// Why one offered `a=crypto` line was not used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptoRejectReason {
    /// The line does not parse (RFC 4568 §9.1), or names a suite we do not implement.
    #[error("{0}")]
    Malformed(SdesError),
    /// Well formed, but uses a key parameter we cannot honour (MKI, short lifetime, …).
    #[error("{0}")]
    Unsupported(Unsupported),
    /// A suite we implement but that the configuration does not allow.
    #[error("suite not enabled")]
    SuiteNotEnabled,
}

/// One offered `a=crypto` line we could not use, for the refusal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoRejection {
    /// The line's tag, if it had a readable one.
    pub tag: Option<u32>,
    /// The suite name as offered (may be empty for a line too short to have one).
    pub suite: String,
    /// Why it was skipped.
    pub reason: CryptoRejectReason,
}

impl fmt::Display for CryptoRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tag {
            Some(t) => write!(f, "tag {t} {}: {}", self.suite, self.reason),
            None => write!(f, "{}: {}", self.suite, self.reason),
        }
    }
}

/// How an answer to our offer disagrees with the offer (RFC 3264 §6, RFC 4568 §5.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnswerMismatch {
    /// The answer has a different number of `m=` lines than the offer (RFC 3264 §6).
    #[error("answer has {answered} media sections, offer had {offered}")]
    MediaCount {
        /// Sections in our offer.
        offered: usize,
        /// Sections in the answer.
        answered: usize,
    },
    /// The answerer rejected our audio stream (port 0).
    #[error("answer rejected the audio stream")]
    AudioRejected,
    /// The answer changed the media type or transport protocol of the stream.
    #[error("answer changed the transport from {offered} to {answered}")]
    TransportChanged {
        /// What we offered.
        offered: String,
        /// What came back.
        answered: String,
    },
    /// We offered SRTP keys, and the answer has no `a=crypto` for them.
    #[error("answer has no a=crypto line for our offer")]
    MissingCrypto,
    /// The answer's `a=crypto` tag or suite matches none of our offered lines.
    #[error("answer's a=crypto tag {tag} does not match an offered line")]
    CryptoNotOffered {
        /// The answered tag.
        tag: u32,
    },
    /// The answer's `a=crypto` line is unusable.
    #[error("answer's a=crypto line is unusable: {0}")]
    BadCrypto(CryptoRejectReason),
}

/// A negotiation failure. `Display` is the operator-facing explanation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// No usable audio `m=` section (none, or all with port 0).
    #[error("no audio stream offered")]
    NoAudio,
    /// No offered audio format is one we accept.
    #[error("no common codec: offered {}; we accept {}", list_or_none(offered), accepted.join(", "))]
    NoCommonCodec {
        /// The offered formats as `<name>/<rate>` (or `PT <n>` without an rtpmap),
        /// telephone-event left out.
        offered: Vec<String>,
        /// Our codec names in preference order.
        accepted: Vec<&'static str>,
    },
    /// SRTP was offered (or is required) and no offered `a=crypto` line is usable.
    #[error("no usable SRTP crypto: {}; we accept {}", crypto_reasons(reasons), accepted.join(", "))]
    NoUsableCrypto {
        /// Why each offered line was skipped; empty when there were none.
        reasons: Vec<CryptoRejection>,
        /// Our enabled suite names in preference order.
        accepted: Vec<&'static str>,
    },
    /// The configuration requires SRTP (connector `RequireEncryption`) and the offer has
    /// plain RTP only.
    #[error(
        "encryption required: offer uses {proto} without a=crypto; offer RTP/SAVP with SDES (RFC 4568)"
    )]
    SrtpRequired {
        /// The offered transport protocol.
        proto: String,
    },
    /// The audio stream uses a transport we do not implement, e.g. DTLS-SRTP
    /// (`UDP/TLS/RTP/SAVPF`).
    #[error("unsupported media transport {proto}; we accept RTP/AVP and RTP/SAVP with SDES")]
    UnsupportedTransport {
        /// The offered transport protocol.
        proto: String,
    },
    /// The audio stream has no `c=` line, neither its own nor a session-level one.
    #[error("no connection address (c=) for the audio stream")]
    NoConnectionAddress,
    /// An answer arrived while we had no offer outstanding (caller error).
    #[error("answer without an outstanding offer")]
    NoPendingOffer,
    /// An answer to our offer is inconsistent with it.
    #[error("invalid answer: {0}")]
    AnswerMismatch(AnswerMismatch),
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join(", ")
    }
}

fn crypto_reasons(reasons: &[CryptoRejection]) -> String {
    if reasons.is_empty() {
        return "offer has no a=crypto line (DTLS-SRTP is not supported)".into();
    }
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Longest Warning text we send; offers with many lines produce long explanations.
pub const MAX_WARNING_TEXT: usize = 400;

impl AnswerError {
    /// The SIP status for a request carrying the refused offer: 488 for anything the
    /// offer asks that we cannot do, 400 for an offer missing a mandatory `c=`, 500 for
    /// caller misuse (RFC 3261 §21).
    #[must_use]
    pub fn sip_status(&self) -> u16 {
        match self {
            Self::NoConnectionAddress => 400,
            Self::NoPendingOffer => 500,
            _ => 488,
        }
    }

    /// The warn-code (RFC 3261 §20.43): 302 incompatible transport protocol, 304 media
    /// type not available, 305 incompatible media format, 399 miscellaneous otherwise.
    #[must_use]
    pub fn warning_code(&self) -> u16 {
        match self {
            Self::UnsupportedTransport { .. } => 302,
            Self::NoAudio => 304,
            Self::NoCommonCodec { .. } => 305,
            _ => 399,
        }
    }

    /// The warning text (`Display`) with quotes and control characters made safe for a
    /// SIP quoted-string, cut to a bounded length.
    #[must_use]
    pub fn warning_text(&self) -> String {
        sanitize_warning(&self.to_string())
    }

    /// A complete `Warning` header value: `<code> <host> "<text>"` (RFC 3261 §20.43).
    #[must_use]
    pub fn warning_header_value(&self, host: &str) -> String {
        format!(
            "{} {} \"{}\"",
            self.warning_code(),
            host,
            self.warning_text()
        )
    }
}

/// Either failure of handling an SDP body from the peer: it did not parse, or it could
/// not be negotiated. The single place the engine maps SDP trouble to a SIP response.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// The body is not a valid session description (the peer's fault).
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The description is valid but not acceptable.
    #[error(transparent)]
    Negotiation(#[from] AnswerError),
}

impl SdpError {
    /// SIP status: see [`ParseError::sip_status`] and [`AnswerError::sip_status`].
    #[must_use]
    pub fn sip_status(&self) -> u16 {
        match self {
            Self::Parse(e) => e.sip_status(),
            Self::Negotiation(e) => e.sip_status(),
        }
    }

    /// warn-code (RFC 3261 §20.43): 399 for parse errors, see
    /// [`AnswerError::warning_code`] otherwise.
    #[must_use]
    pub fn warning_code(&self) -> u16 {
        match self {
            Self::Parse(_) => 399,
            Self::Negotiation(e) => e.warning_code(),
        }
    }

    /// Warning text, safe for a quoted-string and bounded.
    #[must_use]
    pub fn warning_text(&self) -> String {
        match self {
            Self::Parse(e) => sanitize_warning(&e.warning_text()),
            Self::Negotiation(e) => e.warning_text(),
        }
    }

    /// A complete `Warning` header value: `<code> <host> "<text>"` (RFC 3261 §20.43).
    #[must_use]
    pub fn warning_header_value(&self, host: &str) -> String {
        format!(
            "{} {} \"{}\"",
            self.warning_code(),
            host,
            self.warning_text()
        )
    }
}

/// Makes text safe inside a SIP quoted-string (RFC 3261 §25.1): `"` and `\` become `'`
/// and `/`, control characters become spaces, and the result is at most
/// [`MAX_WARNING_TEXT`] bytes (cut on a character boundary and ended with `...`).
#[must_use]
pub fn sanitize_warning(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    if out.len() > MAX_WARNING_TEXT {
        let mut cut = MAX_WARNING_TEXT - 3;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_text_is_quoted_string_safe_and_bounded() {
        assert_eq!(sanitize_warning("a\"b\\c\r\nd"), "a'b/c  d");
        let long = "é".repeat(300);
        let s = sanitize_warning(&long);
        assert!(s.len() <= MAX_WARNING_TEXT);
        assert!(s.ends_with("..."));
        let exact = "x".repeat(MAX_WARNING_TEXT);
        assert_eq!(sanitize_warning(&exact), exact);
    }
}
