//! Header names (with RFC 3261 §7.3.3 compact forms) and the header collection.
//!
//! All header text of a message lives in one `String`; each header is a pair of byte ranges
//! into it, so parsing allocates once for the whole header section, unknown headers
//! round-trip unchanged, and typed views ([`crate::typed`]) borrow from it.

use std::fmt;

use crate::text::{CommaList, Span};

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident => $canon:literal, [$($alias:literal),*] ;)*) => {
        /// A header field name. Known names are matched case-insensitively, including compact
        /// forms (RFC 3261 §7.3.3, §20; RFC 3265, RFC 3515, RFC 3892, RFC 4028); anything else
        /// is [`HeaderName::Other`] and keeps its original spelling.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $(#[$doc])* $variant, )*
            /// An extension header; its name is stored with the value.
            Other,
        }

        impl HeaderName {
            /// The canonical (long) spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "Extension",
                }
            }

            /// Recognises a header name (case-insensitive, compact forms included).
            pub fn from_name(name: &str) -> HeaderName {
                let b = name.as_bytes();
                if b.len() > 24 {
                    return HeaderName::Other;
                }
                let mut buf = [0u8; 24];
                for (d, s) in buf.iter_mut().zip(b) {
                    *d = s.to_ascii_lowercase();
                }
                match &buf[..b.len()] {
                    $( $($alias)|* => HeaderName::$variant, )*
                    _ => HeaderName::Other,
                }
            }
        }
    };
}

header_names! {
    /// Accept (RFC 3261 §20.1).
    Accept => "Accept", [b"accept"];
    /// Accept-Encoding (RFC 3261 §20.2).
    AcceptEncoding => "Accept-Encoding", [b"accept-encoding"];
    /// Accept-Language (RFC 3261 §20.3).
    AcceptLanguage => "Accept-Language", [b"accept-language"];
    /// Allow (RFC 3261 §20.5).
    Allow => "Allow", [b"allow"];
    /// Allow-Events, compact `u` (RFC 6665).
    AllowEvents => "Allow-Events", [b"allow-events", b"u"];
    /// Authorization (RFC 3261 §20.7).
    Authorization => "Authorization", [b"authorization"];
    /// Call-ID, compact `i` (RFC 3261 §20.8).
    CallId => "Call-ID", [b"call-id", b"i"];
    /// Contact, compact `m` (RFC 3261 §20.10).
    Contact => "Contact", [b"contact", b"m"];
    /// Content-Disposition (RFC 3261 §20.11).
    ContentDisposition => "Content-Disposition", [b"content-disposition"];
    /// Content-Encoding, compact `e` (RFC 3261 §20.12).
    ContentEncoding => "Content-Encoding", [b"content-encoding", b"e"];
    /// Content-Length, compact `l` (RFC 3261 §20.14).
    ContentLength => "Content-Length", [b"content-length", b"l"];
    /// Content-Type, compact `c` (RFC 3261 §20.15).
    ContentType => "Content-Type", [b"content-type", b"c"];
    /// CSeq (RFC 3261 §20.16).
    CSeq => "CSeq", [b"cseq"];
    /// Date (RFC 3261 §20.17).
    Date => "Date", [b"date"];
    /// Event, compact `o` (RFC 6665).
    Event => "Event", [b"event", b"o"];
    /// Expires (RFC 3261 §20.19).
    Expires => "Expires", [b"expires"];
    /// From, compact `f` (RFC 3261 §20.20).
    From => "From", [b"from", b"f"];
    /// Identity, compact `y` (RFC 8224).
    Identity => "Identity", [b"identity", b"y"];
    /// Max-Forwards (RFC 3261 §20.22).
    MaxForwards => "Max-Forwards", [b"max-forwards"];
    /// Min-Expires (RFC 3261 §20.23).
    MinExpires => "Min-Expires", [b"min-expires"];
    /// Min-SE (RFC 4028 §5).
    MinSe => "Min-SE", [b"min-se"];
    /// Proxy-Authenticate (RFC 3261 §20.27).
    ProxyAuthenticate => "Proxy-Authenticate", [b"proxy-authenticate"];
    /// Proxy-Authorization (RFC 3261 §20.28).
    ProxyAuthorization => "Proxy-Authorization", [b"proxy-authorization"];
    /// Proxy-Require (RFC 3261 §20.29).
    ProxyRequire => "Proxy-Require", [b"proxy-require"];
    /// RAck (RFC 3262 §7.2).
    RAck => "RAck", [b"rack"];
    /// Reason (RFC 3326).
    Reason => "Reason", [b"reason"];
    /// Record-Route (RFC 3261 §20.30).
    RecordRoute => "Record-Route", [b"record-route"];
    /// Refer-To, compact `r` (RFC 3515).
    ReferTo => "Refer-To", [b"refer-to", b"r"];
    /// Referred-By, compact `b` (RFC 3892).
    ReferredBy => "Referred-By", [b"referred-by", b"b"];
    /// Require (RFC 3261 §20.32).
    Require => "Require", [b"require"];
    /// Retry-After (RFC 3261 §20.33).
    RetryAfter => "Retry-After", [b"retry-after"];
    /// Route (RFC 3261 §20.34).
    Route => "Route", [b"route"];
    /// RSeq (RFC 3262 §7.1).
    RSeq => "RSeq", [b"rseq"];
    /// Server (RFC 3261 §20.35).
    Server => "Server", [b"server"];
    /// Session-Expires, compact `x` (RFC 4028 §4).
    SessionExpires => "Session-Expires", [b"session-expires", b"x"];
    /// Subject, compact `s` (RFC 3261 §20.36).
    Subject => "Subject", [b"subject", b"s"];
    /// Supported, compact `k` (RFC 3261 §20.37).
    Supported => "Supported", [b"supported", b"k"];
    /// Timestamp (RFC 3261 §20.38).
    Timestamp => "Timestamp", [b"timestamp"];
    /// To, compact `t` (RFC 3261 §20.39).
    To => "To", [b"to", b"t"];
    /// Unsupported (RFC 3261 §20.40).
    Unsupported => "Unsupported", [b"unsupported"];
    /// User-Agent (RFC 3261 §20.41).
    UserAgent => "User-Agent", [b"user-agent"];
    /// Via, compact `v` (RFC 3261 §20.42).
    Via => "Via", [b"via", b"v"];
    /// Warning (RFC 3261 §20.43).
    Warning => "Warning", [b"warning"];
    /// WWW-Authenticate (RFC 3261 §20.44).
    WwwAuthenticate => "WWW-Authenticate", [b"www-authenticate"];
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HeaderName {
    /// Whether several values of this header may be combined with commas on one line
    /// (RFC 3261 §7.3.1). The auth headers and Date contain commas inside one value.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Allow
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Unsupported
                | HeaderName::Accept
                | HeaderName::AcceptEncoding
                | HeaderName::AcceptLanguage
                | HeaderName::AllowEvents
                | HeaderName::ContentEncoding
                | HeaderName::Warning
        )
    }

    /// Whether the value carries credentials that must not be logged in full.
    pub fn is_sensitive(self) -> bool {
        matches!(
            self,
            HeaderName::Authorization | HeaderName::ProxyAuthorization
        )
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    name: HeaderName,
    /// Spelling of the name (as received, or as pushed for extension headers).
    name_span: Span,
    value: Span,
}

/// An ordered header collection. Values are stored unfolded (RFC 3261 §7.3.1) and trimmed.
#[derive(Clone, Default)]
pub struct Headers {
    buf: String,
    entries: Vec<Entry>,
}

impl Headers {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn from_parts(buf: String, capacity: usize) -> Self {
        Headers {
            buf,
            entries: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn buf_mut(&mut self) -> &mut String {
        &mut self.buf
    }

    pub(crate) fn push_spans(&mut self, name: HeaderName, name_span: Span, value: Span) {
        self.entries.push(Entry {
            name,
            name_span,
            value,
        });
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn append_text(&mut self, text: &str) -> Span {
        let start = self.buf.len();
        // Header injection guard: a value may never contain a line break (or NUL).
        if memchr::memchr3(b'\r', b'\n', b'\0', text.as_bytes()).is_none() {
            self.buf.push_str(text);
        } else {
            self.buf.extend(text.chars().map(|c| {
                if c == '\r' || c == '\n' || c == '\0' {
                    ' '
                } else {
                    c
                }
            }));
        }
        Span::new(start, self.buf.len())
    }

    fn make_entry(&mut self, name: HeaderName, name_text: &str, value: &str) -> Entry {
        let name_span = if name == HeaderName::Other {
            self.append_text(name_text)
        } else {
            Span::default()
        };
        let value = self.append_text(value.trim());
        Entry {
            name,
            name_span,
            value,
        }
    }

    /// Appends a header. For extension headers use [`Headers::push_raw`].
    pub fn push(&mut self, name: HeaderName, value: &str) {
        let e = self.make_entry(name, name.as_str(), value);
        self.entries.push(e);
    }

    /// Appends a header by name text; known names (also compact ones) are recognised.
    pub fn push_raw(&mut self, name: &str, value: &str) {
        let hn = HeaderName::from_name(name);
        let e = self.make_entry(hn, name, value);
        self.entries.push(e);
    }

    /// Inserts a header before all others of any name (e.g. a new top Via, RFC 3261 §16.6).
    pub fn prepend(&mut self, name: HeaderName, value: &str) {
        let e = self.make_entry(name, name.as_str(), value);
        self.entries.insert(0, e);
    }

    /// Replaces all headers of `name` with one value, keeping the position of the first.
    pub fn set(&mut self, name: HeaderName, value: &str) {
        let e = self.make_entry(name, name.as_str(), value);
        match self.entries.iter().position(|x| x.name == name) {
            Some(i) => {
                self.entries[i] = e;
                let mut idx = 0;
                self.entries.retain(|x| {
                    let keep = idx <= i || x.name != name;
                    idx += 1;
                    keep
                });
            }
            None => self.entries.push(e),
        }
    }

    /// Replaces the value of the first header of `name` (e.g. the top Via). Returns `false`
    /// if there is none.
    pub fn replace_first(&mut self, name: HeaderName, value: &str) -> bool {
        let Some(i) = self.entries.iter().position(|x| x.name == name) else {
            return false;
        };
        let v = self.append_text(value.trim());
        self.entries[i].value = v;
        true
    }

    /// Removes every header of `name`; returns how many were removed.
    pub fn remove(&mut self, name: HeaderName) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| e.name != name);
        before - self.entries.len()
    }

    /// Removes the first header of `name`.
    pub fn remove_first(&mut self, name: HeaderName) -> bool {
        match self.entries.iter().position(|x| x.name == name) {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    /// Removes extension headers by case-insensitive name.
    pub fn remove_raw(&mut self, name: &str) -> usize {
        let hn = HeaderName::from_name(name);
        if hn != HeaderName::Other {
            return self.remove(hn);
        }
        let before = self.entries.len();
        let buf = &self.buf;
        self.entries.retain(|e| {
            !(e.name == HeaderName::Other && e.name_span.get(buf).eq_ignore_ascii_case(name))
        });
        before - self.entries.len()
    }

    /// The first value of a known header.
    pub fn get(&self, name: HeaderName) -> Option<&str> {
        self.get_all(name).next()
    }

    /// All values (one per header line) of a known header, in order.
    pub fn get_all(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.entries
            .iter()
            .filter(move |e| e.name == name)
            .map(|e| e.value.get(&self.buf))
    }

    /// All values of a header by name text (known or extension, case-insensitive).
    pub fn get_raw<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let hn = HeaderName::from_name(name);
        self.entries
            .iter()
            .filter(move |e| {
                e.name == hn
                    && (hn != HeaderName::Other
                        || e.name_span.get(&self.buf).eq_ignore_ascii_case(name))
            })
            .map(|e| e.value.get(&self.buf))
    }

    /// Every comma-separated element of every line of a list header (RFC 3261 §7.3.1).
    pub fn list(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.get_all(name).flat_map(CommaList::new)
    }

    /// Whether a header is present.
    pub fn contains(&self, name: HeaderName) -> bool {
        self.entries.iter().any(|e| e.name == name)
    }

    /// Number of lines of a header.
    pub fn count(&self, name: HeaderName) -> usize {
        self.entries.iter().filter(|e| e.name == name).count()
    }

    /// Iterates `(name spelling, name, value)` in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, HeaderName, &str)> + '_ {
        self.entries.iter().map(|e| {
            let n = if e.name == HeaderName::Other {
                e.name_span.get(&self.buf)
            } else {
                e.name.as_str()
            };
            (n, e.name, e.value.get(&self.buf))
        })
    }

    /// Appends every header of `name` from `other` (RFC 3261 §8.2.6.2 copies Via etc.).
    pub fn copy_from(&mut self, other: &Headers, name: HeaderName) {
        for v in other.get_all(name) {
            self.push(name, v);
        }
    }

    /// Writes `Name: value\r\n` lines, skipping Content-Length (the printer writes it).
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        for (n, hn, v) in self.iter() {
            if hn == HeaderName::ContentLength {
                continue;
            }
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Debug output redacts credentials (`response`, `cnonce`, ...): only the scheme and the
/// `username`/`realm` of Authorization and Proxy-Authorization are shown; join tokens in
/// URIs are hidden too.
impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_list();
        for (n, hn, v) in self.iter() {
            if hn.is_sensitive() {
                m.entry(&format_args!("{n}: {}", crate::auth::redact_credentials(v)));
            } else {
                m.entry(&format_args!("{n}: {}", crate::log::redact_join_tokens(v)));
            }
        }
        m.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_compact_forms() {
        assert_eq!(HeaderName::from_name("v"), HeaderName::Via);
        assert_eq!(HeaderName::from_name("ViA"), HeaderName::Via);
        assert_eq!(HeaderName::from_name("I"), HeaderName::CallId);
        assert_eq!(HeaderName::from_name("x"), HeaderName::SessionExpires);
        assert_eq!(HeaderName::from_name("C%6Fntact"), HeaderName::Other);
        assert_eq!(
            HeaderName::from_name("Session-Expires"),
            HeaderName::SessionExpires
        );
    }

    #[test]
    fn push_set_remove_and_injection_guard() {
        let mut h = Headers::new();
        h.push(HeaderName::Via, "SIP/2.0/UDP a");
        h.push(HeaderName::Via, "SIP/2.0/UDP b");
        h.push_raw("X-Foo", "bar\r\nInjected: yes");
        h.prepend(HeaderName::Via, "SIP/2.0/UDP top");
        assert_eq!(h.get(HeaderName::Via), Some("SIP/2.0/UDP top"));
        assert_eq!(h.get_raw("x-foo").next(), Some("bar  Injected: yes"));
        h.set(HeaderName::Via, "SIP/2.0/UDP only");
        assert_eq!(h.count(HeaderName::Via), 1);
        assert_eq!(h.remove_raw("X-FOO"), 1);
        assert_eq!(h.len(), 1);
    }
}
