//! `;name[=value]` parameter lists (URI parameters and header `generic-param`s, RFC 3261
//! §25.1), read without copying.

use std::fmt;

use crate::text::{find_unquoted, is_token, is_token_char, split_quoted, trim_lws};

/// A parameter list: the text after the first `;`, iterated lazily. Names compare
/// case-insensitively; values are returned as on the wire (quoted values keep their quotes;
/// use [`crate::unquote`]).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Params<'a> {
    raw: &'a str,
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> Params<'a> {
    pub(crate) fn new(raw: &'a str) -> Self {
        Params { raw }
    }

    /// The raw text (without the leading `;`).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// `true` if there are no parameters.
    pub fn is_empty(&self) -> bool {
        trim_lws(self.raw).is_empty()
    }

    /// Iterates `(name, value)` pairs.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            rest: if self.raw.is_empty() {
                None
            } else {
                Some(self.raw)
            },
        }
    }

    /// Looks a parameter up by case-insensitive name: `Some(None)` for a flag parameter.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of a parameter, if present with a value.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).flatten()
    }

    /// Whether a parameter is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<'a> IntoIterator for Params<'a> {
    type Item = (&'a str, Option<&'a str>);
    type IntoIter = ParamIter<'a>;
    fn into_iter(self) -> ParamIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`Params`] list.
#[derive(Clone, Debug)]
pub struct ParamIter<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest?;
        let (item, rest) = match find_unquoted(s, b';', false) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        self.rest = rest;
        Some(split_param(item))
    }
}

fn split_param(item: &str) -> (&str, Option<&str>) {
    match item.find('=') {
        Some(eq) => (trim_lws(&item[..eq]), Some(trim_lws(&item[eq + 1..]))),
        None => (trim_lws(item), None),
    }
}

/// Validates a header `generic-param` list (RFC 3261 §25.1): every name is a token and
/// every value a token, an IPv6 reference or a quoted string. Empty entries (`;;`) are
/// invalid (RFC 4475 §3.1.2.1).
pub(crate) fn valid_generic_params(raw: &str) -> bool {
    Params::new(raw).iter().all(|(name, value)| {
        is_token(name)
            && match value {
                None => true,
                Some(v) => valid_gen_value(v),
            }
    })
}

fn valid_gen_value(v: &str) -> bool {
    if v.starts_with('"') {
        return matches!(split_quoted(v), Some((_, rest)) if rest.is_empty());
    }
    if let Some(inner) = v.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !v.is_empty() && v.bytes().all(|b| is_token_char(b) || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_iterate_and_validate() {
        let p = Params::new(" newparam =\r\n newvalue ;  secondparam ; q = 0.33");
        let v: Vec<_> = p.iter().collect();
        assert_eq!(
            v,
            vec![
                ("newparam", Some("newvalue")),
                ("secondparam", None),
                ("q", Some("0.33"))
            ]
        );
        assert!(valid_generic_params(p.as_str()));
        assert!(!valid_generic_params(";;"));
        assert!(valid_generic_params(r#"x="a;b";tag=1"#));
        assert_eq!(Params::new(r#"x="a;b";tag=1"#).value("TAG"), Some("1"));
    }
}
