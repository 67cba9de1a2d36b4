//! The SDP parser (RFC 8866 §5, §9).
//!
//! Accepts CRLF or bare LF line ends (RFC 8866 §5 asks parsers to), ignores blank lines
//! and trailing spaces or tabs on a line, and otherwise follows the grammar of RFC 8866
//! §9. Two leniencies match what deployed SIP stacks send: session-level lines may come in
//! any order after `v=` (only `r=` must follow a `t=`), and `t=` may be missing; and
//! free-text lines (`s= i= e= p= a=`) that are not UTF-8 (Latin-1 from older devices) are
//! kept with U+FFFD replacements rather than refused. Every
//! error names the 1-based line and what was wrong with it. Input size, line count and the
//! number of `m=` sections are bounded by [`ParseLimits`] before any work is done.

use crate::model::{
    AddrType, Attribute, Bandwidth, Connection, KeyLine, MediaDescription, Origin,
    SessionDescription, Timing,
};
use thiserror::Error;

/// Bounds applied to untrusted input before parsing (explicit limits, see ARCHITECTURE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Maximum size of the description in bytes.
    pub max_size: usize,
    /// Maximum number of lines, blank lines included.
    pub max_lines: usize,
    /// Maximum number of `m=` sections.
    pub max_media: usize,
}

impl Default for ParseLimits {
    /// 64 KiB, 1000 lines, 16 media sections: an audio offer with every codec and six
    /// crypto lines is about 1 KiB and 30 lines.
    fn default() -> Self {
        Self {
            max_size: 64 * 1024,
            max_lines: 1000,
            max_media: 16,
        }
    }
}

/// A malformed session description: where and what.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", self.describe())]
pub struct ParseError {
    /// 1-based line number, or 0 when the error concerns the whole description.
    pub line: usize,
    /// What was wrong.
    pub kind: ParseErrorKind,
}

impl ParseError {
    fn describe(&self) -> String {
        if self.line == 0 {
            self.kind.to_string()
        } else {
            format!("line {}: {}", self.line, self.kind)
        }
    }

    /// SIP status for a request whose SDP body failed to parse: 488 for a version we do
    /// not speak (RFC 3261 §21.4.26), 400 for everything else (the body is malformed).
    #[must_use]
    pub fn sip_status(&self) -> u16 {
        match self.kind {
            ParseErrorKind::UnsupportedVersion(_) => 488,
            _ => 400,
        }
    }

    /// Text for a `Warning: 399` header (RFC 3261 §20.43) explaining the refusal.
    #[must_use]
    pub fn warning_text(&self) -> String {
        format!("malformed SDP: {self}")
    }
}

/// What was wrong with a session description.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// No lines at all.
    #[error("empty session description")]
    Empty,
    /// Larger than [`ParseLimits::max_size`].
    #[error("session description is {size} bytes, limit is {max}")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// More lines than [`ParseLimits::max_lines`].
    #[error("more than {max} lines")]
    TooManyLines {
        /// The limit.
        max: usize,
    },
    /// More `m=` sections than [`ParseLimits::max_media`].
    #[error("more than {max} media sections")]
    TooManyMedia {
        /// The limit.
        max: usize,
    },
    /// A structural line (`v= o= c= b= t= r= z= k= m=`) is not valid UTF-8.
    #[error("not valid UTF-8")]
    NotUtf8,
    /// A NUL or CR inside a line (RFC 8866 §9 `text`).
    #[error("control character inside a line")]
    ControlCharacter,
    /// Not of the form `<letter>=<value>` (RFC 8866 §5).
    #[error("not a <type>=<value> line")]
    MalformedLine,
    /// A type letter RFC 8866 does not define; §5 requires rejecting the description.
    #[error("unknown line type {0:?}")]
    UnknownType(char),
    /// The first line is not `v=`.
    #[error("first line is not v=")]
    MissingVersion,
    /// `v=` other than 0.
    #[error("unsupported SDP version {0}")]
    UnsupportedVersion(u32),
    /// A mandatory line (`o=` or `s=`) is absent.
    #[error("missing {0}= line")]
    MissingLine(char),
    /// A line that may appear once appears again.
    #[error("duplicate {0}= line")]
    Duplicate(char),
    /// A line in the wrong section, e.g. `t=` after `m=`, or `r=` not after `t=`.
    #[error("{0}= line out of place")]
    OutOfPlace(char),
    /// A required field is absent.
    #[error("missing {field} in {line_type}= line")]
    MissingField {
        /// Line type letter.
        line_type: char,
        /// Field name as in RFC 8866 §9.
        field: &'static str,
    },
    /// A field has invalid syntax or is out of range.
    #[error("invalid {field} in {line_type}= line")]
    InvalidField {
        /// Line type letter.
        line_type: char,
        /// Field name as in RFC 8866 §9.
        field: &'static str,
    },
}

impl std::str::FromStr for SessionDescription {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl SessionDescription {
    /// Parses with [`ParseLimits::default`].
    pub fn parse(input: &[u8]) -> Result<Self, ParseError> {
        Self::parse_with_limits(input, &ParseLimits::default())
    }

    /// Parses a session description, refusing input beyond `limits`.
    pub fn parse_with_limits(input: &[u8], limits: &ParseLimits) -> Result<Self, ParseError> {
        if input.len() > limits.max_size {
            return Err(ParseError {
                line: 0,
                kind: ParseErrorKind::TooLarge {
                    size: input.len(),
                    max: limits.max_size,
                },
            });
        }
        let mut p = Parser::default();
        let body = input.strip_suffix(b"\n").unwrap_or(input);
        for (idx, raw) in body.split(|&b| b == b'\n').enumerate() {
            let line_no = idx + 1;
            if line_no > limits.max_lines {
                return Err(ParseError {
                    line: 0,
                    kind: ParseErrorKind::TooManyLines {
                        max: limits.max_lines,
                    },
                });
            }
            let err = |kind| ParseError {
                line: line_no,
                kind,
            };
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let decoded = match std::str::from_utf8(raw) {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                // Free-text lines from older devices are often Latin-1: keep them,
                // with U+FFFD for what is not UTF-8. Structural lines must be ASCII.
                Err(_)
                    if matches!(raw.first(), Some(b's' | b'i' | b'e' | b'p' | b'a'))
                        && raw.get(1) == Some(&b'=') =>
                {
                    String::from_utf8_lossy(raw)
                }
                Err(_) => return Err(err(ParseErrorKind::NotUtf8)),
            };
            let line = decoded.trim_end_matches([' ', '\t']);
            if line.is_empty() {
                continue;
            }
            if line.contains(['\r', '\0']) {
                return Err(err(ParseErrorKind::ControlCharacter));
            }
            p.line(line, limits).map_err(err)?;
        }
        p.finish()
    }
}

#[derive(Default)]
struct Parser {
    seen_version: bool,
    origin: Option<Origin>,
    session_name: Option<String>,
    information: Option<String>,
    uri: Option<String>,
    emails: Vec<String>,
    phones: Vec<String>,
    connection: Option<Connection>,
    bandwidths: Vec<Bandwidth>,
    timings: Vec<Timing>,
    time_zones: Option<String>,
    key: Option<KeyLine>,
    attributes: Vec<Attribute>,
    media: Vec<MediaDescription>,
    /// Type of the previous line, for `r=` placement.
    previous: char,
}

fn set_once<T>(slot: &mut Option<T>, kind: char, v: T) -> Result<(), ParseErrorKind> {
    if slot.is_some() {
        return Err(ParseErrorKind::Duplicate(kind));
    }
    *slot = Some(v);
    Ok(())
}

/// `token` of RFC 8866 §9: visible ASCII except a few separators.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            matches!(b, b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'0'..=b'9'
                | b'A'..=b'Z' | b'^'..=b'~')
        })
}

/// A run of visible non-space characters (addresses, `proto`, `fmt`).
fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

fn digits_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Parser {
    fn line(&mut self, line: &str, limits: &ParseLimits) -> Result<(), ParseErrorKind> {
        let bytes = line.as_bytes();
        let (Some(&kind), Some(b'=')) = (bytes.first(), bytes.get(1)) else {
            return Err(ParseErrorKind::MalformedLine);
        };
        if !kind.is_ascii_lowercase() {
            return Err(ParseErrorKind::MalformedLine);
        }
        let kind = char::from(kind);
        // Both bytes are ASCII, so index 2 is a char boundary.
        let value = &line[2..];
        if !self.seen_version {
            if kind != 'v' {
                return Err(ParseErrorKind::MissingVersion);
            }
            let v: u32 = value.parse().map_err(|_| ParseErrorKind::InvalidField {
                line_type: 'v',
                field: "proto-version",
            })?;
            if v != 0 {
                return Err(ParseErrorKind::UnsupportedVersion(v));
            }
            self.seen_version = true;
            self.previous = 'v';
            return Ok(());
        }
        let in_media = !self.media.is_empty();
        match kind {
            'm' => {
                if self.media.len() >= limits.max_media {
                    return Err(ParseErrorKind::TooManyMedia {
                        max: limits.max_media,
                    });
                }
                self.media.push(parse_media(value)?);
            }
            'i' => {
                let text = value.to_owned();
                match self.media.last_mut() {
                    Some(m) => set_once(&mut m.information, 'i', text)?,
                    None => set_once(&mut self.information, 'i', text)?,
                }
            }
            'c' => {
                let c = parse_connection(value)?;
                match self.media.last_mut() {
                    Some(m) => m.connections.push(c),
                    None => set_once(&mut self.connection, 'c', c)?,
                }
            }
            'b' => {
                let b = parse_bandwidth(value)?;
                match self.media.last_mut() {
                    Some(m) => m.bandwidths.push(b),
                    None => self.bandwidths.push(b),
                }
            }
            'k' => {
                let k = KeyLine(value.to_owned());
                match self.media.last_mut() {
                    Some(m) => set_once(&mut m.key, 'k', k)?,
                    None => set_once(&mut self.key, 'k', k)?,
                }
            }
            'a' => {
                let a = parse_attribute(value)?;
                match self.media.last_mut() {
                    Some(m) => m.attributes.push(a),
                    None => self.attributes.push(a),
                }
            }
            'v' => return Err(ParseErrorKind::Duplicate('v')),
            'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' if in_media => {
                return Err(ParseErrorKind::OutOfPlace(kind));
            }
            'o' => {
                let o = parse_origin(value)?;
                set_once(&mut self.origin, 'o', o)?;
            }
            's' => set_once(&mut self.session_name, 's', value.to_owned())?,
            'u' => set_once(&mut self.uri, 'u', value.to_owned())?,
            'e' => self.emails.push(value.to_owned()),
            'p' => self.phones.push(value.to_owned()),
            't' => self.timings.push(parse_timing(value)?),
            'r' => {
                let last = self.timings.last_mut();
                match last {
                    Some(t) if matches!(self.previous, 't' | 'r') && !value.is_empty() => {
                        t.repeats.push(value.to_owned());
                    }
                    _ => return Err(ParseErrorKind::OutOfPlace('r')),
                }
            }
            'z' => set_once(&mut self.time_zones, 'z', value.to_owned())?,
            other => return Err(ParseErrorKind::UnknownType(other)),
        }
        self.previous = kind;
        Ok(())
    }

    fn finish(self) -> Result<SessionDescription, ParseError> {
        let whole = |kind| ParseError { line: 0, kind };
        if !self.seen_version {
            return Err(whole(ParseErrorKind::Empty));
        }
        let origin = self
            .origin
            .ok_or_else(|| whole(ParseErrorKind::MissingLine('o')))?;
        let session_name = self
            .session_name
            .ok_or_else(|| whole(ParseErrorKind::MissingLine('s')))?;
        Ok(SessionDescription {
            origin,
            session_name,
            information: self.information,
            uri: self.uri,
            emails: self.emails,
            phones: self.phones,
            connection: self.connection,
            bandwidths: self.bandwidths,
            timings: self.timings,
            time_zones: self.time_zones,
            key: self.key,
            attributes: self.attributes,
            media: self.media,
        })
    }
}

fn fields(value: &str) -> impl Iterator<Item = &str> {
    value.split([' ', '\t']).filter(|f| !f.is_empty())
}

fn parse_origin(value: &str) -> Result<Origin, ParseErrorKind> {
    const T: char = 'o';
    let mut f = fields(value);
    let mut next = |field| {
        f.next().ok_or(ParseErrorKind::MissingField {
            line_type: T,
            field,
        })
    };
    let bad = |field| ParseErrorKind::InvalidField {
        line_type: T,
        field,
    };
    let username = next("username")?;
    let session_id = next("sess-id")?;
    let session_version = next("sess-version")?;
    let net_type = next("nettype")?;
    let addr_type = next("addrtype")?;
    let address = next("unicast-address")?;
    if f.next().is_some() {
        return Err(bad("unicast-address"));
    }
    if !is_word(username) {
        return Err(bad("username"));
    }
    let session_id = digits_u64(session_id).ok_or(bad("sess-id"))?;
    let session_version = digits_u64(session_version).ok_or(bad("sess-version"))?;
    if !is_token(net_type) {
        return Err(bad("nettype"));
    }
    if !is_token(addr_type) {
        return Err(bad("addrtype"));
    }
    if !is_word(address) {
        return Err(bad("unicast-address"));
    }
    Ok(Origin {
        username: username.to_owned(),
        session_id,
        session_version,
        net_type: net_type.to_owned(),
        addr_type: AddrType::from_token(addr_type),
        address: address.to_owned(),
    })
}

fn parse_connection(value: &str) -> Result<Connection, ParseErrorKind> {
    const T: char = 'c';
    let mut f = fields(value);
    let mut next = |field| {
        f.next().ok_or(ParseErrorKind::MissingField {
            line_type: T,
            field,
        })
    };
    let bad = |field| ParseErrorKind::InvalidField {
        line_type: T,
        field,
    };
    let net_type = next("nettype")?;
    let addr_type = next("addrtype")?;
    let address = next("connection-address")?;
    if f.next().is_some() || !is_word(address) {
        return Err(bad("connection-address"));
    }
    if !is_token(net_type) {
        return Err(bad("nettype"));
    }
    if !is_token(addr_type) {
        return Err(bad("addrtype"));
    }
    Ok(Connection {
        net_type: net_type.to_owned(),
        addr_type: AddrType::from_token(addr_type),
        address: address.to_owned(),
    })
}

fn parse_bandwidth(value: &str) -> Result<Bandwidth, ParseErrorKind> {
    let (kind, bw) = value.split_once(':').ok_or(ParseErrorKind::MissingField {
        line_type: 'b',
        field: "bandwidth",
    })?;
    if !is_token(kind) {
        return Err(ParseErrorKind::InvalidField {
            line_type: 'b',
            field: "bwtype",
        });
    }
    let value = digits_u64(bw).ok_or(ParseErrorKind::InvalidField {
        line_type: 'b',
        field: "bandwidth",
    })?;
    Ok(Bandwidth {
        kind: kind.to_owned(),
        value,
    })
}

fn parse_timing(value: &str) -> Result<Timing, ParseErrorKind> {
    let mut f = fields(value);
    let mut time = |field| {
        let s = f.next().ok_or(ParseErrorKind::MissingField {
            line_type: 't',
            field,
        })?;
        digits_u64(s).ok_or(ParseErrorKind::InvalidField {
            line_type: 't',
            field,
        })
    };
    let start = time("start-time")?;
    let stop = time("stop-time")?;
    if f.next().is_some() {
        return Err(ParseErrorKind::InvalidField {
            line_type: 't',
            field: "stop-time",
        });
    }
    Ok(Timing {
        start,
        stop,
        repeats: Vec::new(),
    })
}

fn parse_attribute(value: &str) -> Result<Attribute, ParseErrorKind> {
    let (name, v) = match value.split_once(':') {
        Some((n, v)) => (n, Some(v.to_owned())),
        None => (value, None),
    };
    if !is_token(name) {
        return Err(ParseErrorKind::InvalidField {
            line_type: 'a',
            field: "att-field",
        });
    }
    Ok(Attribute {
        name: name.to_owned(),
        value: v,
    })
}

fn parse_media(value: &str) -> Result<MediaDescription, ParseErrorKind> {
    const T: char = 'm';
    let mut f = fields(value);
    let mut next = |field| {
        f.next().ok_or(ParseErrorKind::MissingField {
            line_type: T,
            field,
        })
    };
    let bad = |field| ParseErrorKind::InvalidField {
        line_type: T,
        field,
    };
    let media = next("media")?;
    let port = next("port")?;
    let proto = next("proto")?;
    if !is_token(media) {
        return Err(bad("media"));
    }
    let (port, port_count) = match port.split_once('/') {
        Some((p, n)) => (p, Some(n)),
        None => (port, None),
    };
    let port = digits_u64(port)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or(bad("port"))?;
    let port_count = match port_count {
        Some(n) => Some(
            digits_u64(n)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or(bad("port"))?,
        ),
        None => None,
    };
    if !is_word(proto) {
        return Err(bad("proto"));
    }
    let formats = f.map(str::to_owned).collect();
    Ok(MediaDescription {
        media: media.to_owned(),
        port,
        port_count,
        proto: proto.to_owned(),
        formats,
        information: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    })
}
