//! A message-log record the transport edge can emit for every SIP message sent or received,
//! with secrets removed before anything is rendered.
//!
//! Redacted: Authorization / Proxy-Authorization values (only scheme, username, realm, uri,
//! algorithm and qop stay: no `response`, `cnonce`, `nonce`), join tokens in every form the
//! server accepts (the `X-chime-join-token` and `X-joinToken` URI parameters wherever a URI
//! stands, the `X-chime-join-token` header, any case) and anything shaped like a token (43
//! base64url characters), and SDES keys (`a=crypto:... inline:<key>`, RFC 4568) and `k=`
//! lines in bodies. [`redact_join_tokens`] is the same treatment for any text bound for a
//! log (tracing lines, refusal reasons).

use std::fmt;
use std::net::SocketAddr;

use crate::auth::redact_credentials;
use crate::headers::HeaderName;
use crate::transaction::{Peer, Transmit, TransportKind};

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received from the network.
    Inbound,
    /// Sent to the network.
    Outbound,
}

/// One logged message. `bytes` are the raw wire bytes; render with `Display` / `Debug`
/// (both redacted) or [`LoggedMessage::redacted_text`].
#[derive(Clone, Copy)]
pub struct LoggedMessage<'a> {
    /// In or out.
    pub direction: Direction,
    /// Transport.
    pub transport: TransportKind,
    /// Our address.
    pub local: SocketAddr,
    /// The other side.
    pub remote: SocketAddr,
    /// The message as on the wire.
    pub bytes: &'a [u8],
}

impl<'a> LoggedMessage<'a> {
    /// A received message.
    pub fn inbound(peer: Peer, bytes: &'a [u8]) -> Self {
        LoggedMessage {
            direction: Direction::Inbound,
            transport: peer.transport,
            local: peer.local,
            remote: peer.remote,
            bytes,
        }
    }

    /// A message about to be sent.
    pub fn outbound(t: &'a Transmit) -> Self {
        LoggedMessage {
            direction: Direction::Outbound,
            transport: t.peer.transport,
            local: t.peer.local,
            remote: t.peer.remote,
            bytes: &t.payload,
        }
    }

    /// The message text with secrets replaced by `<redacted>`.
    pub fn redacted_text(&self) -> String {
        redact_message(self.bytes)
    }
}

impl fmt::Display for LoggedMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (arrow, verb) = match self.direction {
            Direction::Inbound => ("<-", "recv"),
            Direction::Outbound => ("->", "send"),
        };
        writeln!(
            f,
            "{verb} {} bytes {} {} {arrow} {}",
            self.bytes.len(),
            self.transport.via_token(),
            self.local,
            self.remote
        )?;
        f.write_str(&self.redacted_text())
    }
}

impl fmt::Debug for LoggedMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggedMessage")
            .field("direction", &self.direction)
            .field("transport", &self.transport)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("text", &self.redacted_text())
            .finish()
    }
}

/// URI parameters whose value is a join token (RFC 3261 `uri-parameter`, compared without
/// case): the accepted spellings, and they are redacted wherever they appear (Request-URI,
/// To, From, Contact, Refer-To, bodies, Warning texts).
const TOKEN_PARAMS: [&str; 2] = ["x-chime-join-token=", "x-jointoken="];

/// Header fields whose whole value is a join token.
const TOKEN_HEADERS: [&str; 2] = ["x-chime-join-token", "x-jointoken"];

/// Length of a join token (`domain::token::TOKEN_LEN`: base64url of 32 bytes, unpadded).
const TOKEN_LEN: usize = 43;

/// True for a header name whose value is a join token (`X-chime-join-token`, any case).
pub fn is_token_header(name: &str) -> bool {
    TOKEN_HEADERS
        .iter()
        .any(|h| name.trim().eq_ignore_ascii_case(h))
}

/// Makes any text safe for a log: the value of every join-token URI parameter
/// (`X-chime-join-token=`, `X-joinToken=`, any case) and every run of exactly 43 base64url
/// characters (the shape of a join token, wherever it stands) become `<redacted>`.
pub fn redact_join_tokens(s: &str) -> String {
    redact_token_shapes(&redact_token_params(s))
}

fn redact_token_params(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some((i, name)) = TOKEN_PARAMS
        .iter()
        .filter_map(|p| lower[pos..].find(p).map(|i| (i, *p)))
        .min_by_key(|(i, _)| *i)
    {
        let vstart = pos + i + name.len();
        out.push_str(&s[pos..vstart]);
        out.push_str("<redacted>");
        let rest = &s[vstart..];
        let vlen = rest
            .find([';', '>', ',', ' ', '\t', '\r', '\n', '?', '&', '"'])
            .unwrap_or(rest.len());
        pos = vstart + vlen;
    }
    out.push_str(&s[pos..]);
    out
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Replaces every maximal run of exactly [`TOKEN_LEN`] base64url characters.
fn redact_token_shapes(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_base64url(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_base64url(bytes[i]) {
            i += 1;
        }
        if i - start == TOKEN_LEN {
            out.push_str(&s[copied..start]);
            out.push_str("<redacted>");
            copied = i;
        }
    }
    out.push_str(&s[copied..]);
    out
}

fn redact_body_line(line: &str) -> String {
    let l = line.trim_start();
    if l.starts_with("k=") {
        // RFC 8866 §5.12: an encryption key in clear.
        return "k=<redacted>".to_owned();
    }
    if !l.starts_with("a=crypto:") {
        return redact_join_tokens(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("inline:") {
        out.push_str(&rest[..i + 7]);
        out.push_str("<redacted>");
        let after = &rest[i + 7..];
        let end = after.find([' ', ';', '\r']).unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Renders raw message bytes with secrets removed. Works on malformed input too.
///
/// Authorization and Proxy-Authorization keep only scheme, username, realm, uri, algorithm
/// and qop ([`redact_credentials`]); a join-token header (`X-chime-join-token: ...`) loses
/// its whole value; folded continuation lines of either are dropped to `<redacted>`; every
/// other line goes through [`redact_join_tokens`]; SDES keys and `k=` lines in bodies are
/// hidden.
pub fn redact_message(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut in_body = false;
    // The header being read holds a secret: its folded continuation lines do too.
    let mut secret_header = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let content = line.trim_end_matches(['\r', '\n']);
        let ending = &line[content.len()..];
        let folded = i > 0 && content.starts_with([' ', '\t']);
        if in_body {
            out.push_str(&redact_body_line(content));
        } else if content.is_empty() && i > 0 {
            in_body = true;
        } else if folded && secret_header {
            out.push_str(" <redacted>");
        } else if let Some((name, value)) = content.split_once(':')
            && i > 0
            && !folded
        {
            let sensitive = HeaderName::from_name(name.trim()).is_sensitive();
            secret_header = sensitive || is_token_header(name);
            if sensitive {
                out.push_str(name);
                out.push_str(": ");
                out.push_str(&redact_credentials(value.trim()));
            } else if secret_header {
                out.push_str(name);
                out.push_str(": <redacted>");
            } else {
                out.push_str(&redact_join_tokens(content));
            }
        } else {
            if !folded {
                secret_header = false;
            }
            out.push_str(&redact_join_tokens(content));
        }
        out.push_str(ending);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed() {
        let msg = b"INVITE sip:+17035550122@vc.example;transport=tls;X-chime-join-token=SECRET1 SIP/2.0\r\n\
To: <sip:+17035550122@vc.example;X-chime-join-token=SECRET1>\r\n\
Authorization: Digest username=\"pbx\", realm=\"r\", nonce=\"SECRET2\", uri=\"sip:x\", response=\"SECRET3\", cnonce=\"SECRET4\", nc=00000001, qop=auth\r\n\
Content-Type: application/sdp\r\n\r\n\
v=0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:SECRET5|2^20|1:4\r\n";
        let peer = Peer {
            transport: TransportKind::Tls,
            local: "192.0.2.1:5061".parse().unwrap(),
            remote: "198.51.100.1:40000".parse().unwrap(),
        };
        let m = LoggedMessage::inbound(peer, msg);
        for rendered in [format!("{m}"), format!("{m:?}")] {
            for secret in ["SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5"] {
                assert!(!rendered.contains(secret), "{secret} leaked: {rendered}");
            }
            assert!(
                rendered.contains("username=\\\"pbx\\\"") || rendered.contains("username=\"pbx\"")
            );
            assert!(rendered.contains("AES_CM_128_HMAC_SHA1_80 inline:<redacted>"));
        }
        assert!(format!("{m}").starts_with("recv "));
    }

    /// A well-formed token (43 base64url characters) and its shape-only cousins.
    const TOKEN: &str = "Ab3-_xYz0123456789abcdefghijklmnopqrstuvwxy";

    fn peer() -> Peer {
        Peer {
            transport: TransportKind::Udp,
            local: "192.0.2.1:5060".parse().unwrap(),
            remote: "198.51.100.1:40000".parse().unwrap(),
        }
    }

    #[test]
    fn every_accepted_token_form_is_removed() {
        assert_eq!(TOKEN.len(), TOKEN_LEN);
        let msg = format!(
            "INVITE sip:+17035550122@vc.example;X-JOINTOKEN=p1secret;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.1:40000;branch=z9hG4bK1\r\n\
To: <sip:+17035550122@vc.example;x-chime-join-token=p2secret>\r\n\
From: <sip:+12065550100@pbx;X-joinToken=p3secret>;tag=1\r\n\
Contact: <sip:pbx;X-Chime-Join-Token=p4secret>\r\n\
Refer-To: <sip:+17035550122@vc.example;X-chime-join-token=p5secret?Replaces=x>\r\n\
x-CHIME-join-TOKEN:   h1secret\r\n\
X-chime-join-token: h2secret\r\n\
\x20h3secret-folded\r\n\
Proxy-Authorization: Digest username=\"pbx\", uri=\"sip:+17035550122@vc.example;X-chime-join-token=u1secret\",\r\n\
\x20response=\"d1secret\", cnonce=\"d2secret\"\r\n\
Warning: 399 vc \"PSTN termination to {TOKEN} is not routed\"\r\n\
Call-ID: c1\r\n\
Content-Type: message/sipfrag\r\n\r\n\
INVITE sip:x;X-chime-join-token=b1secret SIP/2.0\r\n\
k=clear:b2secret\r\n"
        );
        let text = LoggedMessage::inbound(peer(), msg.as_bytes()).redacted_text();
        for secret in [
            "p1secret", "p2secret", "p3secret", "p4secret", "p5secret", "h1secret", "h2secret",
            "h3secret", "u1secret", "d1secret", "d2secret", "b1secret", "b2secret", TOKEN,
        ] {
            assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        }
        // What is not secret stays, as it was written.
        for kept in [
            "INVITE sip:+17035550122@vc.example;X-JOINTOKEN=<redacted>;transport=udp SIP/2.0\r\n",
            "To: <sip:+17035550122@vc.example;x-chime-join-token=<redacted>>\r\n",
            "?Replaces=x>",
            "x-CHIME-join-TOKEN: <redacted>\r\n",
            "username=\"pbx\"",
            "Call-ID: c1\r\n",
            "PSTN termination to <redacted> is not routed",
            "Via: SIP/2.0/UDP 198.51.100.1:40000;branch=z9hG4bK1\r\n",
        ] {
            assert!(text.contains(kept), "{kept:?} missing:\n{text}");
        }
    }

    #[test]
    fn only_token_shaped_runs_are_removed() {
        let near = |n: usize| "a".repeat(n);
        for n in [42, 44, 64] {
            assert_eq!(
                redact_join_tokens(&near(n)),
                near(n),
                "{n} characters are kept"
            );
        }
        assert_eq!(
            redact_join_tokens(&format!("tok={TOKEN};x {TOKEN}@h <{TOKEN}>")),
            "tok=<redacted>;x <redacted>@h <<redacted>>"
        );
        // A SHA-256 hex digest, a UUID, a branch: not tokens.
        let other = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 \
                     6f1c2a64-0f2e-4b43-9d6e-2b1c0a4e5f60 z9hG4bK0123456789abcdef01234567";
        assert_eq!(redact_join_tokens(other), other);
        assert!(is_token_header(" X-Chime-Join-Token"));
        assert!(!is_token_header("X-chime-join"));
    }

    #[test]
    fn digest_credentials_keep_no_response() {
        let v = format!(
            "Digest username=\"pbx\", realm=\"r\", nonce=\"n1\", uri=\"sip:a;X-joinToken={TOKEN}\", response=\"r1\", cnonce=\"c1\", nc=00000001, qop=auth, algorithm=SHA-256"
        );
        let r = redact_credentials(&v);
        for secret in ["n1", "r1", "c1", TOKEN, "00000001"] {
            assert!(!r.contains(secret), "{secret} leaked: {r}");
        }
        assert!(
            r.contains("username=\"pbx\"") && r.contains("algorithm=SHA-256"),
            "{r}"
        );
    }
}
