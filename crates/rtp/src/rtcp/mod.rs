//! RTCP packets (RFC 3550 §6): zero-copy views over compound packets and writers that
//! append packets to a caller-owned buffer.
//!
//! Parsed: SR (§6.4.1), RR (§6.4.2), SDES (§6.5), BYE (§6.6), APP (§6.7). Any other
//! packet type (feedback, XR, ...) is passed through as [`RtcpPacket::Other`] with its
//! raw body, so a relay can forward what it does not understand.

use thiserror::Error;

/// RTCP packet type of a sender report (RFC 3550 §12.1).
pub const PT_SR: u8 = 200;
/// Receiver report.
pub const PT_RR: u8 = 201;
/// Source description.
pub const PT_SDES: u8 = 202;
/// Goodbye.
pub const PT_BYE: u8 = 203;
/// Application-defined.
pub const PT_APP: u8 = 204;

/// Length of one report block (RFC 3550 §6.4.1).
pub const REPORT_BLOCK_LEN: usize = 24;
/// Most report blocks, SDES chunks or BYE sources one packet can count (5-bit field).
pub const MAX_COUNT: usize = 31;

/// Why bytes are not a valid RTCP packet, or why a writer refused its input.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum RtcpError {
    /// Fewer bytes than a header or its length field announce.
    #[error("RTCP packet truncated: need {needed} bytes, have {len}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        len: usize,
    },
    /// Version is not 2 (RFC 3550 §6.4.1).
    #[error("RTCP version {0} is not 2")]
    BadVersion(u8),
    /// The body is too short for the count field (e.g. 3 report blocks in 40 bytes).
    #[error("RTCP packet type {packet_type} body too short for its count {count}")]
    CountOverrun {
        /// Packet type.
        packet_type: u8,
        /// Count field.
        count: u8,
    },
    /// The P bit is set but the padding count is 0 or longer than the body.
    #[error("RTCP padding is invalid")]
    BadPadding,
    /// An SDES chunk is not terminated inside its packet (RFC 3550 §6.5).
    #[error("SDES chunk is not terminated")]
    BadSdes,
    /// A BYE reason is longer than its length octet allows or than the packet.
    #[error("BYE reason overruns the packet")]
    BadBye,
    /// A writer was given more than 31 items for one packet.
    #[error("{0} items exceed the RTCP count field maximum of 31")]
    TooManyItems(usize),
    /// A writer was given a text item longer than 255 octets.
    #[error("SDES item or BYE reason of {0} bytes exceeds 255")]
    TextTooLong(usize),
    /// A writer was given APP data that is not a multiple of four octets.
    #[error("APP data of {0} bytes is not a whole number of 32-bit words")]
    BadAppData(usize),
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// Source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, a 24-bit signed value (duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (0 if none).
    pub last_sr: u32,
    /// Delay since that SR in 1/65536 s (0 if none).
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8]) -> Self {
        let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let lost24 = u32::from_be_bytes([0, b[5], b[6], b[7]]);
        // Sign-extend 24 bits.
        let cumulative_lost = ((lost24 << 8) as i32) >> 8;
        Self {
            ssrc: be(0),
            fraction_lost: b[4],
            cumulative_lost,
            extended_highest_seq: be(8),
            jitter: be(12),
            last_sr: be(16),
            delay_since_last_sr: be(20),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.push(self.fraction_lost);
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32;
        out.extend_from_slice(&lost.to_be_bytes()[1..]);
        out.extend_from_slice(&self.extended_highest_seq.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.last_sr.to_be_bytes());
        out.extend_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// Iterator over report blocks.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a> {
    rest: &'a [u8],
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        let (b, rest) = self.rest.split_at_checked(REPORT_BLOCK_LEN)?;
        self.rest = rest;
        Some(ReportBlock::parse(b))
    }
}

/// The sender information of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits).
    pub ntp_timestamp: u64,
    /// RTP timestamp corresponding to the same instant.
    pub rtp_timestamp: u32,
    /// Packets sent since the start of transmission.
    pub packet_count: u32,
    /// Payload octets sent since the start of transmission.
    pub octet_count: u32,
}

/// Sender report view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport<'a> {
    /// Sender SSRC.
    pub ssrc: u32,
    /// Sender information.
    pub info: SenderInfo,
    blocks: &'a [u8],
}

impl<'a> SenderReport<'a> {
    /// Report blocks.
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        ReportBlocks { rest: self.blocks }
    }
}

/// Receiver report view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    /// Reporter SSRC.
    pub ssrc: u32,
    blocks: &'a [u8],
}

impl<'a> ReceiverReport<'a> {
    /// Report blocks.
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        ReportBlocks { rest: self.blocks }
    }
}

/// SDES item types (RFC 3550 §6.5).
pub mod sdes_item {
    /// Canonical end-point identifier.
    pub const CNAME: u8 = 1;
    /// User name.
    pub const NAME: u8 = 2;
    /// Electronic mail address.
    pub const EMAIL: u8 = 3;
    /// Phone number.
    pub const PHONE: u8 = 4;
    /// Geographic location.
    pub const LOC: u8 = 5;
    /// Application or tool name.
    pub const TOOL: u8 = 6;
    /// Notice/status.
    pub const NOTE: u8 = 7;
    /// Private extension.
    pub const PRIV: u8 = 8;
}

/// SDES packet view: chunks of (SSRC, items).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceDescription<'a> {
    count: u8,
    body: &'a [u8],
}

impl<'a> SourceDescription<'a> {
    /// The chunks; validated at parse time so every chunk and item is well formed.
    pub fn chunks(&self) -> SdesChunks<'a> {
        SdesChunks {
            rest: self.body,
            left: self.count,
        }
    }
}

/// Iterator over SDES chunks.
#[derive(Debug, Clone)]
pub struct SdesChunks<'a> {
    rest: &'a [u8],
    left: u8,
}

/// One SDES chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    /// Source described.
    pub ssrc: u32,
    items: &'a [u8],
}

impl<'a> SdesChunk<'a> {
    /// `(type, value)` items, without the terminating null.
    pub fn items(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        let mut rest = self.items;
        std::iter::from_fn(move || {
            let (&ty, tail) = rest.split_first()?;
            if ty == 0 {
                return None;
            }
            let (&len, tail) = tail.split_first()?;
            let (value, tail) = tail.split_at_checked(usize::from(len))?;
            rest = tail;
            Some((ty, value))
        })
    }

    /// The CNAME item, if present.
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items()
            .find(|(t, _)| *t == sdes_item::CNAME)
            .map(|(_, v)| v)
    }
}

/// Splits one chunk off `buf`: SSRC, items up to a null octet, padding to 32 bits.
fn split_chunk(buf: &[u8]) -> Result<(SdesChunk<'_>, &[u8]), RtcpError> {
    let (ssrc, mut rest) = buf.split_at_checked(4).ok_or(RtcpError::BadSdes)?;
    let items_start = rest;
    let mut items_len = 0;
    loop {
        let (&ty, tail) = rest.split_first().ok_or(RtcpError::BadSdes)?;
        if ty == 0 {
            items_len += 1;
            break;
        }
        let (&len, tail) = tail.split_first().ok_or(RtcpError::BadSdes)?;
        let tail = tail.get(usize::from(len)..).ok_or(RtcpError::BadSdes)?;
        items_len += 2 + usize::from(len);
        rest = tail;
    }
    // Chunk = 4 + items + null, padded to a multiple of 4.
    let total = (4 + items_len).next_multiple_of(4);
    let after = buf.get(total..).ok_or(RtcpError::BadSdes)?;
    Ok((
        SdesChunk {
            ssrc: u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]),
            items: &items_start[..items_len - 1],
        },
        after,
    ))
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = SdesChunk<'a>;
    fn next(&mut self) -> Option<SdesChunk<'a>> {
        if self.left == 0 {
            return None;
        }
        let (chunk, rest) = split_chunk(self.rest).ok()?;
        self.rest = rest;
        self.left -= 1;
        Some(chunk)
    }
}

/// BYE packet view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bye<'a> {
    ssrcs: &'a [u8],
    /// Reason for leaving, if given.
    pub reason: Option<&'a [u8]>,
}

impl<'a> Bye<'a> {
    /// Sources leaving.
    pub fn ssrcs(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.ssrcs
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// APP packet view (RFC 3550 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct App<'a> {
    /// Subtype (the count field).
    pub subtype: u8,
    /// Source.
    pub ssrc: u32,
    /// Four ASCII characters.
    pub name: [u8; 4],
    /// Application data.
    pub data: &'a [u8],
}

/// One RTCP packet of a compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// SR.
    SenderReport(SenderReport<'a>),
    /// RR.
    ReceiverReport(ReceiverReport<'a>),
    /// SDES.
    SourceDescription(SourceDescription<'a>),
    /// BYE.
    Bye(Bye<'a>),
    /// APP.
    App(App<'a>),
    /// Any other packet type, passed through (RTPFB/PSFB, XR, ...).
    Other {
        /// Packet type.
        packet_type: u8,
        /// Count/format field.
        count: u8,
        /// Body after the 4-octet header, without padding.
        body: &'a [u8],
    },
}

/// Iterates the packets of a compound RTCP packet (RFC 3550 §6.1). Each item is one
/// packet with its raw bytes; a malformed packet yields one `Err` and ends iteration.
pub fn parse_compound(buf: &[u8]) -> Compound<'_> {
    Compound { rest: buf }
}

/// Iterator returned by [`parse_compound`].
#[derive(Debug, Clone)]
pub struct Compound<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<(RtcpPacket<'a>, &'a [u8]), RtcpError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match parse_one(self.rest) {
            Ok((p, raw, rest)) => {
                self.rest = rest;
                Some(Ok((p, raw)))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Parses the first packet of `buf`: (packet, its raw bytes, the rest).
pub fn parse_one(buf: &[u8]) -> Result<(RtcpPacket<'_>, &[u8], &[u8]), RtcpError> {
    if buf.len() < 4 {
        return Err(RtcpError::Truncated {
            needed: 4,
            len: buf.len(),
        });
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion(version));
    }
    let padding = buf[0] & 0x20 != 0;
    let count = buf[0] & 0x1F;
    let packet_type = buf[1];
    let len = (usize::from(u16::from_be_bytes([buf[2], buf[3]])) + 1) * 4;
    let (raw, rest) = buf.split_at_checked(len).ok_or(RtcpError::Truncated {
        needed: len,
        len: buf.len(),
    })?;
    let mut body = &raw[4..];
    if padding {
        let pad = usize::from(*body.last().ok_or(RtcpError::BadPadding)?);
        if pad == 0 || pad > body.len() {
            return Err(RtcpError::BadPadding);
        }
        body = &body[..body.len() - pad];
    }
    let overrun = RtcpError::CountOverrun { packet_type, count };
    let packet = match packet_type {
        PT_SR => {
            let need = 24 + REPORT_BLOCK_LEN * usize::from(count);
            if body.len() < need {
                return Err(overrun);
            }
            RtcpPacket::SenderReport(SenderReport {
                ssrc: be32(body, 0),
                info: SenderInfo {
                    ntp_timestamp: (u64::from(be32(body, 4)) << 32) | u64::from(be32(body, 8)),
                    rtp_timestamp: be32(body, 12),
                    packet_count: be32(body, 16),
                    octet_count: be32(body, 20),
                },
                blocks: &body[24..need],
            })
        }
        PT_RR => {
            let need = 4 + REPORT_BLOCK_LEN * usize::from(count);
            if body.len() < need {
                return Err(overrun);
            }
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: be32(body, 0),
                blocks: &body[4..need],
            })
        }
        PT_SDES => {
            let mut rest = body;
            for _ in 0..count {
                rest = split_chunk(rest)?.1;
            }
            RtcpPacket::SourceDescription(SourceDescription { count, body })
        }
        PT_BYE => {
            let n = 4 * usize::from(count);
            let ssrcs = body.get(..n).ok_or(overrun)?;
            let reason = match body.get(n..) {
                Some([len, tail @ ..]) => {
                    Some(tail.get(..usize::from(*len)).ok_or(RtcpError::BadBye)?)
                }
                _ => None,
            };
            RtcpPacket::Bye(Bye { ssrcs, reason })
        }
        PT_APP => {
            if body.len() < 8 {
                return Err(overrun);
            }
            RtcpPacket::App(App {
                subtype: count,
                ssrc: be32(body, 0),
                name: [body[4], body[5], body[6], body[7]],
                data: &body[8..],
            })
        }
        _ => RtcpPacket::Other {
            packet_type,
            count,
            body,
        },
    };
    Ok((packet, raw, rest))
}

mod write;
pub use write::{
    SdesChunkSpec, write_app, write_bye, write_receiver_report, write_sdes, write_sender_report,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 12,
            cumulative_lost: -3,
            extended_highest_seq: 0x0001_0005,
            jitter: 44,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 0x0001_8000,
        }
    }

    #[test]
    fn compound_roundtrip() {
        let mut out = Vec::new();
        let info = SenderInfo {
            ntp_timestamp: 0xE000_0000_8000_0000,
            rtp_timestamp: 160,
            packet_count: 10,
            octet_count: 1600,
        };
        write_sender_report(&mut out, 1, &info, &[block(2), block(3)]).unwrap();
        write_sdes(&mut out, &[(1, &[(sdes_item::CNAME, b"user@host")])]).unwrap();
        write_receiver_report(&mut out, 1, &[block(9)]).unwrap();
        write_bye(&mut out, &[1, 5], Some(b"done")).unwrap();
        write_app(
            &mut out,
            &App {
                subtype: 3,
                ssrc: 1,
                name: *b"TEST",
                data: &[1, 2, 3, 4],
            },
        )
        .unwrap();
        // An unknown type (RTPFB generic NACK) passes through.
        out.extend_from_slice(&[0x81, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 7, 0, 0]);
        let packets: Vec<_> = parse_compound(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(packets.len(), 6);
        match packets[0].0 {
            RtcpPacket::SenderReport(sr) => {
                assert_eq!(sr.ssrc, 1);
                assert_eq!(sr.info, info);
                let b: Vec<_> = sr.report_blocks().collect();
                assert_eq!(b, [block(2), block(3)]);
            }
            ref p => panic!("{p:?}"),
        }
        match packets[1].0 {
            RtcpPacket::SourceDescription(sdes) => {
                let chunks: Vec<_> = sdes.chunks().collect();
                assert_eq!(chunks.len(), 1);
                assert_eq!(chunks[0].ssrc, 1);
                assert_eq!(chunks[0].cname(), Some(&b"user@host"[..]));
            }
            ref p => panic!("{p:?}"),
        }
        match packets[2].0 {
            RtcpPacket::ReceiverReport(rr) => {
                assert_eq!(rr.report_blocks().collect::<Vec<_>>(), [block(9)]);
            }
            ref p => panic!("{p:?}"),
        }
        match packets[3].0 {
            RtcpPacket::Bye(bye) => {
                assert_eq!(bye.ssrcs().collect::<Vec<_>>(), [1, 5]);
                assert_eq!(bye.reason, Some(&b"done"[..]));
            }
            ref p => panic!("{p:?}"),
        }
        assert!(matches!(
            packets[4].0,
            RtcpPacket::App(App {
                subtype: 3,
                name: [b'T', b'E', b'S', b'T'],
                data: [1, 2, 3, 4],
                ..
            })
        ));
        assert!(matches!(
            packets[5].0,
            RtcpPacket::Other { packet_type: 205, count: 1, body } if body.len() == 12
        ));
        // Raw slices tile the buffer.
        let total: usize = packets.iter().map(|(_, raw)| raw.len()).sum();
        assert_eq!(total, out.len());
    }

    #[test]
    fn cumulative_lost_is_24_bit_signed_and_clamped() {
        let mut out = Vec::new();
        let mut b = block(1);
        b.cumulative_lost = 10_000_000;
        write_receiver_report(&mut out, 7, &[b]).unwrap();
        let Ok((RtcpPacket::ReceiverReport(rr), _, _)) = parse_one(&out) else {
            panic!()
        };
        assert_eq!(
            rr.report_blocks().next().unwrap().cumulative_lost,
            0x7F_FFFF
        );
    }

    #[test]
    fn malformed_is_error_not_panic() {
        assert!(parse_one(&[0x80, 200]).is_err());
        assert_eq!(
            parse_one(&[0x40, 200, 0, 0]).unwrap_err(),
            RtcpError::BadVersion(1)
        );
        // Length says 2 words, only 1 present.
        assert!(matches!(
            parse_one(&[0x80, 201, 0, 1]),
            Err(RtcpError::Truncated { .. })
        ));
        // RR claiming 1 block with none.
        assert!(matches!(
            parse_one(&[0x81, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::CountOverrun { .. })
        ));
        // SDES chunk without terminator.
        assert_eq!(
            parse_one(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', b'b']).unwrap_err(),
            RtcpError::BadSdes
        );
        // BYE reason overrun.
        assert_eq!(
            parse_one(&[0x81, 203, 0, 2, 0, 0, 0, 1, 9, b'a', b'b', b'c']).unwrap_err(),
            RtcpError::BadBye
        );
        // Padding larger than body.
        assert_eq!(
            parse_one(&[0xA0, 201, 0, 1, 0, 0, 0, 9]).unwrap_err(),
            RtcpError::BadPadding
        );
        // Iteration stops after an error.
        let mut it = parse_compound(&[0x80, 201, 0, 1, 0, 0, 0, 1, 0x40, 0, 0, 0]);
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }
}
