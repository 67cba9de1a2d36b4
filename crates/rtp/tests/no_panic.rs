//! Arbitrary bytes never panic the parsers or the SRTP receive path (network input).

use proptest::prelude::*;
use rtp::packet::RtpPacket;
use rtp::rtcp::{RtcpPacket, parse_compound};
use rtp::sdes::CryptoAttribute;
use rtp::srtp::{SrtpContext, SrtpSuite};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rtp_parse_never_panics(mut buf in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Some(b) = buf.first_mut() { *b = (*b & 0x3F) | 0x80; }
        if let Ok(p) = RtpPacket::parse(&buf) {
            let _ = (p.payload(), p.csrcs().count(), p.padding_len());
            if let Some(e) = p.extension()
                && let Some(it) = e.elements()
            {
                let _ = it.count();
            }
        }
    }

    #[test]
    fn rtcp_parse_never_panics(mut buf in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Some(b) = buf.first_mut() { *b = (*b & 0x3F) | 0x80; }
        for (p, _) in parse_compound(&buf).flatten() {
            match p {
                RtcpPacket::SenderReport(sr) => { let _ = sr.report_blocks().count(); }
                RtcpPacket::ReceiverReport(rr) => { let _ = rr.report_blocks().count(); }
                RtcpPacket::SourceDescription(s) => {
                    for c in s.chunks() { let _ = c.items().count(); }
                }
                RtcpPacket::Bye(b) => { let _ = b.ssrcs().count(); }
                _ => {}
            }
        }
    }

    #[test]
    fn srtp_unprotect_never_panics(
        suite in 0usize..6,
        mut buf in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let suite = SrtpSuite::ALL[suite];
        let mut ctx = SrtpContext::new(
            suite, &vec![1; suite.master_key_len()], &vec![2; suite.master_salt_len()],
        ).unwrap();
        if let Some(b) = buf.first_mut() { *b = (*b & 0x3F) | 0x80; }
        let mut out = Vec::new();
        prop_assert!(ctx.unprotect_rtp(&buf, &mut out).is_err());
        prop_assert!(ctx.unprotect_rtcp(&buf, &mut out).is_err());
    }

    #[test]
    fn crypto_attribute_parse_never_panics(s in "[ -~]{0,120}") {
        let _ = CryptoAttribute::parse(&s);
        let _ = CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{s}"));
    }
}
