//! Opus wrapper: round trip quality at 48 kHz, bitrate control, PLC and in-band FEC.

mod common;

use codec::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use codec::{Channels, Codec, DecodeError};
use common::*;

fn encode_all(enc: &mut OpusEncoder, pcm: &[i16], frame: usize) -> Vec<Vec<u8>> {
    pcm.chunks_exact(frame)
        .map(|f| {
            let mut p = Vec::new();
            enc.encode(f, &mut p).unwrap();
            p
        })
        .collect()
}

#[test]
fn mono_round_trip_snr() {
    let mut cfg = OpusConfig::voip(Channels::Mono);
    cfg.bitrate = 64_000;
    for (name, sig, min_snr) in [
        ("440 Hz", tone(48000, 440.0, 10000.0, 48000), 15.0),
        // Opus is a perceptual codec: waveform SNR on a fast chirp is modest (≈ 8 dB at
        // 64 kbit/s) although it sounds transparent; the check guards against gross errors.
        (
            "sweep 100-4000 Hz",
            sweep(48000, 100.0, 4000.0, 10000.0, 96000),
            6.0,
        ),
    ] {
        let mut enc = OpusEncoder::new(&cfg).unwrap();
        let delay = enc.lookahead().unwrap();
        let mut dec = OpusDecoder::new(Channels::Mono).unwrap();
        let mut out = Vec::new();
        for p in encode_all(&mut enc, &sig, 960) {
            assert_eq!(dec.decode(Some(&p), &mut out).unwrap(), 960);
        }
        let (d, snr) = aligned_snr(&sig, &out, 1000, 4800);
        println!("{name}: lookahead {delay} measured delay {d} snr {snr:.1} dB");
        // A tone's alignment is only defined modulo its period; the sweep pins it down.
        if name.starts_with("sweep") {
            assert!(
                d.abs_diff(delay) <= 2,
                "{name}: delay {d}, lookahead {delay}"
            );
        }
        assert!(snr > min_snr, "{name}: SNR {snr:.1} dB");
    }
}

#[test]
fn stereo_round_trip_keeps_channels_apart() {
    let mut cfg = OpusConfig::voip(Channels::Stereo);
    cfg.bitrate = 96_000;
    let left = tone(48000, 500.0, 9000.0, 48000);
    let right = tone(48000, 1300.0, 6000.0, 48000);
    let pcm: Vec<i16> = left
        .iter()
        .zip(&right)
        .flat_map(|(l, r)| [*l, *r])
        .collect();
    let mut enc = OpusEncoder::new(&cfg).unwrap();
    let mut dec = OpusDecoder::new(Channels::Stereo).unwrap();
    let mut out = Vec::new();
    for p in encode_all(&mut enc, &pcm, 1920) {
        assert_eq!(dec.decode(Some(&p), &mut out).unwrap(), 960);
    }
    let l: Vec<i16> = out.iter().step_by(2).copied().collect();
    let r: Vec<i16> = out.iter().skip(1).step_by(2).copied().collect();
    let (_, snr_l) = aligned_snr(&left, &l, 1000, 4800);
    let (_, snr_r) = aligned_snr(&right, &r, 1000, 4800);
    println!("stereo: L {snr_l:.1} dB R {snr_r:.1} dB");
    assert!(snr_l > 9.0 && snr_r > 9.0);
}

#[test]
fn bitrate_setting_controls_packet_size() {
    let sig = speech_like(48000, 48000, 1);
    let mut sizes = Vec::new();
    for bitrate in [12_000, 24_000, 64_000] {
        let mut cfg = OpusConfig::voip(Channels::Mono);
        cfg.bitrate = bitrate;
        let mut enc = OpusEncoder::new(&cfg).unwrap();
        let total: usize = encode_all(&mut enc, &sig, 960).iter().map(Vec::len).sum();
        let kbps = total as f64 * 8.0 / 1000.0; // one second of audio
        println!("target {bitrate} → {kbps:.1} kbit/s");
        assert!((kbps * 1000.0 - f64::from(bitrate)).abs() < f64::from(bitrate) * 0.35);
        sizes.push(total);
    }
    assert!(sizes[0] < sizes[1] && sizes[1] < sizes[2]);
}

#[test]
fn fec_recovers_a_lost_frame_better_than_plc() {
    let sig = speech_like(48000, 96000, 4);
    let mut cfg = OpusConfig::voip(Channels::Mono);
    cfg.bitrate = 32_000;
    cfg.expected_loss_percent = 20;
    let mut enc = OpusEncoder::new(&cfg).unwrap();
    let packets = encode_all(&mut enc, &sig, 960);
    let reference = {
        let mut dec = OpusDecoder::new(Channels::Mono).unwrap();
        let mut out = Vec::new();
        for p in &packets {
            dec.decode(Some(p), &mut out).unwrap();
        }
        out
    };
    let (mut fec_err, mut plc_err, mut sig_e) = (0.0, 0.0, 0.0);
    // Lose every 10th packet; recover with FEC in one decoder, PLC in another.
    let mut fec_dec = OpusDecoder::new(Channels::Mono).unwrap();
    let mut plc_dec = OpusDecoder::new(Channels::Mono).unwrap();
    let (mut fec_out, mut plc_out) = (Vec::new(), Vec::new());
    for (i, p) in packets.iter().enumerate() {
        if i % 10 == 5 && i + 1 < packets.len() {
            assert_eq!(
                fec_dec.decode_fec(&packets[i + 1], &mut fec_out).unwrap(),
                960
            );
            assert_eq!(plc_dec.decode(None, &mut plc_out).unwrap(), 960);
            let span = i * 960..(i + 1) * 960;
            for k in span {
                let r = f64::from(reference[k]);
                fec_err += (r - f64::from(fec_out[k])).powi(2);
                plc_err += (r - f64::from(plc_out[k])).powi(2);
                sig_e += r * r;
            }
        } else {
            fec_dec.decode(Some(p), &mut fec_out).unwrap();
            plc_dec.decode(Some(p), &mut plc_out).unwrap();
        }
    }
    let fec_snr = 10.0 * (sig_e / fec_err).log10();
    let plc_snr = 10.0 * (sig_e / plc_err).log10();
    println!("lost frames vs lossless decode: FEC {fec_snr:.1} dB, PLC {plc_snr:.1} dB");
    assert!(fec_snr > plc_snr + 3.0);
    assert_eq!(fec_out.len(), reference.len());
}

#[test]
fn plc_and_errors() {
    let mut dec = OpusDecoder::new(Channels::Mono).unwrap();
    let mut out = Vec::new();
    // Concealment before any packet produces one 20 ms frame of silence-like output.
    assert_eq!(dec.decode(None, &mut out).unwrap(), 960);
    assert_eq!(
        dec.decode(Some(&[]), &mut out),
        Err(DecodeError::Malformed { codec: "opus" })
    );
    // TOC byte for code 3 (arbitrary frames) with a frame count byte of 0 is invalid.
    assert_eq!(
        dec.decode(Some(&[0xFB, 0x00]), &mut out),
        Err(DecodeError::Malformed { codec: "opus" })
    );
    let mut enc = OpusEncoder::new(&OpusConfig::voip(Channels::Mono)).unwrap();
    let mut p = Vec::new();
    assert!(enc.encode(&[0; 1000], &mut p).is_err());
    assert!(enc.encode(&[0; 480], &mut p).is_ok());
}

#[test]
fn through_common_interface() {
    let codec = Codec::from_rtpmap("OPUS", 48000, Some(2)).unwrap();
    assert_eq!(codec, Codec::Opus(Channels::Mono));
    assert_eq!(codec.samples_per_frame(), 960);
    assert_eq!(codec.rtp_timestamp_per_frame(), 960);
    assert_eq!(codec.static_payload_type(), None);
    assert_eq!(Codec::from_rtpmap("opus", 48000, Some(1)), None);
    let mut enc = codec.encoder().unwrap();
    let mut dec = codec.decoder().unwrap();
    let sig = tone(48000, 700.0, 8000.0, 9600);
    let mut out = Vec::new();
    let mut pkts = Vec::new();
    for f in sig.chunks_exact(960) {
        let mut p = Vec::new();
        enc.encode(f, &mut p).unwrap();
        pkts.push(p);
    }
    for (i, p) in pkts.iter().enumerate() {
        if i == 4 {
            dec.decode_fec(&pkts[5], &mut out).unwrap();
        } else {
            dec.decode(Some(p), &mut out).unwrap();
        }
    }
    assert_eq!(out.len(), sig.len());
}

#[test]
fn random_payloads_never_panic() {
    let mut rng = Rng(77);
    for channels in [Channels::Mono, Channels::Stereo] {
        let mut dec = OpusDecoder::new(channels).unwrap();
        let mut out = Vec::new();
        for _ in 0..2000 {
            let len = (rng.next_u64() % 200) as usize + 1;
            let p: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            out.clear();
            match dec.decode(Some(&p), &mut out) {
                Ok(n) => assert_eq!(out.len(), n * channels.count()),
                Err(e) => assert_eq!(e, DecodeError::Malformed { codec: "opus" }),
            }
            out.clear();
            let _ = dec.decode_fec(&p, &mut out);
            let _ = dec.decode(None, &mut out).unwrap();
        }
    }
}
