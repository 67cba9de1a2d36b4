//! SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966), and other schemes kept opaque.
//!
//! A URI is parsed once into byte ranges over its text; accessors return slices of the
//! original (still escaped) text, with `percent_decode` available for the decoded form.

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv6Addr;

use crate::params::Params;
use crate::text::{self, Span, escapes_valid, percent_decode};

/// The URI scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    /// `sip:` (RFC 3261 §19.1).
    #[default]
    Sip,
    /// `sips:` (RFC 3261 §19.1).
    Sips,
    /// `tel:` (RFC 3966).
    Tel,
    /// Any other syntactically valid absoluteURI scheme (RFC 3261 §25.1); kept opaque. An
    /// element that cannot handle it answers 416 (RFC 3261 §8.2.2.1, RFC 4475 §3.2.2).
    Other,
}

/// Why a URI was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// Empty text.
    #[error("empty URI")]
    Empty,
    /// No `scheme:` prefix or an invalid scheme name.
    #[error("invalid URI scheme")]
    Scheme,
    /// Bad character or escape in the user part.
    #[error("invalid URI user part")]
    User,
    /// Bad character or escape in the password.
    #[error("invalid URI password")]
    Password,
    /// Missing or malformed host.
    #[error("invalid URI host")]
    Host,
    /// Port is not a number in 0..=65535.
    #[error("invalid URI port")]
    Port,
    /// Malformed `;name=value` parameter.
    #[error("invalid URI parameter")]
    Param,
    /// Malformed `?name=value` header.
    #[error("invalid URI header")]
    Headers,
    /// A character that may not appear in a URI (space, `<`, `>`, `"`, control).
    #[error("invalid character in URI")]
    Char,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Parts {
    scheme: Scheme,
    /// Text after `scheme:`.
    body: Span,
    user: Option<Span>,
    password: Option<Span>,
    host: Span,
    port: Option<u16>,
    /// Parameters without the first `;`.
    params: Option<Span>,
    /// Headers without the `?`.
    headers: Option<Span>,
}

/// A borrowed, parsed URI.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UriRef<'a> {
    raw: &'a str,
    parts: Parts,
}

/// An owned, parsed URI.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Uri {
    raw: Box<str>,
    parts: Parts,
}

impl fmt::Debug for UriRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Join tokens are secrets (ARCHITECTURE.md): never in Debug output.
        write!(f, "Uri({:?})", crate::log::redact_join_tokens(self.raw))
    }
}

impl fmt::Display for UriRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl std::str::FromStr for Uri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, UriError> {
        Uri::parse(s)
    }
}

impl Uri {
    /// Parses and copies a URI.
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let parts = parse_parts(s)?;
        Ok(Uri {
            raw: s.into(),
            parts,
        })
    }

    /// The borrowed view with all accessors.
    pub fn as_ref(&self) -> UriRef<'_> {
        UriRef {
            raw: &self.raw,
            parts: self.parts,
        }
    }

    /// The URI text as received or built.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Scheme.
    pub fn scheme(&self) -> Scheme {
        self.parts.scheme
    }

    /// User part (escaped form), or the number of a tel URI.
    pub fn user(&self) -> Option<&str> {
        self.as_ref().user()
    }

    /// Host (IPv6 references keep their brackets). Empty for tel and opaque URIs.
    pub fn host(&self) -> &str {
        self.as_ref().host()
    }

    /// Port, if given.
    pub fn port(&self) -> Option<u16> {
        self.parts.port
    }

    /// URI parameters.
    pub fn params(&self) -> Params<'_> {
        self.as_ref().params()
    }

    /// A URI parameter by case-insensitive name: `Some(None)` for a flag like `lr`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.as_ref().param(name)
    }
}

impl<'a> UriRef<'a> {
    /// Parses a URI without copying.
    pub fn parse(s: &'a str) -> Result<UriRef<'a>, UriError> {
        Ok(UriRef {
            raw: s,
            parts: parse_parts(s)?,
        })
    }

    /// Copies into an owned [`Uri`].
    pub fn to_owned(&self) -> Uri {
        Uri {
            raw: self.raw.into(),
            parts: self.parts,
        }
    }

    /// The whole URI text.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Scheme.
    pub fn scheme(&self) -> Scheme {
        self.parts.scheme
    }

    /// `true` for `sips:` (RFC 3261 §19.1).
    pub fn is_sips(&self) -> bool {
        self.parts.scheme == Scheme::Sips
    }

    /// Everything after `scheme:` (the opaque part for other schemes).
    pub fn body(&self) -> &'a str {
        self.parts.body.get(self.raw)
    }

    /// User part, escaped as on the wire (for tel: the global or local number).
    pub fn user(&self) -> Option<&'a str> {
        self.parts.user.map(|s| s.get(self.raw))
    }

    /// User part with `%XX` escapes decoded (RFC 3261 §19.1.2); invalid UTF-8 is replaced.
    pub fn user_decoded(&self) -> Option<Cow<'a, str>> {
        self.user().map(|u| match percent_decode(u) {
            Cow::Borrowed(b) => String::from_utf8_lossy(b),
            Cow::Owned(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
        })
    }

    /// Password part (deprecated by RFC 3261 §19.1.1 but syntactically valid).
    pub fn password(&self) -> Option<&'a str> {
        self.parts.password.map(|s| s.get(self.raw))
    }

    /// Host; IPv6 references keep their brackets (RFC 3261 §25.1 `IPv6reference`).
    pub fn host(&self) -> &'a str {
        self.parts.host.get(self.raw)
    }

    /// Port, if present.
    pub fn port(&self) -> Option<u16> {
        self.parts.port
    }

    /// URI parameters (`;name[=value]`).
    pub fn params(&self) -> Params<'a> {
        Params::new(self.parts.params.map(|s| s.get(self.raw)).unwrap_or(""))
    }

    /// A URI parameter by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params().get(name)
    }

    /// The `transport` parameter (RFC 3261 §19.1.1).
    pub fn transport(&self) -> Option<&'a str> {
        self.param("transport").flatten()
    }

    /// Whether the `lr` parameter is present (loose routing, RFC 3261 §19.1.1).
    pub fn lr(&self) -> bool {
        self.param("lr").is_some()
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.param("maddr").flatten()
    }

    /// Headers part (`?h=v&...`) without the `?`, escaped as on the wire.
    pub fn headers(&self) -> Option<&'a str> {
        self.parts.headers.map(|s| s.get(self.raw))
    }

    /// URI equivalence (RFC 3261 §19.1.4): same scheme; user and password equal after
    /// unescaping (case-sensitive); host case-insensitive; ports equal (absent is not
    /// 5060); `user`, `ttl`, `method`, `maddr` and `transport` present in both or neither
    /// and equal; other parameters equal where both have them; headers all equal. Other
    /// schemes compare case-insensitively as text.
    pub fn equivalent(&self, other: &UriRef<'_>) -> bool {
        if self.scheme() != other.scheme() {
            return false;
        }
        if !matches!(self.scheme(), Scheme::Sip | Scheme::Sips) {
            return self.raw.eq_ignore_ascii_case(other.raw);
        }
        let dec = |s: Option<&str>| s.map(|s| percent_decode(s).into_owned());
        if dec(self.user()) != dec(other.user())
            || dec(self.password()) != dec(other.password())
            || !percent_decode(self.host()).eq_ignore_ascii_case(&percent_decode(other.host()))
            || self.port() != other.port()
        {
            return false;
        }
        let norm = |v: Option<&str>| v.map(|v| percent_decode(v).to_ascii_lowercase());
        let find = |u: &UriRef<'_>, name: &[u8]| {
            u.params()
                .iter()
                .find(|(n, _)| percent_decode(n).eq_ignore_ascii_case(name))
                .map(|(_, v)| norm(v))
        };
        for (n, v) in self.params().iter() {
            let name = percent_decode(n).to_ascii_lowercase();
            match find(other, &name) {
                Some(ov) if ov != norm(v) => return false,
                None if matches!(
                    &name[..],
                    b"user" | b"ttl" | b"method" | b"maddr" | b"transport"
                ) =>
                {
                    return false;
                }
                _ => {}
            }
        }
        for (n, _) in other.params().iter() {
            let name = percent_decode(n).to_ascii_lowercase();
            if matches!(
                &name[..],
                b"user" | b"ttl" | b"method" | b"maddr" | b"transport"
            ) && find(self, &name).is_none()
            {
                return false;
            }
        }
        let headers = |u: &UriRef<'_>| {
            let mut v: Vec<(Vec<u8>, Vec<u8>)> = u
                .headers()
                .unwrap_or("")
                .split('&')
                .filter(|h| !h.is_empty())
                .map(|h| {
                    let (n, val) = h.split_once('=').unwrap_or((h, ""));
                    (
                        percent_decode(n).to_ascii_lowercase(),
                        percent_decode(val).into_owned(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        headers(self) == headers(other)
    }
}

fn parse_parts(s: &str) -> Result<Parts, UriError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(UriError::Empty);
    }
    let colon = s.find(':').ok_or(UriError::Scheme)?;
    let scheme_text = &s[..colon];
    let mut sb = scheme_text.bytes();
    if !sb.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !sb.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        return Err(UriError::Scheme);
    }
    let scheme = if scheme_text.eq_ignore_ascii_case("sip") {
        Scheme::Sip
    } else if scheme_text.eq_ignore_ascii_case("sips") {
        Scheme::Sips
    } else if scheme_text.eq_ignore_ascii_case("tel") {
        Scheme::Tel
    } else {
        Scheme::Other
    };
    let mut parts = Parts {
        scheme,
        body: Span::new(colon + 1, b.len()),
        ..Parts::default()
    };
    match scheme {
        Scheme::Sip | Scheme::Sips => parse_sip(s, colon + 1, &mut parts)?,
        Scheme::Tel => parse_tel(s, colon + 1, &mut parts)?,
        Scheme::Other => {
            // absoluteURI = scheme ":" ( hier-part / opaque-part ): any URI character.
            if colon + 1 >= b.len() || !b[colon + 1..].iter().all(|&c| is_uric(c)) {
                return Err(UriError::Char);
            }
        }
    }
    Ok(parts)
}

/// `uric` plus `#`-free URI characters: everything printable except space, `<`, `>`, `"`.
fn is_uric(c: u8) -> bool {
    c > 0x20 && c < 0x7f && !matches!(c, b'<' | b'>' | b'"' | b'{' | b'}' | b'|' | b'\\' | b'^')
}

#[inline(always)]
fn is_user_char(c: u8) -> bool {
    text::is(text::USER, c)
}

#[inline(always)]
fn is_password_char(c: u8) -> bool {
    text::is(text::PASSWORD, c)
}

#[inline(always)]
fn is_param_char(c: u8) -> bool {
    text::is(text::PARAM, c)
}

#[inline(always)]
fn is_header_char(c: u8) -> bool {
    text::is(text::HEADER, c)
}

/// Scans `b[from..]` while `f` accepts characters or valid escapes; returns the end index.
#[inline(always)]
fn scan(b: &[u8], from: usize, f: impl Fn(u8) -> bool, err: UriError) -> Result<usize, UriError> {
    let mut i = from;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if !escapes_valid(b, i) {
                return Err(err);
            }
            i += 3;
        } else if f(c) {
            i += 1;
        } else {
            break;
        }
    }
    Ok(i)
}

fn parse_sip(s: &str, start: usize, p: &mut Parts) -> Result<(), UriError> {
    let b = s.as_bytes();
    let mut pos = start;
    // userinfo: everything up to the first '@' (no '@' may appear unescaped elsewhere).
    if let Some(at) = s[start..].find('@') {
        let at = start + at;
        let userinfo = &b[start..at];
        let colon = userinfo.iter().position(|&c| c == b':').map(|i| start + i);
        let user_end = colon.unwrap_or(at);
        if user_end == start || scan(b, start, is_user_char, UriError::User)? < user_end {
            return Err(UriError::User);
        }
        p.user = Some(Span::new(start, user_end));
        if let Some(c) = colon {
            if scan(b, c + 1, is_password_char, UriError::Password)? < at {
                return Err(UriError::Password);
            }
            p.password = Some(Span::new(c + 1, at));
        }
        pos = at + 1;
    }
    // host
    let host_start = pos;
    if b.get(pos) == Some(&b'[') {
        let close = s[pos..].find(']').map(|i| pos + i).ok_or(UriError::Host)?;
        s[pos + 1..close]
            .parse::<Ipv6Addr>()
            .map_err(|_| UriError::Host)?;
        pos = close + 1;
    } else {
        while pos < b.len()
            && (b[pos].is_ascii_alphanumeric() || matches!(b[pos], b'-' | b'.' | b'_'))
        {
            pos += 1;
        }
        if pos == host_start {
            return Err(UriError::Host);
        }
    }
    p.host = Span::new(host_start, pos);
    // port
    if b.get(pos) == Some(&b':') {
        let ps = pos + 1;
        pos = ps;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let digits = &s[ps..pos];
        if digits.is_empty() || digits.len() > 5 {
            return Err(UriError::Port);
        }
        p.port = Some(digits.parse::<u16>().map_err(|_| UriError::Port)?);
    }
    // uri-parameters
    if b.get(pos) == Some(&b';') {
        let ps = pos + 1;
        while b.get(pos) == Some(&b';') {
            let name_start = pos + 1;
            pos = scan(b, name_start, is_param_char, UriError::Param)?;
            if pos == name_start {
                return Err(UriError::Param);
            }
            if b.get(pos) == Some(&b'=') {
                let vs = pos + 1;
                pos = scan(b, vs, is_param_char, UriError::Param)?;
                if pos == vs {
                    return Err(UriError::Param);
                }
            }
        }
        p.params = Some(Span::new(ps, pos));
    }
    // headers
    if b.get(pos) == Some(&b'?') {
        let hs = pos + 1;
        pos = hs;
        loop {
            let name_start = pos;
            pos = scan(b, pos, is_header_char, UriError::Headers)?;
            if pos == name_start || b.get(pos) != Some(&b'=') {
                return Err(UriError::Headers);
            }
            pos = scan(b, pos + 1, is_header_char, UriError::Headers)?;
            if b.get(pos) == Some(&b'&') {
                pos += 1;
            } else {
                break;
            }
        }
        p.headers = Some(Span::new(hs, pos));
    }
    if pos != b.len() {
        return Err(UriError::Char);
    }
    Ok(())
}

/// `tel:` URIs (RFC 3966 §3): a global (`+...`) or local number followed by parameters.
fn parse_tel(s: &str, start: usize, p: &mut Parts) -> Result<(), UriError> {
    let b = s.as_bytes();
    let mut pos = start;
    while pos < b.len()
        && (b[pos].is_ascii_hexdigit()
            || matches!(
                b[pos],
                b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#' | b'p' | b'w'
            ))
    {
        pos += 1;
    }
    if pos == start {
        return Err(UriError::User);
    }
    p.user = Some(Span::new(start, pos));
    p.host = Span::new(pos, pos);
    if b.get(pos) == Some(&b';') {
        let ps = pos + 1;
        while b.get(pos) == Some(&b';') {
            let ns = pos + 1;
            pos = scan(b, ns, is_param_char, UriError::Param)?;
            if pos == ns {
                return Err(UriError::Param);
            }
            if b.get(pos) == Some(&b'=') {
                pos = scan(
                    b,
                    pos + 1,
                    |c| is_param_char(c) || c == b'%',
                    UriError::Param,
                )?;
            }
        }
        p.params = Some(Span::new(ps, pos));
    }
    if pos != b.len() {
        return Err(UriError::Char);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chime_join_uri() {
        let u = Uri::parse("sip:+17035550122@abcdef1ghij2klmno3pqr4.voiceconnector.chime.aws;transport=tls;X-chime-join-token=join-token").unwrap();
        assert_eq!(u.user(), Some("+17035550122"));
        assert_eq!(u.host(), "abcdef1ghij2klmno3pqr4.voiceconnector.chime.aws");
        assert_eq!(u.as_ref().transport(), Some("tls"));
        assert_eq!(u.param("x-chime-join-token"), Some(Some("join-token")));
    }

    #[test]
    fn ipv6_port_headers_tel() {
        let u = UriRef::parse("sips:alice:secret@[2001:db8::1]:5061;lr?subject=hi&x=").unwrap();
        assert!(u.is_sips());
        assert_eq!(u.password(), Some("secret"));
        assert_eq!(u.host(), "[2001:db8::1]");
        assert_eq!(u.port(), Some(5061));
        assert!(u.lr());
        assert_eq!(u.headers(), Some("subject=hi&x="));
        let t = UriRef::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(t.scheme(), Scheme::Tel);
        assert_eq!(t.user(), Some("+1-201-555-0123"));
        assert_eq!(t.param("phone-context"), Some(Some("example.com")));
    }

    #[test]
    fn equivalence_rfc3261_19_1_4() {
        let eq = |a: &str, b: &str| {
            UriRef::parse(a)
                .unwrap()
                .equivalent(&UriRef::parse(b).unwrap())
        };
        // The RFC's equal pairs.
        assert!(eq(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(eq(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x"
        ));
        // The RFC's unequal pairs.
        assert!(!eq(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp"
        ));
        assert!(!eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting"
        ));
        assert!(!eq("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"));
        assert!(!eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off"
        ));
        assert!(!eq("sip:a@b", "sips:a@b"));
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "sip:",
            "sip:user@",
            "sip:a b@c",
            "sip:host:99999",
            "sip:host;;x",
            "sip:host?",
            "sip:[::1",
            "sip:%zz@host",
            "<sip:a@b>",
            "1x:abc",
        ] {
            assert!(UriRef::parse(bad).is_err(), "{bad}");
        }
    }
}
