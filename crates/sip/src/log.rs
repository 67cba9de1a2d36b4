//! A message-log record the transport edge can emit for every SIP message sent or received,
//! with secrets removed before anything is rendered.
//!
//! Redacted: Authorization / Proxy-Authorization values (only scheme, username, realm, uri,
//! algorithm and qop stay), `X-chime-join-token` URI parameters, and SDES keys
//! (`a=crypto:... inline:<key>`, RFC 4568) in bodies.

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

const JOIN_TOKEN: &str = "x-chime-join-token=";

/// Replaces the value of every `X-chime-join-token=` parameter.
pub fn redact_join_tokens(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(i) = lower[pos..].find(JOIN_TOKEN) {
        let vstart = pos + i + JOIN_TOKEN.len();
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

fn redact_crypto_line(line: &str) -> Option<String> {
    let l = line.trim_start();
    if !l.starts_with("a=crypto:") {
        return None;
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
    Some(out)
}

/// Renders raw message bytes with secrets removed. Works on malformed input too.
pub fn redact_message(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut in_body = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let content = line.trim_end_matches(['\r', '\n']);
        let ending = &line[content.len()..];
        if in_body {
            match redact_crypto_line(content) {
                Some(r) => out.push_str(&r),
                None => out.push_str(content),
            }
        } else if content.is_empty() && i > 0 {
            in_body = true;
        } else if let Some((name, value)) = content.split_once(':')
            && i > 0
            && !content.starts_with([' ', '\t'])
            && HeaderName::from_name(name.trim()).is_sensitive()
        {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(&redact_credentials(value.trim()));
        } else {
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
}
