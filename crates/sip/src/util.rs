//! Small helpers shared by the layers.

use crate::write::HeaderValue;

/// 64-bit FNV-1a: a fast, non-cryptographic hash for deterministic identifiers.
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A To tag derived from the request, so retransmissions get the same answer.
pub(crate) fn stable_tag(call_id: &str, cseq: &str) -> String {
    format!("{:x}", fnv1a(&[call_id, cseq]))
}

/// A From/To value with `;tag=<tag>` added (RFC 3261 §8.2.6.2). A value that already ends
/// in a bare `;` (legal to read, an empty parameter) would otherwise become `;;tag=`, which
/// no parser reads back; [`HeaderValue`] does the joining.
pub(crate) fn with_tag(value: &str, tag: &str) -> String {
    HeaderValue::new(value)
        .param("tag", Some(tag))
        .into_string()
}

#[cfg(test)]
mod with_tag_tests {
    use super::with_tag;

    #[test]
    fn a_trailing_empty_parameter_does_not_double_the_semicolon() {
        assert_eq!(with_tag("<sip:a@b>", "x"), "<sip:a@b>;tag=x");
        assert_eq!(with_tag("sip:a@b ;", "x"), "sip:a@b;tag=x");
        assert_eq!(with_tag("sip:a@b;;  ", "x"), "sip:a@b;tag=x");
    }
}
