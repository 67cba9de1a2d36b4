//! Known-answer tests: RFC 3711 Appendix B.2 (AES-CM keystream), B.3 (key derivation),
//! RFC 6188 §7.2 (AES-256 key derivation) and RFC 7714 §16.2, §17 (AEAD_AES_256_GCM
//! SRTP and SRTCP).

use super::crypto::{CmCipher, GcmTransform, derive, label};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).unwrap()
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    // Session key 2B7E..., session salt F0F1...FCFD, SSRC 0, ROC 0, SEQ 0.
    let cipher = CmCipher::Aes128(<aes::Aes128Enc as aes::cipher::KeyInit>::new(
        aes::cipher::generic_array::GenericArray::from_slice(&hex(
            "2B7E151628AED2A6ABF7158809CF4F3C",
        )),
    ));
    let mut salt = [0u8; 14];
    salt.copy_from_slice(&hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
    let t = CmTransform::from_session_keys(
        &hex("2B7E151628AED2A6ABF7158809CF4F3C"),
        &[0; 20],
        salt,
        10,
    );
    let iv = t.iv(0, 0);
    assert_eq!(iv.to_vec(), hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
    let mut ks = vec![0u8; 0xFF02 * 16];
    cipher.apply(iv, &mut ks);
    assert_eq!(
        ks[..48],
        hex(
            "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
             41E95B3BB0A2E8DD477901E4FCA894C0"
        )[..]
    );
    assert_eq!(
        ks[0xFEFF * 16..0xFF00 * 16],
        hex("EC8CDF7398607CB0F2D21675EA9EA1E4")[..]
    );
    assert_eq!(
        ks[0xFF00 * 16..0xFF01 * 16],
        hex("362B7C3C6773516318A077D7FC5073AE")[..]
    );
    assert_eq!(
        ks[0xFF01 * 16..0xFF02 * 16],
        hex("6A2CC3787889374FBEB4C81B17BA6C44")[..]
    );
    // The transform's own cipher gives the same keystream.
    let mut ks2 = vec![0u8; 48];
    t.cipher.apply(iv, &mut ks2);
    assert_eq!(ks2, ks[..48]);
}

#[test]
fn rfc3711_b3_key_derivation() {
    let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
    let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
    let mut enc = [0u8; 16];
    derive(&key, &salt, label::RTP_ENCRYPTION, &mut enc);
    assert_eq!(enc.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut s = [0u8; 14];
    derive(&key, &salt, label::RTP_SALT, &mut s);
    assert_eq!(s.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    // B.3 lists 94 octets of the auth keystream; SRTP uses the first 20.
    let mut auth = [0u8; 94];
    derive(&key, &salt, label::RTP_AUTH, &mut auth);
    assert_eq!(
        auth.to_vec(),
        hex(
            "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE
             E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25
             6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2"
        )
    );
}

#[test]
fn rfc6188_aes256_key_derivation() {
    let key = hex("F0F04914B513F2763A1B1FA130F10E2998F6F6E43E4309D1E622A0E332B9F1B6");
    let salt = hex("3B04803DE51EE7C96423AB5B78D2");
    let mut enc = [0u8; 32];
    derive(&key, &salt, label::RTP_ENCRYPTION, &mut enc);
    assert_eq!(
        enc.to_vec(),
        hex("5BA1064E30EC51613CAD926C5A28EF731EC7FB397F70A960653CAF06554CD8C4")
    );
    let mut s = [0u8; 14];
    derive(&key, &salt, label::RTP_SALT, &mut s);
    assert_eq!(s.to_vec(), hex("FA31791685CA444A9E07C6C64E93"));
    let mut auth = [0u8; 20];
    derive(&key, &salt, label::RTP_AUTH, &mut auth);
    assert_eq!(
        auth.to_vec(),
        hex("FD9C32D39ED5FBB5A9DC96B30818454D1313DC05")
    );
}

const RFC7714_KEY_256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const RFC7714_SALT: &str = "517569642070726f2071756f";
const RFC7714_RTP: &str = "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973
                           20646976 69736120 696e2070 61727465 73207472 6573";
const RFC7714_SRTP_256: &str = "8040f17b 8041f8d3 5501a0b2 32b1de78 a822fe12 ef9f78fa 332e33aa
                                b1801238 9a58e2f3 b50b2a02 76ffae0f 1ba63799 b87b7aa3 db36dfff
                                d6b0f9bb 7878d7a7 6c13";
const RFC7714_RTCP: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930
                            4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef";
const RFC7714_SRTCP_256: &str = "81c8000d 4d617273 d50ae4d1 f5ce5d30 4ba297e4 7d470c28 2c3ece5d
                                 bffe0a50 a2eaa5c1 110555be 8415f658 c61de047 6f1b6fad 1d1eb30c
                                 4446839f 57ff6f6c b26ac3be 800005d4";
const RFC7714_SRTCP_256_TAG_ONLY: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a
                                          0000e930 4c756e61 deadbeef deadbeef deadbeef deadbeef
                                          deadbeef 91db4afb feee5a97 8fab4393 ed2615fe 000005d4";

/// A context whose session keys are the RFC 7714 §16/§17 ones (the vectors skip the KDF).
fn rfc7714_context(suite: SrtpSuite) -> SrtpContext {
    let mut salt = [0u8; 12];
    salt.copy_from_slice(&hex(RFC7714_SALT));
    let key = hex(RFC7714_KEY_256);
    let tag = suite.rtp_tag_len();
    SrtpContext::from_transforms(
        suite,
        SrtpConfig::default(),
        Transform::Gcm(GcmTransform::from_session_keys(&key, salt, tag)),
        Transform::Gcm(GcmTransform::from_session_keys(&key, salt, tag)),
    )
    .unwrap()
}

#[test]
fn rfc7714_16_2_srtp_aead_aes_256_gcm() {
    let mut tx = rfc7714_context(SrtpSuite::AeadAes256Gcm);
    let mut out = Vec::new();
    tx.protect_rtp(&hex(RFC7714_RTP), &mut out).unwrap();
    assert_eq!(out, hex(RFC7714_SRTP_256));

    let mut rx = rfc7714_context(SrtpSuite::AeadAes256Gcm);
    let mut plain = Vec::new();
    rx.unprotect_rtp(&hex(RFC7714_SRTP_256), &mut plain)
        .unwrap();
    assert_eq!(plain, hex(RFC7714_RTP));
    assert_eq!(
        rx.unprotect_rtp(&hex(RFC7714_SRTP_256), &mut plain),
        Err(SrtpError::Replay { index: 0xf17b })
    );
    // Any flipped bit (header, ciphertext or tag) is refused.
    let wire = hex(RFC7714_SRTP_256);
    // Header bits that are neither parsed structure nor the index: M/PT, timestamp;
    // then ciphertext and tag.
    let bytes = [1usize, 4, 5, 6, 7].into_iter().chain(12..wire.len());
    for bit in bytes.flat_map(|b| (0..8).map(move |i| b * 8 + i)) {
        let mut bad = wire.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let mut rx = rfc7714_context(SrtpSuite::AeadAes256Gcm);
        assert_eq!(
            rx.unprotect_rtp(&bad, &mut plain),
            Err(SrtpError::AuthFailed),
            "bit {bit}"
        );
    }
}

#[test]
fn rfc7714_gcm_8_is_the_truncated_tag() {
    // AEAD_AES_256_GCM_8 uses the same transform with the leftmost 8 tag octets.
    let full = hex(RFC7714_SRTP_256);
    let expected = &full[..full.len() - 8];
    let mut tx = rfc7714_context(SrtpSuite::AeadAes256Gcm8);
    let mut out = Vec::new();
    tx.protect_rtp(&hex(RFC7714_RTP), &mut out).unwrap();
    assert_eq!(out, expected);
    let mut rx = rfc7714_context(SrtpSuite::AeadAes256Gcm8);
    let mut plain = Vec::new();
    rx.unprotect_rtp(expected, &mut plain).unwrap();
    assert_eq!(plain, hex(RFC7714_RTP));
    let mut bad = expected.to_vec();
    *bad.last_mut().unwrap() ^= 0x80;
    let mut rx = rfc7714_context(SrtpSuite::AeadAes256Gcm8);
    assert_eq!(
        rx.unprotect_rtp(&bad, &mut plain),
        Err(SrtpError::AuthFailed)
    );
}

#[test]
fn rfc7714_17_srtcp_aead_aes_256_gcm() {
    let ssrc = 0x4d61_7273;
    let mut tx = rfc7714_context(SrtpSuite::AeadAes256Gcm);
    tx.tx_rtcp.insert(ssrc, 0, 0x5d4);
    let mut out = Vec::new();
    tx.protect_rtcp(&hex(RFC7714_RTCP), &mut out).unwrap();
    assert_eq!(out, hex(RFC7714_SRTCP_256));

    let mut rx = rfc7714_context(SrtpSuite::AeadAes256Gcm);
    let mut plain = Vec::new();
    rx.unprotect_rtcp(&hex(RFC7714_SRTCP_256), &mut plain)
        .unwrap();
    assert_eq!(plain, hex(RFC7714_RTCP));
    assert_eq!(
        rx.unprotect_rtcp(&hex(RFC7714_SRTCP_256), &mut plain),
        Err(SrtpError::Replay { index: 0x5d4 })
    );

    // §17.4: E = 0, tag over the whole packet.
    let mut rx = rfc7714_context(SrtpSuite::AeadAes256Gcm);
    rx.unprotect_rtcp(&hex(RFC7714_SRTCP_256_TAG_ONLY), &mut plain)
        .unwrap();
    assert_eq!(plain, hex(RFC7714_RTCP));
    // And our sealing with E = 0 reproduces it.
    let mut buf = hex(RFC7714_RTCP);
    tx.seal_rtcp(&mut buf, ssrc, 0x5d4, false);
    assert_eq!(buf, hex(RFC7714_SRTCP_256_TAG_ONLY));

    // Flipping the E flag or index breaks authentication.
    let mut bad = hex(RFC7714_SRTCP_256);
    let n = bad.len();
    bad[n - 1] ^= 1;
    let mut rx = rfc7714_context(SrtpSuite::AeadAes256Gcm);
    assert_eq!(
        rx.unprotect_rtcp(&bad, &mut plain),
        Err(SrtpError::AuthFailed)
    );
}

#[test]
fn srtcp_index_exhaustion_is_refused() {
    let mut tx = rfc7714_context(SrtpSuite::AeadAes256Gcm);
    tx.tx_rtcp.insert(7, 0, replay::MAX_SRTCP_INDEX);
    let pkt = [0x80, 201, 0, 1, 0, 0, 0, 7];
    let mut out = Vec::new();
    tx.protect_rtcp(&pkt, &mut out).unwrap();
    assert_eq!(out[out.len() - 4..], [0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(
        tx.protect_rtcp(&pkt, &mut out),
        Err(SrtpError::KeyExhausted)
    );
    assert!(out.is_empty());
}

#[test]
fn srtp_index_exhaustion_is_refused() {
    let mut tx = rfc7714_context(SrtpSuite::AeadAes256Gcm);
    tx.tx_rtp.insert(0x5501_a0b2, 0, replay::MAX_SRTP_INDEX);
    let mut pkt = hex(RFC7714_RTP);
    let mut out = Vec::new();
    pkt[2..4].copy_from_slice(&[0xFF, 0xFF]);
    tx.protect_rtp(&pkt, &mut out).unwrap();
    // Sequence 0 after 0xFFFF would need ROC 2^32.
    pkt[2..4].copy_from_slice(&[0, 0]);
    assert_eq!(tx.protect_rtp(&pkt, &mut out), Err(SrtpError::KeyExhausted));
}
