//! What the engine's test files share.

use engine::SrtpKeys;
use rtp::srtp::{SrtpContext, SrtpSuite};

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

/// The SRTP contexts of a test peer with `keys(seed)`: (what it sends with, what it
/// receives with); none for seed 0 (plain RTP).
#[allow(dead_code)] // not every test file has SRTP peers
pub fn peer_srtp(seed: u8) -> (Option<SrtpContext>, Option<SrtpContext>) {
    let k = keys(seed);
    let ctx = |key: &[u8], salt: &[u8]| {
        (seed != 0).then(|| SrtpContext::new(SUITE, key, salt).expect("srtp"))
    };
    (
        ctx(&k.remote_key, &k.remote_salt),
        ctx(&k.local_key, &k.local_salt),
    )
}
