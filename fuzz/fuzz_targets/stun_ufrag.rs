//! `engine::webrtc::stun_local_ufrag`, which routes every datagram reaching the shared
//! WebRTC port before anything else has looked at it. Checked beyond "no panic": a ufrag
//! found is non-empty, holds no colon, and is a slice of the USERNAME in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(ufrag) = engine::webrtc::stun_local_ufrag(data) {
        assert!(!ufrag.is_empty() && !ufrag.contains(':'));
        let start = ufrag.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start >= 24 && start + ufrag.len() <= data.len());
    }
});
