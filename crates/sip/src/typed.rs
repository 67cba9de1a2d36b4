//! Typed, zero-copy views of the header fields a SIP stack needs (RFC 3261 §20, §25.1;
//! RFC 3262; RFC 3581; RFC 4028). Each `parse` borrows from the header text.

use std::borrow::Cow;

use crate::auth::AuthParams;
use crate::headers::{HeaderName, Headers};
use crate::message::Method;
use crate::params::{Params, valid_generic_params};
use crate::text::{
    CommaList, Cursor, is_lws, is_token, is_token_char, is_word_char, parse_u32, split_quoted,
    trim_lws, trim_start_lws, unquote,
};
use crate::uri::UriRef;

/// A header value that does not follow its grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed header value")]
pub struct InvalidValue;

/// The RFC 3261 §8.1.1.7 branch prefix that marks RFC 3261-compliant transaction ids.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value (RFC 3261 §20.42): `SIP/2.0/UDP host:port;params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport token as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, ...).
    pub transport: &'a str,
    /// sent-by host (IPv6 references keep their brackets).
    pub host: &'a str,
    /// sent-by port.
    pub port: Option<u16>,
    /// via-params.
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via value (one element of the comma list).
    pub fn parse(s: &'a str) -> Result<Via<'a>, InvalidValue> {
        let mut c = Cursor::new(trim_lws(s));
        let proto = c.token().ok_or(InvalidValue)?;
        c.skip_lws();
        if !c.eat(b'/') {
            return Err(InvalidValue);
        }
        c.skip_lws();
        let ver = c.token().ok_or(InvalidValue)?;
        c.skip_lws();
        if !c.eat(b'/') {
            return Err(InvalidValue);
        }
        c.skip_lws();
        let transport = c.token().ok_or(InvalidValue)?;
        if !proto.eq_ignore_ascii_case("SIP") || ver != "2.0" || c.skip_lws() == 0 {
            return Err(InvalidValue);
        }
        let (host, port) = host_port(&mut c)?;
        c.skip_lws();
        let params = if c.eat(b';') {
            let raw = c.rest();
            if !valid_generic_params(raw) {
                return Err(InvalidValue);
            }
            Params::new(raw)
        } else if c.at_end() {
            Params::default()
        } else {
            return Err(InvalidValue);
        };
        let v = Via {
            transport,
            host,
            port,
            params,
        };
        // RFC 3581 §3: rport is empty or a port; received is an address (RFC 3261 §20.42).
        match v.params.get("rport") {
            Some(Some(p)) if p.parse::<u16>().is_err() => return Err(InvalidValue),
            _ => {}
        }
        if let Some(r) = v.params.get("received") {
            let r = r.ok_or(InvalidValue)?;
            let r = r.trim_start_matches('[').trim_end_matches(']');
            if r.parse::<std::net::IpAddr>().is_err() {
                return Err(InvalidValue);
            }
        }
        if matches!(v.params.get("branch"), Some(None) | Some(Some(""))) {
            return Err(InvalidValue);
        }
        Ok(v)
    }

    /// The `branch` parameter (RFC 3261 §8.1.1.7).
    pub fn branch(&self) -> Option<&'a str> {
        self.params.value("branch")
    }

    /// Whether the branch carries the RFC 3261 magic cookie (§17.2.3).
    pub fn is_rfc3261(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter (RFC 3261 §18.2.1).
    pub fn received(&self) -> Option<&'a str> {
        self.params.value("received")
    }

    /// `rport` (RFC 3581): `Some(None)` when requested without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.value("maddr")
    }

    /// `host[:port]` as one string-like pair.
    pub fn sent_by(&self) -> (&'a str, Option<u16>) {
        (self.host, self.port)
    }
}

fn host_port<'a>(c: &mut Cursor<'a>) -> Result<(&'a str, Option<u16>), InvalidValue> {
    let start = c.pos;
    if c.peek() == Some(b'[') {
        let rest = c.rest();
        let close = rest.find(']').ok_or(InvalidValue)?;
        rest[1..close]
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| InvalidValue)?;
        c.pos += close + 1;
    } else {
        c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    }
    let host = c.s.get(start..c.pos).unwrap_or("");
    if host.is_empty() {
        return Err(InvalidValue);
    }
    c.skip_lws();
    let port = if c.eat(b':') {
        c.skip_lws();
        let d = c.take_while(|b| b.is_ascii_digit());
        Some(d.parse::<u16>().map_err(|_| InvalidValue)?)
    } else {
        None
    };
    Ok((host, port))
}

/// A `name-addr` or `addr-spec` with header parameters: From, To, Contact, Route,
/// Record-Route, Refer-To... (RFC 3261 §20.10, §25.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (quoted strings keep their quotes).
    pub display: Option<&'a str>,
    /// The URI.
    pub uri: UriRef<'a>,
    /// Header parameters (after the URI).
    pub params: Params<'a>,
    /// Whether the URI was enclosed in `<>`.
    pub bracketed: bool,
}

impl<'a> NameAddr<'a> {
    /// Parses `[display-name] <uri> *(;param)` or `addr-spec *(;param)`. An addr-spec
    /// containing `?` or `,` must be bracketed (RFC 3261 §20.10, RFC 4475 §3.1.2.13); spaces
    /// inside `<>` are invalid (RFC 4475 §3.1.2.14); a display name is a quoted string or
    /// tokens (RFC 4475 §3.1.2.6, §3.1.2.15).
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, InvalidValue> {
        let s = trim_lws(s);
        let b = s.as_bytes();
        let (display, rest) = if b.first() == Some(&b'"') {
            let (q, rest) = split_quoted(s).ok_or(InvalidValue)?;
            let rest = trim_start_lws(rest);
            if !rest.starts_with('<') {
                return Err(InvalidValue);
            }
            (Some(q), rest)
        } else {
            let i = b
                .iter()
                .position(|&c| !(is_token_char(c) || is_lws(c)))
                .unwrap_or(b.len());
            if b.get(i) == Some(&b'<') {
                let d = trim_lws(&s[..i]);
                (if d.is_empty() { None } else { Some(d) }, &s[i..])
            } else {
                (None, s)
            }
        };
        let (uri_text, after, bracketed) = if let Some(r) = rest.strip_prefix('<') {
            let close = r.find('>').ok_or(InvalidValue)?;
            (&r[..close], &r[close + 1..], true)
        } else {
            let end = rest
                .bytes()
                .position(|c| c == b';' || is_lws(c))
                .unwrap_or(rest.len());
            let u = &rest[..end];
            if u.contains(['?', ',']) {
                return Err(InvalidValue);
            }
            (u, &rest[end..], false)
        };
        let uri = UriRef::parse(uri_text).map_err(|_| InvalidValue)?;
        let after = trim_start_lws(after);
        let params = if after.is_empty() {
            Params::default()
        } else if let Some(p) = after.strip_prefix(';') {
            if !valid_generic_params(p) {
                return Err(InvalidValue);
            }
            Params::new(p)
        } else {
            return Err(InvalidValue);
        };
        Ok(NameAddr {
            display,
            uri,
            params,
            bracketed,
        })
    }

    /// The `tag` parameter (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.value("tag")
    }

    /// Display name without quotes and escapes.
    pub fn display_name(&self) -> Option<Cow<'a, str>> {
        self.display.map(unquote)
    }
}

/// One Contact value: `*` or an address (RFC 3261 §20.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (REGISTER only, RFC 3261 §10.2.2).
    Star,
    /// An address with contact-params (`expires`, `q`, ...).
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// Parses one Contact element; `expires` must fit 32 bits (RFC 4475 §3.1.2.4).
    pub fn parse(s: &'a str) -> Result<Contact<'a>, InvalidValue> {
        if trim_lws(s) == "*" {
            return Ok(Contact::Star);
        }
        let na = NameAddr::parse(s)?;
        if let Some(e) = na.params.get("expires") {
            e.and_then(parse_u32).ok_or(InvalidValue)?;
        }
        Ok(Contact::Addr(na))
    }

    /// The address, unless `*`.
    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => Some(a),
        }
    }
}

/// CSeq (RFC 3261 §20.16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number (a 32-bit unsigned integer, RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// Method token as written.
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &'a str) -> Result<CSeq<'a>, InvalidValue> {
        let mut c = Cursor::new(trim_lws(s));
        let n = c.take_while(|b| b.is_ascii_digit());
        let seq = parse_u32(n).ok_or(InvalidValue)?;
        if c.skip_lws() == 0 {
            return Err(InvalidValue);
        }
        let method = c.token().ok_or(InvalidValue)?;
        if !c.at_end() {
            return Err(InvalidValue);
        }
        Ok(CSeq { seq, method })
    }

    /// The method as a [`Method`].
    pub fn method(&self) -> Method {
        Method::from_token(self.method)
    }
}

/// RAck (RFC 3262 §7.2): `response-num CSeq-num Method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RAck<'a> {
    /// RSeq of the acknowledged provisional response.
    pub rseq: u32,
    /// CSeq number of the INVITE.
    pub cseq: u32,
    /// Method of the INVITE transaction.
    pub method: &'a str,
}

impl<'a> RAck<'a> {
    /// Parses an RAck value.
    pub fn parse(s: &'a str) -> Result<RAck<'a>, InvalidValue> {
        let mut c = Cursor::new(trim_lws(s));
        let r = parse_u32(c.take_while(|b| b.is_ascii_digit())).ok_or(InvalidValue)?;
        if c.skip_lws() == 0 {
            return Err(InvalidValue);
        }
        let rest = CSeq::parse(c.rest())?;
        Ok(RAck {
            rseq: r,
            cseq: rest.seq,
            method: rest.method,
        })
    }
}

/// Who refreshes a session (RFC 4028 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresher {
    /// The UAC refreshes.
    Uac,
    /// The UAS refreshes.
    Uas,
}

/// Session-Expires (RFC 4028 §4): `delta-seconds *(;se-params)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionExpires {
    /// Session interval in seconds.
    pub delta: u32,
    /// The `refresher` parameter.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parses a Session-Expires value.
    pub fn parse(s: &str) -> Result<SessionExpires, InvalidValue> {
        let (delta, params) = delta_with_params(s)?;
        let refresher = match params.get("refresher") {
            None => None,
            Some(Some(v)) if v.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
            Some(Some(v)) if v.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
            Some(_) => return Err(InvalidValue),
        };
        Ok(SessionExpires { delta, refresher })
    }
}

/// `delta-seconds *(;generic-param)` as used by Min-SE, Session-Expires, Retry-After.
pub(crate) fn delta_with_params(s: &str) -> Result<(u32, Params<'_>), InvalidValue> {
    let s = trim_lws(s);
    let (d, p) = match s.find(';') {
        Some(i) => (trim_lws(&s[..i]), &s[i + 1..]),
        None => (s, ""),
    };
    let d = parse_u32(d).ok_or(InvalidValue)?;
    if !p.is_empty() && !valid_generic_params(p) {
        return Err(InvalidValue);
    }
    Ok((d, Params::new(p)))
}

/// Content-Type (RFC 3261 §20.15): `type/subtype *(;param)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaType<'a> {
    /// Top-level type.
    pub ty: &'a str,
    /// Subtype.
    pub subtype: &'a str,
    /// Parameters.
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    /// Parses a media type.
    pub fn parse(s: &'a str) -> Result<MediaType<'a>, InvalidValue> {
        let mut c = Cursor::new(trim_lws(s));
        let ty = c.token().ok_or(InvalidValue)?;
        c.skip_lws();
        if !c.eat(b'/') {
            return Err(InvalidValue);
        }
        c.skip_lws();
        let subtype = c.token().ok_or(InvalidValue)?;
        c.skip_lws();
        let params = if c.eat(b';') {
            let p = c.rest();
            if !valid_generic_params(p) {
                return Err(InvalidValue);
            }
            Params::new(p)
        } else if c.at_end() {
            Params::default()
        } else {
            return Err(InvalidValue);
        };
        Ok(MediaType {
            ty,
            subtype,
            params,
        })
    }

    /// Case-insensitive comparison with `type/subtype`.
    pub fn is(&self, ty: &str, subtype: &str) -> bool {
        self.ty.eq_ignore_ascii_case(ty) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// Validates a Call-ID (`word [ "@" word ]`, RFC 3261 §25.1).
pub(crate) fn valid_call_id(s: &str) -> bool {
    let mut parts = s.splitn(2, '@');
    let w1 = parts.next().unwrap_or("");
    let ok = |w: &str| !w.is_empty() && w.bytes().all(is_word_char);
    ok(w1) && parts.next().is_none_or(ok)
}

/// Validates `rfc1123-date` with the mandatory `GMT` zone (RFC 3261 §20.17; RFC 4475
/// §3.1.2.12): `Mon, 01 Jan 2010 16:00:00 GMT`.
pub(crate) fn valid_date(s: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    if b.len() != 29 || !s.is_ascii() {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    DAYS.contains(&&s[0..3])
        && &s[3..5] == ", "
        && digits(5..7)
        && b[7] == b' '
        && MONTHS.contains(&&s[8..11])
        && b[11] == b' '
        && digits(12..16)
        && b[16] == b' '
        && digits(17..19)
        && b[19] == b':'
        && digits(20..22)
        && b[22] == b':'
        && digits(23..25)
        && &s[25..] == " GMT"
}

/// Validates the value of a known header against its grammar. Extension headers and
/// headers the stack does not interpret are accepted as they are.
pub(crate) fn validate(name: HeaderName, v: &str) -> bool {
    match name {
        HeaderName::Via => CommaList::new(v).all(|e| Via::parse(e).is_ok()),
        HeaderName::From | HeaderName::To => NameAddr::parse(v).is_ok(),
        HeaderName::Contact => CommaList::new(v).all(|e| Contact::parse(e).is_ok()),
        HeaderName::Route | HeaderName::RecordRoute => {
            CommaList::new(v).all(|e| NameAddr::parse(e).is_ok_and(|n| n.bracketed))
        }
        HeaderName::CallId => valid_call_id(v),
        HeaderName::CSeq => CSeq::parse(v).is_ok(),
        HeaderName::MaxForwards => parse_u32(v).is_some_and(|n| n <= 255),
        HeaderName::ContentLength => parse_u32(v).is_some(),
        HeaderName::Expires | HeaderName::MinExpires | HeaderName::RSeq => parse_u32(v).is_some(),
        HeaderName::MinSe => delta_with_params(v).is_ok(),
        HeaderName::SessionExpires => SessionExpires::parse(v).is_ok(),
        HeaderName::RAck => RAck::parse(v).is_ok(),
        HeaderName::ContentType => MediaType::parse(v).is_ok(),
        HeaderName::Date => valid_date(v),
        HeaderName::Supported
        | HeaderName::Require
        | HeaderName::ProxyRequire
        | HeaderName::Unsupported
        | HeaderName::Allow => CommaList::new(v).all(|t| t.is_empty() || is_token(t)),
        _ => true,
    }
}

/// Typed accessors. Values that fail their grammar read as `None` (the parser has already
/// rejected such messages; this only matters for messages built by hand).
impl Headers {
    /// All Via values, top first (RFC 3261 §20.42).
    pub fn vias(&self) -> impl Iterator<Item = Via<'_>> + '_ {
        self.list(HeaderName::Via)
            .filter_map(|v| Via::parse(v).ok())
    }

    /// The top Via.
    pub fn top_via(&self) -> Option<Via<'_>> {
        self.list(HeaderName::Via)
            .next()
            .and_then(|v| Via::parse(v).ok())
    }

    /// From (RFC 3261 §20.20).
    pub fn from(&self) -> Option<NameAddr<'_>> {
        self.get(HeaderName::From)
            .and_then(|v| NameAddr::parse(v).ok())
    }

    /// To (RFC 3261 §20.39).
    pub fn to(&self) -> Option<NameAddr<'_>> {
        self.get(HeaderName::To)
            .and_then(|v| NameAddr::parse(v).ok())
    }

    /// Call-ID (RFC 3261 §20.8).
    pub fn call_id(&self) -> Option<&str> {
        self.get(HeaderName::CallId)
    }

    /// CSeq (RFC 3261 §20.16).
    pub fn cseq(&self) -> Option<CSeq<'_>> {
        self.get(HeaderName::CSeq).and_then(|v| CSeq::parse(v).ok())
    }

    /// Max-Forwards (RFC 3261 §20.22).
    pub fn max_forwards(&self) -> Option<u8> {
        self.get(HeaderName::MaxForwards)
            .and_then(parse_u32)
            .and_then(|n| u8::try_from(n).ok())
    }

    /// Contact values (RFC 3261 §20.10).
    pub fn contacts(&self) -> impl Iterator<Item = Contact<'_>> + '_ {
        self.list(HeaderName::Contact)
            .filter_map(|v| Contact::parse(v).ok())
    }

    /// The first Contact address.
    pub fn contact(&self) -> Option<NameAddr<'_>> {
        self.contacts().find_map(|c| c.addr().copied())
    }

    /// Route values in order (RFC 3261 §20.34).
    pub fn routes(&self) -> impl Iterator<Item = NameAddr<'_>> + '_ {
        self.list(HeaderName::Route)
            .filter_map(|v| NameAddr::parse(v).ok())
    }

    /// Record-Route values in order (RFC 3261 §20.30).
    pub fn record_routes(&self) -> impl Iterator<Item = NameAddr<'_>> + '_ {
        self.list(HeaderName::RecordRoute)
            .filter_map(|v| NameAddr::parse(v).ok())
    }

    /// Content-Length (RFC 3261 §20.14).
    pub fn content_length(&self) -> Option<u32> {
        self.get(HeaderName::ContentLength).and_then(parse_u32)
    }

    /// Content-Type (RFC 3261 §20.15).
    pub fn content_type(&self) -> Option<MediaType<'_>> {
        self.get(HeaderName::ContentType)
            .and_then(|v| MediaType::parse(v).ok())
    }

    /// Expires (RFC 3261 §20.19).
    pub fn expires(&self) -> Option<u32> {
        self.get(HeaderName::Expires).and_then(parse_u32)
    }

    /// Option tags of Supported, Require, Proxy-Require or Unsupported (RFC 3261 §19.2).
    pub fn option_tags(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.list(name).filter(|t| !t.is_empty())
    }

    /// Whether `name` (e.g. Supported, Require) lists the option tag `tag`.
    pub fn has_option_tag(&self, name: HeaderName, tag: &str) -> bool {
        self.option_tags(name).any(|t| t.eq_ignore_ascii_case(tag))
    }

    /// Methods in Allow (RFC 3261 §20.5).
    pub fn allow(&self) -> impl Iterator<Item = Method> + '_ {
        self.option_tags(HeaderName::Allow).map(Method::from_token)
    }

    /// Session-Expires (RFC 4028 §4).
    pub fn session_expires(&self) -> Option<SessionExpires> {
        self.get(HeaderName::SessionExpires)
            .and_then(|v| SessionExpires::parse(v).ok())
    }

    /// Min-SE (RFC 4028 §5).
    pub fn min_se(&self) -> Option<u32> {
        self.get(HeaderName::MinSe)
            .and_then(|v| delta_with_params(v).ok())
            .map(|(d, _)| d)
    }

    /// RSeq (RFC 3262 §7.1).
    pub fn rseq(&self) -> Option<u32> {
        self.get(HeaderName::RSeq).and_then(parse_u32)
    }

    /// RAck (RFC 3262 §7.2).
    pub fn rack(&self) -> Option<RAck<'_>> {
        self.get(HeaderName::RAck).and_then(|v| RAck::parse(v).ok())
    }

    /// Credentials (Authorization or Proxy-Authorization, RFC 3261 §22.2, §22.3) whose
    /// realm is `realm`, or the first ones if `realm` is `None`.
    pub fn credentials(&self, name: HeaderName, realm: Option<&str>) -> Option<AuthParams<'_>> {
        self.get_all(name)
            .filter_map(AuthParams::parse)
            .find(|p| realm.is_none_or(|r| p.get("realm").is_some_and(|x| x == r)))
    }

    /// Challenges (WWW-Authenticate or Proxy-Authenticate, RFC 3261 §22.1), in order.
    pub fn challenges(&self, name: HeaderName) -> impl Iterator<Item = AuthParams<'_>> + '_ {
        self.get_all(name).filter_map(AuthParams::parse)
    }

    /// Whether Content-Type is `ty/subtype` (case-insensitive).
    pub fn content_type_is(&self, ty: &str, subtype: &str) -> bool {
        self.content_type().is_some_and(|m| m.is(ty, subtype))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_and_ipv6() {
        let v = Via::parse("SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.is_rfc3261());
        let v =
            Via::parse("SIP/2.0/TLS [2001:db8::9]:5061;rport;branch=z9hG4bKx;received=2001:db8::1")
                .unwrap();
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.rport(), Some(None));
        assert!(v.is_rfc3261());
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/7.0/UDP host").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(r#""J Rosenberg \\\""  <sip:jdrosen@example.com> ; tag = 98asjd8"#)
            .unwrap();
        assert_eq!(n.display_name().unwrap(), r#"J Rosenberg \""#);
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display, Some("caller"));
        let n = NameAddr::parse("sip:user@example.com;tag=1").unwrap();
        assert!(!n.bracketed);
        assert_eq!(n.uri.as_str(), "sip:user@example.com");
        assert!(NameAddr::parse("Bell, Alexander <sip:a@b>").is_err());
        assert!(NameAddr::parse(r#""Watson" < sip:t@example.org >"#).is_err());
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:x%3E").is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(CSeq::parse("0009  INVITE").unwrap().seq, 9);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        let se = SessionExpires::parse("1800;refresher=uac").unwrap();
        assert_eq!(se.refresher, Some(Refresher::Uac));
        let r = RAck::parse("776656 1 INVITE").unwrap();
        assert_eq!((r.rseq, r.cseq, r.method), (776656, 1, "INVITE"));
        assert!(valid_date("Sat, 15 Oct 2005 04:44:56 GMT"));
        assert!(!valid_date("Fri, 01 Jan 2010 16:00:00 EST"));
        assert!(valid_call_id(
            "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
        ));
        assert!(!valid_call_id("a b"));
    }
}
