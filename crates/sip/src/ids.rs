//! Identifiers we hand out: Via branches, To/From tags, Call-IDs and cnonces.
//!
//! A peer that could predict them could end or hijack someone else's dialog (a BYE needs
//! only the Call-ID and both tags, RFC 3261 §12.2.2), so they come from a cryptographically
//! secure generator (ChaCha, [`rand::rngs::StdRng`]): tags and Call-IDs carry 128 random
//! bits, branches 96 (RFC 3261 §19.3 asks for at least 32 bits of randomness in a tag).
//! Knowing any number of them tells nothing about the next.
//!
//! [`IdGenerator::from_os`] is what a server uses (seeded from the operating system's
//! generator); [`IdGenerator::seeded`] gives a reproducible sequence for tests and fuzzing.

use std::fmt;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::typed::MAGIC_COOKIE;

/// Draws branches, tags and Call-IDs. See the module documentation.
pub struct IdGenerator {
    rng: StdRng,
}

impl fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdGenerator")
    }
}

impl IdGenerator {
    /// Seeded from the operating system's generator: unguessable.
    pub fn from_os() -> Self {
        IdGenerator {
            rng: StdRng::from_rng(&mut rand::rng()),
        }
    }

    /// A reproducible sequence from `seed` (tests, fuzzing). Not for a server: whoever
    /// learns the seed knows every identifier.
    pub fn seeded(seed: u64) -> Self {
        IdGenerator {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A fresh `z9hG4bK...` branch with 96 random bits (RFC 3261 §8.1.1.7).
    pub fn branch(&mut self) -> String {
        let a = self.rng.next_u64();
        let b = self.rng.next_u32();
        format!("{MAGIC_COOKIE}{a:016x}{b:08x}")
    }

    /// A fresh tag, Call-ID local part or cnonce: 128 random bits in hex.
    pub fn token(&mut self) -> String {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_bits_and_branches_96() {
        let mut ids = IdGenerator::seeded(1);
        let t = ids.token();
        assert_eq!(t.len(), 32);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        let b = ids.branch();
        assert!(b.starts_with(MAGIC_COOKIE));
        assert_eq!(b.len(), MAGIC_COOKIE.len() + 24);
    }

    #[test]
    fn seeded_is_reproducible_and_os_differs() {
        let a: Vec<_> = (0..4).map(|_| IdGenerator::seeded(9).token()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = IdGenerator::from_os();
        let mut y = IdGenerator::from_os();
        assert_ne!(x.token(), y.token());
    }

    /// Consecutive identifiers share no structure a counter would leave: no two tokens of
    /// a run are equal, and their XOR is not the small difference two counter values give.
    #[test]
    fn consecutive_tokens_are_not_a_counter() {
        let mut ids = IdGenerator::seeded(3);
        let toks: Vec<u128> = (0..1000)
            .map(|_| u128::from_str_radix(&ids.token(), 16).unwrap())
            .collect();
        let mut sorted = toks.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), toks.len());
        for w in toks.windows(2) {
            assert!((w[0] ^ w[1]).count_ones() > 16, "{:x} {:x}", w[0], w[1]);
        }
    }
}
