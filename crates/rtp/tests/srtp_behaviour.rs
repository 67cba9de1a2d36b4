//! SRTP context behaviour through the public API: replay window, SRTCP index, error
//! blame, key lengths and Debug redaction.

use rtp::srtp::{SrtpConfig, SrtpContext, SrtpError, SrtpSuite};

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0x55; 40]);
    p
}

fn pair(suite: SrtpSuite, window: usize) -> (SrtpContext, SrtpContext) {
    let key = vec![3u8; suite.master_key_len()];
    let salt = vec![4u8; suite.master_salt_len()];
    let cfg = SrtpConfig {
        replay_window: window,
        ..SrtpConfig::default()
    };
    (
        SrtpContext::with_config(suite, &key, &salt, cfg).unwrap(),
        SrtpContext::with_config(suite, &key, &salt, cfg).unwrap(),
    )
}

#[test]
fn replay_window_size_is_configurable() {
    for suite in SrtpSuite::ALL {
        for window in [64usize, 128, 1024] {
            let (mut tx, mut rx) = pair(suite, window);
            let mut wires = Vec::new();
            for seq in 0..1500u16 {
                let mut w = Vec::new();
                tx.protect_rtp(&rtp(seq, 1), &mut w).unwrap();
                wires.push(w);
            }
            let mut out = Vec::new();
            // Deliver 1499 first, then older ones.
            rx.unprotect_rtp(&wires[1499], &mut out).unwrap();
            let within = 1499 - (window - 1);
            rx.unprotect_rtp(&wires[within], &mut out).unwrap();
            assert_eq!(
                rx.unprotect_rtp(&wires[within - 1], &mut out),
                Err(SrtpError::ReplayTooOld {
                    index: (within - 1) as u64
                }),
                "{suite} window {window}"
            );
            assert_eq!(
                rx.unprotect_rtp(&wires[within], &mut out),
                Err(SrtpError::Replay {
                    index: within as u64
                })
            );
            // Out-of-order inside the window is fine.
            rx.unprotect_rtp(&wires[1498], &mut out).unwrap();
        }
    }
    let key = [0u8; 16];
    let salt = [0u8; 14];
    for bad in [0usize, 63, 40_000] {
        let cfg = SrtpConfig {
            replay_window: bad,
            ..SrtpConfig::default()
        };
        assert_eq!(
            SrtpContext::with_config(SrtpSuite::AesCm128HmacSha1_80, &key, &salt, cfg).unwrap_err(),
            SrtpError::InvalidConfig
        );
    }
}

#[test]
fn srtcp_index_increments_per_ssrc_and_replays_are_refused() {
    for suite in SrtpSuite::ALL {
        let (mut tx, mut rx) = pair(suite, 128);
        let sr = |ssrc: u32| {
            let mut p = vec![0x80, 201, 0, 1];
            p.extend_from_slice(&ssrc.to_be_bytes());
            p
        };
        let mut wires = Vec::new();
        for i in 0..5u32 {
            for ssrc in [10u32, 20] {
                let mut w = Vec::new();
                tx.protect_rtcp(&sr(ssrc), &mut w).unwrap();
                let at = if suite.is_aead() { w.len() - 4 } else { 8 };
                assert_eq!(w[at..at + 4], (0x8000_0000 | i).to_be_bytes());
                wires.push(w);
            }
        }
        let mut out = Vec::new();
        // Deliver in reverse: older indices inside the window are accepted.
        for w in wires.iter().rev() {
            rx.unprotect_rtcp(w, &mut out).unwrap();
        }
        for w in &wires {
            assert!(matches!(
                rx.unprotect_rtcp(w, &mut out),
                Err(SrtpError::Replay { .. })
            ));
        }
    }
}

#[test]
fn errors_by_blame_for_short_and_malformed_input() {
    for suite in SrtpSuite::ALL {
        let (_, mut rx) = pair(suite, 128);
        let mut out = Vec::new();
        assert!(matches!(
            rx.unprotect_rtp(&[0x80, 0, 0], &mut out),
            Err(SrtpError::Rtp(_))
        ));
        // Header only, no room for the tag.
        assert!(matches!(
            rx.unprotect_rtp(&rtp(1, 1)[..12], &mut out),
            Err(SrtpError::TooShort { .. })
        ));
        assert!(matches!(
            rx.unprotect_rtp(&[0x40; 40], &mut out),
            Err(SrtpError::Rtp(_))
        ));
        assert!(matches!(
            rx.unprotect_rtcp(&[0x80, 200, 0, 1, 0, 0, 0, 1, 0, 0], &mut out),
            Err(SrtpError::TooShort { .. })
        ));
        assert_eq!(
            rx.unprotect_rtcp(&[0x40; 64], &mut out),
            Err(SrtpError::RtcpVersion)
        );
        // Garbage of plausible size fails authentication, and leaves `out` empty.
        let mut junk = rtp(9, 9);
        junk.extend_from_slice(&[0u8; 16]);
        assert_eq!(
            rx.unprotect_rtp(&junk, &mut out),
            Err(SrtpError::AuthFailed)
        );
        assert!(out.is_empty());
    }
}

#[test]
fn key_lengths_are_checked_and_debug_hides_keys() {
    let suite = SrtpSuite::AeadAes256Gcm;
    assert_eq!(
        SrtpContext::new(suite, &[0u8; 16], &[0u8; 12]).unwrap_err(),
        SrtpError::MasterKeyLength {
            expected: 32,
            got: 16
        }
    );
    assert_eq!(
        SrtpContext::new(suite, &[0u8; 32], &[0u8; 14]).unwrap_err(),
        SrtpError::MasterSaltLength {
            expected: 12,
            got: 14
        }
    );
    let ctx = SrtpContext::new(suite, &[0xAB; 32], &[0xCD; 12]).unwrap();
    let dbg = format!("{ctx:?}");
    assert!(dbg.contains("AeadAes256Gcm"));
    assert!(
        !dbg.to_lowercase().contains("ab, ") && !dbg.contains("171"),
        "{dbg}"
    );
}

#[test]
fn suite_names_roundtrip_and_tag_lengths() {
    for suite in SrtpSuite::ALL {
        assert_eq!(SrtpSuite::from_name(suite.name()), Some(suite));
    }
    assert_eq!(SrtpSuite::from_name("AES_CM_128_HMAC_SHA1_81"), None);
    assert_eq!(SrtpSuite::AesCm128HmacSha1_32.rtp_tag_len(), 4);
    assert_eq!(SrtpSuite::AesCm128HmacSha1_32.rtcp_tag_len(), 10);
    assert_eq!(SrtpSuite::AeadAes256Gcm8.rtp_tag_len(), 8);
    assert_eq!(SrtpSuite::AeadAes256Gcm8.master_salt_len(), 12);
}

#[test]
fn many_ssrcs_evict_least_recently_used_state() {
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let key = [1u8; 16];
    let salt = [2u8; 14];
    let cfg = SrtpConfig {
        max_streams: 2,
        ..SrtpConfig::default()
    };
    let mut tx = SrtpContext::with_config(suite, &key, &salt, cfg).unwrap();
    let mut rx = SrtpContext::with_config(suite, &key, &salt, cfg).unwrap();
    let (mut w, mut out) = (Vec::new(), Vec::new());
    for ssrc in 1..=5u32 {
        tx.protect_rtp(&rtp(100, ssrc), &mut w).unwrap();
        rx.unprotect_rtp(&w, &mut out).unwrap();
    }
    assert!(rx.rx_roc(5).is_some() && rx.rx_roc(4).is_some());
    assert!(rx.rx_roc(1).is_none());
}
