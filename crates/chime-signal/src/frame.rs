//! Framing of signaling messages on the WebSocket: one prefix byte, then the protobuf
//! encoding of an [`SdkSignalFrame`].

use prost::Message;

use crate::proto::SdkSignalFrame;

/// The prefix byte the Chime SDK client puts before every frame it sends; we send it too.
///
/// The client strips the first byte of every binary message it receives without
/// looking at it, so the value matters only in the client → server direction.
pub const FRAME_PREFIX: u8 = 0x05;

/// Default upper bound on one frame, prefix included (64 KiB). An SDP offer from a
/// browser is a few kilobytes; nothing the client sends comes close to this.
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;

/// Why bytes from the client are not a valid frame. Every variant is the sender's fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// A WebSocket binary message with no bytes at all.
    #[error("empty signaling message")]
    Empty,
    /// Longer than the configured limit.
    #[error("signaling frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Length of the message.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The first byte is not [`FRAME_PREFIX`].
    #[error("unexpected signaling frame prefix 0x{0:02x}")]
    BadPrefix(u8),
    /// The bytes after the prefix are not a protobuf `SdkSignalFrame`.
    #[error("invalid protobuf in signaling frame: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A proto2 `required` field is absent.
    #[error("signaling frame lacks required field `{0}`")]
    MissingRequired(&'static str),
}

/// Presence probe for the two `required` fields of the envelope: prost fills absent
/// `required` scalars with their default, so presence is read from a second, tiny view
/// of the same bytes (prost skips every other field without allocating).
#[derive(Clone, Copy, PartialEq, prost::Message)]
struct EnvelopeProbe {
    #[prost(uint64, optional, tag = "1")]
    timestamp_ms: Option<u64>,
    #[prost(int32, optional, tag = "2")]
    r#type: Option<i32>,
}

/// Decodes one WebSocket binary message from the client, with [`DEFAULT_MAX_FRAME_LEN`].
pub fn decode_frame(bytes: &[u8]) -> Result<SdkSignalFrame, DecodeError> {
    decode_frame_with_limit(bytes, DEFAULT_MAX_FRAME_LEN)
}

/// Decodes one WebSocket binary message: checks the size limit and the
/// [`FRAME_PREFIX`], decodes the protobuf and checks that the `required` fields
/// `timestamp_ms` and `type` are present. An unknown `type` value is *not* an error
/// here (a newer client may send types we do not know); see
/// [`SdkSignalFrame::frame_type`].
pub fn decode_frame_with_limit(
    bytes: &[u8],
    max_len: usize,
) -> Result<SdkSignalFrame, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let (&prefix, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if prefix != FRAME_PREFIX {
        return Err(DecodeError::BadPrefix(prefix));
    }
    let probe = EnvelopeProbe::decode(body)?;
    if probe.timestamp_ms.is_none() {
        return Err(DecodeError::MissingRequired("timestamp_ms"));
    }
    if probe.r#type.is_none() {
        return Err(DecodeError::MissingRequired("type"));
    }
    Ok(SdkSignalFrame::decode(body)?)
}

/// Encodes a frame for the client: [`FRAME_PREFIX`] followed by the protobuf. The
/// `required` fields `timestamp_ms` and `type` are always written (prost writes
/// `required` scalars even when zero).
pub fn encode_frame(frame: &SdkSignalFrame) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + frame.encoded_len());
    out.push(FRAME_PREFIX);
    frame.encode_raw(&mut out);
    out
}
