//! G.711, G.722, Opus, resampling, packet loss concealment and RFC 4733 telephone-event.
//!
//! Everything here is sans-IO: encoders and decoders take and return `i16` PCM frames and
//! payload bytes, and never look at a clock or a socket.
//!
//! * [`g711`]: ITU-T G.711 µ-law/A-law, table driven (ours: a few lines of tables).
//! * [`g722`]: ITU-T G.722 64 kbit/s sub-band ADPCM, written here from the Recommendation
//!   and checked bit-exact against spandsp in the tests (no maintained pure-Rust G.722
//!   crate exists).
//! * [`opus`]: wrappers around libopus (through the `opus` crate, linked to the system
//!   libopus with pkg-config) with in-band FEC, PLC and bitrate control.
//! * [`resample`]: streaming polyphase windowed-sinc resampler between 8, 16 and 48 kHz.
//! * [`telephone_event`]: RFC 4733 DTMF events, receiver and sender state machines.
//! * [`plc`]: pitch-repetition concealment for the waveform codecs.
//! * [`wav`]: WAV files: PCM, µ-law and A-law prompts in, 16-bit PCM recordings out.
//!
//! The common entry point is [`Codec`], which names a payload format (RFC 3551 §4.5) and
//! builds boxed [`Encoder`]s and [`Decoder`]s.
#![forbid(unsafe_code)]

pub mod g711;
pub mod g722;
pub mod opus;
pub mod plc;
pub mod resample;
pub mod telephone_event;
pub mod tone;
pub mod wav;

use thiserror::Error;

/// Packetisation interval used throughout the media path, in milliseconds (RFC 3551 §4.2
/// default `ptime` for the audio codecs we carry).
pub const FRAME_MS: u32 = 20;

/// Number of interleaved channels in a PCM frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channels {
    /// One channel.
    Mono = 1,
    /// Two channels, interleaved left/right.
    Stereo = 2,
}

impl Channels {
    /// Channel count as a number.
    pub fn count(self) -> usize {
        self as usize
    }
}

/// An audio payload format that we can encode and decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// G.711 µ-law, static payload type 0 (RFC 3551 §4.5.14).
    Pcmu,
    /// G.711 A-law, static payload type 8 (RFC 3551 §4.5.14).
    Pcma,
    /// G.722 at 64 kbit/s, static payload type 9; 16 kHz audio on an 8 kHz RTP clock
    /// (RFC 3551 §4.5.2).
    G722,
    /// Opus at 48 kHz, dynamic payload type, `opus/48000/2` in SDP (RFC 7587 §7). The
    /// channel count is that of our PCM frames; the SDP always says 2 (stereo is signalled
    /// with the `stereo` format parameter, RFC 7587 §6.1).
    Opus(Channels),
}

impl Codec {
    /// Encoding name as written in an SDP `a=rtpmap` line (RFC 4566 §6, RFC 3551 Table 4).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus(_) => "opus",
        }
    }

    /// RTP timestamp clock rate in Hz (RFC 3551 Table 4).
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            // G.722's RTP clock is 8000 Hz for historical reasons (RFC 3551 §4.5.2).
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8000,
            Codec::Opus(_) => 48000,
        }
    }

    /// Sampling rate of the PCM that encoders take and decoders produce, in Hz.
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::G722 => 16000,
            Codec::Opus(_) => 48000,
        }
    }

    /// Number of interleaved channels of the PCM frames.
    pub fn channels(self) -> Channels {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => Channels::Mono,
            Codec::Opus(c) => c,
        }
    }

    /// PCM samples per channel in one [`FRAME_MS`] frame.
    pub fn samples_per_frame(self) -> usize {
        (self.sample_rate() * FRAME_MS / 1000) as usize
    }

    /// RTP timestamp increment of one [`FRAME_MS`] frame.
    pub fn rtp_timestamp_per_frame(self) -> u32 {
        self.rtp_clock_rate() * FRAME_MS / 1000
    }

    /// Static RTP payload type, if the format has one (RFC 3551 Table 4).
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::Opus(_) => None,
        }
    }

    /// The codec an `a=rtpmap:<pt> <name>/<clock>[/<channels>]` line describes, if supported.
    /// Names compare case-insensitively (RFC 4855 §3). Opus must be `opus/48000/2`
    /// (RFC 7587 §7) and maps to mono PCM; pick [`Channels::Stereo`] from `stereo=1`.
    pub fn from_rtpmap(name: &str, clock_rate: u32, channels: Option<u8>) -> Option<Codec> {
        let mono = matches!(channels, None | Some(1));
        let codec = if name.eq_ignore_ascii_case("PCMU") && mono {
            Codec::Pcmu
        } else if name.eq_ignore_ascii_case("PCMA") && mono {
            Codec::Pcma
        } else if name.eq_ignore_ascii_case("G722") && mono {
            Codec::G722
        } else if name.eq_ignore_ascii_case("opus") && channels == Some(2) {
            Codec::Opus(Channels::Mono)
        } else {
            return None;
        };
        (codec.rtp_clock_rate() == clock_rate).then_some(codec)
    }

    /// A new encoder for this format.
    pub fn encoder(self) -> Result<Box<dyn Encoder>, CodecError> {
        Ok(match self {
            Codec::Pcmu | Codec::Pcma => Box::new(G711Encoder { codec: self }),
            Codec::G722 => Box::new(G722Encoder(g722::G722Encoder::new())),
            Codec::Opus(c) => Box::new(OpusEncoder(opus::OpusEncoder::new(
                &opus::OpusConfig::voip(c),
            )?)),
        })
    }

    /// A new decoder for this format.
    pub fn decoder(self) -> Result<Box<dyn Decoder>, CodecError> {
        Ok(match self {
            Codec::Pcmu | Codec::Pcma => Box::new(G711Decoder::new(self)),
            Codec::G722 => Box::new(G722Decoder::new()),
            Codec::Opus(c) => Box::new(OpusDecoder(opus::OpusDecoder::new(c)?)),
        })
    }
}

/// Failure to create an encoder or decoder.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The codec library refused the configuration (internal fault).
    #[error("codec library refused the configuration: {0}")]
    Library(&'static str),
}

/// Failure to encode a frame: always the caller's fault or an internal fault.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The PCM frame has a length the codec cannot encode.
    #[error("PCM frame of {got} samples is not a valid frame size for {codec}")]
    FrameSize {
        /// Codec name.
        codec: &'static str,
        /// Samples (all channels) given.
        got: usize,
    },
    /// The codec library failed (internal fault).
    #[error("encoder failed: {0}")]
    Library(&'static str),
}

/// Failure to decode a payload.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload is malformed for this codec (the sender's fault).
    #[error("malformed {codec} payload")]
    Malformed {
        /// Codec name.
        codec: &'static str,
    },
    /// The codec library failed (internal fault).
    #[error("decoder failed: {0}")]
    Library(&'static str),
}

/// Encodes PCM frames into RTP payloads.
pub trait Encoder: Send {
    /// The format produced.
    fn codec(&self) -> Codec;
    /// Encodes one frame of interleaved PCM at [`Codec::sample_rate`] and appends the RTP
    /// payload to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError>;
}

/// Decodes RTP payloads into PCM frames, concealing lost packets.
pub trait Decoder: Send {
    /// The format consumed.
    fn codec(&self) -> Codec;
    /// Decodes one payload, or conceals one lost frame when `payload` is `None`, appending
    /// interleaved PCM to `out`. Returns the number of samples per channel appended.
    fn decode(&mut self, payload: Option<&[u8]>, out: &mut Vec<i16>) -> Result<usize, DecodeError>;
    /// Conceals one lost frame when the packet after it, `next`, has already arrived. Codecs
    /// with in-band forward error correction (Opus, RFC 7587 §3.1) recover the lost frame from
    /// `next`; others fall back to [`Decoder::decode`] with `None`. `next` itself must still be
    /// decoded afterwards.
    fn decode_fec(&mut self, next: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        let _ = next;
        self.decode(None, out)
    }
}

/// G.711 encoder (either law).
#[derive(Debug)]
struct G711Encoder {
    codec: Codec,
}

impl Encoder for G711Encoder {
    fn codec(&self) -> Codec {
        self.codec
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.codec == Codec::Pcma {
            g711::alaw_encode(pcm, out);
        } else {
            g711::ulaw_encode(pcm, out);
        }
        Ok(())
    }
}

/// G.711 decoder (either law) with pitch-repetition concealment.
#[derive(Debug)]
struct G711Decoder {
    codec: Codec,
    plc: plc::Plc,
    /// Length of the last decoded frame; concealed frames have the same length.
    frame_len: usize,
}

impl G711Decoder {
    fn new(codec: Codec) -> Self {
        G711Decoder {
            codec,
            plc: plc::Plc::new(codec.sample_rate()),
            frame_len: codec.samples_per_frame(),
        }
    }
}

impl Decoder for G711Decoder {
    fn codec(&self) -> Codec {
        self.codec
    }

    fn decode(&mut self, payload: Option<&[u8]>, out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        let start = out.len();
        match payload {
            Some(p) => {
                if self.codec == Codec::Pcma {
                    g711::alaw_decode(p, out);
                } else {
                    g711::ulaw_decode(p, out);
                }
                if !p.is_empty() {
                    self.frame_len = p.len();
                }
                self.plc.good_frame(&mut out[start..]);
            }
            None => {
                out.resize(start + self.frame_len, 0);
                self.plc.lost_frame(&mut out[start..]);
            }
        }
        Ok(out.len() - start)
    }
}

/// G.722 encoder behind the common interface.
#[derive(Debug)]
struct G722Encoder(g722::G722Encoder);

impl Encoder for G722Encoder {
    fn codec(&self) -> Codec {
        Codec::G722
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        // A frame must cover whole code words so that RTP timestamps stay aligned.
        if !pcm.len().is_multiple_of(2) {
            return Err(EncodeError::FrameSize {
                codec: "G722",
                got: pcm.len(),
            });
        }
        self.0.encode(pcm, out);
        Ok(())
    }
}

/// G.722 decoder with pitch-repetition concealment. During a loss the ADPCM state is left
/// as it was; the first good packet re-converges within a few milliseconds.
#[derive(Debug)]
struct G722Decoder {
    dec: g722::G722Decoder,
    plc: plc::Plc,
    frame_len: usize,
}

impl G722Decoder {
    fn new() -> Self {
        G722Decoder {
            dec: g722::G722Decoder::new(),
            plc: plc::Plc::new(16000),
            frame_len: Codec::G722.samples_per_frame(),
        }
    }
}

impl Decoder for G722Decoder {
    fn codec(&self) -> Codec {
        Codec::G722
    }

    fn decode(&mut self, payload: Option<&[u8]>, out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        let start = out.len();
        match payload {
            Some(p) => {
                self.dec.decode(p, out);
                if !p.is_empty() {
                    self.frame_len = p.len() * 2;
                }
                self.plc.good_frame(&mut out[start..]);
            }
            None => {
                out.resize(start + self.frame_len, 0);
                self.plc.lost_frame(&mut out[start..]);
            }
        }
        Ok(out.len() - start)
    }
}

/// Opus encoder behind the common interface (VoIP defaults, see [`opus::OpusConfig::voip`]).
#[derive(Debug)]
struct OpusEncoder(opus::OpusEncoder);

impl Encoder for OpusEncoder {
    fn codec(&self) -> Codec {
        Codec::Opus(self.0.channels())
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.0.encode(pcm, out)
    }
}

/// Opus decoder behind the common interface, with libopus PLC and in-band FEC.
#[derive(Debug)]
struct OpusDecoder(opus::OpusDecoder);

impl Decoder for OpusDecoder {
    fn codec(&self) -> Codec {
        Codec::Opus(self.0.channels())
    }

    fn decode(&mut self, payload: Option<&[u8]>, out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        self.0.decode(payload, out)
    }

    fn decode_fec(&mut self, next: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        self.0.decode_fec(next, out)
    }
}
