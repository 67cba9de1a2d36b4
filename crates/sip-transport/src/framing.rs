//! Byte-level framing of SIP messages, sans-IO.
//!
//! This module never touches a socket: the connection tasks in [`crate::Transports`] push the
//! bytes they read into a [`StreamFramer`] and pull complete messages out of it. It works on
//! bytes only (it does not parse SIP beyond what framing needs), so it does not depend on the
//! `sip` crate's parser.
//!
//! * RFC 3261 §18.3: on a stream transport the `Content-Length` header field gives the body
//!   size and is mandatory (§20.14); a message ends at the blank line plus that many bytes.
//! * RFC 3261 §7.5: CRLFs before the start-line are ignored.
//! * RFC 5626 §3.5.1: a double CRLF between messages is a keep-alive "ping", answered with a
//!   single CRLF "pong" (the caller does the answering when it gets [`Frame::Ping`]).

use bytes::{Buf, Bytes, BytesMut};

/// Size limits enforced while framing (see [`crate::Limits`] for the defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramingLimits {
    /// Largest whole message (header section plus body), in bytes.
    pub max_message_size: usize,
    /// Largest header section (start-line, header fields and the blank line), in bytes.
    pub max_header_size: usize,
    /// Longest single line of the header section, without its CRLF, in bytes.
    pub max_line_length: usize,
}

/// One unit taken off a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete SIP message: header section, blank line and exactly `Content-Length`
    /// bytes of body.
    Message(Bytes),
    /// A double-CRLF keep-alive ping (RFC 5626 §3.5.1); answer with a single CRLF.
    Ping,
}

/// Why a stream could not be framed. After any of these the stream is out of step and the
/// connection must be closed: the framer refuses further input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// The peer sent more header bytes than [`FramingLimits::max_header_size`] without a
    /// blank line.
    #[error("header section exceeds {limit} bytes")]
    HeaderTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A header line is longer than [`FramingLimits::max_line_length`].
    #[error("header line exceeds {limit} bytes")]
    LineTooLong {
        /// The configured limit.
        limit: usize,
    },
    /// Header section plus declared body exceed [`FramingLimits::max_message_size`].
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Declared size of the whole message.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// No `Content-Length` (or compact `l`) header: mandatory on streams (RFC 3261 §18.3,
    /// §20.14), without it the end of the message cannot be found.
    #[error("no Content-Length header on a stream transport (RFC 3261 §18.3)")]
    MissingContentLength,
    /// The `Content-Length` value is not `1*DIGIT` (RFC 3261 §20.14) or does not fit.
    #[error("malformed Content-Length value")]
    InvalidContentLength,
    /// Two `Content-Length` headers with different values (a request-smuggling shape).
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    /// An earlier error already poisoned this stream.
    #[error("stream already failed framing")]
    Poisoned,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Looking for the end of the header section.
    Header {
        /// Bytes of `buf` already scanned for line ends.
        scanned: usize,
        /// Start offset of the line currently being scanned.
        line_start: usize,
    },
    /// Header section done, waiting for the message to reach `total` bytes.
    Body {
        total: usize,
    },
    Failed,
}

const START: State = State::Header {
    scanned: 0,
    line_start: 0,
};

/// Incremental framer for one stream connection (TCP or TLS).
///
/// ```
/// use sip_transport::framing::{Frame, FramingLimits, StreamFramer};
/// let mut f = StreamFramer::new(FramingLimits {
///     max_message_size: 65536,
///     max_header_size: 16384,
///     max_line_length: 4096,
/// });
/// f.push(b"\r\n\r\nOPTIONS sip:a SIP/2.0\r\nl: 2\r\n\r\nhi");
/// assert_eq!(f.next_frame(), Ok(Some(Frame::Ping)));
/// let Ok(Some(Frame::Message(m))) = f.next_frame() else { panic!() };
/// assert!(m.ends_with(b"\r\n\r\nhi"));
/// assert_eq!(f.next_frame(), Ok(None));
/// ```
#[derive(Debug)]
pub struct StreamFramer {
    limits: FramingLimits,
    buf: BytesMut,
    state: State,
}

impl StreamFramer {
    /// A framer with the given limits and an empty buffer.
    pub fn new(limits: FramingLimits) -> Self {
        Self {
            limits,
            buf: BytesMut::new(),
            state: START,
        }
    }

    /// Appends bytes read from the stream. Call [`next_frame`](Self::next_frame) until it
    /// returns `Ok(None)` after each push; the buffer then holds at most one partial message.
    pub fn push(&mut self, data: &[u8]) {
        if self.state != State::Failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether part of a message is buffered: anything but the CR and LF bytes of
    /// keep-alives (RFC 5626 §3.5.1), which start no message.
    pub fn in_message(&self) -> bool {
        self.buf.iter().any(|&b| b != b'\r' && b != b'\n')
    }

    /// Takes the next complete frame off the buffer, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        let result = self.step();
        if result.is_err() {
            self.state = State::Failed;
            self.buf = BytesMut::new();
        }
        result
    }

    fn step(&mut self) -> Result<Option<Frame>, FramingError> {
        loop {
            match self.state {
                State::Failed => return Err(FramingError::Poisoned),
                State::Body { total } => {
                    if self.buf.len() < total {
                        return Ok(None);
                    }
                    let message = self.buf.split_to(total).freeze();
                    self.state = START;
                    return Ok(Some(Frame::Message(message)));
                }
                State::Header {
                    scanned,
                    line_start,
                } => {
                    if scanned == 0 {
                        // Between messages: keep-alives and stray CRLFs (RFC 3261 §7.5,
                        // RFC 5626 §3.5.1).
                        match leading_crlf(&self.buf) {
                            Leading::Ping => {
                                self.buf.advance(4);
                                return Ok(Some(Frame::Ping));
                            }
                            Leading::Single => {
                                self.buf.advance(2);
                                continue;
                            }
                            Leading::NeedMore => return Ok(None),
                            Leading::None => {}
                        }
                    }
                    match scan_header(&self.buf, scanned, line_start, &self.limits)? {
                        Scan::Incomplete {
                            scanned,
                            line_start,
                        } => {
                            self.state = State::Header {
                                scanned,
                                line_start,
                            };
                            return Ok(None);
                        }
                        Scan::Complete { header_len } => {
                            let header = self.buf.get(..header_len).unwrap_or_default();
                            let body = content_length(header)?
                                .ok_or(FramingError::MissingContentLength)?;
                            let size = (header_len as u64).saturating_add(body);
                            if size > self.limits.max_message_size as u64 {
                                return Err(FramingError::MessageTooLarge {
                                    size,
                                    limit: self.limits.max_message_size,
                                });
                            }
                            // `size` fits in usize: it is below a usize limit.
                            let total = usize::try_from(size).map_err(|_| {
                                FramingError::MessageTooLarge {
                                    size,
                                    limit: self.limits.max_message_size,
                                }
                            })?;
                            self.state = State::Body { total };
                        }
                    }
                }
            }
        }
    }
}

enum Leading {
    /// `CRLF CRLF`: an RFC 5626 ping.
    Ping,
    /// One CRLF not followed by another: a pong or a stray line end, skip it.
    Single,
    /// Could still become a ping.
    NeedMore,
    /// The buffer does not start with CRLF.
    None,
}

fn leading_crlf(buf: &[u8]) -> Leading {
    match buf {
        [b'\r', b'\n', b'\r', b'\n', ..] => Leading::Ping,
        [b'\r', b'\n', b'\r'] | [b'\r', b'\n'] | [b'\r'] => Leading::NeedMore,
        [b'\r', b'\n', ..] => Leading::Single,
        _ => Leading::None,
    }
}

enum Scan {
    Incomplete { scanned: usize, line_start: usize },
    Complete { header_len: usize },
}

/// Scans `buf[scanned..]` for CRLF line ends, checking line lengths, until the empty line
/// that ends the header section (RFC 3261 §7).
fn scan_header(
    buf: &[u8],
    mut scanned: usize,
    mut line_start: usize,
    limits: &FramingLimits,
) -> Result<Scan, FramingError> {
    while let Some(offset) = buf
        .get(scanned..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
    {
        let lf = scanned + offset;
        scanned = lf + 1;
        if lf == 0 || buf.get(lf - 1) != Some(&b'\r') {
            // A bare LF inside a line: not a line end for framing purposes; the parser
            // decides what it means.
            continue;
        }
        let line_len = (lf - 1).saturating_sub(line_start);
        if line_len > limits.max_line_length {
            return Err(FramingError::LineTooLong {
                limit: limits.max_line_length,
            });
        }
        line_start = scanned;
        if line_len == 0 {
            if scanned > limits.max_header_size {
                return Err(FramingError::HeaderTooLarge {
                    limit: limits.max_header_size,
                });
            }
            return Ok(Scan::Complete {
                header_len: scanned,
            });
        }
    }
    scanned = buf.len();
    // The unfinished line may end in a CR whose LF has not arrived: allow one byte for it.
    if scanned - line_start > limits.max_line_length + 1 {
        return Err(FramingError::LineTooLong {
            limit: limits.max_line_length,
        });
    }
    if scanned > limits.max_header_size {
        return Err(FramingError::HeaderTooLarge {
            limit: limits.max_header_size,
        });
    }
    Ok(Scan::Incomplete {
        scanned,
        line_start,
    })
}

/// Finds the body length declared by `Content-Length` / compact `l` (RFC 3261 §20.14,
/// §7.3.3) in a complete header section (start-line through the blank line).
///
/// Header names compare case-insensitively (§7.3.1), whitespace may precede the colon
/// (`HCOLON`), and folded continuation lines (§7.3.1, leading SP/HTAB) belong to the value.
/// Repeated headers with the same value are accepted; differing values are an error.
pub fn content_length(header: &[u8]) -> Result<Option<u64>, FramingError> {
    let mut lines = header.split(|&b| b == b'\n').map(trim_cr);
    // The start-line carries no header.
    lines.next();
    let mut found: Option<u64> = None;
    // The value of the Content-Length header being read (it may be folded).
    let mut current: Option<Vec<u8>> = None;
    for line in lines {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if continuation {
            if let Some(value) = current.as_mut() {
                value.push(b' ');
                value.extend_from_slice(line);
            }
            continue;
        }
        if let Some(value) = current.take() {
            found = merge(found, parse_length(&value)?)?;
        }
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = trim_ws(name);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            current = Some(value.get(1..).unwrap_or_default().to_vec());
        }
    }
    if let Some(value) = current.take() {
        found = merge(found, parse_length(&value)?)?;
    }
    Ok(found)
}

fn merge(found: Option<u64>, value: u64) -> Result<Option<u64>, FramingError> {
    match found {
        Some(previous) if previous != value => Err(FramingError::ConflictingContentLength),
        _ => Ok(Some(value)),
    }
}

fn parse_length(value: &[u8]) -> Result<u64, FramingError> {
    let digits = trim_ws(value);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(FramingError::InvalidContentLength);
    }
    Ok(digits
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0')))
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_ws(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Whether a datagram is only a keep-alive: CRLFs (RFC 5626 §3.5.1 style), spaces or the
/// NUL bytes some phones send. Such datagrams are dropped without an answer on UDP.
pub fn is_datagram_keepalive(datagram: &[u8]) -> bool {
    datagram
        .iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FramingLimits = FramingLimits {
        max_message_size: 4096,
        max_header_size: 1024,
        max_line_length: 128,
    };

    fn frames(f: &mut StreamFramer) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(frame) = f.next_frame().expect("frames") {
            out.push(frame);
        }
        out
    }

    fn msg(body: &str) -> Vec<u8> {
        format!(
            "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn two_messages_in_one_push() {
        let mut f = StreamFramer::new(LIMITS);
        let mut data = msg("hello");
        data.extend_from_slice(&msg(""));
        f.push(&data);
        let got = frames(&mut f);
        assert_eq!(
            got,
            vec![
                Frame::Message(Bytes::from(msg("hello"))),
                Frame::Message(Bytes::from(msg("")))
            ]
        );
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn byte_at_a_time() {
        let mut f = StreamFramer::new(LIMITS);
        let mut data = b"\r\n\r\n\r\n".to_vec();
        data.extend_from_slice(&msg("body\r\n\r\nwith blank line"));
        let mut got = Vec::new();
        for b in &data {
            f.push(std::slice::from_ref(b));
            got.extend(frames(&mut f));
        }
        assert_eq!(
            got,
            vec![
                Frame::Ping,
                Frame::Message(Bytes::from(msg("body\r\n\r\nwith blank line")))
            ]
        );
    }

    #[test]
    fn single_crlf_is_skipped() {
        let mut f = StreamFramer::new(LIMITS);
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(None));
        f.push(&msg("x"));
        assert_eq!(frames(&mut f), vec![Frame::Message(Bytes::from(msg("x")))]);
    }

    #[test]
    fn in_message_ignores_keepalives() {
        let mut f = StreamFramer::new(LIMITS);
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(None));
        assert!(!f.in_message(), "a lone CRLF starts no message");
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(Some(Frame::Ping)));
        let m = msg("x");
        f.push(&m[..3]);
        assert_eq!(f.next_frame(), Ok(None));
        assert!(f.in_message());
        f.push(&m[3..]);
        assert_eq!(frames(&mut f), vec![Frame::Message(Bytes::from(m))]);
        assert!(!f.in_message());
    }

    #[test]
    fn compact_and_case_insensitive_and_folded() {
        assert_eq!(content_length(b"A\r\nl: 5\r\n\r\n"), Ok(Some(5)));
        assert_eq!(
            content_length(b"A\r\nCONTENT-length :\t7 \r\n\r\n"),
            Ok(Some(7))
        );
        assert_eq!(
            content_length(b"A\r\nContent-Length:\r\n  12\r\n\r\n"),
            Ok(Some(12))
        );
        assert_eq!(content_length(b"A\r\nContent-Type: l\r\n\r\n"), Ok(None));
        assert_eq!(
            content_length(b"A\r\nl: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(FramingError::ConflictingContentLength)
        );
        assert_eq!(content_length(b"A\r\nl: 3\r\nl: 3\r\n\r\n"), Ok(Some(3)));
        assert_eq!(
            content_length(b"A\r\nl: -1\r\n\r\n"),
            Err(FramingError::InvalidContentLength)
        );
        assert_eq!(
            content_length(b"A\r\nl: 99999999999999999999\r\n\r\n"),
            Err(FramingError::InvalidContentLength)
        );
    }

    #[test]
    fn missing_content_length_is_an_error_and_poisons() {
        let mut f = StreamFramer::new(LIMITS);
        f.push(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::MissingContentLength));
        f.push(&msg(""));
        assert_eq!(f.next_frame(), Err(FramingError::Poisoned));
    }

    #[test]
    fn limits() {
        let mut f = StreamFramer::new(LIMITS);
        f.push(&[b'a'; 200]);
        assert_eq!(
            f.next_frame(),
            Err(FramingError::LineTooLong { limit: 128 })
        );

        let mut f = StreamFramer::new(LIMITS);
        for _ in 0..20 {
            f.push(b"X-Header: 0123456789012345678901234567890123456789012345678901234\r\n");
        }
        assert_eq!(
            f.next_frame(),
            Err(FramingError::HeaderTooLarge { limit: 1024 })
        );

        let mut f = StreamFramer::new(LIMITS);
        f.push(b"A sip:a SIP/2.0\r\nl: 5000\r\n\r\n");
        assert!(matches!(
            f.next_frame(),
            Err(FramingError::MessageTooLarge { limit: 4096, .. })
        ));
    }

    #[test]
    fn keepalive_datagrams() {
        assert!(is_datagram_keepalive(b"\r\n\r\n"));
        assert!(is_datagram_keepalive(b"\0\0\0\0"));
        assert!(!is_datagram_keepalive(b"OPTIONS"));
    }
}
