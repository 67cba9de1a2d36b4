//! `a=crypto` parsing and printing against RFC 4568's grammar and examples.

use super::*;

// RFC 4568 §4 example line.
const RFC_EXAMPLE: &str = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 \
    inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4";

#[test]
fn parses_rfc4568_example_and_refuses_mki_and_short_lifetime() {
    let a = CryptoAttribute::parse(RFC_EXAMPLE).unwrap();
    assert_eq!(a.tag, 1);
    assert_eq!(a.suite, SrtpSuite::AesCm128HmacSha1_80);
    let k = &a.keys[0];
    assert_eq!(k.lifetime, Some(1 << 20));
    assert_eq!(
        k.mki,
        Some(Mki {
            value: 1,
            length: 4
        })
    );
    assert_eq!(k.material.master_key().len(), 16);
    assert_eq!(k.material.master_salt().len(), 14);
    // "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR" decodes to "=-n@%^x!Bjufr9)?,#5h\`=&]{qiPQ".
    assert_eq!(k.material.master_key(), b"=-n@%^x!Bjufr9)?");
    assert_eq!(a.usable_key(), Err(Unsupported::Mki));
    let mut no_mki = a.clone();
    no_mki.keys[0].mki = None;
    assert_eq!(no_mki.usable_key(), Err(Unsupported::Lifetime(1 << 20)));
    // Printing reproduces the value.
    assert_eq!(
        a.to_sdp_value(),
        RFC_EXAMPLE.strip_prefix("a=crypto:").unwrap()
    );
}

#[test]
fn generate_print_parse_roundtrip_for_all_suites() {
    for suite in SrtpSuite::ALL {
        let a = CryptoAttribute::generate(7, suite);
        let line = a.to_sdp_value();
        let b = CryptoAttribute::parse(&line).unwrap();
        assert_eq!(a, b, "{line}");
        let key = b.usable_key().unwrap();
        assert_eq!(key.material.suite(), suite);
        // Keys from the same suite and generator differ.
        assert_ne!(a, CryptoAttribute::generate(7, suite));
        // And they key a working context.
        key.material.context(b.srtp_config()).unwrap();
    }
}

#[test]
fn lifetimes_and_session_params() {
    let key = CryptoAttribute::generate(1, SrtpSuite::AeadAes256Gcm).to_sdp_value();
    let inline = key.split(' ').nth(2).unwrap();
    let with = |extra: &str| format!("1 AEAD_AES_256_GCM {inline}{extra}");
    let ok = CryptoAttribute::parse(&with("|2^31")).unwrap();
    assert!(ok.usable_key().is_ok());
    let ok = CryptoAttribute::parse(&with("|2147483648")).unwrap();
    assert!(ok.usable_key().is_ok());
    let short = CryptoAttribute::parse(&with("|2147483647")).unwrap();
    assert_eq!(
        short.usable_key(),
        Err(Unsupported::Lifetime(2_147_483_647))
    );
    assert_eq!(
        CryptoAttribute::parse(&with("|2^x")),
        Err(SdesError::BadLifetime)
    );
    let fec = format!(" FEC_KEY={inline}");
    for (param, why) in [
        (" KDR=10", Unsupported::Kdr),
        (" UNENCRYPTED_SRTP", Unsupported::UnencryptedSrtp),
        (" UNENCRYPTED_SRTCP", Unsupported::UnencryptedSrtcp),
        (" UNAUTHENTICATED_SRTP", Unsupported::UnauthenticatedSrtp),
        (fec.as_str(), Unsupported::FecKey),
        (" FOO=1", Unsupported::UnknownParam("FOO=1".into())),
    ] {
        let a = CryptoAttribute::parse(&with(param)).unwrap();
        assert_eq!(a.usable_key(), Err(why), "{param}");
    }
    let a = CryptoAttribute::parse(&with(" FEC_ORDER=SRTP_FEC WSH=256 -X=1")).unwrap();
    assert!(a.usable_key().is_ok());
    assert_eq!(a.srtp_config().replay_window, 256);
    assert!(
        a.to_sdp_value()
            .ends_with(" FEC_ORDER=SRTP_FEC WSH=256 -X=1")
    );
    // Multiple keys.
    let two = CryptoAttribute::parse(&format!("1 AEAD_AES_256_GCM {inline};{inline}")).unwrap();
    assert_eq!(two.usable_key(), Err(Unsupported::MultipleKeys));
}

#[test]
fn malformed_lines_are_typed_errors() {
    let good = CryptoAttribute::generate(1, SrtpSuite::AesCm128HmacSha1_32).to_sdp_value();
    let inline = good.split(' ').nth(2).unwrap().to_owned();
    assert_eq!(
        CryptoAttribute::parse("1 AES_CM_128_HMAC_SHA1_80"),
        Err(SdesError::MissingField)
    );
    assert_eq!(
        CryptoAttribute::parse(&format!("x1 AES_CM_128_HMAC_SHA1_32 {inline}")),
        Err(SdesError::BadTag)
    );
    assert_eq!(
        CryptoAttribute::parse(&format!("1 F8_128_HMAC_SHA1_80 {inline}")),
        Err(SdesError::UnknownSuite("F8_128_HMAC_SHA1_80".into()))
    );
    assert_eq!(
        CryptoAttribute::parse(&format!("1 AES_256_CM_HMAC_SHA1_80 {inline}")),
        Err(SdesError::BadKeyLength {
            expected: 46,
            got: 30
        })
    );
    assert_eq!(
        CryptoAttribute::parse("1 AES_CM_128_HMAC_SHA1_80 inline:!!!"),
        Err(SdesError::BadBase64)
    );
    assert_eq!(
        CryptoAttribute::parse("1 AES_CM_128_HMAC_SHA1_80 uri:http://x"),
        Err(SdesError::BadKeyMethod)
    );
    assert_eq!(
        CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_32 {inline}|1:0")),
        Err(SdesError::BadMki)
    );
    assert_eq!(
        CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_32 {inline} KDR=99")),
        Err(SdesError::BadSessionParam)
    );
}

#[test]
fn unpadded_base64_is_accepted() {
    let a = CryptoAttribute::generate(3, SrtpSuite::Aes256CmHmacSha1_80);
    let line = a.to_sdp_value();
    assert!(line.contains("=="), "46 bytes print with padding");
    let b = CryptoAttribute::parse(&line.replace("==", "")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn debug_never_shows_key_material() {
    let a = CryptoAttribute::generate(1, SrtpSuite::AesCm128HmacSha1_80);
    let dbg = format!("{a:?}");
    let b64 = a.to_sdp_value().split(' ').nth(2).unwrap()["inline:".len()..].to_owned();
    assert!(!dbg.contains(&b64));
    let key = a.keys[0].material.master_key();
    assert!(!dbg.contains(&format!("{key:?}")));
    assert!(dbg.contains("<redacted>"));
}

/// Found by the `rtp_packets` fuzz target: a `FEC_KEY` parsed, then printed as nothing.
#[test]
fn fec_key_is_kept_through_print_and_parse() {
    let line = "1 AES_CM_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkw \
        FEC_KEY=inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4 WSH=128";
    let a = CryptoAttribute::parse(line).unwrap();
    let SessionParam::FecKey(fec) = &a.session_params[0] else {
        panic!("not a FEC key: {:?}", a.session_params);
    };
    assert_eq!(fec.len(), 1);
    assert_eq!(fec[0].material.master_key(), b"=-n@%^x!Bjufr9)?");
    assert_eq!(fec[0].lifetime, Some(1 << 20));
    assert_eq!(fec[0].mki.map(|m| (m.value, m.length)), Some((1, 4)));
    let printed = a.to_sdp_value();
    assert!(
        printed
            .ends_with(" FEC_KEY=inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4 WSH=128"),
        "{printed}"
    );
    assert_eq!(CryptoAttribute::parse(&printed).unwrap(), a);
    assert_eq!(a.usable_key(), Err(Unsupported::FecKey));
    assert!(!format!("{a:?}").contains("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"));
    // Two FEC keys print back as two.
    let two = line.replace(
        "|2^20|1:4",
        "|2^20|1:4;inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
    );
    let b = CryptoAttribute::parse(&two).unwrap();
    assert_eq!(CryptoAttribute::parse(&b.to_sdp_value()).unwrap(), b);
    // A FEC key that is not key-params (the fuzzer's was `FEC_KEY=AES_CM_12...`), has
    // the wrong length for the suite, or is missing, is a malformed session parameter.
    for bad in [
        "FEC_KEY=AES_CM_12Y3ODkw",
        "FEC_KEY=inline:abcd",
        "FEC_KEY=",
        "FEC_KEY",
    ] {
        let l = line.replace(
            "FEC_KEY=inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",
            bad,
        );
        assert_eq!(
            CryptoAttribute::parse(&l),
            Err(SdesError::BadSessionParam),
            "{bad}"
        );
    }
}
