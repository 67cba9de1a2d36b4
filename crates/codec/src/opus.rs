//! Opus (RFC 6716) through libopus, packetised per RFC 7587.
//!
//! The `opus` crate links the system libopus through pkg-config (Debian `libopus-dev`), so
//! no unsafe code lives here. PCM is 48 kHz, mono or interleaved stereo; the RTP clock is
//! always 48000 Hz (RFC 7587 §4.1). In-band FEC (RFC 6716 §2.1.7) is on by default and
//! [`OpusDecoder::decode_fec`] recovers a lost frame from the packet that follows it;
//! [`OpusDecoder::decode`] with `None` runs libopus's packet loss concealment.

use crate::{Channels, CodecError, DecodeError, EncodeError};

/// Opus sampling rate used throughout (RFC 7587 §4.1).
pub const SAMPLE_RATE: u32 = 48_000;
/// Longest Opus packet duration, 120 ms (RFC 6716 §3.2.5), in samples per channel.
const MAX_FRAME: usize = 5760;
/// Largest packet we produce; 1275 bytes is the largest single frame (RFC 6716 §3.4 R2),
/// enough for every frame size at any bitrate we allow.
const MAX_PACKET: usize = 1500;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Mono or interleaved stereo PCM.
    pub channels: Channels,
    /// Target bitrate in bit/s (6000..=510000, RFC 6716 §2.1.1).
    pub bitrate: u32,
    /// In-band forward error correction (RFC 6716 §2.1.7).
    pub inband_fec: bool,
    /// Expected packet loss in percent; FEC is only sent when this is above zero.
    pub expected_loss_percent: u8,
    /// Discontinuous transmission (RFC 7587 §3.1.3).
    pub dtx: bool,
    /// Encoder complexity 0..=10.
    pub complexity: u8,
}

impl OpusConfig {
    /// Speech defaults: 32 kbit/s, FEC on for 5 % expected loss, no DTX, complexity 9.
    pub fn voip(channels: Channels) -> Self {
        OpusConfig {
            channels,
            bitrate: 32_000,
            inband_fec: true,
            expected_loss_percent: 5,
            dtx: false,
            complexity: 9,
        }
    }

    /// A conference server's mixes (GitHub issue 17): the VoIP settings at
    /// [`SERVER_MIX_COMPLEXITY`], with DTX when the receiver's offer allows it
    /// (`usedtx=1`, RFC 7587 §6.1). A mix is re-encoded speech that the listener's own
    /// client already shaped, and the server encodes for many meetings at once: encoder
    /// complexity buys little quality there at a large CPU cost.
    pub fn server_mix(channels: Channels, dtx: bool) -> Self {
        OpusConfig {
            dtx,
            complexity: SERVER_MIX_COMPLEXITY,
            ..Self::voip(channels)
        }
    }
}

/// Encoder complexity of [`OpusConfig::server_mix`]: the middle of libopus's 0..=10 range
/// (`OPUS_SET_COMPLEXITY` trades encoder CPU for quality); a server's mixes are the many
/// encodes, a client's own encoder is the one that shapes the talker's speech.
pub const SERVER_MIX_COMPLEXITY: u8 = 5;

fn lib_channels(c: Channels) -> opus::Channels {
    match c {
        Channels::Mono => opus::Channels::Mono,
        Channels::Stereo => opus::Channels::Stereo,
    }
}

/// Opus encoder for 48 kHz PCM. It is also a [`crate::Encoder`], for callers that choose
/// its settings (e.g. [`OpusConfig::server_mix`]) rather than [`crate::Codec::encoder`]'s.
#[derive(Debug)]
pub struct OpusEncoder {
    inner: opus::Encoder,
    channels: Channels,
    scratch: Box<[u8; MAX_PACKET]>,
}

impl OpusEncoder {
    /// An encoder in VoIP mode (RFC 6716 §2.1.8 "application") with `config` applied.
    pub fn new(config: &OpusConfig) -> Result<Self, CodecError> {
        let lib = |_| CodecError::Library("opus_encoder_create");
        let inner = opus::Encoder::new(
            SAMPLE_RATE,
            lib_channels(config.channels),
            opus::Application::Voip,
        )
        .map_err(lib)?;
        let mut enc = OpusEncoder {
            inner,
            channels: config.channels,
            scratch: Box::new([0; MAX_PACKET]),
        };
        enc.set_bitrate(config.bitrate)?;
        let ctl = |_| CodecError::Library("opus_encoder_ctl");
        enc.inner.set_inband_fec(config.inband_fec).map_err(ctl)?;
        enc.set_expected_loss(config.expected_loss_percent)?;
        enc.inner.set_dtx(config.dtx).map_err(ctl)?;
        enc.inner
            .set_complexity(i32::from(config.complexity.min(10)))
            .map_err(ctl)?;
        Ok(enc)
    }

    /// Sets the target bitrate in bit/s, clamped to the 6..510 kbit/s range of RFC 6716.
    pub fn set_bitrate(&mut self, bits_per_second: u32) -> Result<(), CodecError> {
        let b = bits_per_second.clamp(6_000, 510_000) as i32;
        self.inner
            .set_bitrate(opus::Bitrate::Bits(b))
            .map_err(|_| CodecError::Library("OPUS_SET_BITRATE"))
    }

    /// Sets the expected packet loss (0..=100 %), which controls how much FEC is sent.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        self.inner
            .set_packet_loss_perc(i32::from(percent.min(100)))
            .map_err(|_| CodecError::Library("OPUS_SET_PACKET_LOSS_PERC"))
    }

    /// The PCM channel layout.
    pub fn channels(&self) -> Channels {
        self.channels
    }

    /// The encoder's algorithmic delay in samples per channel at 48 kHz.
    pub fn lookahead(&mut self) -> Result<usize, CodecError> {
        self.inner
            .get_lookahead()
            .map(|v| v.max(0) as usize)
            .map_err(|_| CodecError::Library("OPUS_GET_LOOKAHEAD"))
    }

    /// Encodes one frame (2.5, 5, 10, 20, 40 or 60 ms of interleaved PCM) and appends the
    /// packet to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let per_channel = pcm.len() / self.channels.count();
        let valid = [120, 240, 480, 960, 1920, 2880];
        if !pcm.len().is_multiple_of(self.channels.count()) || !valid.contains(&per_channel) {
            return Err(EncodeError::FrameSize {
                codec: "opus",
                got: pcm.len(),
            });
        }
        let n = self
            .inner
            .encode(pcm, &mut self.scratch[..])
            .map_err(|_| EncodeError::Library("opus_encode"))?;
        out.extend_from_slice(self.scratch.get(..n).unwrap_or_default());
        Ok(())
    }
}

/// Opus decoder producing 48 kHz PCM.
#[derive(Debug)]
pub struct OpusDecoder {
    inner: opus::Decoder,
    channels: Channels,
    /// Duration of the last decoded packet (samples per channel): concealment length.
    last_frame: usize,
    scratch: Vec<i16>,
}

impl OpusDecoder {
    /// A decoder with the given output channel count (independent of what the sender
    /// encodes: libopus up- or down-mixes, RFC 7587 §3.4).
    pub fn new(channels: Channels) -> Result<Self, CodecError> {
        let inner = opus::Decoder::new(SAMPLE_RATE, lib_channels(channels))
            .map_err(|_| CodecError::Library("opus_decoder_create"))?;
        Ok(OpusDecoder {
            inner,
            channels,
            last_frame: 960,
            scratch: vec![0; MAX_FRAME * channels.count()],
        })
    }

    /// The PCM channel layout produced.
    pub fn channels(&self) -> Channels {
        self.channels
    }

    fn map_err(e: opus::Error) -> DecodeError {
        match e.code() {
            opus::ErrorCode::InvalidPacket | opus::ErrorCode::BufferTooSmall => {
                DecodeError::Malformed { codec: "opus" }
            }
            _ => DecodeError::Library("opus_decode"),
        }
    }

    /// Decodes one packet, or conceals one lost frame (libopus PLC) when `payload` is `None`.
    /// Appends interleaved PCM to `out` and returns the samples per channel appended.
    pub fn decode(
        &mut self,
        payload: Option<&[u8]>,
        out: &mut Vec<i16>,
    ) -> Result<usize, DecodeError> {
        let ch = self.channels.count();
        let n = match payload {
            // An empty payload is also "no data" to libopus; treat it as a malformed packet
            // rather than silently concealing (RFC 6716 §3.1 requires at least one byte).
            Some([]) => return Err(DecodeError::Malformed { codec: "opus" }),
            Some(p) => {
                let n = self
                    .inner
                    .decode(p, &mut self.scratch[..], false)
                    .map_err(Self::map_err)?;
                self.last_frame = n.clamp(120, MAX_FRAME);
                n
            }
            None => {
                let len = self.last_frame * ch;
                self.inner
                    .decode(&[], &mut self.scratch[..len], false)
                    .map_err(Self::map_err)?
            }
        };
        out.extend_from_slice(self.scratch.get(..n * ch).unwrap_or_default());
        Ok(n)
    }

    /// Recovers the frame lost just before `next` from `next`'s in-band FEC data (RFC 6716
    /// §2.1.7), appending one frame of the previous frame's duration. If `next` carries no
    /// FEC, libopus falls back to concealment. `next` must still be decoded normally after.
    pub fn decode_fec(&mut self, next: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        if next.is_empty() {
            return self.decode(None, out);
        }
        let ch = self.channels.count();
        let len = self.last_frame * ch;
        let n = self
            .inner
            .decode(next, &mut self.scratch[..len], true)
            .map_err(Self::map_err)?;
        out.extend_from_slice(self.scratch.get(..n * ch).unwrap_or_default());
        Ok(n)
    }
}

impl crate::Encoder for OpusEncoder {
    fn codec(&self) -> crate::Codec {
        crate::Codec::Opus(self.channels)
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        OpusEncoder::encode(self, pcm, out)
    }
}
