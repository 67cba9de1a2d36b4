//! WAV decoding and encoding: every accepted format against samples written by hand, and
//! every kind of bad file answered with its error (never a panic).

mod common;

use codec::g711;
use codec::wav::{self, Pcm, WavError};
use common::{Rng, tone};

/// A WAV file from a `fmt ` body, extra chunks before `data`, and the data bytes.
fn file(fmt: &[u8], extra: &[(&[u8; 4], &[u8])], data: &[u8]) -> Vec<u8> {
    let mut body = b"WAVE".to_vec();
    let mut chunk = |id: &[u8; 4], b: &[u8]| {
        body.extend_from_slice(id);
        body.extend_from_slice(&(b.len() as u32).to_le_bytes());
        body.extend_from_slice(b);
        if b.len() % 2 == 1 {
            body.push(0);
        }
    };
    chunk(b"fmt ", fmt);
    for (id, b) in extra {
        chunk(id, b);
    }
    chunk(b"data", data);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A plain 16-byte `fmt ` body.
fn fmt(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    let align = channels * bits.div_ceil(8);
    let mut f = Vec::new();
    f.extend_from_slice(&tag.to_le_bytes());
    f.extend_from_slice(&channels.to_le_bytes());
    f.extend_from_slice(&rate.to_le_bytes());
    f.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
    f.extend_from_slice(&align.to_le_bytes());
    f.extend_from_slice(&bits.to_le_bytes());
    f
}

/// A `WAVE_FORMAT_EXTENSIBLE` body whose sub-format is `sub`.
fn extensible(sub: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    let mut f = fmt(0xFFFE, channels, rate, bits);
    f.extend_from_slice(&22u16.to_le_bytes());
    f.extend_from_slice(&bits.to_le_bytes());
    f.extend_from_slice(&(if channels == 2 { 3u32 } else { 4 }).to_le_bytes());
    f.extend_from_slice(&sub.to_le_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
    f
}

fn le16(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[test]
fn round_trip_of_16_bit_mono() {
    let pcm = Pcm {
        rate: 16000,
        samples: tone(16000, 440.0, 12000.0, 16000),
    };
    let bytes = wav::encode(&pcm);
    assert_eq!(bytes.len(), 44 + 32000);
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(wav::decode(&bytes, 10).unwrap(), pcm);
    let empty = Pcm {
        rate: 8000,
        samples: vec![],
    };
    assert_eq!(wav::decode(&wav::encode(&empty), 1).unwrap(), empty);
}

#[test]
fn eight_bit_unsigned_pcm() {
    let data = [0u8, 64, 128, 192, 255];
    let got = wav::decode(&file(&fmt(1, 1, 8000, 8), &[], &data), 1).unwrap();
    assert_eq!(got.rate, 8000);
    assert_eq!(got.samples, vec![-32768, -16384, 0, 16384, 32512]);
}

#[test]
fn mu_law_and_a_law() {
    let src = tone(8000, 1000.0, 8000.0, 800);
    let mut ulaw = Vec::new();
    g711::ulaw_encode(&src, &mut ulaw);
    let mut alaw = Vec::new();
    g711::alaw_encode(&src, &mut alaw);
    let mut want_u = Vec::new();
    g711::ulaw_decode(&ulaw, &mut want_u);
    let mut want_a = Vec::new();
    g711::alaw_decode(&alaw, &mut want_a);
    let got_u = wav::decode(&file(&fmt(7, 1, 8000, 8), &[], &ulaw), 1).unwrap();
    let got_a = wav::decode(&file(&fmt(6, 1, 8000, 8), &[], &alaw), 1).unwrap();
    assert_eq!(got_u.samples, want_u);
    assert_eq!(got_a.samples, want_a);
    // Through WAVE_FORMAT_EXTENSIBLE too.
    let got = wav::decode(&file(&extensible(7, 1, 8000, 8), &[], &ulaw), 1).unwrap();
    assert_eq!(got.samples, want_u);
}

#[test]
fn stereo_is_averaged() {
    let interleaved = [
        1000i16,
        3000,
        -2000,
        -4000,
        i16::MAX,
        i16::MAX,
        i16::MIN,
        i16::MIN,
    ];
    let got = wav::decode(&file(&fmt(1, 2, 48000, 16), &[], &le16(&interleaved)), 1).unwrap();
    assert_eq!(got.rate, 48000);
    assert_eq!(got.samples, vec![2000, -3000, i16::MAX, i16::MIN]);
    let ext = file(&extensible(1, 2, 44100, 16), &[], &le16(&interleaved));
    assert_eq!(wav::decode(&ext, 1).unwrap().samples, got.samples);
}

#[test]
fn wide_pcm_keeps_the_top_16_bits() {
    // 24-bit 0x123456 and 32-bit 0xFEDCBA98.
    let got = wav::decode(&file(&fmt(1, 1, 8000, 24), &[], &[0x56, 0x34, 0x12]), 1).unwrap();
    assert_eq!(got.samples, vec![0x1234]);
    let got = wav::decode(
        &file(&fmt(1, 1, 8000, 32), &[], &[0x98, 0xBA, 0xDC, 0xFE]),
        1,
    )
    .unwrap();
    assert_eq!(got.samples, vec![0xFEDCu16 as i16]);
}

#[test]
fn unknown_chunks_and_odd_padding_are_skipped() {
    let samples = [1i16, -2, 3];
    let list: &[u8] = b"INFOISFT\x05\0\0\0Lavf\0";
    let bytes = file(
        &fmt(1, 1, 8000, 16),
        &[(b"LIST", list), (b"fact", &[3, 0, 0, 0]), (b"odd ", &[7])],
        &le16(&samples),
    );
    assert_eq!(wav::decode(&bytes, 1).unwrap().samples, samples);
    // An odd-sized data chunk ends in a partial frame, which is dropped.
    let mut data = le16(&samples);
    data.push(9);
    let bytes = file(&fmt(1, 1, 8000, 16), &[], &data);
    assert_eq!(wav::decode(&bytes, 1).unwrap().samples, samples);
}

#[test]
fn streamed_sizes_read_to_the_end() {
    let samples = [5i16, 6, 7, 8];
    let mut bytes = file(&fmt(1, 1, 8000, 16), &[], &le16(&samples));
    let data_size_at = bytes.len() - 8 - 4;
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    bytes[data_size_at..data_size_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(wav::decode(&bytes, 1).unwrap().samples, samples);
}

#[test]
fn bad_files_are_named() {
    let one = le16(&[0; 4]);
    let cases: Vec<(Vec<u8>, WavError)> = vec![
        (b"ID3\x04 not a wav".to_vec(), WavError::NotWave),
        (b"RIFF\0\0\0\0AVI LIST".to_vec(), WavError::NotWave),
        (
            file(&fmt(0x55, 2, 44100, 0), &[], &one),
            WavError::UnsupportedFormat {
                tag: 0x55,
                name: "MP3",
            },
        ),
        (
            file(&fmt(3, 1, 8000, 32), &[], &one),
            WavError::UnsupportedFormat {
                tag: 3,
                name: "IEEE float",
            },
        ),
        (
            file(&fmt(1, 1, 8000, 12), &[], &one),
            WavError::UnsupportedBits {
                format: "PCM",
                bits: 12,
            },
        ),
        (file(&fmt(1, 6, 8000, 16), &[], &one), WavError::Channels(6)),
        (file(&fmt(1, 0, 8000, 16), &[], &one), WavError::Channels(0)),
        (file(&fmt(1, 1, 0, 16), &[], &one), WavError::Rate(0)),
        (
            file(&fmt(1, 1, 8000, 16)[..14], &[], &one),
            WavError::BadFormat("shorter than 16 bytes"),
        ),
        (
            file(&fmt(1, 1, 8000, 16), &[], &le16(&vec![0; 8001])),
            WavError::TooLong(1),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(wav::decode(&bytes, 1), Err(want));
    }
    let mp3 = file(&fmt(0x55, 2, 44100, 0), &[], &one);
    assert_eq!(
        wav::decode(&mp3, 1).unwrap_err().to_string(),
        "unsupported format tag 85 (MP3): use 16-bit PCM, mu-law or A-law"
    );
    assert_eq!(WavError::TooLong(60).to_string(), "longer than 60 s");

    // No fmt, no data, data before fmt, and a data chunk cut short.
    let mut no_fmt = b"RIFF\x0c\0\0\0WAVEdata\0\0\0\0".to_vec();
    assert_eq!(wav::decode(&no_fmt, 1), Err(WavError::MissingFormat));
    no_fmt.truncate(12);
    no_fmt[4] = 4;
    assert_eq!(wav::decode(&no_fmt, 1), Err(WavError::MissingFormat));
    let mut only_fmt = file(&fmt(1, 1, 8000, 16), &[], &[]);
    only_fmt.truncate(only_fmt.len() - 8);
    let n = only_fmt.len() as u32 - 8;
    only_fmt[4..8].copy_from_slice(&n.to_le_bytes());
    assert_eq!(wav::decode(&only_fmt, 1), Err(WavError::MissingData));
    let whole = file(&fmt(1, 1, 8000, 16), &[], &le16(&[1; 100]));
    let cut = &whole[..whole.len() - 10];
    assert_eq!(wav::decode(cut, 1), Err(WavError::Truncated("data chunk")));
    assert_eq!(
        WavError::Truncated("data chunk").to_string(),
        "truncated data: the file ends inside its data chunk"
    );
}

/// Every truncation and thousands of random byte changes of valid files are answered
/// without a panic, and a decoded result never exceeds the limit.
#[test]
fn never_panics_on_damaged_files() {
    let valid = [
        file(
            &fmt(1, 2, 16000, 16),
            &[(b"LIST", b"INFOx")],
            &le16(&tone(16000, 300.0, 9000.0, 200)),
        ),
        file(&extensible(6, 1, 8000, 8), &[], &[0x55; 301]),
        file(&fmt(1, 1, 8000, 8), &[], &[128; 77]),
    ];
    let mut rng = Rng(0x5EED_0000_1234_5678);
    for v in &valid {
        for cut in 0..v.len() {
            let _ = wav::decode(&v[..cut], 1);
        }
        for _ in 0..3000 {
            let mut b = v.clone();
            for _ in 0..1 + rng.next_u64() % 4 {
                let at = (rng.next_u64() as usize) % b.len();
                b[at] ^= 1 << (rng.next_u64() % 8);
            }
            if let Ok(pcm) = wav::decode(&b, 1) {
                assert!(pcm.samples.len() as u64 <= u64::from(pcm.rate));
            }
        }
    }
    for _ in 0..3000 {
        let len = (rng.next_u64() % 80) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if len >= 12 {
            b[0..4].copy_from_slice(b"RIFF");
            b[8..12].copy_from_slice(b"WAVE");
        }
        let _ = wav::decode(&b, 1);
    }
}

/// espeak-ng writing to a pipe cannot seek back: its RIFF and data sizes are placeholders
/// (0x7FFFF024, 0x7FFFF000); the data runs to the end of the file.
#[test]
fn a_streamed_file_runs_to_its_end() {
    let mut streamed = file(&fmt(1, 1, 22050, 16), &[], &le16(&[7; 300]));
    streamed[4..8].copy_from_slice(&0x7FFF_F024u32.to_le_bytes());
    let data = streamed.len() - 600 - 4;
    streamed[data..data + 4].copy_from_slice(&0x7FFF_F000u32.to_le_bytes());
    let pcm = wav::decode(&streamed, 1).unwrap();
    assert_eq!((pcm.rate, pcm.samples.len()), (22050, 300));
}

#[test]
fn stereo_encoding_interleaves_and_pads_the_shorter_channel() {
    let out = wav::encode_stereo(8000, &[1000, 2000, 3000], &[-1000]);
    // The header's channel count, block alignment and byte rate.
    assert_eq!(u16::from_le_bytes([out[22], out[23]]), 2);
    assert_eq!(
        u32::from_le_bytes([out[28], out[29], out[30], out[31]]),
        32000
    );
    assert_eq!(u16::from_le_bytes([out[32], out[33]]), 4);
    assert_eq!(
        &out[44..],
        le16(&[1000, -1000, 2000, 0, 3000, 0]).as_slice()
    );
    // Read back, the two channels are averaged.
    let pcm = wav::decode(&out, 10).unwrap();
    assert_eq!((pcm.rate, pcm.samples), (8000, vec![0, 1000, 1500]));
}
