//! Parse errors and their single mapping to wire answers (RFC 3261 §8.2, §21.4, RFC 4475).

use crate::headers::HeaderName;
use crate::typed::validate;
use crate::uri::UriError;

/// Whether the malformed bytes looked like a request or a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartKind {
    /// The start line began with a method.
    Request,
    /// The start line began with `SIP/`.
    Response,
    /// Nothing could be told.
    Unknown,
}

/// What is wrong with a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Only CR/LF bytes: a keep-alive (RFC 5626 §3.5.1), not an error to answer.
    #[error("empty message")]
    Empty,
    /// Larger than `ParseLimits::max_message_size`.
    #[error("message too large")]
    TooLarge,
    /// More header lines than `ParseLimits::max_headers`.
    #[error("too many header fields")]
    TooManyHeaders,
    /// A line longer than `ParseLimits::max_line_length`.
    #[error("header line too long")]
    LineTooLong,
    /// No empty line ends the header section (RFC 3261 §7).
    #[error("missing empty line after the header fields")]
    MissingEmptyLine,
    /// The start line is not `Method SP Request-URI SP SIP-Version` or `SIP-Version SP
    /// Status-Code SP Reason-Phrase` (RFC 3261 §7.1, §7.2; RFC 4475 §3.1.2.7-3.1.2.10).
    #[error("malformed start line")]
    StartLine,
    /// The Request-URI does not parse.
    #[error("malformed Request-URI: {0}")]
    RequestUri(UriError),
    /// Headers are not allowed in a Request-URI (RFC 3261 §19.1.1, RFC 4475 §3.1.2.11).
    #[error("Request-URI must not contain headers")]
    RequestUriHeaders,
    /// A SIP version other than 2.0 (RFC 3261 §8.2.2; RFC 4475 §3.1.2.16).
    #[error("SIP version not supported")]
    UnsupportedVersion,
    /// Status code is not three digits (RFC 4475 §3.1.2.19).
    #[error("malformed status code")]
    StatusCode,
    /// A header line with no colon, an invalid name, or a fold before any header.
    #[error("malformed header line")]
    HeaderLine,
    /// A header value that does not follow its grammar.
    #[error("malformed {0} header field")]
    InvalidHeader(HeaderName),
    /// A mandatory header is missing (RFC 3261 §8.1.1; RFC 4475 §3.2.1).
    #[error("missing {0} header field")]
    MissingHeader(HeaderName),
    /// A single-valued header appears more than once (RFC 4475 §3.2.8, §3.2.9).
    #[error("more than one {0} header field")]
    DuplicateHeader(HeaderName),
    /// The CSeq method differs from the request method (RFC 4475 §3.1.2.17).
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    /// The datagram holds fewer body bytes than Content-Length (RFC 3261 §18.3).
    #[error("body shorter than Content-Length")]
    BodyTooShort,
}

/// A parse failure: the kind and what the message looked like.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    /// What is wrong.
    pub kind: ParseErrorKind,
    /// Request, response or unknown.
    pub start: StartKind,
}

/// What to do with a message that failed to parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Answer with this status; `reason` goes in a Warning header (RFC 3261 §20.43) and
    /// is safe to show to the peer.
    Reply {
        /// Status code.
        status: u16,
        /// Human-readable reason.
        reason: String,
    },
    /// Discard silently: responses are never answered (RFC 3261 §18.1.2), keep-alives
    /// are not messages, and an unreadable start line gives nothing to answer.
    Drop,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, start: StartKind) -> Self {
        ParseError { kind, start }
    }

    /// The one place where parse errors become wire answers. Requests get 400 (505 for an
    /// unsupported version, RFC 3261 §8.2.2; 513 when too large, §21.5.14); anything that
    /// is not an identifiable request is dropped.
    pub fn status_and_reason(&self) -> Disposition {
        if self.start != StartKind::Request || self.kind == ParseErrorKind::Empty {
            return Disposition::Drop;
        }
        let status = match self.kind {
            ParseErrorKind::UnsupportedVersion => 505,
            ParseErrorKind::TooLarge => 513,
            _ => 400,
        };
        Disposition::Reply {
            status,
            reason: self.kind.to_string(),
        }
    }
}

/// Builds the answer to a malformed request (RFC 3261 §8.2.6) when its Via, From, To,
/// Call-ID and CSeq lines can still be read, scanning the raw bytes leniently. Returns
/// `None` if the error says to drop or if any of those headers is missing or malformed
/// itself (the answer would be unparseable or unroutable).
///
/// `warn_agent` is the host name used in the `Warning: 399 <agent> "<reason>"` header.
pub fn bad_request_response(raw: &[u8], err: &ParseError, warn_agent: &str) -> Option<Vec<u8>> {
    let Disposition::Reply { status, reason } = err.status_and_reason() else {
        return None;
    };
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    // Unfold continuation lines, then pick the five headers.
    let mut lines: Vec<String> = Vec::new();
    for line in head.split('\n').skip(1) {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            lines.push(line.to_owned());
        }
    }
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for l in &lines {
        let Some((n, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match HeaderName::from_name(n.trim()) {
            HeaderName::Via => vias.push(v),
            HeaderName::From => from = from.or(Some(v)),
            HeaderName::To => to = to.or(Some(v)),
            HeaderName::CallId => call_id = call_id.or(Some(v)),
            HeaderName::CSeq => cseq = cseq.or(Some(v)),
            _ => {}
        }
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    // Only echo values that are themselves well-formed: an answer the peer cannot parse
    // (or match, without a valid Via) helps nobody.
    let valid = !vias.is_empty()
        // A 505 answers a sender of another SIP version: its Via names that version.
        && (err.kind == ParseErrorKind::UnsupportedVersion
            || vias.iter().all(|v| validate(HeaderName::Via, v)))
        && validate(HeaderName::From, from)
        && validate(HeaderName::To, to)
        && validate(HeaderName::CallId, call_id)
        && validate(HeaderName::CSeq, cseq);
    if !valid {
        return None;
    }
    let mut resp = crate::message::Response::new(status);
    for v in vias {
        resp.headers.push(HeaderName::Via, v);
    }
    resp.headers.push(HeaderName::From, from);
    if to.contains("tag=") {
        resp.headers.push(HeaderName::To, to);
    } else {
        // RFC 3261 §8.2.6.2: a To tag, stable across retransmissions of the request.
        let tag = crate::util::stable_tag(call_id, cseq);
        resp.headers
            .push(HeaderName::To, &crate::util::with_tag(to, &tag));
    }
    resp.headers.push(HeaderName::CallId, call_id);
    resp.headers.push(HeaderName::CSeq, cseq);
    let warning = crate::write::Warning::misc(warn_agent, reason);
    resp.headers.push(HeaderName::Warning, &warning.to_string());
    Some(resp.to_bytes())
}
