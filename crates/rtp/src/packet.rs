//! RTP fixed header, CSRC list, header extension and padding (RFC 3550 §5.1, §5.3.1), with
//! RFC 8285 one-byte and two-byte extension elements, and the RFC 5761 §4 demultiplexer.
//!
//! [`RtpPacket`] is a validated, zero-copy view over `&[u8]`; [`RtpPacketMut`] rewrites the
//! fixed header fields in place (relaying); [`RtpWriter`] serialises a packet into a
//! caller-owned `Vec<u8>` so a sender can reuse one buffer for every packet.

use thiserror::Error;

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const RTP_FIXED_HEADER_LEN: usize = 12;
/// The only RTP version in use (RFC 3550 §5.1, field V).
pub const RTP_VERSION: u8 = 2;
/// "defined by profile" value for RFC 8285 one-byte header extensions.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// RFC 8285 §4.3: two-byte header extensions use 0x100 in the top 12 bits; the low four
/// bits ("appbits") are application defined.
pub const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
/// RFC 8285 §4.3 profile value (with appbits zero) for two-byte header extensions.
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Why a buffer is not a valid RTP packet. Every variant blames the sender of the bytes.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    /// Fewer bytes than the fixed header, CSRC list or extension announce.
    #[error("RTP packet truncated: need {needed} bytes, have {len}")]
    Truncated {
        /// Bytes the header fields require.
        needed: usize,
        /// Bytes available.
        len: usize,
    },
    /// Version field is not 2 (RFC 3550 §5.1).
    #[error("RTP version {0} is not 2")]
    BadVersion(u8),
    /// The P bit is set but the last octet is zero or larger than the payload area
    /// (RFC 3550 §5.1, field P).
    #[error("RTP padding length {padding} is invalid for {available} bytes after the header")]
    BadPadding {
        /// The value of the last octet.
        padding: u8,
        /// Bytes after the header.
        available: usize,
    },
    /// A header extension element overruns the extension block (RFC 8285 §4.2, §4.3).
    #[error("RTP header extension element overruns the extension block")]
    ExtensionElementOverrun,
    /// A writer was asked for more than 15 CSRCs (RFC 3550 §5.1, field CC).
    #[error("{0} CSRCs exceed the maximum of 15")]
    TooManyCsrcs(usize),
    /// A writer was given extension data that is not a multiple of four octets or longer
    /// than 65535 words (RFC 3550 §5.3.1).
    #[error("RTP header extension of {0} bytes is not a whole number of 32-bit words <= 65535")]
    BadExtensionLength(usize),
    /// A writer was asked for a payload type above 127.
    #[error("payload type {0} is above 127")]
    BadPayloadType(u8),
    /// A writer was asked for an RFC 8285 element it cannot encode (id or length out of
    /// range for the chosen form).
    #[error("header extension element id {id} with {len} bytes cannot be encoded")]
    BadExtensionElement {
        /// The element id.
        id: u8,
        /// The element data length.
        len: usize,
    },
}

/// RFC 5761 §4: a packet on a multiplexed port is RTCP when its second octet (marker bit
/// and payload type together) is in 192..=223 (RTCP packet types 192–223); otherwise RTP.
///
/// Returns `false` for buffers shorter than two octets.
#[must_use]
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223))
}

/// Reads the header length (fixed header, CSRCs and extension) without validating padding.
///
/// SRTP uses this on protected packets, whose padding is encrypted.
pub fn header_len(buf: &[u8]) -> Result<usize, RtpError> {
    let first = *buf.first().ok_or(RtpError::Truncated {
        needed: RTP_FIXED_HEADER_LEN,
        len: 0,
    })?;
    if buf.len() < RTP_FIXED_HEADER_LEN {
        return Err(RtpError::Truncated {
            needed: RTP_FIXED_HEADER_LEN,
            len: buf.len(),
        });
    }
    let version = first >> 6;
    if version != RTP_VERSION {
        return Err(RtpError::BadVersion(version));
    }
    let cc = usize::from(first & 0x0F);
    let mut len = RTP_FIXED_HEADER_LEN + 4 * cc;
    if first & 0x10 != 0 {
        // RFC 3550 §5.3.1: 16-bit profile-defined value, 16-bit length in words.
        let ext_hdr = buf.get(len..len + 4).ok_or(RtpError::Truncated {
            needed: len + 4,
            len: buf.len(),
        })?;
        let words = usize::from(u16::from_be_bytes([ext_hdr[2], ext_hdr[3]]));
        len += 4 + 4 * words;
    }
    if buf.len() < len {
        return Err(RtpError::Truncated {
            needed: len,
            len: buf.len(),
        });
    }
    Ok(len)
}

/// A validated, zero-copy view of one RTP packet (RFC 3550 §5.1).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    header_len: usize,
    padding_len: usize,
}

impl std::fmt::Debug for RtpPacket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpPacket")
            .field("pt", &self.payload_type())
            .field("seq", &self.sequence_number())
            .field("ts", &self.timestamp())
            .field("ssrc", &format_args!("{:#010x}", self.ssrc()))
            .field("marker", &self.marker())
            .field("csrcs", &self.csrc_count())
            .field("extension", &self.extension().map(|e| e.profile()))
            .field("payload_len", &self.payload().len())
            .field("padding_len", &self.padding_len)
            .finish()
    }
}

impl<'a> RtpPacket<'a> {
    /// Validates `buf` as an RTP packet: version 2, CSRC list and extension within the
    /// buffer, and when P is set a padding count between 1 and the bytes after the header.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let header_len = header_len(buf)?;
        let mut padding_len = 0;
        if buf[0] & 0x20 != 0 {
            let available = buf.len() - header_len;
            let padding = buf[buf.len() - 1];
            if padding == 0 || usize::from(padding) > available {
                return Err(RtpError::BadPadding { padding, available });
            }
            padding_len = usize::from(padding);
        }
        Ok(Self {
            buf,
            header_len,
            padding_len,
        })
    }

    /// The whole packet.
    #[must_use]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// Version field (always 2 after [`RtpPacket::parse`]).
    #[must_use]
    pub fn version(&self) -> u8 {
        self.buf[0] >> 6
    }
    /// P bit.
    #[must_use]
    pub fn has_padding(&self) -> bool {
        self.buf[0] & 0x20 != 0
    }
    /// X bit.
    #[must_use]
    pub fn has_extension(&self) -> bool {
        self.buf[0] & 0x10 != 0
    }
    /// CC field.
    #[must_use]
    pub fn csrc_count(&self) -> usize {
        usize::from(self.buf[0] & 0x0F)
    }
    /// M bit.
    #[must_use]
    pub fn marker(&self) -> bool {
        self.buf[1] & 0x80 != 0
    }
    /// PT field.
    #[must_use]
    pub fn payload_type(&self) -> u8 {
        self.buf[1] & 0x7F
    }
    /// Sequence number.
    #[must_use]
    pub fn sequence_number(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }
    /// RTP timestamp.
    #[must_use]
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]])
    }
    /// Synchronisation source.
    #[must_use]
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]])
    }
    /// Contributing sources, in order.
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        let list = &self.buf[RTP_FIXED_HEADER_LEN..RTP_FIXED_HEADER_LEN + 4 * self.csrc_count()];
        list.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
    /// The header extension (RFC 3550 §5.3.1), when X is set.
    #[must_use]
    pub fn extension(&self) -> Option<HeaderExtension<'a>> {
        if !self.has_extension() {
            return None;
        }
        let start = RTP_FIXED_HEADER_LEN + 4 * self.csrc_count();
        let profile = u16::from_be_bytes([self.buf[start], self.buf[start + 1]]);
        Some(HeaderExtension {
            profile,
            data: &self.buf[start + 4..self.header_len],
        })
    }
    /// Length of fixed header, CSRC list and extension.
    #[must_use]
    pub fn header_len(&self) -> usize {
        self.header_len
    }
    /// The payload, without padding.
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len..self.buf.len() - self.padding_len]
    }
    /// Number of padding octets (including the count octet), 0 when P is clear.
    #[must_use]
    pub fn padding_len(&self) -> usize {
        self.padding_len
    }
}

/// An RTP header extension block (RFC 3550 §5.3.1): the 16-bit profile-defined value and
/// the extension data (without the 4-octet extension header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderExtension<'a> {
    profile: u16,
    data: &'a [u8],
}

impl<'a> HeaderExtension<'a> {
    /// The "defined by profile" field.
    #[must_use]
    pub fn profile(&self) -> u16 {
        self.profile
    }
    /// The raw extension data.
    #[must_use]
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// RFC 8285 form of this block, if it is one.
    #[must_use]
    pub fn form(&self) -> Option<ExtensionForm> {
        if self.profile == ONE_BYTE_PROFILE {
            Some(ExtensionForm::OneByte)
        } else if self.profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE {
            Some(ExtensionForm::TwoByte)
        } else {
            None
        }
    }
    /// RFC 8285 elements; `None` when the block uses neither RFC 8285 form.
    #[must_use]
    pub fn elements(&self) -> Option<ExtensionElements<'a>> {
        self.form().map(|form| ExtensionElements {
            form,
            rest: self.data,
        })
    }
    /// The data of the first RFC 8285 element with `id`, if present and well formed.
    #[must_use]
    pub fn element(&self, id: u8) -> Option<&'a [u8]> {
        self.elements()?
            .map_while(Result::ok)
            .find(|e| e.id == id)
            .map(|e| e.data)
    }
}

/// The two RFC 8285 header extension forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionForm {
    /// RFC 8285 §4.2: 4-bit id (1–14), 4-bit length-minus-one.
    OneByte,
    /// RFC 8285 §4.3: 8-bit id (1–255), 8-bit length.
    TwoByte,
}

/// One RFC 8285 header extension element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionElement<'a> {
    /// Local identifier negotiated with `a=extmap`.
    pub id: u8,
    /// Element data.
    pub data: &'a [u8],
}

/// Iterator over RFC 8285 elements. Padding octets (id 0) are skipped; a one-byte id of 15
/// stops parsing (RFC 8285 §4.2). A malformed element yields one `Err` and ends iteration.
#[derive(Debug, Clone)]
pub struct ExtensionElements<'a> {
    form: ExtensionForm,
    rest: &'a [u8],
}

impl<'a> Iterator for ExtensionElements<'a> {
    type Item = Result<ExtensionElement<'a>, RtpError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&first, tail) = self.rest.split_first()?;
            if first == 0 {
                self.rest = tail;
                continue;
            }
            let (id, len, body) = match self.form {
                ExtensionForm::OneByte => {
                    let id = first >> 4;
                    if id == 15 {
                        self.rest = &[];
                        return None;
                    }
                    (id, usize::from(first & 0x0F) + 1, tail)
                }
                ExtensionForm::TwoByte => {
                    let Some((&len, body)) = tail.split_first() else {
                        self.rest = &[];
                        return Some(Err(RtpError::ExtensionElementOverrun));
                    };
                    (first, usize::from(len), body)
                }
            };
            let Some(data) = body.get(..len) else {
                self.rest = &[];
                return Some(Err(RtpError::ExtensionElementOverrun));
            };
            self.rest = &body[len..];
            return Some(Ok(ExtensionElement { id, data }));
        }
    }
}

/// Encodes RFC 8285 elements into `out` (appending) and pads to a 32-bit boundary.
/// Returns the profile value to put in the extension header.
///
/// Uses the one-byte form when every id is 1–14 and every element is 1–16 bytes, the
/// two-byte form otherwise (RFC 8285 §4.2, §4.3).
pub fn encode_extension_elements(
    elements: &[ExtensionElement<'_>],
    out: &mut Vec<u8>,
) -> Result<u16, RtpError> {
    let one_byte = elements
        .iter()
        .all(|e| (1..=14).contains(&e.id) && (1..=16).contains(&e.data.len()));
    let start = out.len();
    for e in elements {
        if one_byte {
            // Length field is len-1 (RFC 8285 §4.2); checked above.
            out.push((e.id << 4) | ((e.data.len() - 1) as u8));
        } else {
            let len = u8::try_from(e.data.len()).map_err(|_| RtpError::BadExtensionElement {
                id: e.id,
                len: e.data.len(),
            })?;
            if e.id == 0 {
                return Err(RtpError::BadExtensionElement {
                    id: e.id,
                    len: e.data.len(),
                });
            }
            out.push(e.id);
            out.push(len);
        }
        out.extend_from_slice(e.data);
    }
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
    Ok(if one_byte {
        ONE_BYTE_PROFILE
    } else {
        TWO_BYTE_PROFILE
    })
}

/// In-place rewriting of the fixed header of a packet (e.g. a relay renumbering a stream).
#[derive(Debug)]
pub struct RtpPacketMut<'a> {
    buf: &'a mut [u8],
}

impl<'a> RtpPacketMut<'a> {
    /// Checks the header like [`header_len`] (padding is not inspected).
    pub fn new(buf: &'a mut [u8]) -> Result<Self, RtpError> {
        header_len(buf)?;
        Ok(Self { buf })
    }
    /// Sets the M bit.
    pub fn set_marker(&mut self, marker: bool) {
        self.buf[1] = (self.buf[1] & 0x7F) | if marker { 0x80 } else { 0 };
    }
    /// Sets PT (the top bit is ignored).
    pub fn set_payload_type(&mut self, pt: u8) {
        self.buf[1] = (self.buf[1] & 0x80) | (pt & 0x7F);
    }
    /// Sets the sequence number.
    pub fn set_sequence_number(&mut self, seq: u16) {
        self.buf[2..4].copy_from_slice(&seq.to_be_bytes());
    }
    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        self.buf[4..8].copy_from_slice(&ts.to_be_bytes());
    }
    /// Sets the SSRC.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }
}

/// Serialises an RTP packet (RFC 3550 §5.1) into a caller-owned buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpWriter<'a> {
    /// M bit.
    pub marker: bool,
    /// Payload type, 0–127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Up to 15 contributing sources.
    pub csrcs: &'a [u32],
    /// Header extension: profile value and data (a whole number of 32-bit words).
    pub extension: Option<(u16, &'a [u8])>,
    /// Padding octets to append (0 for none); sets P. The last padding octet holds the count.
    pub padding: u8,
}

impl RtpWriter<'_> {
    /// Clears `out` and writes header, `payload` and padding into it; returns the length.
    pub fn write(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<usize, RtpError> {
        if self.csrcs.len() > 15 {
            return Err(RtpError::TooManyCsrcs(self.csrcs.len()));
        }
        if self.payload_type > 127 {
            return Err(RtpError::BadPayloadType(self.payload_type));
        }
        let ext_words = match self.extension {
            Some((_, data)) => {
                if !data.len().is_multiple_of(4) || data.len() / 4 > usize::from(u16::MAX) {
                    return Err(RtpError::BadExtensionLength(data.len()));
                }
                Some(data.len() / 4)
            }
            None => None,
        };
        out.clear();
        let mut first = RTP_VERSION << 6 | self.csrcs.len() as u8;
        if self.padding > 0 {
            first |= 0x20;
        }
        if self.extension.is_some() {
            first |= 0x10;
        }
        out.push(first);
        out.push(self.payload_type | if self.marker { 0x80 } else { 0 });
        out.extend_from_slice(&self.sequence_number.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for csrc in self.csrcs {
            out.extend_from_slice(&csrc.to_be_bytes());
        }
        if let (Some((profile, data)), Some(words)) = (self.extension, ext_words) {
            out.extend_from_slice(&profile.to_be_bytes());
            out.extend_from_slice(&(words as u16).to_be_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(payload);
        if self.padding > 0 {
            out.resize(out.len() + usize::from(self.padding) - 1, 0);
            out.push(self.padding);
        }
        Ok(out.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_csrcs_extension_padding() {
        let mut ext = Vec::new();
        let profile = encode_extension_elements(
            &[
                ExtensionElement {
                    id: 1,
                    data: &[0x80],
                },
                ExtensionElement {
                    id: 3,
                    data: &[1, 2, 3],
                },
            ],
            &mut ext,
        )
        .unwrap();
        assert_eq!(profile, ONE_BYTE_PROFILE);
        assert_eq!(ext, [0x10, 0x80, 0x32, 1, 2, 3, 0, 0]);
        let w = RtpWriter {
            marker: true,
            payload_type: 111,
            sequence_number: 0xfffe,
            timestamp: 0x0102_0304,
            ssrc: 0xdead_beef,
            csrcs: &[7, 8],
            extension: Some((profile, &ext)),
            padding: 3,
        };
        let mut out = Vec::new();
        let n = w.write(b"hello", &mut out).unwrap();
        assert_eq!(n, 12 + 8 + 4 + 8 + 5 + 3);
        let p = RtpPacket::parse(&out).unwrap();
        assert!(p.marker());
        assert_eq!(p.payload_type(), 111);
        assert_eq!(p.sequence_number(), 0xfffe);
        assert_eq!(p.timestamp(), 0x0102_0304);
        assert_eq!(p.ssrc(), 0xdead_beef);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), [7, 8]);
        assert_eq!(p.payload(), b"hello");
        assert_eq!(p.padding_len(), 3);
        let e = p.extension().unwrap();
        assert_eq!(e.form(), Some(ExtensionForm::OneByte));
        assert_eq!(e.element(1), Some(&[0x80][..]));
        assert_eq!(e.element(3), Some(&[1, 2, 3][..]));
        assert_eq!(e.element(4), None);
        assert_eq!(e.elements().unwrap().count(), 2);
    }

    #[test]
    fn two_byte_elements() {
        let mut ext = Vec::new();
        let big = [9u8; 20];
        let profile = encode_extension_elements(
            &[
                ExtensionElement { id: 20, data: &big },
                ExtensionElement { id: 2, data: &[] },
            ],
            &mut ext,
        )
        .unwrap();
        assert_eq!(profile, TWO_BYTE_PROFILE);
        let h = HeaderExtension {
            profile,
            data: &ext,
        };
        let els: Vec<_> = h.elements().unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(els.len(), 2);
        assert_eq!(els[0].id, 20);
        assert_eq!(els[0].data, &big);
        assert_eq!(els[1].data, &[] as &[u8]);
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        assert!(RtpPacket::parse(&[]).is_err());
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::BadVersion(1)));
        // CC = 2 but no CSRCs.
        let mut p = vec![0x82, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert!(matches!(
            RtpPacket::parse(&p),
            Err(RtpError::Truncated { needed: 20, .. })
        ));
        // Extension announcing 1 word, missing.
        p[0] = 0x90;
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1]);
        assert!(matches!(
            RtpPacket::parse(&p),
            Err(RtpError::Truncated { needed: 20, .. })
        ));
        // Padding bigger than packet.
        let mut p = vec![0xA0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xAA, 5];
        assert!(matches!(
            RtpPacket::parse(&p),
            Err(RtpError::BadPadding { padding: 5, .. })
        ));
        *p.last_mut().unwrap() = 0;
        assert!(RtpPacket::parse(&p).is_err());
        // One-byte element overrunning.
        let h = HeaderExtension {
            profile: ONE_BYTE_PROFILE,
            data: &[0x13, 1],
        };
        let r: Vec<_> = h.elements().unwrap().collect();
        assert_eq!(r, [Err(RtpError::ExtensionElementOverrun)]);
    }

    #[test]
    fn mutate_in_place() {
        let mut out = Vec::new();
        RtpWriter {
            payload_type: 0,
            sequence_number: 1,
            ssrc: 1,
            ..Default::default()
        }
        .write(&[1, 2, 3], &mut out)
        .unwrap();
        let mut m = RtpPacketMut::new(&mut out).unwrap();
        m.set_marker(true);
        m.set_payload_type(8);
        m.set_sequence_number(77);
        m.set_timestamp(99);
        m.set_ssrc(5);
        let p = RtpPacket::parse(&out).unwrap();
        assert_eq!(
            (
                p.marker(),
                p.payload_type(),
                p.sequence_number(),
                p.timestamp(),
                p.ssrc()
            ),
            (true, 8, 77, 99, 5)
        );
        assert_eq!(p.payload(), &[1, 2, 3]);
    }

    #[test]
    fn rtcp_mux_demux_rule() {
        // RTP PT 0 with and without marker.
        assert!(!is_rtcp(&[0x80, 0x00]));
        assert!(!is_rtcp(&[0x80, 0x80]));
        // PT 127 with marker = 255: RTP.
        assert!(!is_rtcp(&[0x80, 0xFF]));
        // SR (200), RR (201), 192 and 223 edges.
        for b in [200u8, 201, 192, 223] {
            assert!(is_rtcp(&[0x80, b]));
        }
        assert!(!is_rtcp(&[0x80, 191]));
        assert!(!is_rtcp(&[0x80, 224]));
        assert!(!is_rtcp(&[0x80]));
    }
}
