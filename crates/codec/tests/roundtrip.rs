//! Encode → decode round trips through the common [`Codec`] interface, with SNR thresholds
//! measured after aligning for codec delay.

mod common;

use codec::Codec;
use common::*;

/// Runs `pcm` through an encoder/decoder pair frame by frame.
fn round_trip(codec: Codec, pcm: &[i16]) -> Vec<i16> {
    let mut enc = codec.encoder().unwrap();
    let mut dec = codec.decoder().unwrap();
    let frame = codec.samples_per_frame() * codec.channels().count();
    let mut out = Vec::with_capacity(pcm.len());
    let mut payload = Vec::new();
    for chunk in pcm.chunks_exact(frame) {
        payload.clear();
        enc.encode(chunk, &mut payload).unwrap();
        let n = dec.decode(Some(&payload), &mut out).unwrap();
        assert_eq!(n, codec.samples_per_frame());
    }
    out
}

#[test]
fn g711_round_trip_snr() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        assert_eq!(codec.sample_rate(), 8000);
        assert_eq!(codec.samples_per_frame(), 160);
        // Loud and quiet tones, and a sweep: G.711 is a log law, so its SNR is roughly level
        // independent (≈ 38 dB for a full-scale sine, Table in G.711 Appendix).
        for (name, sig) in [
            ("1 kHz loud", tone(8000, 1000.0, 20000.0, 8000)),
            ("440 Hz quiet", tone(8000, 440.0, 500.0, 8000)),
            ("sweep", sweep(8000, 100.0, 3800.0, 12000.0, 16000)),
        ] {
            let out = round_trip(codec, &sig);
            let (delay, snr) = aligned_snr(&sig, &out, 10, 0);
            assert_eq!(delay, 0, "{codec:?} {name}: G.711 has no delay");
            assert!(snr > 33.0, "{codec:?} {name}: SNR {snr:.1} dB");
        }
    }
}

#[test]
fn g722_round_trip_snr() {
    let codec = Codec::G722;
    assert_eq!(codec.sample_rate(), 16000);
    assert_eq!(codec.rtp_clock_rate(), 8000);
    assert_eq!(codec.samples_per_frame(), 320);
    assert_eq!(codec.rtp_timestamp_per_frame(), 160);
    for (name, sig, min_snr) in [
        ("1 kHz", tone(16000, 1000.0, 12000.0, 16000), 40.0),
        ("300 Hz quiet", tone(16000, 300.0, 1000.0, 16000), 35.0),
        (
            "sweep 50-3500 Hz",
            sweep(16000, 50.0, 3500.0, 10000.0, 32000),
            35.0,
        ),
        ("speech-like", speech_like(16000, 32000, 9), 22.0),
    ] {
        let out = round_trip(codec, &sig);
        // The transmit and receive QMFs together delay the signal by 22 samples (1.375 ms;
        // the tone's best alignment is only defined modulo its period).
        let (delay, snr) = aligned_snr(&sig, &out, 40, 800);
        if !name.contains("Hz") || name.starts_with("sweep") {
            assert_eq!(delay % 16, 22 % 16, "{name}: delay {delay}");
        }
        if name.starts_with("sweep") || name.starts_with("speech") {
            assert_eq!(delay, 22, "{name}: delay");
        }
        assert!(snr > min_snr, "{name}: SNR {snr:.1} dB");
    }
    // A 6 kHz tone travels through the higher band: coarser (2-bit) but present.
    let sig = tone(16000, 6000.0, 8000.0, 16000);
    let out = round_trip(codec, &sig);
    let (_, snr) = aligned_snr(&sig, &out, 40, 800);
    assert!(snr > 5.0, "6 kHz: SNR {snr:.1} dB");
}

#[test]
fn g722_concealment_and_odd_frames() {
    let mut enc = Codec::G722.encoder().unwrap();
    let mut payload = Vec::new();
    assert!(enc.encode(&[0; 321], &mut payload).is_err());
    let mut dec = Codec::G722.decoder().unwrap();
    let mut out = Vec::new();
    assert_eq!(dec.decode(None, &mut out).unwrap(), 320);
    assert!(out.iter().all(|&s| s == 0));
}

#[test]
fn g711_concealment_keeps_frame_size_and_level() {
    let codec = Codec::Pcmu;
    let sig = tone(8000, 300.0, 8000.0, 1600);
    let mut enc = codec.encoder().unwrap();
    let mut dec = codec.decoder().unwrap();
    let mut out = Vec::new();
    let mut payload = Vec::new();
    for (i, chunk) in sig.chunks_exact(160).enumerate() {
        payload.clear();
        enc.encode(chunk, &mut payload).unwrap();
        let p = if i == 5 {
            None
        } else {
            Some(payload.as_slice())
        };
        assert_eq!(dec.decode(p, &mut out).unwrap(), 160);
    }
    assert_eq!(out.len(), sig.len());
    // The concealed frame carries the tone at a similar level and close in waveform.
    let lost = &out[800..960];
    let level = rms(lost) / rms(&sig[800..960]);
    assert!((0.7..1.3).contains(&level), "level ratio {level}");
    assert!(snr(&sig[800..880], &out[800..880]) > 10.0);
}

#[test]
fn rtpmap_lookup() {
    assert_eq!(Codec::from_rtpmap("pcmu", 8000, None), Some(Codec::Pcmu));
    assert_eq!(Codec::from_rtpmap("PCMA", 8000, Some(1)), Some(Codec::Pcma));
    assert_eq!(Codec::from_rtpmap("PCMA", 16000, None), None);
    assert_eq!(Codec::from_rtpmap("GSM", 8000, None), None);
    assert_eq!(Codec::Pcmu.static_payload_type(), Some(0));
    assert_eq!(Codec::Pcma.static_payload_type(), Some(8));
}
