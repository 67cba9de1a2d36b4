//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760).

use crate::text::{CommaList, is_token, trim_lws, unquote};
use std::borrow::Cow;

/// The `Digest` credentials or challenge parameters: `scheme` followed by comma-separated
/// `name=value` pairs (RFC 7616 §3.3, §3.4), read without copying.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AuthParams<'a> {
    /// The auth scheme (`Digest`).
    pub scheme: &'a str,
    raw: &'a str,
}

impl<'a> AuthParams<'a> {
    /// Splits `scheme params` (RFC 3261 §25.1 `credentials` / `challenge`).
    pub fn parse(s: &'a str) -> Option<AuthParams<'a>> {
        let s = trim_lws(s);
        let (scheme, raw) = match s.find([' ', '\t']) {
            Some(i) => (&s[..i], trim_lws(&s[i..])),
            None => (s, ""),
        };
        is_token(scheme).then_some(AuthParams { scheme, raw })
    }

    /// Iterates `(name, raw value)` pairs; quoted values keep their quotes.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        CommaList::new(self.raw).filter_map(|item| {
            let (n, v) = item.split_once('=')?;
            Some((trim_lws(n), trim_lws(v)))
        })
    }

    /// A parameter by case-insensitive name, unquoted.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| unquote(v))
    }
}

/// Debug shows the scheme, username, realm and algorithm, never response/cnonce/nonce.
impl std::fmt::Debug for AuthParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_credentials(&format!(
            "{} {}",
            self.scheme, self.raw
        )))
    }
}

/// Renders an Authorization value with everything but scheme, `username`, `realm`, `uri`
/// and `algorithm` replaced by `<redacted>`: safe for logs.
pub fn redact_credentials(value: &str) -> String {
    let Some(p) = AuthParams::parse(value) else {
        return "<redacted>".to_owned();
    };
    let mut out = String::from(p.scheme);
    let mut first = true;
    for (n, v) in p.iter() {
        out.push_str(if first { " " } else { ", " });
        first = false;
        out.push_str(n);
        out.push('=');
        let shown = ["username", "realm", "uri", "algorithm", "qop"]
            .iter()
            .any(|k| n.eq_ignore_ascii_case(k));
        out.push_str(if shown { v } else { "<redacted>" });
    }
    out
}
