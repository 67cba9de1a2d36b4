//! Typed writers for header values (RFC 3261 §20, §25.1; RFC 3326): the printing side of
//! [`crate::typed`]. Values with parameters, quoted strings or name-addrs are built here
//! rather than with `format!`, so the joining rules live in one place: a parameter is always
//! one `;` plus a non-empty name (never `;;`), quoted strings escape `"` and `\` as
//! quoted-pairs and drop control characters (which no quoted-string may carry unescaped, and
//! CR/LF would end the header).

use std::fmt::{self, Write as _};

use crate::text::{USER, is};

/// Writes `s` as an RFC 3261 §25.1 `quoted-string`: `"` and `\` become quoted-pairs,
/// control characters (CR, LF, HTAB, DEL, C0 and C1) are dropped.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars().filter(|c| !c.is_control()) {
            if c == '"' || c == '\\' {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        f.write_char('"')
    }
}

/// A header value with parameters: a base (name-addr, addr-spec, URI, Via sent-protocol and
/// sent-by, delta-seconds, ...) followed by `;name[=value]` parameters (RFC 3261 §25.1
/// `generic-param`).
///
/// ```
/// use sip::HeaderValue;
/// let to = HeaderValue::name_addr(Some("Alice"), "sip:alice@example.com").param("tag", Some("a1"));
/// assert_eq!(to.as_str(), "\"Alice\" <sip:alice@example.com>;tag=a1");
/// // A value read from a message that ends in a bare ';' does not become ';;tag='.
/// let to = HeaderValue::new("<sip:bob@example.com>;").param("tag", Some("b2"));
/// assert_eq!(to.as_str(), "<sip:bob@example.com>;tag=b2");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeaderValue(String);

impl HeaderValue {
    /// A value from `base` as it is written (e.g. a From value taken from a request).
    /// Trailing white space and bare `;` (an empty parameter, legal to read) are removed, so
    /// the next [`HeaderValue::param`] starts a well-formed parameter.
    pub fn new(base: impl fmt::Display) -> HeaderValue {
        let mut s = base.to_string();
        let keep = s
            .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
            .len();
        s.truncate(keep);
        HeaderValue(s)
    }

    /// A `name-addr` (RFC 3261 §20.10): `"display name" <uri>`, or `<uri>` without a display
    /// name (an empty one counts as none). The display name is written as a quoted-string.
    pub fn name_addr(display_name: Option<&str>, uri: impl fmt::Display) -> HeaderValue {
        let mut s = String::new();
        if let Some(d) = display_name.filter(|d| !d.trim().is_empty()) {
            // Writing to a String cannot fail.
            let _ = write!(s, "{} ", Quoted(d));
        }
        let _ = write!(s, "<{uri}>");
        HeaderValue(s)
    }

    /// A `sip:` URI `sip:user@host` (the user part optional), with `user` percent-escaped
    /// where RFC 3261 §25.1 `user` does not allow a character (also `;`, `?` and `/`, which
    /// some parsers misread). `host` is written as given (a `SocketAddr` brackets IPv6).
    /// URI parameters follow with [`HeaderValue::param`]; pass the result to
    /// [`HeaderValue::name_addr`] before adding header parameters.
    pub fn sip_uri(user: Option<&str>, host: impl fmt::Display) -> HeaderValue {
        let mut s = String::from("sip:");
        if let Some(u) = user.filter(|u| !u.is_empty()) {
            for b in u.bytes() {
                if is(USER, b) && !matches!(b, b';' | b'?' | b'/') {
                    s.push(char::from(b));
                } else {
                    let _ = write!(s, "%{b:02X}");
                }
            }
            s.push('@');
        }
        let _ = write!(s, "{host}");
        HeaderValue(s)
    }

    /// Adds `;name=value` (or `;name` for `None` or an empty value). The value is written
    /// as given: a token, host or already-quoted string, as the parameter's grammar wants;
    /// use [`HeaderValue::quoted_param`] for free text. An empty name is skipped.
    pub fn param(mut self, name: &str, value: Option<&str>) -> HeaderValue {
        if name.is_empty() {
            return self;
        }
        self.0.push(';');
        self.0.push_str(name);
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.0.push('=');
            self.0.push_str(v);
        }
        self
    }

    /// Adds `;name="text"` with `text` written as a quoted-string (see [`HeaderValue`]).
    pub fn quoted_param(mut self, name: &str, text: &str) -> HeaderValue {
        if name.is_empty() {
            return self;
        }
        let _ = write!(self.0, ";{name}={}", Quoted(text));
        self
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as a `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<HeaderValue> for String {
    fn from(v: HeaderValue) -> String {
        v.0
    }
}

impl AsRef<str> for HeaderValue {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The protocol of a [`Reason`] (RFC 3326 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReasonProtocol {
    /// `SIP`: the cause is a SIP status code.
    Sip,
    /// `Q.850`: the cause is an ITU-T Q.850 cause value.
    Q850,
}

impl fmt::Display for ReasonProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReasonProtocol::Sip => "SIP",
            ReasonProtocol::Q850 => "Q.850",
        })
    }
}

/// A Reason header value (RFC 3326 §2): `SIP;cause=410;text="meeting ended"`. `Display`
/// writes it, the text as a quoted-string (quotes and backslashes escaped, control
/// characters dropped).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reason {
    /// `SIP` or `Q.850`.
    pub protocol: ReasonProtocol,
    /// `cause` parameter: a SIP status code or a Q.850 cause value.
    pub cause: u16,
    /// `text` parameter, if any.
    pub text: Option<String>,
}

impl Reason {
    /// `SIP;cause=<status>;text="<text>"`.
    pub fn sip(status: u16, text: impl Into<String>) -> Reason {
        Reason {
            protocol: ReasonProtocol::Sip,
            cause: status,
            text: Some(text.into()),
        }
    }

    /// `Q.850;cause=<cause>` without text.
    pub fn q850(cause: u16) -> Reason {
        Reason {
            protocol: ReasonProtocol::Q850,
            cause,
            text: None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cause = self.cause.to_string();
        let mut v = HeaderValue::new(self.protocol).param("cause", Some(&cause));
        if let Some(t) = &self.text {
            v = v.quoted_param("text", t);
        }
        f.write_str(v.as_str())
    }
}

/// A Warning header value (RFC 3261 §20.43): `399 voice-connector "text"`. `Display` writes
/// the code as three digits, the agent with characters outside a host or token dropped
/// (`-` when nothing is left) and the text as a quoted-string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Warning {
    /// warn-code (3xx; 399 is "miscellaneous warning").
    pub code: u16,
    /// warn-agent: our host name or a pseudonym.
    pub agent: String,
    /// warn-text.
    pub text: String,
}

impl Warning {
    /// A warning with code 399 (miscellaneous, RFC 3261 §20.43).
    pub fn misc(agent: impl Into<String>, text: impl Into<String>) -> Warning {
        Warning {
            code: 399,
            agent: agent.into(),
            text: text.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03} ", self.code.min(999))?;
        let mut any = false;
        for c in self.agent.chars() {
            let ok = c.is_ascii()
                && (crate::text::is_token_char(c as u8) || matches!(c, '[' | ']' | ':'));
            if ok {
                f.write_char(c)?;
                any = true;
            }
        }
        if !any {
            f.write_char('-')?;
        }
        write!(f, " {}", Quoted(&self.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::NameAddr;

    #[test]
    fn reason_escapes_text() {
        assert_eq!(
            Reason::sip(410, "meeting ended").to_string(),
            r#"SIP;cause=410;text="meeting ended""#
        );
        assert_eq!(
            Reason::sip(200, "say \"hi\" \\ bye\r\nX-Injected: 1").to_string(),
            r#"SIP;cause=200;text="say \"hi\" \\ byeX-Injected: 1""#
        );
        assert_eq!(Reason::q850(16).to_string(), "Q.850;cause=16");
        let r = Reason {
            protocol: ReasonProtocol::Q850,
            cause: 31,
            text: Some("\u{7f}tab\there".into()),
        };
        assert_eq!(r.to_string(), r#"Q.850;cause=31;text="tabhere""#);
    }

    #[test]
    fn warning_escapes_text_and_agent() {
        assert_eq!(
            Warning::misc("voice-connector", "text").to_string(),
            r#"399 voice-connector "text""#
        );
        assert_eq!(
            Warning::misc("vc.example:5060", "a \"b\" c\\d\n").to_string(),
            r#"399 vc.example:5060 "a \"b\" c\\d""#
        );
        let w = Warning {
            code: 7,
            agent: "bad agent\r\n".into(),
            text: String::new(),
        };
        assert_eq!(w.to_string(), r#"007 badagent """#);
        assert_eq!(Warning::misc(" ", "x").to_string(), r#"399 - "x""#);
    }

    #[test]
    fn name_addr_writer_joins_parameters() {
        let v = HeaderValue::name_addr(None, "sip:a@b").param("tag", Some("x"));
        assert_eq!(v.as_str(), "<sip:a@b>;tag=x");
        let v = HeaderValue::name_addr(Some("A \"B\""), "sip:a@b")
            .param("", Some("skipped"))
            .param("lr", None)
            .param("x", Some(""));
        assert_eq!(v.as_str(), r#""A \"B\"" <sip:a@b>;lr;x"#);
        let parsed = NameAddr::parse(v.as_str()).unwrap();
        assert_eq!(parsed.display_name().as_deref(), Some("A \"B\""));
        assert_eq!(
            HeaderValue::name_addr(Some(""), "sip:a@b").as_str(),
            "<sip:a@b>"
        );
    }

    #[test]
    fn a_bare_semicolon_is_not_doubled() {
        for base in ["<sip:a@b>;", "<sip:a@b> ;", "<sip:a@b>;; \t", "<sip:a@b>"] {
            let v = HeaderValue::new(base).param("tag", Some("t"));
            assert_eq!(v.as_str(), "<sip:a@b>;tag=t", "{base:?}");
            assert_eq!(NameAddr::parse(v.as_str()).unwrap().tag(), Some("t"));
        }
        assert_eq!(HeaderValue::new(";").param("a", None).as_str(), ";a");
    }

    #[test]
    fn sip_uri_escapes_the_user() {
        let addr: std::net::SocketAddr = "[::1]:5060".parse().unwrap();
        let u = HeaderValue::sip_uri(Some("vc"), addr).param("transport", Some("tcp"));
        assert_eq!(u.as_str(), "sip:vc@[::1]:5060;transport=tcp");
        let c = HeaderValue::name_addr(None, &u);
        assert_eq!(c.as_str(), "<sip:vc@[::1]:5060;transport=tcp>");
        assert!(NameAddr::parse(c.as_str()).is_ok());
        let u = HeaderValue::sip_uri(Some("a b;c@d"), "h");
        assert_eq!(u.as_str(), "sip:a%20b%3Bc%40d@h");
        assert_eq!(HeaderValue::sip_uri(None, "h").as_str(), "sip:h");
    }
}
