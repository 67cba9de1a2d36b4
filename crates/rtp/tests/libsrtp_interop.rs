//! Interop with libsrtp2 for all six suites, both directions, RTP and RTCP, including the
//! ROC wrap at sequence number 65535 and tampering.

mod libsrtp;

use libsrtp::{LibSrtp, SUITES};
use rtp::packet::{ExtensionElement, RtpWriter, encode_extension_elements};
use rtp::rtcp::{self, ReportBlock, SenderInfo, sdes_item};
use rtp::srtp::{SrtpContext, SrtpError, SrtpSuite};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn keys(suite: SrtpSuite, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut r = Lcg(seed ^ 0x5eed);
    (
        r.bytes(suite.master_key_len()),
        r.bytes(suite.master_salt_len()),
    )
}

/// An RTP packet whose shape (CSRCs, extension, padding, size) varies with `i`.
fn rtp_packet(r: &mut Lcg, i: usize, seq: u16, ssrc: u32) -> Vec<u8> {
    let csrcs: Vec<u32> = (0..(i % 3) as u32).map(|c| 0x1000 + c).collect();
    let mut ext = Vec::new();
    let extension = if i % 2 == 1 {
        let level = [0x80 | (i as u8 & 0x7f)];
        let profile = encode_extension_elements(
            &[ExtensionElement {
                id: 1,
                data: &level,
            }],
            &mut ext,
        )
        .unwrap();
        Some((profile, ext.as_slice()))
    } else {
        None
    };
    let payload_len = [0usize, 1, 20, 160, 1200][i % 5];
    let payload = r.bytes(payload_len);
    let mut out = Vec::new();
    RtpWriter {
        marker: i.is_multiple_of(7),
        payload_type: if i.is_multiple_of(2) { 0 } else { 111 },
        sequence_number: seq,
        timestamp: (i as u32).wrapping_mul(160),
        ssrc,
        csrcs: &csrcs,
        extension,
        padding: if i % 4 == 3 { 4 } else { 0 },
    }
    .write(&payload, &mut out)
    .unwrap();
    out
}

fn rtcp_packet(i: usize, ssrc: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let blocks: Vec<ReportBlock> = (0..(i % 3) as u32)
        .map(|b| ReportBlock {
            ssrc: 0x7000 + b,
            extended_highest_seq: i as u32,
            ..Default::default()
        })
        .collect();
    rtcp::write_sender_report(
        &mut out,
        ssrc,
        &SenderInfo {
            ntp_timestamp: i as u64 * 0x1_0000_0000,
            rtp_timestamp: i as u32 * 160,
            packet_count: i as u32,
            octet_count: i as u32 * 160,
        },
        &blocks,
    )
    .unwrap();
    rtcp::write_sdes(&mut out, &[(ssrc, &[(sdes_item::CNAME, b"interop@test")])]).unwrap();
    out
}

#[test]
fn rtp_we_protect_libsrtp_unprotects_and_bytes_match() {
    for (n, suite) in SUITES.into_iter().enumerate() {
        let (key, salt) = keys(suite, n as u64);
        let mut ours = SrtpContext::new(suite, &key, &salt).unwrap();
        let mut theirs_tx = LibSrtp::new(suite, &key, &salt, true);
        let mut theirs_rx = LibSrtp::new(suite, &key, &salt, false);
        let mut r = Lcg(n as u64);
        let (mut a, mut b, mut plain) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..200 {
            let pkt = rtp_packet(&mut r, i, 1000u16.wrapping_add(i as u16), 0xCAFE_0001);
            ours.protect_rtp(&pkt, &mut a).unwrap();
            theirs_tx.protect_rtp(&pkt, &mut b).unwrap();
            assert_eq!(a, b, "{suite} packet {i}: our SRTP differs from libsrtp's");
            theirs_rx
                .unprotect_rtp(&a, &mut plain)
                .unwrap_or_else(|e| panic!("{suite} packet {i}: libsrtp refused ours: {e:?}"));
            assert_eq!(plain, pkt);
        }
    }
}

#[test]
fn rtp_libsrtp_protects_we_unprotect() {
    for (n, suite) in SUITES.into_iter().enumerate() {
        let (key, salt) = keys(suite, 100 + n as u64);
        let mut theirs = LibSrtp::new(suite, &key, &salt, true);
        let mut ours = SrtpContext::new(suite, &key, &salt).unwrap();
        let mut r = Lcg(7 + n as u64);
        let (mut wire, mut plain) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let pkt = rtp_packet(&mut r, i, 40_000u16.wrapping_add(i as u16), 0xBEEF);
            theirs.protect_rtp(&pkt, &mut wire).unwrap();
            ours.unprotect_rtp(&wire, &mut plain)
                .unwrap_or_else(|e| panic!("{suite} packet {i}: {e}"));
            assert_eq!(plain, pkt);
            // Replaying libsrtp's packet is refused.
            assert!(matches!(
                ours.unprotect_rtp(&wire, &mut plain),
                Err(SrtpError::Replay { .. })
            ));
            // A flipped bit in payload or tag is refused (fresh context so replay state
            // does not interfere).
            let mut bad = wire.clone();
            let pos = wire.len() - 1 - (i % 8);
            bad[pos] ^= 1 << (i % 8);
            let mut fresh = SrtpContext::new(suite, &key, &salt).unwrap();
            assert_eq!(
                fresh.unprotect_rtp(&bad, &mut plain),
                Err(SrtpError::AuthFailed)
            );
        }
    }
}

#[test]
fn roc_wraps_at_65535_in_agreement_with_libsrtp() {
    for (n, suite) in SUITES.into_iter().enumerate() {
        let (key, salt) = keys(suite, 200 + n as u64);
        let mut ours_tx = SrtpContext::new(suite, &key, &salt).unwrap();
        let mut ours_rx = SrtpContext::new(suite, &key, &salt).unwrap();
        let mut theirs_tx = LibSrtp::new(suite, &key, &salt, true);
        let mut theirs_rx = LibSrtp::new(suite, &key, &salt, false);
        let mut r = Lcg(n as u64);
        let (mut a, mut b, mut plain) = (Vec::new(), Vec::new(), Vec::new());
        let ssrc = 0x1234_5678;
        // 65500 .. 65535, 0 .. 100 (ROC 1), with one packet arriving late across the wrap.
        for k in 0..136u32 {
            let seq = (65_500 + k) as u16;
            let pkt = rtp_packet(&mut r, k as usize, seq, ssrc);
            ours_tx.protect_rtp(&pkt, &mut a).unwrap();
            theirs_tx.protect_rtp(&pkt, &mut b).unwrap();
            assert_eq!(a, b, "{suite} seq {seq}: ROC disagreement with libsrtp");
            theirs_rx.unprotect_rtp(&a, &mut plain).unwrap();
            ours_rx.unprotect_rtp(&b, &mut plain).unwrap();
            assert_eq!(plain, pkt);
        }
        assert_eq!(ours_tx.tx_roc(ssrc), Some(1));
        assert_eq!(ours_rx.rx_roc(ssrc), Some(1));
        // A late packet from before the wrap (ROC 0, seq 65534 never sent) still decrypts.
        let mut late_tx = SrtpContext::new(suite, &key, &salt).unwrap();
        let late = rtp_packet(&mut r, 0, 65_534, 0x9999);
        late_tx.protect_rtp(&late, &mut a).unwrap();
        let mut rx = SrtpContext::new(suite, &key, &salt).unwrap();
        let mut t = LibSrtp::new(suite, &key, &salt, true);
        // Start the receiver at ROC 0 seq 65530 .. then cross to ROC 1, seq 5.
        for seq in [65_530u16, 65_531, 0, 5] {
            let p = rtp_packet(&mut r, 2, seq, 0x9999);
            t.protect_rtp(&p, &mut b).unwrap();
            rx.unprotect_rtp(&b, &mut plain).unwrap();
        }
        rx.unprotect_rtp(&a, &mut plain).unwrap();
        assert_eq!(plain, late);
    }
}

#[test]
fn rtcp_both_directions() {
    for (n, suite) in SUITES.into_iter().enumerate() {
        let (key, salt) = keys(suite, 300 + n as u64);
        let mut ours_tx = SrtpContext::new(suite, &key, &salt).unwrap();
        let mut ours_rx = SrtpContext::new(suite, &key, &salt).unwrap();
        let mut theirs_tx = LibSrtp::new(suite, &key, &salt, true);
        let mut theirs_rx = LibSrtp::new(suite, &key, &salt, false);
        let (mut wire, mut plain) = (Vec::new(), Vec::new());
        for i in 0..100 {
            let pkt = rtcp_packet(i, 0xABCD_0000 + n as u32);
            ours_tx.protect_rtcp(&pkt, &mut wire).unwrap();
            // HMAC suites: 4-octet E||index then the 80-bit tag even for *_32.
            assert_eq!(wire.len(), pkt.len() + 4 + suite.rtcp_tag_len());
            // The index we sent is i, with E set.
            let trailer_at = if suite.is_aead() {
                wire.len() - 4
            } else {
                pkt.len()
            };
            assert_eq!(
                wire[trailer_at..trailer_at + 4],
                (0x8000_0000u32 | i as u32).to_be_bytes()
            );
            theirs_rx
                .unprotect_rtcp(&wire, &mut plain)
                .unwrap_or_else(|e| panic!("{suite} rtcp {i}: libsrtp refused: {e:?}"));
            assert_eq!(plain, pkt);

            theirs_tx.protect_rtcp(&pkt, &mut wire).unwrap();
            ours_rx
                .unprotect_rtcp(&wire, &mut plain)
                .unwrap_or_else(|e| panic!("{suite} rtcp {i}: {e}"));
            assert_eq!(plain, pkt);
            assert!(matches!(
                ours_rx.unprotect_rtcp(&wire, &mut plain),
                Err(SrtpError::Replay { .. })
            ));
            let mut bad = wire.clone();
            bad[9] ^= 0x40;
            let mut fresh = SrtpContext::new(suite, &key, &salt).unwrap();
            assert_eq!(
                fresh.unprotect_rtcp(&bad, &mut plain),
                Err(SrtpError::AuthFailed)
            );
        }
    }
}

#[test]
fn libsrtp_refuses_tampered_output_of_ours() {
    for (n, suite) in SUITES.into_iter().enumerate() {
        let (key, salt) = keys(suite, 400 + n as u64);
        let mut ours = SrtpContext::new(suite, &key, &salt).unwrap();
        let mut r = Lcg(1);
        let pkt = rtp_packet(&mut r, 3, 10, 1);
        let mut wire = Vec::new();
        ours.protect_rtp(&pkt, &mut wire).unwrap();
        let mut plain = Vec::new();
        for byte in [1usize, 5, 12, wire.len() - 1] {
            let mut bad = wire.clone();
            bad[byte] ^= 0x01;
            let mut theirs = LibSrtp::new(suite, &key, &salt, false);
            assert!(
                theirs.unprotect_rtp(&bad, &mut plain).is_err(),
                "{suite} byte {byte}"
            );
        }
    }
}
