//! Small helpers shared by the layers.

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
