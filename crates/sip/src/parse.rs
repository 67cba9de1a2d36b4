//! The message parser: framing (RFC 3261 §7.5, §18.3), start lines (§7.1, §7.2), header
//! fields with folding and compact forms (§7.3), and validation of the headers the stack
//! relies on (§8.1.1, §20; RFC 4475).

use crate::error::{ParseError, ParseErrorKind, StartKind};
use crate::headers::{HeaderName, Headers};
use crate::message::{Message, Method, Request, Response};
use crate::text::{Span, is_lws, is_token, parse_u32};
use crate::typed::{self, CSeq};
use crate::uri::Uri;

/// Limits enforced while parsing, where input enters the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest message (start line + headers + body) accepted, in bytes.
    pub max_message_size: usize,
    /// Most header lines accepted (folded lines count once).
    pub max_headers: usize,
    /// Longest single line accepted, in bytes.
    pub max_line_length: usize,
}

impl Default for ParseLimits {
    /// 64 KiB messages (the largest UDP payload), 128 headers, 8 KiB lines.
    fn default() -> Self {
        ParseLimits {
            max_message_size: 65_535,
            max_headers: 128,
            max_line_length: 8_192,
        }
    }
}

/// The result of [`parse_stream`].
#[derive(Debug)]
pub enum StreamParse {
    /// More bytes are needed.
    Incomplete,
    /// Only CRLFs were consumed (RFC 5626 §3.5.1 keep-alive: answer a double CRLF with one
    /// CRLF). `consumed` bytes can be dropped from the buffer.
    KeepAlive {
        /// Bytes to drop.
        consumed: usize,
    },
    /// A complete message occupying the first `consumed` bytes.
    Message {
        /// The message.
        message: Message,
        /// Bytes to drop from the stream buffer.
        consumed: usize,
    },
}

fn start_kind(data: &[u8]) -> StartKind {
    if data.len() >= 4 && data[..4].eq_ignore_ascii_case(b"SIP/") {
        StartKind::Response
    } else if data.first().is_some_and(|&b| crate::text::is_token_char(b)) {
        StartKind::Request
    } else {
        StartKind::Unknown
    }
}

fn skip_crlf(data: &[u8]) -> usize {
    data.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Finds the empty line ending the header section. Returns `(head_end, body_start)`, where
/// `head_end` is the start of the empty line. Checks the line-length limit on the way.
fn find_head_end(
    data: &[u8],
    limits: &ParseLimits,
) -> Result<Option<(usize, usize)>, ParseErrorKind> {
    let mut pos = 0;
    loop {
        let Some(nl) = memchr::memchr(b'\n', &data[pos..]) else {
            if data.len() - pos > limits.max_line_length {
                return Err(ParseErrorKind::LineTooLong);
            }
            return Ok(None);
        };
        let nl = pos + nl;
        let line_end = if nl > pos && data[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        if line_end - pos > limits.max_line_length {
            return Err(ParseErrorKind::LineTooLong);
        }
        if line_end == pos {
            return Ok(Some((pos, nl + 1)));
        }
        pos = nl + 1;
    }
}

/// Parses one message received in a datagram (UDP). A body shorter than Content-Length is
/// an error; extra bytes after it are discarded (RFC 3261 §18.3, RFC 4475 §3.1.1.8). Without
/// Content-Length the rest of the datagram is the body.
pub fn parse_datagram(data: &[u8], limits: &ParseLimits) -> Result<Message, ParseError> {
    let skip = skip_crlf(data);
    let data = &data[skip..];
    let kind = start_kind(data);
    let err = |k| ParseError::new(k, kind);
    if data.is_empty() {
        return Err(err(ParseErrorKind::Empty));
    }
    if data.len() + skip > limits.max_message_size {
        return Err(err(ParseErrorKind::TooLarge));
    }
    let (head_end, body_start) = find_head_end(data, limits)
        .map_err(err)?
        .ok_or_else(|| err(ParseErrorKind::MissingEmptyLine))?;
    let (mut msg, cl) = parse_head(&data[..head_end], limits).map_err(err)?;
    let avail = &data[body_start..];
    let body = match cl {
        Some(n) if n > avail.len() => return Err(err(ParseErrorKind::BodyTooShort)),
        Some(n) => &avail[..n],
        None => avail,
    };
    set_body(&mut msg, body);
    Ok(msg)
}

/// Parses the next message from a stream buffer (TCP, TLS). Leading CRLFs are skipped
/// (RFC 3261 §7.5). Content-Length frames the body (§18.3); a message without it is taken
/// to have no body. Errors are fatal for the connection: framing is lost.
pub fn parse_stream(data: &[u8], limits: &ParseLimits) -> Result<StreamParse, ParseError> {
    let skip = skip_crlf(data);
    let rest = &data[skip..];
    if rest.is_empty() {
        return Ok(if skip > 0 {
            StreamParse::KeepAlive { consumed: skip }
        } else {
            StreamParse::Incomplete
        });
    }
    let kind = start_kind(rest);
    let err = |k| ParseError::new(k, kind);
    let Some((head_end, body_start)) = find_head_end(rest, limits).map_err(err)? else {
        if rest.len() > limits.max_message_size {
            return Err(err(ParseErrorKind::TooLarge));
        }
        return Ok(StreamParse::Incomplete);
    };
    let (mut msg, cl) = parse_head(&rest[..head_end], limits).map_err(err)?;
    let n = cl.unwrap_or(0);
    let total = body_start.saturating_add(n);
    if total > limits.max_message_size {
        return Err(err(ParseErrorKind::TooLarge));
    }
    if rest.len() < total {
        return Ok(StreamParse::Incomplete);
    }
    set_body(&mut msg, &rest[body_start..total]);
    Ok(StreamParse::Message {
        message: msg,
        consumed: skip + total,
    })
}

fn set_body(msg: &mut Message, body: &[u8]) {
    match msg {
        Message::Request(r) => r.body = body.to_vec(),
        Message::Response(r) => r.body = body.to_vec(),
    }
}

struct Pending {
    name: Span,
    value_start: usize,
    end: usize,
    folded: bool,
}

/// Parses the start line and header section (without the terminating empty line).
/// Returns the message and the Content-Length, if any.
fn parse_head(
    head: &[u8],
    limits: &ParseLimits,
) -> Result<(Message, Option<usize>), ParseErrorKind> {
    // Header text is UTF-8 (RFC 3261 §7.3.1); invalid bytes are replaced, not rejected.
    let text = match std::str::from_utf8(head) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(head),
    };
    let text: &str = &text;
    let first_nl = text.find('\n').unwrap_or(text.len());
    let start_line = text[..first_nl]
        .strip_suffix('\r')
        .unwrap_or(&text[..first_nl]);

    enum Start {
        Req(Method, Uri),
        Resp(u16, String),
    }
    let start = if start_line
        .as_bytes()
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        let mut it = start_line.splitn(3, ' ');
        let ver = it.next().unwrap_or("");
        check_version(ver)?;
        let code = it.next().unwrap_or("");
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseErrorKind::StatusCode);
        }
        let code: u16 = code.parse().map_err(|_| ParseErrorKind::StatusCode)?;
        if !(100..=699).contains(&code) {
            return Err(ParseErrorKind::StatusCode);
        }
        Start::Resp(code, it.next().unwrap_or("").to_owned())
    } else {
        let mut it = start_line.splitn(3, ' ');
        let (m, u, v) = (
            it.next().unwrap_or(""),
            it.next().unwrap_or(""),
            it.next().unwrap_or(""),
        );
        if !is_token(m) || u.is_empty() || v.contains(' ') {
            return Err(ParseErrorKind::StartLine);
        }
        check_version(v)?;
        let uri = Uri::parse(u).map_err(ParseErrorKind::RequestUri)?;
        if uri.as_ref().headers().is_some() {
            return Err(ParseErrorKind::RequestUriHeaders);
        }
        Start::Req(Method::from_token(m), uri)
    };

    let mut headers = Headers::from_parts(String::with_capacity(text.len() + 16), 24);
    headers.buf_mut().push_str(text);
    let mut pending: Option<Pending> = None;
    let mut pos = (first_nl + 1).min(text.len());
    while pos < text.len() {
        let nl = memchr::memchr(b'\n', &text.as_bytes()[pos..])
            .map(|i| pos + i)
            .unwrap_or(text.len());
        let end = if nl > pos && text.as_bytes()[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let line = &text[pos..end];
        if line.starts_with([' ', '\t']) {
            let p = pending.as_mut().ok_or(ParseErrorKind::HeaderLine)?;
            p.end = end;
            p.folded = true;
        } else if !line.is_empty() {
            if let Some(p) = pending.take() {
                flush(&mut headers, text, p, limits)?;
            }
            let colon = line.find(':').ok_or(ParseErrorKind::HeaderLine)?;
            let name = line[..colon].trim_end_matches([' ', '\t']);
            if !is_token(name) {
                return Err(ParseErrorKind::HeaderLine);
            }
            pending = Some(Pending {
                name: Span::new(pos, pos + name.len()),
                value_start: pos + colon + 1,
                end,
                folded: false,
            });
        }
        pos = nl + 1;
    }
    if let Some(p) = pending.take() {
        flush(&mut headers, text, p, limits)?;
    }

    let cl = validate_headers(&headers)?;
    let msg = match start {
        Start::Req(method, uri) => {
            if let Some(c) = headers.cseq()
                && c.method != method.as_str()
            {
                return Err(ParseErrorKind::CSeqMismatch);
            }
            Message::Request(Request {
                method,
                uri,
                headers,
                body: Vec::new(),
            })
        }
        Start::Resp(status, reason) => Message::Response(Response {
            status,
            reason,
            headers,
            body: Vec::new(),
        }),
    };
    Ok((msg, cl))
}

fn check_version(v: &str) -> Result<(), ParseErrorKind> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    let ok_shape = v.len() > 4
        && v.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/")
        && v.get(4..)
            .and_then(|r| r.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && (a.bytes().chain(b.bytes())).all(|c| c.is_ascii_digit())
            });
    Err(if ok_shape {
        ParseErrorKind::UnsupportedVersion
    } else {
        ParseErrorKind::StartLine
    })
}

fn flush(
    headers: &mut Headers,
    text: &str,
    p: Pending,
    limits: &ParseLimits,
) -> Result<(), ParseErrorKind> {
    if headers.len() >= limits.max_headers {
        return Err(ParseErrorKind::TooManyHeaders);
    }
    let raw = text.get(p.value_start..p.end).unwrap_or("");
    let (base, value) = if p.folded {
        // Unfold (RFC 3261 §7.3.1): drop CR/LF, keep the white space, as a new copy.
        let buf = headers.buf_mut();
        let start = buf.len();
        buf.extend(raw.chars().filter(|&c| c != '\r' && c != '\n'));
        let unfolded = &buf[start..];
        (start, unfolded)
    } else {
        (p.value_start, raw)
    };
    let lead = value.bytes().take_while(|&b| is_lws(b)).count();
    let trail = value[lead..]
        .bytes()
        .rev()
        .take_while(|&b| is_lws(b))
        .count();
    let span = Span::new(base + lead, base + value.len() - trail);
    let name = HeaderName::from_name(p.name.get(text));
    headers.push_spans(name, p.name, span);
    Ok(())
}

/// Checks header cardinality and grammar; returns Content-Length.
fn validate_headers(h: &Headers) -> Result<Option<usize>, ParseErrorKind> {
    const SINGLE: [HeaderName; 12] = [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::MaxForwards,
        HeaderName::ContentLength,
        HeaderName::ContentType,
        HeaderName::Expires,
        HeaderName::MinSe,
        HeaderName::SessionExpires,
        HeaderName::RSeq,
        HeaderName::RAck,
    ];
    let mut seen = [false; SINGLE.len()];
    let (mut via, mut cl) = (false, None);
    for (_, name, value) in h.iter() {
        if name == HeaderName::Other {
            continue;
        }
        if let Some(i) = SINGLE.iter().position(|&n| n == name) {
            if seen[i] {
                return Err(ParseErrorKind::DuplicateHeader(name));
            }
            seen[i] = true;
        }
        // An empty Subject (RFC 4475 §3.1.1.1) or other empty extension-like value is fine;
        // empty values of the headers below are not.
        if !typed::validate(name, value) {
            return Err(ParseErrorKind::InvalidHeader(name));
        }
        match name {
            HeaderName::Via => via = true,
            HeaderName::ContentLength => cl = parse_u32(value).map(|n| n as usize),
            _ => {}
        }
    }
    if !via {
        return Err(ParseErrorKind::MissingHeader(HeaderName::Via));
    }
    for (i, n) in SINGLE[..4].iter().enumerate() {
        if !seen[i] {
            return Err(ParseErrorKind::MissingHeader(*n));
        }
    }
    debug_assert!(h.cseq().is_none_or(|c: CSeq<'_>| !c.method.is_empty()));
    Ok(cl)
}

impl Message {
    /// Parses a datagram with default limits (see [`parse_datagram`]).
    pub fn parse(data: &[u8]) -> Result<Message, ParseError> {
        parse_datagram(data, &ParseLimits::default())
    }
}
