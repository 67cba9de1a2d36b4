//! RTCP writers (RFC 3550 §6): each appends one packet to a caller-owned buffer.

use super::{
    App, MAX_COUNT, PT_APP, PT_BYE, PT_RR, PT_SDES, PT_SR, REPORT_BLOCK_LEN, ReportBlock,
    RtcpError, SenderInfo,
};

/// Appends the 4-octet header for a packet whose body (`body_len` octets, a multiple of 4)
/// the caller then appends.
fn header(out: &mut Vec<u8>, count: usize, packet_type: u8, body_len: usize) {
    out.push(0x80 | count as u8);
    out.push(packet_type);
    out.extend_from_slice(&((body_len / 4) as u16).to_be_bytes());
}

/// Appends an SR (RFC 3550 §6.4.1) to `out`.
pub fn write_sender_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    info: &SenderInfo,
    blocks: &[ReportBlock],
) -> Result<(), RtcpError> {
    if blocks.len() > MAX_COUNT {
        return Err(RtcpError::TooManyItems(blocks.len()));
    }
    header(
        out,
        blocks.len(),
        PT_SR,
        24 + REPORT_BLOCK_LEN * blocks.len(),
    );
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&info.ntp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.packet_count.to_be_bytes());
    out.extend_from_slice(&info.octet_count.to_be_bytes());
    for b in blocks {
        b.write(out);
    }
    Ok(())
}

/// Appends an RR (RFC 3550 §6.4.2) to `out`.
pub fn write_receiver_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    blocks: &[ReportBlock],
) -> Result<(), RtcpError> {
    if blocks.len() > MAX_COUNT {
        return Err(RtcpError::TooManyItems(blocks.len()));
    }
    header(
        out,
        blocks.len(),
        PT_RR,
        4 + REPORT_BLOCK_LEN * blocks.len(),
    );
    out.extend_from_slice(&ssrc.to_be_bytes());
    for b in blocks {
        b.write(out);
    }
    Ok(())
}

/// One SDES chunk to write: the source and its `(item type, value)` items.
pub type SdesChunkSpec<'a> = (u32, &'a [(u8, &'a [u8])]);

/// Appends an SDES packet (RFC 3550 §6.5) with one chunk per `(ssrc, items)`.
pub fn write_sdes(out: &mut Vec<u8>, chunks: &[SdesChunkSpec<'_>]) -> Result<(), RtcpError> {
    if chunks.len() > MAX_COUNT {
        return Err(RtcpError::TooManyItems(chunks.len()));
    }
    let mut body_len = 0;
    for (_, items) in chunks {
        let mut n = 4 + 1;
        for (_, v) in *items {
            if v.len() > 255 {
                return Err(RtcpError::TextTooLong(v.len()));
            }
            n += 2 + v.len();
        }
        body_len += n.next_multiple_of(4);
    }
    header(out, chunks.len(), PT_SDES, body_len);
    for (ssrc, items) in chunks {
        let start = out.len();
        out.extend_from_slice(&ssrc.to_be_bytes());
        for (ty, v) in *items {
            out.push(*ty);
            out.push(v.len() as u8);
            out.extend_from_slice(v);
        }
        out.push(0);
        while !(out.len() - start).is_multiple_of(4) {
            out.push(0);
        }
    }
    Ok(())
}

/// Appends a BYE (RFC 3550 §6.6).
pub fn write_bye(out: &mut Vec<u8>, ssrcs: &[u32], reason: Option<&[u8]>) -> Result<(), RtcpError> {
    if ssrcs.len() > MAX_COUNT {
        return Err(RtcpError::TooManyItems(ssrcs.len()));
    }
    let reason_len = match reason {
        Some(r) if r.len() > 255 => return Err(RtcpError::TextTooLong(r.len())),
        Some(r) => (1 + r.len()).next_multiple_of(4),
        None => 0,
    };
    header(out, ssrcs.len(), PT_BYE, 4 * ssrcs.len() + reason_len);
    for s in ssrcs {
        out.extend_from_slice(&s.to_be_bytes());
    }
    if let Some(r) = reason {
        let start = out.len();
        out.push(r.len() as u8);
        out.extend_from_slice(r);
        out.resize(start + reason_len, 0);
    }
    Ok(())
}

/// Appends an APP packet (RFC 3550 §6.7); `subtype` is 0–31.
pub fn write_app(out: &mut Vec<u8>, app: &App<'_>) -> Result<(), RtcpError> {
    if !app.data.len().is_multiple_of(4) {
        return Err(RtcpError::BadAppData(app.data.len()));
    }
    if usize::from(app.subtype) > MAX_COUNT {
        return Err(RtcpError::TooManyItems(usize::from(app.subtype)));
    }
    header(out, usize::from(app.subtype), PT_APP, 8 + app.data.len());
    out.extend_from_slice(&app.ssrc.to_be_bytes());
    out.extend_from_slice(&app.name);
    out.extend_from_slice(app.data);
    Ok(())
}
