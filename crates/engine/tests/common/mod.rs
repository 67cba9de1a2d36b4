//! What the engine's test files share.

use engine::SrtpKeys;
use rtp::srtp::SrtpSuite;

pub const SUITE: SrtpSuite = SrtpSuite::AesCm128HmacSha1_80;

/// A leg's SRTP keys from one byte: what the peer sends with (`remote_*`) and what the
/// engine sends with (`local_*`) differ.
pub fn keys(seed: u8) -> SrtpKeys {
    SrtpKeys {
        suite: SUITE,
        remote_key: vec![seed; 16],
        remote_salt: vec![seed ^ 0x55; 14],
        local_key: vec![seed.wrapping_add(100); 16],
        local_salt: vec![seed ^ 0xaa; 14],
    }
}
