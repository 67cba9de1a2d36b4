//! WAV files (RIFF/WAVE): decoding the prompts a SIP media application plays, encoding the
//! recordings it makes.
//!
//! [`decode`] reads linear PCM (8-bit unsigned, 16, 24 or 32-bit signed), G.711 µ-law and
//! A-law, in one or two channels (two are averaged to one), also when the `fmt ` chunk is
//! `WAVE_FORMAT_EXTENSIBLE` carrying one of those. The sample rate is kept as found; the
//! media engine resamples. Chunks other than `fmt ` and `data` (`LIST`, `fact`, `cue `…)
//! are skipped, with the pad byte after an odd-sized chunk (RIFF's word alignment).
//! [`encode`] writes 16-bit PCM mono.
//!
//! Every input gets an answer: a [`WavError`] says what is wrong with the file and what
//! would be accepted instead.

use thiserror::Error;

use crate::g711;

/// Mono 16-bit PCM at some sample rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcm {
    /// Samples per second.
    pub rate: u32,
    /// The samples, one channel.
    pub samples: Vec<i16>,
}

/// Lowest sample rate accepted, in Hz.
pub const MIN_RATE: u32 = 4000;
/// Highest sample rate accepted, in Hz.
pub const MAX_RATE: u32 = 192_000;

/// Why a file is not a WAV file we can play.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WavError {
    /// The file does not start with a RIFF header of form type `WAVE`.
    #[error("not a RIFF/WAVE file")]
    NotWave,
    /// The file ends inside a chunk header, the `fmt ` chunk or the `data` chunk.
    #[error("truncated data: the file ends inside its {0}")]
    Truncated(&'static str),
    /// The `data` chunk comes before any `fmt ` chunk, or there is no `fmt ` chunk.
    #[error("no fmt chunk before the audio data")]
    MissingFormat,
    /// There is no `data` chunk.
    #[error("no data chunk: the file holds no audio")]
    MissingData,
    /// A sample format we do not decode.
    #[error("unsupported format tag {tag} ({name}): use 16-bit PCM, mu-law or A-law")]
    UnsupportedFormat {
        /// The `fmt ` chunk's format tag (or the extensible sub-format's).
        tag: u16,
        /// Its usual name.
        name: &'static str,
    },
    /// A sample size the format does not have, or we do not decode.
    #[error("unsupported {bits}-bit {format} samples: use 16-bit PCM, mu-law or A-law")]
    UnsupportedBits {
        /// The format's name.
        format: &'static str,
        /// Bits per sample as given.
        bits: u16,
    },
    /// Neither mono nor stereo.
    #[error("unsupported channel count {0}: use mono or stereo")]
    Channels(u16),
    /// A sample rate outside [`MIN_RATE`]..=[`MAX_RATE`].
    #[error("unsupported sample rate {0} Hz: use 4000 to 192000 Hz")]
    Rate(u32),
    /// The `fmt ` chunk contradicts itself.
    #[error("malformed fmt chunk: {0}")]
    BadFormat(&'static str),
    /// More audio than the caller allows.
    #[error("longer than {0} s")]
    TooLong(u32),
}

/// `WAVE_FORMAT_PCM`.
const TAG_PCM: u16 = 1;
/// `WAVE_FORMAT_ALAW`.
const TAG_ALAW: u16 = 6;
/// `WAVE_FORMAT_MULAW`.
const TAG_MULAW: u16 = 7;
/// `WAVE_FORMAT_EXTENSIBLE`: the real format is the sub-format GUID.
const TAG_EXTENSIBLE: u16 = 0xFFFE;
/// The last 14 bytes of every `KSDATAFORMAT_SUBTYPE_*` GUID derived from a format tag
/// (`XXXXXXXX-0000-0010-8000-00AA00389B71`, stored little-endian: the tag is the first two).
const GUID_TAIL: [u8; 14] = [0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71];

/// Usual name of a format tag, for error messages.
fn tag_name(tag: u16) -> &'static str {
    match tag {
        0x0001 => "PCM",
        0x0002 => "Microsoft ADPCM",
        0x0003 => "IEEE float",
        0x0006 => "A-law",
        0x0007 => "mu-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG",
        0x0055 => "MP3",
        0x0064 => "G.721 ADPCM",
        0x0065 => "G.723 ADPCM",
        0x0161..=0x0163 => "Windows Media Audio",
        0x674F..=0x6771 => "Ogg Vorbis",
        0xF1AC => "FLAC",
        _ => "unknown",
    }
}

/// How one sample is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sample {
    U8,
    S16,
    S24,
    S32,
    Ulaw,
    Alaw,
}

impl Sample {
    fn bytes(self) -> usize {
        match self {
            Sample::U8 | Sample::Ulaw | Sample::Alaw => 1,
            Sample::S16 => 2,
            Sample::S24 => 3,
            Sample::S32 => 4,
        }
    }

    /// The sample at the start of `b` (at least [`Sample::bytes`] long) as 16-bit.
    fn read(self, b: &[u8]) -> i16 {
        match self {
            Sample::U8 => (i16::from(b[0]) - 128) << 8,
            Sample::S16 => i16::from_le_bytes([b[0], b[1]]),
            // The top 16 bits; truncation is below the 16-bit noise floor.
            Sample::S24 => i16::from_le_bytes([b[1], b[2]]),
            Sample::S32 => i16::from_le_bytes([b[2], b[3]]),
            Sample::Ulaw => g711::ulaw_decode_sample(b[0]),
            Sample::Alaw => g711::alaw_decode_sample(b[0]),
        }
    }
}

/// What the `fmt ` chunk says.
#[derive(Debug, Clone, Copy)]
struct Format {
    sample: Sample,
    channels: u16,
    rate: u32,
    /// Bytes per frame (all channels).
    block_align: usize,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses a `fmt ` chunk's body.
fn parse_format(body: &[u8]) -> Result<Format, WavError> {
    if body.len() < 16 {
        return Err(WavError::BadFormat("shorter than 16 bytes"));
    }
    let mut tag = u16_at(body, 0);
    let channels = u16_at(body, 2);
    let rate = u32_at(body, 4);
    let block_align = u16_at(body, 12);
    let bits = u16_at(body, 14);
    if tag == TAG_EXTENSIBLE {
        // cbSize (2), valid bits (2), channel mask (4), sub-format GUID (16).
        if body.len() < 40 || u16_at(body, 16) < 22 {
            return Err(WavError::BadFormat(
                "WAVE_FORMAT_EXTENSIBLE without its 22 extension bytes",
            ));
        }
        let guid = &body[24..40];
        tag = u16_at(guid, 0);
        if guid[2..] != GUID_TAIL {
            return Err(WavError::UnsupportedFormat {
                tag: TAG_EXTENSIBLE,
                name: "extensible with a non-standard sub-format",
            });
        }
    }
    let sample = match (tag, bits) {
        (TAG_PCM, 8) => Sample::U8,
        (TAG_PCM, 16) => Sample::S16,
        (TAG_PCM, 24) => Sample::S24,
        (TAG_PCM, 32) => Sample::S32,
        (TAG_MULAW, 8) => Sample::Ulaw,
        (TAG_ALAW, 8) => Sample::Alaw,
        (TAG_PCM | TAG_MULAW | TAG_ALAW, bits) => {
            return Err(WavError::UnsupportedBits {
                format: tag_name(tag),
                bits,
            });
        }
        (tag, _) => {
            return Err(WavError::UnsupportedFormat {
                tag,
                name: tag_name(tag),
            });
        }
    };
    if !(1..=2).contains(&channels) {
        return Err(WavError::Channels(channels));
    }
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(WavError::Rate(rate));
    }
    let frame = sample.bytes() * usize::from(channels);
    if usize::from(block_align) != frame {
        return Err(WavError::BadFormat(
            "block align is not channels times bytes per sample",
        ));
    }
    Ok(Format {
        sample,
        channels,
        rate,
        block_align: frame,
    })
}

/// Decodes a WAV file into mono PCM at its own rate. A file with more than `max_seconds`
/// Data sizes from this up are streaming writers' placeholders (a real 2 GB prompt is
/// refused by the length limit long before).
const STREAMED_SIZE: usize = 0x7FFF_0000;

/// of audio is refused before any of it is decoded.
pub fn decode(bytes: &[u8], max_seconds: u32) -> Result<Pcm, WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    // The RIFF size bounds the chunks, but writers that stream often leave it wrong: a
    // size past the end of the file is read as "to the end of the file".
    let riff_end = (u32_at(bytes, 4) as usize)
        .saturating_add(8)
        .min(bytes.len());
    let mut at = 12;
    let mut format = None;
    while at < riff_end {
        if riff_end - at < 8 {
            return Err(WavError::Truncated("last chunk header"));
        }
        let id = &bytes[at..at + 4];
        let size = u32_at(bytes, at + 4) as usize;
        let body_start = at + 8;
        let available = riff_end - body_start;
        if id == b"data" {
            let format = format.ok_or(WavError::MissingFormat)?;
            // 0xFFFFFFFF is what streaming writers leave when they cannot seek back;
            // espeak-ng writing to a pipe leaves 0x7FFFF000. A size that large is a
            // placeholder, not a promise: the data runs to the end of the file.
            let len = if size == u32::MAX as usize || size >= STREAMED_SIZE {
                available
            } else if size > available {
                return Err(WavError::Truncated("data chunk"));
            } else {
                size
            };
            return samples(&bytes[body_start..body_start + len], format, max_seconds);
        }
        if size > available {
            return Err(WavError::Truncated(if id == b"fmt " {
                "fmt chunk"
            } else {
                "chunk before the data"
            }));
        }
        if id == b"fmt " {
            format = Some(parse_format(&bytes[body_start..body_start + size])?);
        }
        // Chunks are word aligned: an odd size is followed by one pad byte.
        at = body_start + size + (size & 1);
    }
    Err(if format.is_none() {
        WavError::MissingFormat
    } else {
        WavError::MissingData
    })
}

/// Decodes the `data` chunk's body; a trailing partial frame is dropped.
fn samples(data: &[u8], f: Format, max_seconds: u32) -> Result<Pcm, WavError> {
    let frames = data.len() / f.block_align;
    if frames as u64 > u64::from(f.rate) * u64::from(max_seconds) {
        return Err(WavError::TooLong(max_seconds));
    }
    let step = f.sample.bytes();
    let samples = data
        .chunks_exact(f.block_align)
        .map(|frame| {
            if f.channels == 1 {
                f.sample.read(frame)
            } else {
                let l = i32::from(f.sample.read(frame));
                let r = i32::from(f.sample.read(&frame[step..]));
                // The mean of two i16 always fits.
                ((l + r) >> 1) as i16
            }
        })
        .collect();
    Ok(Pcm {
        rate: f.rate,
        samples,
    })
}

/// Encodes mono PCM as a 16-bit PCM WAV file. Audio past the 4 GiB RIFF limit (about
/// 37 hours at 16 kHz) is cut off there.
pub fn encode(pcm: &Pcm) -> Vec<u8> {
    encode_interleaved(pcm.rate, 1, &pcm.samples)
}

/// Encodes two channels of the same rate as a 16-bit stereo PCM WAV file, `left` in the
/// first channel; the shorter channel is padded with silence.
pub fn encode_stereo(rate: u32, left: &[i16], right: &[i16]) -> Vec<u8> {
    let n = left.len().max(right.len());
    let at = |c: &[i16], i: usize| c.get(i).copied().unwrap_or(0);
    let frames: Vec<i16> = (0..n).flat_map(|i| [at(left, i), at(right, i)]).collect();
    encode_interleaved(rate, 2, &frames)
}

/// A 16-bit PCM WAV file of `channels` interleaved channels, cut at the RIFF limit.
fn encode_interleaved(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let frame = usize::from(channels) * 2;
    const MAX_DATA: usize = u32::MAX as usize - 36;
    let n = (samples.len() * 2).min(MAX_DATA) / frame * frame / 2;
    let data_len = (n * 2) as u32;
    let mut out = Vec::with_capacity(44 + n * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&TAG_PCM.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&rate.wrapping_mul(frame as u32).to_le_bytes());
    out.extend_from_slice(&(frame as u16).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in &samples[..n] {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}
