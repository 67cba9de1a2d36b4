//! Identifier formats.

use rand::Rng;

/// A voice connector id: 22 lowercase alphanumerics, as AWS issues them
/// (`abcdef1ghij2klmno3pqr4`). 36^22 ≈ 2^113 values, drawn from the OS CSPRNG.
pub fn new_voice_connector_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..22)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// True for a well-formed voice connector id.
pub fn is_voice_connector_id(s: &str) -> bool {
    s.len() == 22
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A lowercase hyphenated UUID v4, used for meetings, attendees and phone-number orders.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_connector_ids_have_the_aws_form() {
        let a = new_voice_connector_id();
        assert!(is_voice_connector_id(&a), "{a}");
        assert_ne!(a, new_voice_connector_id());
        assert!(!is_voice_connector_id("ABCDEF1GHIJ2KLMNO3PQR4"));
        assert!(!is_voice_connector_id("abc"));
    }
}
