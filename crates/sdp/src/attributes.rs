//! Typed views of the attributes that audio offer/answer needs.
//!
//! Parsing here is lenient in the usual sense: a malformed `a=rtpmap` or `a=rtcp` is
//! treated as absent by the negotiation code rather than failing the whole description,
//! because RFC 8866 §5.13 lets a receiver ignore attributes it cannot use.

use crate::model::{AddrType, Connection, MediaDescription, SessionDescription};
use std::fmt;

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]` (RFC 8866 §6.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// RTP payload type, 0–127.
    pub payload_type: u8,
    /// Encoding name, e.g. `opus`, as written.
    pub encoding: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters: the channel count for audio.
    pub channels: Option<u8>,
}

impl RtpMap {
    /// Parses the attribute value (after `a=rtpmap:`).
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let (pt, rest) = value.trim().split_once([' ', '\t'])?;
        let payload_type = parse_payload_type(pt)?;
        let mut parts = rest.trim().split('/');
        let encoding = parts.next().filter(|e| !e.is_empty())?;
        let clock_rate = parts.next()?.parse().ok().filter(|r| *r > 0)?;
        let channels = match parts.next() {
            Some(c) => Some(c.parse().ok().filter(|c| *c > 0)?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            payload_type,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
        })
    }

    /// The static assignment of RFC 3551 Table 4 for a payload type without `a=rtpmap`
    /// (audio types only).
    #[must_use]
    pub fn from_static(payload_type: u8) -> Option<Self> {
        let (name, rate, channels) = match payload_type {
            0 => ("PCMU", 8000, None),
            3 => ("GSM", 8000, None),
            4 => ("G723", 8000, None),
            5 => ("DVI4", 8000, None),
            6 => ("DVI4", 16000, None),
            7 => ("LPC", 8000, None),
            8 => ("PCMA", 8000, None),
            9 => ("G722", 8000, None),
            10 => ("L16", 44100, Some(2)),
            11 => ("L16", 44100, None),
            12 => ("QCELP", 8000, None),
            13 => ("CN", 8000, None),
            14 => ("MPA", 90000, None),
            15 => ("G728", 8000, None),
            16 => ("DVI4", 11025, None),
            17 => ("DVI4", 22050, None),
            18 => ("G729", 8000, None),
            _ => return None,
        };
        Some(Self {
            payload_type,
            encoding: name.to_owned(),
            clock_rate: rate,
            channels,
        })
    }

    /// The attribute value, e.g. `111 opus/48000/2`.
    #[must_use]
    pub fn to_value(&self) -> String {
        match self.channels {
            Some(c) => format!(
                "{} {}/{}/{}",
                self.payload_type, self.encoding, self.clock_rate, c
            ),
            None => format!(
                "{} {}/{}",
                self.payload_type, self.encoding, self.clock_rate
            ),
        }
    }

    /// Whether this is RFC 4733 `telephone-event`.
    #[must_use]
    pub fn is_telephone_event(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("telephone-event")
    }
}

/// `<encoding>/<clock rate>` as an operator reads it, e.g. `GSM/8000`.
impl fmt::Display for RtpMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.encoding, self.clock_rate)?;
        if let Some(c) = self.channels.filter(|c| *c > 1) {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

/// A payload type number (RFC 3550 §5.1: 7 bits).
#[must_use]
pub fn parse_payload_type(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|pt| *pt < 128)
}

/// Format parameters of `a=fmtp:<format> <params>` as `name[=value]` pairs separated by
/// `;` (RFC 8866 §6.15; the convention of RFC 7587 §6.1 and RFC 4733 §2.4 lists).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FormatParams {
    /// Parameters in order, names as written.
    pub params: Vec<(String, Option<String>)>,
}

impl FormatParams {
    /// Splits a parameter string (the part after the format number).
    #[must_use]
    pub fn parse(s: &str) -> Self {
        let params = s
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((n, v)) => (n.trim().to_owned(), Some(v.trim().to_owned())),
                None => (p.to_owned(), None),
            })
            .collect();
        Self { params }
    }

    /// The value of parameter `name` (ASCII case-insensitive), `Some("")` for a bare name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// A numeric parameter.
    #[must_use]
    pub fn get_u32(&self, name: &str) -> Option<u32> {
        self.get(name)?.parse().ok()
    }

    /// A 0/1 flag parameter (RFC 7587 §6.1 style).
    #[must_use]
    pub fn get_flag(&self, name: &str) -> Option<bool> {
        match self.get(name)? {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }
    }

    /// Whether there are no parameters.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

impl fmt::Display for FormatParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (n, v)) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            match v {
                Some(v) => write!(f, "{n}={v}")?,
                None => f.write_str(n)?,
            }
        }
        Ok(())
    }
}

/// Media direction attributes (RFC 8866 §6.7, RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// From an attribute name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::SendRecv,
            Self::SendOnly,
            Self::RecvOnly,
            Self::Inactive,
        ]
        .into_iter()
        .find(|d| name.eq_ignore_ascii_case(d.as_str()))
    }

    /// Whether the side holding this direction sends media.
    #[must_use]
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether the side holding this direction receives media.
    #[must_use]
    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// From send and receive flags.
    #[must_use]
    pub fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Self::SendRecv,
            (true, false) => Self::SendOnly,
            (false, true) => Self::RecvOnly,
            (false, false) => Self::Inactive,
        }
    }

    /// The same stream seen from the other end: sendonly ⇄ recvonly.
    #[must_use]
    pub fn reversed(self) -> Self {
        Self::from_flags(self.receives(), self.sends())
    }

    /// Both constraints at once: sends only if both allow sending, and so on.
    #[must_use]
    pub fn intersect(self, other: Self) -> Self {
        Self::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// The direction of media section `index`: its own direction attribute, else the
    /// session-level one, else sendrecv (RFC 3264 §5.1).
    #[must_use]
    pub fn of_media(sdp: &SessionDescription, index: usize) -> Self {
        let from = |attrs: &[crate::model::Attribute]| {
            attrs
                .iter()
                .filter(|a| a.value.is_none())
                .find_map(|a| Self::from_name(&a.name))
        };
        sdp.media
            .get(index)
            .and_then(|m| from(&m.attributes))
            .or_else(|| from(&sdp.attributes))
            .unwrap_or(Self::SendRecv)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <connection-address>]` (RFC 3605 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpAttribute {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when it differs from the RTP one.
    pub connection: Option<Connection>,
}

impl RtcpAttribute {
    /// Parses the attribute value.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let mut f = value.split_ascii_whitespace();
        let port = f.next()?;
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let port = port.parse().ok()?;
        let connection = match (f.next(), f.next(), f.next()) {
            (None, _, _) => None,
            (Some(net), Some(addr_type), Some(address)) => Some(Connection {
                net_type: net.to_owned(),
                addr_type: AddrType::from_token(addr_type),
                address: address.to_owned(),
            }),
            _ => return None,
        };
        if f.next().is_some() {
            return None;
        }
        Some(Self { port, connection })
    }

    /// The attribute value.
    #[must_use]
    pub fn to_value(&self) -> String {
        match &self.connection {
            Some(c) => format!(
                "{} {} {} {}",
                self.port,
                c.net_type,
                c.addr_type.as_str(),
                c.address
            ),
            None => self.port.to_string(),
        }
    }
}

impl MediaDescription {
    /// The `a=rtpmap` for `payload_type`, or its static assignment (RFC 3551 Table 4).
    #[must_use]
    pub fn rtpmap(&self, payload_type: u8) -> Option<RtpMap> {
        self.attributes_named("rtpmap")
            .filter_map(RtpMap::parse)
            .find(|m| m.payload_type == payload_type)
            .or_else(|| RtpMap::from_static(payload_type))
    }

    /// The `a=fmtp` parameters string for `format`, if any.
    #[must_use]
    pub fn fmtp(&self, format: &str) -> Option<&str> {
        self.attributes_named("fmtp").find_map(|v| {
            let (f, params) = v.split_once([' ', '\t']).unwrap_or((v, ""));
            (f == format).then(|| params.trim())
        })
    }

    /// `a=ptime` in milliseconds (RFC 8866 §6.4); fractional values are rounded down.
    #[must_use]
    pub fn ptime(&self) -> Option<u32> {
        let v = self.attribute("ptime")?.trim();
        let whole = v.split('.').next()?;
        whole.parse().ok().filter(|p| *p > 0)
    }

    /// `a=maxptime` in milliseconds (RFC 8866 §6.5).
    #[must_use]
    pub fn maxptime(&self) -> Option<u32> {
        let v = self.attribute("maxptime")?.trim();
        v.split('.').next()?.parse().ok().filter(|p| *p > 0)
    }

    /// The parsed `a=rtcp` attribute (RFC 3605), if present and well formed.
    #[must_use]
    pub fn rtcp(&self) -> Option<RtcpAttribute> {
        self.attribute("rtcp").and_then(RtcpAttribute::parse)
    }

    /// Whether `a=rtcp-mux` is present (RFC 5761 §5.1.1).
    #[must_use]
    pub fn rtcp_mux(&self) -> bool {
        self.has_attribute("rtcp-mux")
    }
}
