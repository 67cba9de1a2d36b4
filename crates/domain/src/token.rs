//! Join tokens: the bearer secret a SIP caller (URI parameter `X-chime-join-token`) or a
//! browser (WebSocket subprotocol) presents to join a meeting as one attendee.
//!
//! A token is `base64url(nonce ‖ tag)` without padding, 43 characters: `nonce` is 128 random
//! bits from the OS CSPRNG and `tag` is the first 128 bits of
//! HMAC-SHA-256(server key, "vc-join-token" ‖ attendee id ‖ nonce). The store keeps the nonce
//! and SHA-256(token), never the token: a copy of the database alone does not let anyone join,
//! yet the server (which holds the key, outside the database) can give the same token back
//! when CreateAttendee is repeated for the same ExternalUserId, as AWS does. Deleting the
//! attendee or the meeting deletes the hash, which revokes the token. The base64url alphabet
//! is valid both in a SIP URI parameter (RFC 3261 `paramchar`) and in a WebSocket
//! subprotocol token (RFC 6455 §4.1).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of a token in characters.
pub const TOKEN_LEN: usize = 43;

/// The server's token key. Never logged.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl TokenKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        TokenKey(k)
    }
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TokenKey(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Draws a fresh nonce and returns `(nonce, token)`.
    pub fn mint(&self, attendee_id: &str) -> ([u8; 16], String) {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let token = self.token_for(attendee_id, &nonce);
        (nonce, token)
    }

    /// Re-derives the token of an attendee from its stored nonce.
    pub fn token_for(&self, attendee_id: &str, nonce: &[u8; 16]) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"vc-join-token");
        mac.update(attendee_id.as_bytes());
        mac.update(nonce);
        let tag = mac.finalize().into_bytes();
        let mut raw = [0u8; 32];
        raw[..16].copy_from_slice(nonce);
        raw[16..].copy_from_slice(&tag[..16]);
        URL_SAFE_NO_PAD.encode(raw)
    }
}

/// The value stored for lookup: lowercase hex SHA-256 of the token.
pub fn token_hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// True when `token` has the shape of a join token. Checked before any lookup so that junk
/// from the network costs no database query.
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Constant-time comparison of two stored hashes.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unguessable_and_reproducible() {
        let key = TokenKey::generate();
        let (nonce, t1) = key.mint("a");
        assert_eq!(t1.len(), TOKEN_LEN);
        assert!(well_formed(&t1));
        assert_eq!(key.token_for("a", &nonce), t1);
        assert_ne!(key.token_for("b", &nonce), t1, "bound to the attendee");
        assert_ne!(
            TokenKey::generate().token_for("a", &nonce),
            t1,
            "bound to the key"
        );
        let (_, t2) = key.mint("a");
        assert_ne!(t1, t2);
        assert!(hashes_equal(&token_hash(&t1), &token_hash(&t1)));
        assert!(!hashes_equal(&token_hash(&t1), &token_hash(&t2)));
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}=", &t1[..42])));
        assert_eq!(format!("{key:?}"), "TokenKey(<redacted>)");
    }
}
