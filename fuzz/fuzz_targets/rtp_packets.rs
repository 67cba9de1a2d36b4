//! RTP and RTCP parsing views (`rtp::packet`, `rtp::rtcp`) over one datagram, the
//! RFC 5761 demultiplexer, the header setters, and the SDES `a=crypto` attribute
//! (`rtp::sdes::CryptoAttribute`). Checked beyond "no panic": a parsed RTP packet written
//! back with `RtpWriter` parses to the same header and payload, and a parsed `a=crypto`
//! attribute prints to a value that parses back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp::packet::{RtpPacket, RtpPacketMut, RtpWriter, header_len};
use rtp::rtcp::{RtcpPacket, parse_compound};
use rtp::sdes::CryptoAttribute;

fn rtp_views(data: &[u8]) {
    let _ = header_len(data);
    let Ok(p) = RtpPacket::parse(data) else {
        return;
    };
    let header = (
        p.version(),
        p.marker(),
        p.payload_type(),
        p.sequence_number(),
        p.timestamp(),
        p.ssrc(),
    );
    let csrcs: Vec<u32> = p.csrcs().collect();
    assert_eq!(csrcs.len(), p.csrc_count());
    assert!(p.header_len() + p.payload().len() + p.padding_len() <= data.len());
    let ext = p.extension();
    if let Some(e) = ext {
        let _ = (e.profile(), e.form());
        if let Some(elements) = e.elements() {
            for el in elements.flatten() {
                let _ = e.element(el.id);
            }
        }
    }

    // Written back, the packet reads the same.
    let writer = RtpWriter {
        marker: header.1,
        payload_type: header.2,
        sequence_number: header.3,
        timestamp: header.4,
        ssrc: header.5,
        csrcs: &csrcs,
        extension: ext.map(|e| (e.profile(), e.data())),
        padding: u8::try_from(p.padding_len()).unwrap_or(0),
    };
    let mut out = Vec::new();
    if writer.write(p.payload(), &mut out).is_ok() {
        let q = RtpPacket::parse(&out).expect("a written packet parses");
        assert_eq!(
            (
                q.marker(),
                q.payload_type(),
                q.sequence_number(),
                q.timestamp(),
                q.ssrc()
            ),
            (header.1, header.2, header.3, header.4, header.5)
        );
        assert_eq!(q.payload(), p.payload());
        assert!(q.csrcs().eq(csrcs.iter().copied()));
    }

    let mut buf = data.to_vec();
    if let Ok(mut m) = RtpPacketMut::new(&mut buf) {
        m.set_marker(!header.1);
        m.set_payload_type(header.2 ^ 0x55);
        m.set_sequence_number(header.3.wrapping_add(1));
        m.set_timestamp(header.4.wrapping_add(160));
        m.set_ssrc(!header.5);
    }
}

fn rtcp_views(data: &[u8]) {
    for (packet, raw) in parse_compound(data).flatten() {
        assert!(raw.len() >= 4 && raw.len() <= data.len());
        match packet {
            RtcpPacket::SenderReport(sr) => {
                let _ = sr.report_blocks().count();
            }
            RtcpPacket::ReceiverReport(rr) => {
                let _ = rr.report_blocks().count();
            }
            RtcpPacket::SourceDescription(s) => {
                for c in s.chunks() {
                    let _ = (c.items().count(), c.cname());
                }
            }
            RtcpPacket::Bye(b) => {
                let _ = b.ssrcs().count();
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = rtp::is_rtcp(data);
    rtp_views(data);
    rtcp_views(data);

    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(a) = CryptoAttribute::parse(s)
    {
        let _ = (a.usable_key().is_ok(), a.srtp_config(), format!("{a:?}"));
        let value = a.to_sdp_value();
        let again = CryptoAttribute::parse(&value)
            .unwrap_or_else(|e| panic!("printed a=crypto does not parse: {e}"));
        assert_eq!(again, a, "a=crypto changed through print and parse");
    }
});
