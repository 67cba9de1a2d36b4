//! Carriers: the operator's upstream SIP trunks to the phone network (issue #12).
//!
//! A carrier is where terminated calls (PBX → phone network) go out and where originated
//! calls (phone network → PBX) come in from. Pure data and choice: the store keeps them,
//! the SIP edge asks [`carriers_for`] which trunks to try for a number, in order, and
//! [`carrier_for_source`] which trunk an inbound INVITE came from.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::DomainError;

mod status;
pub use status::{CarrierRegistration, CarrierStatus, RegistrationState, STATUS_STALE_MS};

/// The SIP transport to a carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CarrierTransport {
    Udp,
    Tcp,
    Tls,
}

impl CarrierTransport {
    /// The port used when an address names none (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            CarrierTransport::Tls => 5061,
            _ => 5060,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CarrierTransport::Udp => "udp",
            CarrierTransport::Tcp => "tcp",
            CarrierTransport::Tls => "tls",
        }
    }
}

impl std::str::FromStr for CarrierTransport {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(CarrierTransport::Udp),
            "tcp" => Ok(CarrierTransport::Tcp),
            "tls" => Ok(CarrierTransport::Tls),
            _ => Err(DomainError::invalid(
                "transport",
                format!("{s:?} is not one of udp, tcp, tls"),
            )),
        }
    }
}

/// SRTP on the carrier leg.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SrtpPolicy {
    /// Plain RTP only.
    #[default]
    Off,
    /// Offer SDES SRTP, accept plain RTP.
    Optional,
    /// SRTP or no call.
    Mandatory,
}

impl SrtpPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpPolicy::Off => "off",
            SrtpPolicy::Optional => "optional",
            SrtpPolicy::Mandatory => "mandatory",
        }
    }
}

impl std::str::FromStr for SrtpPolicy {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(SrtpPolicy::Off),
            "optional" => Ok(SrtpPolicy::Optional),
            "mandatory" => Ok(SrtpPolicy::Mandatory),
            _ => Err(DomainError::invalid(
                "srtp",
                format!("{s:?} is not one of off, optional, mandatory"),
            )),
        }
    }
}

/// A host name or IP address and a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// Parses `host:port`, `[v6]:port`, or a bare host (then `default_port`).
    pub fn parse(s: &str, default_port: u16) -> Result<HostPort, DomainError> {
        let bad = || {
            DomainError::invalid(
                "address",
                format!(
                    "{s:?} is not HOST:PORT (e.g. sip.carrier.example:5060 or 192.0.2.10:5060)"
                ),
            )
        };
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(bad)?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad()),
            }
        } else if s.parse::<std::net::Ipv6Addr>().is_ok() {
            (s, None)
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty() || !crate::voice_connector::is_host(host) {
            return Err(bad());
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad()),
            },
        };
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A secret that never shows in `Debug` output (so never in a log line).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself: for answering a digest challenge, nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The codecs a carrier leg may use, in the spelling the CLI and records show.
pub const CARRIER_CODECS: &[&str] = &["PCMU", "PCMA", "G722", "opus"];

/// One carrier trunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Carrier {
    /// Stable id (a UUID), kept across renames of nothing: the name is the handle.
    pub id: String,
    /// Unique, what the CLI and records call it.
    pub name: String,
    /// Where calls go, tried in this order when one does not answer.
    pub addresses: Vec<HostPort>,
    pub transport: CarrierTransport,
    /// E.164 prefixes served (`+1`, `+4420`); empty serves every number.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Lower first.
    pub priority: u32,
    /// Share among carriers of equal priority and prefix.
    pub weight: u32,
    /// CIDR blocks the carrier's inbound calls come from.
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// REGISTER with the carrier (with the username and password).
    #[serde(default)]
    pub register: bool,
    #[serde(default)]
    pub srtp: SrtpPolicy,
    /// Codecs offered on the carrier leg, in preference order; empty means all we have.
    #[serde(default)]
    pub codecs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cps: Option<u32>,
    /// Takes emergency calls ([`crate::emergency`]): they go only to carriers marked so.
    /// A marked carrier still carries ordinary calls.
    #[serde(default)]
    pub emergency: bool,
    pub enabled: bool,
}

/// Most addresses, prefixes or sources on one carrier.
pub const MAX_CARRIER_LIST: usize = 100;

impl Carrier {
    /// A new, enabled carrier with defaults (UDP, priority 1, weight 1); set fields, then
    /// [`validate`](Self::validate).
    pub fn new(name: &str) -> Carrier {
        Carrier {
            id: crate::ids::new_uuid(),
            name: name.to_string(),
            addresses: Vec::new(),
            transport: CarrierTransport::Udp,
            prefixes: Vec::new(),
            priority: 1,
            weight: 1,
            sources: Vec::new(),
            username: None,
            password: None,
            register: false,
            srtp: SrtpPolicy::Off,
            codecs: Vec::new(),
            max_calls: None,
            cps: None,
            emergency: false,
            enabled: true,
        }
    }

    /// Checks every field and normalises prefixes (`+` added), sources (canonical CIDR) and
    /// codec spellings. Errors name the field as the CLI flag does.
    pub fn validate(&mut self) -> Result<(), DomainError> {
        validate_name(&self.name)?;
        if self.addresses.is_empty() {
            return Err(DomainError::invalid(
                "address",
                "at least one HOST:PORT is required",
            ));
        }
        for (field, n) in [
            ("address", self.addresses.len()),
            ("prefix", self.prefixes.len()),
            ("source", self.sources.len()),
        ] {
            if n > MAX_CARRIER_LIST {
                return Err(DomainError::invalid(
                    field,
                    format!("at most {MAX_CARRIER_LIST} entries, got {n}"),
                ));
            }
        }
        for a in &self.addresses {
            if a.port == 0 || !crate::voice_connector::is_host(&a.host) {
                return Err(DomainError::invalid(
                    "address",
                    format!("{a} is not HOST:PORT"),
                ));
            }
        }
        for p in &mut self.prefixes {
            *p = normalize_prefix(p)?;
        }
        self.prefixes.sort();
        self.prefixes.dedup();
        for s in &mut self.sources {
            *s = parse_source(s)?.to_string();
        }
        if self.priority > 1000 {
            return Err(DomainError::invalid("priority", "must be 0 to 1000"));
        }
        if self.weight == 0 || self.weight > 1000 {
            return Err(DomainError::invalid("weight", "must be 1 to 1000"));
        }
        if let Some(u) = &self.username
            && (u.is_empty()
                || u.len() > 128
                || u.contains([':', '"', '\\', '@'])
                || u.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            return Err(DomainError::invalid(
                "username",
                "must be 1 to 128 printable characters without spaces, ':', '@', '\"' or '\\'",
            ));
        }
        if let Some(p) = &self.password
            && (p.expose().is_empty()
                || p.expose().len() > 128
                || p.expose().chars().any(char::is_control))
        {
            return Err(DomainError::invalid(
                "password",
                "must be 1 to 128 printable characters",
            ));
        }
        if self.password.is_some() != self.username.is_some() {
            return Err(DomainError::invalid(
                if self.username.is_some() {
                    "password"
                } else {
                    "username"
                },
                "username and password go together",
            ));
        }
        if self.register && self.username.is_none() {
            return Err(DomainError::invalid(
                "register",
                "registering needs --username and --password",
            ));
        }
        for c in &mut self.codecs {
            let known = CARRIER_CODECS
                .iter()
                .find(|k| k.eq_ignore_ascii_case(c.trim()))
                .ok_or_else(|| {
                    DomainError::invalid(
                        "codecs",
                        format!("{c:?} is not one of {}", CARRIER_CODECS.join(", ")),
                    )
                })?;
            *c = (*known).to_string();
        }
        let mut seen = Vec::new();
        self.codecs.retain(|c| {
            let new = !seen.contains(c);
            seen.push(c.clone());
            new
        });
        for (field, v) in [("max-calls", self.max_calls), ("cps", self.cps)] {
            if v == Some(0) {
                return Err(DomainError::invalid(
                    field,
                    "must be at least 1 (leave it out for no limit)",
                ));
            }
        }
        Ok(())
    }

    /// The length of the longest of this carrier's prefixes that `number` starts with: 0
    /// for a carrier without prefixes, `None` when it has prefixes and none matches.
    pub fn prefix_match(&self, number: &str) -> Option<usize> {
        if self.prefixes.is_empty() {
            return Some(0);
        }
        self.prefixes
            .iter()
            .filter(|p| number.starts_with(p.as_str()))
            .map(|p| p.trim_start_matches('+').len())
            .max()
    }

    /// True when `ip` is inside one of the carrier's source blocks.
    pub fn has_source(&self, ip: IpAddr) -> bool {
        self.source_match(ip).is_some()
    }

    /// The prefix length of the narrowest source block holding `ip`.
    fn source_match(&self, ip: IpAddr) -> Option<u8> {
        let ip = unmap(ip);
        self.sources
            .iter()
            .filter_map(|c| c.parse::<IpNet>().ok())
            .filter(|net| net.contains(&ip))
            .map(|net| net.prefix_len())
            .max()
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// 1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), DomainError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "name",
            format!(
                "{name:?} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        ))
    }
}

/// `+1`, `1` → `+1`; 1 to 15 digits.
fn normalize_prefix(p: &str) -> Result<String, DomainError> {
    let digits = p.trim().trim_start_matches('+');
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::invalid(
            "prefix",
            format!("{p:?} is not an E.164 prefix (+ and 1 to 15 digits, e.g. +1 or +4420)"),
        ));
    }
    Ok(format!("+{digits}"))
}

fn parse_source(s: &str) -> Result<IpNet, DomainError> {
    let t = s.trim();
    // A bare address is a /32 (or /128).
    let net: IpNet = match t.parse::<IpAddr>() {
        Ok(ip) => IpNet::from(unmap(ip)),
        Err(_) => t.parse().map_err(|_| {
            DomainError::invalid(
                "source",
                format!("{s:?} is not CIDR notation (e.g. 192.0.2.0/24 or 192.0.2.10)"),
            )
        })?,
    };
    if net.network() != net.addr() {
        return Err(DomainError::invalid(
            "source",
            format!("{s:?} has host bits set; did you mean {}?", net.trunc()),
        ));
    }
    Ok(net)
}

/// The carriers to try for `number`, best first.
///
/// Only enabled carriers whose longest matching prefix is the longest among all carriers
/// take part (a carrier without prefixes matches every number with length 0); those are
/// ordered by priority (lower first), then by a weighted random draw among equal priorities
/// ([`crate::weighted::order`]). `pick(n)` returns a random value in `0..n`. An empty result
/// means no carrier serves the number.
pub fn carriers_for<'a>(
    number: &str,
    carriers: &'a [Carrier],
    pick: &mut impl FnMut(u32) -> u32,
) -> Vec<&'a Carrier> {
    order_for(number, carriers.iter(), pick)
}

/// The carriers marked for emergency calls to try for `number` (the routing provider's
/// DNIS), best first, chosen as [`carriers_for`] chooses among them. Empty when none is marked
/// or none serves the number: the call is then refused, never sent to an ordinary trunk.
pub fn emergency_carriers_for<'a>(
    number: &str,
    carriers: &'a [Carrier],
    pick: &mut impl FnMut(u32) -> u32,
) -> Vec<&'a Carrier> {
    order_for(number, carriers.iter().filter(|c| c.emergency), pick)
}

fn order_for<'a>(
    number: &str,
    carriers: impl Iterator<Item = &'a Carrier>,
    pick: &mut impl FnMut(u32) -> u32,
) -> Vec<&'a Carrier> {
    let matches: Vec<(usize, &Carrier)> = carriers
        .filter(|c| c.enabled)
        .filter_map(|c| c.prefix_match(number).map(|len| (len, c)))
        .collect();
    let Some(best) = matches.iter().map(|(len, _)| *len).max() else {
        return Vec::new();
    };
    crate::weighted::order(
        matches
            .into_iter()
            .filter(|(len, _)| *len == best)
            .map(|(_, c)| c),
        |c| (c.priority, c.weight),
        pick,
    )
}

/// The enabled carrier whose sources hold `ip`; the narrowest block wins when several do.
pub fn carrier_for_source(ip: IpAddr, carriers: &[Carrier]) -> Option<&Carrier> {
    carriers
        .iter()
        .filter(|c| c.enabled)
        .filter_map(|c| c.source_match(ip).map(|len| (len, c)))
        .max_by_key(|(len, _)| *len)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests;
