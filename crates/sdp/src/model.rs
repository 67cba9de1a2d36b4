//! The SDP data model (RFC 8866 §5) and its printer.
//!
//! The model keeps every line of a session description, including attributes it does not
//! understand, so that a description can be parsed, inspected and printed again without
//! loss. Typed views of the attributes the offer/answer code needs live in
//! [`crate::attributes`].
//!
//! Printing (the [`std::fmt::Display`] impl) writes lines in the order RFC 8866 §5 gives,
//! each ending in CRLF. Printed output contains SDES keys (`a=crypto`) and `k=` lines when
//! present: send it only over a protected signalling channel and never log it. The `Debug`
//! output redacts both.

use std::fmt::{self, Write};
use std::net::IpAddr;

/// A whole session description (RFC 8866 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`: originator and session identifier (RFC 8866 §5.2).
    pub origin: Origin,
    /// `s=`: session name (RFC 8866 §5.3); printed as a single space when empty.
    pub session_name: String,
    /// `i=`: session information (RFC 8866 §5.4).
    pub information: Option<String>,
    /// `u=`: URI of a description (RFC 8866 §5.5).
    pub uri: Option<String>,
    /// `e=` lines: email addresses (RFC 8866 §5.6).
    pub emails: Vec<String>,
    /// `p=` lines: phone numbers (RFC 8866 §5.6).
    pub phones: Vec<String>,
    /// Session-level `c=` (RFC 8866 §5.7), the default for every media description.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines (RFC 8866 §5.8).
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines with their `r=` lines (RFC 8866 §5.9, §5.10).
    pub timings: Vec<Timing>,
    /// `z=`: time zone adjustments, verbatim (RFC 8866 §5.11).
    pub time_zones: Option<String>,
    /// Session-level `k=` (obsolete, RFC 8866 §5.12), verbatim.
    pub key: Option<KeyLine>,
    /// Session-level `a=` lines in order (RFC 8866 §5.13).
    pub attributes: Vec<Attribute>,
    /// `m=` sections in order (RFC 8866 §5.14).
    pub media: Vec<MediaDescription>,
}

/// The `o=` line (RFC 8866 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `<username>`, `-` when there is none.
    pub username: String,
    /// `<sess-id>`.
    pub session_id: u64,
    /// `<sess-version>`, incremented on every change (RFC 3264 §8).
    pub session_version: u64,
    /// `<nettype>`, `IN` in practice.
    pub net_type: String,
    /// `<addrtype>`.
    pub addr_type: AddrType,
    /// `<unicast-address>`: an address or a host name.
    pub address: String,
}

/// `<addrtype>` of `o=` and `c=` lines (RFC 8866 §5.2, §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
    /// Any other token, verbatim.
    Other(String),
}

impl AddrType {
    /// From the token (case-sensitive as registered, but `ip4`/`ip6` are accepted too).
    #[must_use]
    pub fn from_token(s: &str) -> Self {
        if s.eq_ignore_ascii_case("IP4") {
            Self::Ip4
        } else if s.eq_ignore_ascii_case("IP6") {
            Self::Ip6
        } else {
            Self::Other(s.to_owned())
        }
    }

    /// The token for an address.
    #[must_use]
    pub fn for_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::Ip4,
            IpAddr::V6(_) => Self::Ip6,
        }
    }

    /// The token as printed.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ip4 => "IP4",
            Self::Ip6 => "IP6",
            Self::Other(s) => s,
        }
    }
}

/// A `c=` line (RFC 8866 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `<nettype>`, `IN` in practice.
    pub net_type: String,
    /// `<addrtype>`.
    pub addr_type: AddrType,
    /// `<connection-address>` verbatim: an address or host name, with `/ttl` and
    /// `/count` suffixes for multicast.
    pub address: String,
}

impl Connection {
    /// `IN IP4 <ip>` or `IN IP6 <ip>` for a unicast address.
    #[must_use]
    pub fn for_ip(ip: IpAddr) -> Self {
        Self {
            net_type: "IN".into(),
            addr_type: AddrType::for_ip(ip),
            address: ip.to_string(),
        }
    }

    /// The address part without any multicast `/ttl` or `/count` suffix.
    #[must_use]
    pub fn host(&self) -> &str {
        self.address.split('/').next().unwrap_or_default()
    }

    /// The address if it is a literal IP address of the stated type.
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        let ip: IpAddr = self.host().parse().ok()?;
        match (&self.addr_type, ip) {
            (AddrType::Ip4, IpAddr::V4(_)) | (AddrType::Ip6, IpAddr::V6(_)) => Some(ip),
            _ => None,
        }
    }

    /// Whether this is the RFC 2543 hold form `c=IN IP4 0.0.0.0` (RFC 3264 §8.4), or
    /// its IPv6 equivalent `::`.
    #[must_use]
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// A `b=<bwtype>:<bandwidth>` line (RFC 8866 §5.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// `<bwtype>`: `CT`, `AS`, `TIAS` (RFC 3890), `RS`/`RR` (RFC 3556), or another token.
    pub kind: String,
    /// `<bandwidth>`: kbit/s for `CT`/`AS`, bit/s for `TIAS`.
    pub value: u64,
}

/// A `t=` line and the `r=` lines after it (RFC 8866 §5.9, §5.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// `<start-time>` (NTP seconds), 0 for unbounded.
    pub start: u64,
    /// `<stop-time>` (NTP seconds), 0 for unbounded.
    pub stop: u64,
    /// `r=` lines, verbatim.
    pub repeats: Vec<String>,
}

impl Timing {
    /// `t=0 0`, the permanent session that SIP uses (RFC 3264 §5).
    #[must_use]
    pub fn permanent() -> Self {
        Self {
            start: 0,
            stop: 0,
            repeats: Vec::new(),
        }
    }
}

/// The value of a `k=` line (RFC 8866 §5.12), verbatim; redacted from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyLine(pub String);

impl fmt::Debug for KeyLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyLine(<redacted>)")
    }
}

/// An `a=<name>[:<value>]` line (RFC 8866 §5.13). Unknown attributes are kept verbatim.
#[derive(Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The attribute name, e.g. `rtpmap`.
    pub name: String,
    /// The value after `:`, or `None` for a property attribute such as `a=sendrecv`.
    pub value: Option<String>,
}

impl Attribute {
    /// A property attribute (`a=<name>`).
    #[must_use]
    pub fn flag(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            value: None,
        }
    }

    /// A value attribute (`a=<name>:<value>`).
    #[must_use]
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            value: Some(value.into()),
        }
    }

    /// Whether the name is `name` (ASCII case-insensitive).
    #[must_use]
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    fn is_secret(&self) -> bool {
        self.is("crypto") || self.is("key-mgmt")
    }
}

impl fmt::Debug for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Attribute");
        d.field("name", &self.name);
        match &self.value {
            Some(v) if self.is_secret() => {
                // Keep tag and suite, which help debugging; drop the key parameters.
                let mut redacted: String = v.split(' ').take(2).collect::<Vec<_>>().join(" ");
                redacted.push_str(" <redacted>");
                d.field("value", &redacted)
            }
            v => d.field("value", v),
        };
        d.finish()
    }
}

/// An `m=` section (RFC 8866 §5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `<media>`: `audio`, `video`, `text`, `application`, `message`, or another token.
    pub media: String,
    /// `<port>`; 0 marks a disabled or rejected stream (RFC 3264 §6).
    pub port: u16,
    /// `/<number of ports>` if given.
    pub port_count: Option<u16>,
    /// `<proto>`, e.g. `RTP/AVP` or `RTP/SAVP`.
    pub proto: String,
    /// `<fmt>` list: payload type numbers for RTP.
    pub formats: Vec<String>,
    /// Media-level `i=`.
    pub information: Option<String>,
    /// Media-level `c=` lines (more than one only for layered multicast).
    pub connections: Vec<Connection>,
    /// Media-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// Media-level `k=` (obsolete), verbatim.
    pub key: Option<KeyLine>,
    /// Media-level `a=` lines in order.
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    /// An `m=` line with no other lines.
    #[must_use]
    pub fn new(media: &str, port: u16, proto: &str, formats: Vec<String>) -> Self {
        Self {
            media: media.to_owned(),
            port,
            port_count: None,
            proto: proto.to_owned(),
            formats,
            information: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            key: None,
            attributes: Vec::new(),
        }
    }

    /// Whether the media type is `audio`.
    #[must_use]
    pub fn is_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
    }

    /// The answer's form of a rejected stream: the same media, proto and formats with
    /// port 0 and nothing else (RFC 3264 §6).
    #[must_use]
    pub fn rejected(&self) -> Self {
        let mut formats = self.formats.clone();
        if formats.is_empty() {
            // RFC 8866 §5.14 needs at least one format; "0" is what most stacks send.
            formats.push("0".into());
        }
        Self::new(&self.media, 0, &self.proto, formats)
    }

    /// The value of the first attribute called `name`, `Some("")` for a property
    /// attribute, or `None` if there is none.
    #[must_use]
    pub fn attribute(&self, name: &str) -> Option<&str> {
        find_attribute(&self.attributes, name)
    }

    /// Values of every attribute called `name` (property attributes yield `""`).
    pub fn attributes_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes
            .iter()
            .filter(move |a| a.is(name))
            .map(|a| a.value.as_deref().unwrap_or(""))
    }

    /// Whether an attribute called `name` is present.
    #[must_use]
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes.iter().any(|a| a.is(name))
    }
}

impl SessionDescription {
    /// A description with the given origin, `s=-`, `t=0 0`, and nothing else.
    #[must_use]
    pub fn new(origin: Origin) -> Self {
        Self {
            origin,
            session_name: "-".into(),
            information: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            timings: vec![Timing::permanent()],
            time_zones: None,
            key: None,
            attributes: Vec::new(),
            media: Vec::new(),
        }
    }

    /// The value of the first session-level attribute called `name` (see
    /// [`MediaDescription::attribute`]).
    #[must_use]
    pub fn attribute(&self, name: &str) -> Option<&str> {
        find_attribute(&self.attributes, name)
    }

    /// The connection that applies to media section `index`: its own first `c=` line,
    /// or the session-level one (RFC 8866 §5.7).
    #[must_use]
    pub fn connection_for(&self, index: usize) -> Option<&Connection> {
        self.media
            .get(index)
            .and_then(|m| m.connections.first())
            .or(self.connection.as_ref())
    }

    /// The printed description as bytes (CRLF line ends).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

fn find_attribute<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.is(name))
        .map(|a| a.value.as_deref().unwrap_or(""))
}

struct Lines<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Lines<'_, '_> {
    fn line(&mut self, kind: char, args: fmt::Arguments<'_>) -> fmt::Result {
        self.0.write_char(kind)?;
        self.0.write_char('=')?;
        self.0.write_fmt(args)?;
        self.0.write_str("\r\n")
    }

    fn connection(&mut self, c: &Connection) -> fmt::Result {
        self.line(
            'c',
            format_args!("{} {} {}", c.net_type, c.addr_type.as_str(), c.address),
        )
    }

    fn bandwidths(&mut self, bws: &[Bandwidth]) -> fmt::Result {
        for b in bws {
            self.line('b', format_args!("{}:{}", b.kind, b.value))?;
        }
        Ok(())
    }

    fn attributes(&mut self, attrs: &[Attribute]) -> fmt::Result {
        for a in attrs {
            match &a.value {
                Some(v) => self.line('a', format_args!("{}:{}", a.name, v))?,
                None => self.line('a', format_args!("{}", a.name))?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for SessionDescription {
    /// Prints the description in RFC 8866 §5 order with CRLF line ends.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut w = Lines(f);
        w.line('v', format_args!("0"))?;
        let o = &self.origin;
        w.line(
            'o',
            format_args!(
                "{} {} {} {} {} {}",
                o.username,
                o.session_id,
                o.session_version,
                o.net_type,
                o.addr_type.as_str(),
                o.address
            ),
        )?;
        let name = if self.session_name.is_empty() {
            " "
        } else {
            &self.session_name
        };
        w.line('s', format_args!("{name}"))?;
        if let Some(i) = &self.information {
            w.line('i', format_args!("{i}"))?;
        }
        if let Some(u) = &self.uri {
            w.line('u', format_args!("{u}"))?;
        }
        for e in &self.emails {
            w.line('e', format_args!("{e}"))?;
        }
        for p in &self.phones {
            w.line('p', format_args!("{p}"))?;
        }
        if let Some(c) = &self.connection {
            w.connection(c)?;
        }
        w.bandwidths(&self.bandwidths)?;
        for t in &self.timings {
            w.line('t', format_args!("{} {}", t.start, t.stop))?;
            for r in &t.repeats {
                w.line('r', format_args!("{r}"))?;
            }
        }
        if let Some(z) = &self.time_zones {
            w.line('z', format_args!("{z}"))?;
        }
        if let Some(k) = &self.key {
            w.line('k', format_args!("{}", k.0))?;
        }
        w.attributes(&self.attributes)?;
        for m in &self.media {
            let mut line = String::with_capacity(48);
            let _ = write!(line, "{} {}", m.media, m.port);
            if let Some(n) = m.port_count {
                let _ = write!(line, "/{n}");
            }
            let _ = write!(line, " {}", m.proto);
            for fmt in &m.formats {
                line.push(' ');
                line.push_str(fmt);
            }
            w.line('m', format_args!("{line}"))?;
            if let Some(i) = &m.information {
                w.line('i', format_args!("{i}"))?;
            }
            for c in &m.connections {
                w.connection(c)?;
            }
            w.bandwidths(&m.bandwidths)?;
            if let Some(k) = &m.key {
                w.line('k', format_args!("{}", k.0))?;
            }
            w.attributes(&m.attributes)?;
        }
        Ok(())
    }
}
