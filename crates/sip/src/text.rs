//! Character classes and small lexical helpers from the RFC 3261 §25.1 grammar.

use std::borrow::Cow;

/// A byte range into a buffer owned elsewhere (a header buffer or a URI string).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Self {
        // Messages are bounded by `ParseLimits::max_message_size`, far below 4 GiB.
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    /// The text this span covers, or "" if it does not fit (never panics).
    pub(crate) fn get<'a>(&self, s: &'a str) -> &'a str {
        s.get(self.start as usize..self.end as usize).unwrap_or("")
    }
}

pub(crate) const TOKEN: u8 = 1;
pub(crate) const WORD: u8 = 2;
pub(crate) const UNRESERVED: u8 = 4;
pub(crate) const USER: u8 = 8;
pub(crate) const PASSWORD: u8 = 16;
pub(crate) const PARAM: u8 = 32;
pub(crate) const HEADER: u8 = 64;
pub(crate) const LWS: u8 = 128;

const fn has(set: &[u8], b: u8) -> bool {
    let mut i = 0;
    while i < set.len() {
        if set[i] == b {
            return true;
        }
        i += 1;
    }
    false
}

/// Character classes of RFC 3261 §25.1 as one lookup table (bit flags above).
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mut f = 0;
        let unreserved = alnum || has(b"-_.!~*'()", b);
        if alnum || has(b"-.!%*_+`'~", b) {
            f |= TOKEN;
        }
        if alnum || has(b"-.!%*_+`'~()<>:\\\"/[]?{}", b) {
            f |= WORD;
        }
        if unreserved {
            f |= UNRESERVED;
        }
        if unreserved || has(b"&=+$,;?/", b) {
            f |= USER;
        }
        if unreserved || has(b"&=+$,", b) {
            f |= PASSWORD;
        }
        if unreserved || has(b"[]/:&+$", b) {
            f |= PARAM;
        }
        if unreserved || has(b"[]/?:+$", b) {
            f |= HEADER;
        }
        if has(b" \t\r\n", b) {
            f |= LWS;
        }
        t[i] = f;
        i += 1;
    }
    t
};

/// Whether `b` is in the character class `class`.
#[inline(always)]
pub(crate) fn is(class: u8, b: u8) -> bool {
    CLASS[b as usize] & class != 0
}

/// `token` characters (RFC 3261 §25.1): alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" /
/// "`" / "'" / "~".
#[inline(always)]
pub(crate) fn is_token_char(b: u8) -> bool {
    is(TOKEN, b)
}

/// `word` characters (RFC 3261 §25.1), used by Call-ID.
#[inline(always)]
pub(crate) fn is_word_char(b: u8) -> bool {
    is(WORD, b)
}

/// Linear white space after unfolding (SP, HTAB; CR and LF can only be part of a fold).
#[inline(always)]
pub(crate) fn is_lws(b: u8) -> bool {
    is(LWS, b)
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

pub(crate) fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|&c| !is_lws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|&c| !is_lws(c)).map_or(start, |i| i + 1);
    // LWS bytes are ASCII, so both ends are char boundaries.
    s.get(start..end.max(start)).unwrap_or("")
}

pub(crate) fn trim_start_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|&c| !is_lws(c)).unwrap_or(b.len());
    s.get(start..).unwrap_or("")
}

/// Checks that every `%` in `s` starts a valid `escaped` triplet (`%` HEXDIG HEXDIG).
pub(crate) fn escapes_valid(s: &[u8], i: usize) -> bool {
    matches!((s.get(i + 1), s.get(i + 2)), (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit())
}

/// Splits a quoted-string at the start of `s` (which must begin with `"`): returns the
/// whole quoted string including its quotes, and the rest. `None` if it is unterminated
/// (RFC 4475 §3.1.2.6).
pub(crate) fn split_quoted(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some((&s[..=i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// Removes surrounding quotes and resolves `quoted-pair`s (RFC 3261 §25.1). Unquoted input is
/// returned unchanged.
pub fn unquote(s: &str) -> Cow<'_, str> {
    let inner = match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) if s.len() >= 2 => inner,
        _ => return Cow::Borrowed(s),
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Decodes `%XX` escapes (RFC 3261 §19.1.2). Invalid escapes are kept literally; the result
/// may contain any byte, including NUL (RFC 4475 §3.1.1.4).
pub fn percent_decode(s: &str) -> Cow<'_, [u8]> {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && escapes_valid(b, i) {
            out.push((hex_val(b[i + 1]) << 4) | hex_val(b[i + 2]));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Cow::Owned(out)
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Iterates over the elements of a comma-separated header value (RFC 3261 §7.3.1), honouring
/// quoted strings and `<...>` so that commas inside them do not split. Elements are trimmed
/// of LWS; empty elements are yielded (as "") so validators can reject them.
#[derive(Clone, Debug)]
pub struct CommaList<'a> {
    rest: Option<&'a str>,
}

impl<'a> CommaList<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        CommaList { rest: Some(s) }
    }
}

impl<'a> Iterator for CommaList<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let end = find_unquoted(s, b',', true);
        match end {
            Some(i) => {
                self.rest = Some(&s[i + 1..]);
                Some(trim_lws(&s[..i]))
            }
            None => {
                self.rest = None;
                Some(trim_lws(s))
            }
        }
    }
}

/// Finds `needle` outside quoted strings (and outside `<...>` if `angle` is set).
pub(crate) fn find_unquoted(s: &str, needle: u8, angle: bool) -> Option<usize> {
    let b = s.as_bytes();
    let open = if angle { b'<' } else { b'"' };
    let mut i = 0;
    while i < b.len() {
        let at = i + memchr::memchr3(needle, b'"', open, &b[i..])?;
        match b[at] {
            c if c == needle => return Some(at),
            b'"' => {
                // Skip the quoted string; an unterminated one runs to the end.
                let mut j = at + 1;
                while j < b.len() {
                    match b[j] {
                        b'\\' => j += 2,
                        b'"' => break,
                        _ => j += 1,
                    }
                }
                i = j + 1;
            }
            _ => {
                // '<': skip to the matching '>' (URIs cannot contain '>' or quotes).
                i = match memchr::memchr(b'>', &b[at..]) {
                    Some(k) => at + k + 1,
                    None => b.len(),
                };
            }
        }
    }
    None
}

/// A small forward-only cursor over a header value.
pub(crate) struct Cursor<'a> {
    pub(crate) s: &'a str,
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    /// Skips LWS; returns how many bytes were skipped.
    pub(crate) fn skip_lws(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
        self.pos - start
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or("")
    }

    pub(crate) fn token(&mut self) -> Option<&'a str> {
        let t = self.take_while(is_token_char);
        (!t.is_empty()).then_some(t)
    }
}

/// Parses a decimal number made only of digits, rejecting signs, spaces and overflow.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().and_then(|v| u32::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_list_respects_quotes_and_angles() {
        let v: Vec<_> = CommaList::new(r#""a,b" <sip:x@y;p=1,2>, <sip:z>,  c  "#).collect();
        assert_eq!(v, vec![r#""a,b" <sip:x@y;p=1,2>"#, "<sip:z>", "c"]);
    }

    #[test]
    fn unquote_and_decode() {
        assert_eq!(unquote(r#""J Rosenberg \\\"""#), r#"J Rosenberg \""#);
        assert_eq!(&*percent_decode("null-%00-x%4"), b"null-\0-x%4");
        assert_eq!(parse_u32("0009"), Some(9));
        assert_eq!(parse_u32("-1"), None);
        assert_eq!(parse_u32("4294967296"), None);
    }
}
