//! Per-frame cost of the codecs, the resampler and the jitter buffer, with peers: libopus
//! called directly (raw FFI, same settings as our wrapper) and `rubato`.
#![allow(unsafe_code)]

use codec::g711;
use codec::g722::{G722Decoder, G722Encoder};
use codec::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use codec::resample::Resampler;
use codec::{Channels, Codec};
use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use rtp::jitter::{JitterBuffer, JitterConfig, Pop};
use std::f64::consts::PI;
use std::time::{Duration, Instant};

/// A speech-band test signal: two tones plus a little noise.
fn signal(rate: u32, n: usize) -> Vec<i16> {
    let mut x: u32 = 12345;
    (0..n)
        .map(|i| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let t = i as f64 / f64::from(rate);
            let noise = f64::from((x >> 16) as u16) / 65536.0 - 0.5;
            (6000.0 * (2.0 * PI * 440.0 * t).sin()
                + 3000.0 * (2.0 * PI * 1250.0 * t).sin()
                + 500.0 * noise) as i16
        })
        .collect()
}

mod raw {
    use audiopus_sys as ffi;

    pub struct Enc(*mut ffi::OpusEncoder);
    pub struct Dec(*mut ffi::OpusDecoder);

    impl Enc {
        /// Same settings as `OpusConfig::voip(Mono)`: VoIP, 32 kbit/s, FEC, 5 % loss, no
        /// DTX, complexity 9.
        pub fn new() -> Self {
            let mut err = 0;
            // SAFETY: plain libopus calls on a freshly created encoder; the pointer is
            // checked and destroyed once in Drop.
            unsafe {
                let e = ffi::opus_encoder_create(48000, 1, ffi::OPUS_APPLICATION_VOIP, &mut err);
                assert!(!e.is_null() && err == 0);
                ffi::opus_encoder_ctl(e, ffi::OPUS_SET_BITRATE_REQUEST, 32000);
                ffi::opus_encoder_ctl(e, ffi::OPUS_SET_INBAND_FEC_REQUEST, 1);
                ffi::opus_encoder_ctl(e, ffi::OPUS_SET_PACKET_LOSS_PERC_REQUEST, 5);
                ffi::opus_encoder_ctl(e, ffi::OPUS_SET_DTX_REQUEST, 0);
                ffi::opus_encoder_ctl(e, ffi::OPUS_SET_COMPLEXITY_REQUEST, 9);
                Enc(e)
            }
        }
        pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
            // SAFETY: pcm holds one 960-sample frame; out's length is passed.
            unsafe {
                ffi::opus_encode(
                    self.0,
                    pcm.as_ptr(),
                    960,
                    out.as_mut_ptr(),
                    out.len() as i32,
                ) as usize
            }
        }
    }
    impl Drop for Enc {
        fn drop(&mut self) {
            // SAFETY: created by opus_encoder_create, destroyed once.
            unsafe { ffi::opus_encoder_destroy(self.0) }
        }
    }
    impl Dec {
        pub fn new() -> Self {
            let mut err = 0;
            // SAFETY: as above.
            unsafe {
                let d = ffi::opus_decoder_create(48000, 1, &mut err);
                assert!(!d.is_null() && err == 0);
                Dec(d)
            }
        }
        pub fn decode(&mut self, pkt: &[u8], out: &mut [i16]) -> usize {
            // SAFETY: out holds out.len() samples of one channel.
            unsafe {
                ffi::opus_decode(
                    self.0,
                    pkt.as_ptr(),
                    pkt.len() as i32,
                    out.as_mut_ptr(),
                    out.len() as i32,
                    0,
                ) as usize
            }
        }
    }
    impl Drop for Dec {
        fn drop(&mut self) {
            // SAFETY: created by opus_decoder_create, destroyed once.
            unsafe { ffi::opus_decoder_destroy(self.0) }
        }
    }
}

fn opus(c: &mut Criterion) {
    let pcm = signal(48000, 48000);
    let frames: Vec<&[i16]> = pcm.chunks_exact(960).collect();
    let mut g = c.benchmark_group("opus_20ms_mono_32k");
    g.bench_function("encode/ours", |b| {
        let mut enc = OpusEncoder::new(&OpusConfig::voip(Channels::Mono)).unwrap();
        let mut out = Vec::with_capacity(1500);
        let mut i = 0;
        b.iter(|| {
            out.clear();
            enc.encode(frames[i % frames.len()], &mut out).unwrap();
            i += 1;
            black_box(out.len())
        })
    });
    g.bench_function("encode/libopus", |b| {
        let mut enc = raw::Enc::new();
        let mut out = [0u8; 1500];
        let mut i = 0;
        b.iter(|| {
            let n = enc.encode(frames[i % frames.len()], &mut out);
            i += 1;
            black_box(n)
        })
    });
    let packets: Vec<Vec<u8>> = {
        let mut enc = OpusEncoder::new(&OpusConfig::voip(Channels::Mono)).unwrap();
        frames
            .iter()
            .map(|f| {
                let mut p = Vec::new();
                enc.encode(f, &mut p).unwrap();
                p
            })
            .collect()
    };
    g.bench_function("decode/ours", |b| {
        let mut dec = OpusDecoder::new(Channels::Mono).unwrap();
        let mut out = Vec::with_capacity(960);
        let mut i = 0;
        b.iter(|| {
            out.clear();
            dec.decode(Some(&packets[i % packets.len()]), &mut out)
                .unwrap();
            i += 1;
            black_box(out.len())
        })
    });
    g.bench_function("decode/libopus", |b| {
        let mut dec = raw::Dec::new();
        let mut out = [0i16; 960];
        let mut i = 0;
        b.iter(|| {
            let n = dec.decode(&packets[i % packets.len()], &mut out);
            i += 1;
            black_box(n)
        })
    });
    g.finish();
}

/// spandsp's G.722 (Debian libspandsp-dev), the peer for our G.722.
mod span {
    use std::os::raw::c_int;
    #[repr(C)]
    pub struct State {
        _p: [u8; 0],
    }
    #[link(name = "spandsp")]
    unsafe extern "C" {
        pub fn g722_encode_init(s: *mut State, rate: c_int, options: c_int) -> *mut State;
        pub fn g722_encode(s: *mut State, data: *mut u8, amp: *const i16, len: c_int) -> c_int;
        pub fn g722_decode_init(s: *mut State, rate: c_int, options: c_int) -> *mut State;
        pub fn g722_decode(s: *mut State, amp: *mut i16, data: *const u8, len: c_int) -> c_int;
    }
}

fn g711_g722(c: &mut Criterion) {
    let pcm8 = signal(8000, 160);
    let pcm16 = signal(16000, 320);
    let mut g = c.benchmark_group("waveform_20ms");
    g.bench_function("g711_ulaw/encode", |b| {
        let mut out = Vec::with_capacity(160);
        b.iter(|| {
            out.clear();
            g711::ulaw_encode(black_box(&pcm8), &mut out);
            black_box(out.len())
        })
    });
    let mut ulaw = Vec::new();
    g711::ulaw_encode(&pcm8, &mut ulaw);
    g.bench_function("g711_ulaw/decode", |b| {
        let mut out = Vec::with_capacity(160);
        b.iter(|| {
            out.clear();
            g711::ulaw_decode(black_box(&ulaw), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("g711_alaw/encode", |b| {
        let mut out = Vec::with_capacity(160);
        b.iter(|| {
            out.clear();
            g711::alaw_encode(black_box(&pcm8), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("g722/encode/ours", |b| {
        let mut enc = G722Encoder::new();
        let mut out = Vec::with_capacity(160);
        b.iter(|| {
            out.clear();
            enc.encode(black_box(&pcm16), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("g722/encode/spandsp", |b| {
        // SAFETY: spandsp allocates the state; buffers hold 320 samples / 160 bytes. The
        // state is leaked for the benchmark's lifetime.
        let s = unsafe { span::g722_encode_init(std::ptr::null_mut(), 64000, 0) };
        assert!(!s.is_null());
        let mut out = [0u8; 160];
        b.iter(|| unsafe {
            black_box(span::g722_encode(
                s,
                out.as_mut_ptr(),
                black_box(&pcm16).as_ptr(),
                320,
            ))
        })
    });
    let mut g722 = Vec::new();
    G722Encoder::new().encode(&pcm16, &mut g722);
    g.bench_function("g722/decode/spandsp", |b| {
        // SAFETY: as above; 160 bytes decode to 320 samples.
        let s = unsafe { span::g722_decode_init(std::ptr::null_mut(), 64000, 0) };
        assert!(!s.is_null());
        let mut out = [0i16; 320];
        b.iter(|| unsafe {
            black_box(span::g722_decode(
                s,
                out.as_mut_ptr(),
                black_box(&g722).as_ptr(),
                160,
            ))
        })
    });
    g.bench_function("g722/decode/ours", |b| {
        let mut dec = G722Decoder::new();
        let mut out = Vec::with_capacity(320);
        b.iter(|| {
            out.clear();
            dec.decode(black_box(&g722), &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

fn resampling(c: &mut Criterion) {
    use rubato::{
        Resampler as _, SincFixedIn, SincInterpolationParameters, SincInterpolationType,
        WindowFunction,
    };
    let mut g = c.benchmark_group("resample_20ms");
    for (from, to) in [
        (8000u32, 48000u32),
        (48000, 8000),
        (16000, 48000),
        (48000, 16000),
    ] {
        let input = signal(from, (from / 50) as usize);
        let id = format!("{}k_to_{}k", from / 1000, to / 1000);
        g.bench_with_input(BenchmarkId::new("ours", &id), &input, |b, input| {
            let mut r = Resampler::new(from, to).unwrap();
            let mut out = Vec::with_capacity((to / 50) as usize);
            b.iter(|| {
                out.clear();
                r.process(black_box(input), &mut out);
                black_box(out.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("rubato_sinc", &id), &input, |b, input| {
            // rubato's recommended quality settings (sinc length 256, cutoff 0.95).
            let params = SincInterpolationParameters {
                sinc_len: 256,
                f_cutoff: 0.95,
                interpolation: SincInterpolationType::Linear,
                oversampling_factor: 256,
                window: WindowFunction::BlackmanHarris2,
            };
            let mut r = SincFixedIn::<f32>::new(
                f64::from(to) / f64::from(from),
                1.0,
                params,
                input.len(),
                1,
            )
            .unwrap();
            let mut inb = vec![vec![0f32; input.len()]];
            let mut outb = vec![vec![0f32; r.output_frames_max()]];
            let mut out = Vec::with_capacity((to / 50) as usize);
            b.iter(|| {
                for (d, s) in inb[0].iter_mut().zip(input.iter()) {
                    *d = f32::from(*s);
                }
                let (_, n) = r.process_into_buffer(&inb, &mut outb, None).unwrap();
                out.clear();
                out.extend(outb[0][..n].iter().map(|v| v.round() as i16));
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn jitter(c: &mut Criterion) {
    // One packet in, one frame out, then decode: the per-packet receive path of a leg.
    let mut g = c.benchmark_group("jitter_per_packet");
    for codec in [Codec::Pcmu, Codec::G722, Codec::Opus(Channels::Mono)] {
        let frame = codec.samples_per_frame();
        let pcm = signal(codec.sample_rate(), frame * 50);
        let mut enc = codec.encoder().unwrap();
        let packets: Vec<Vec<u8>> = pcm
            .chunks_exact(frame)
            .map(|f| {
                let mut p = Vec::new();
                enc.encode(f, &mut p).unwrap();
                p
            })
            .collect();
        let ticks = codec.rtp_timestamp_per_frame();
        g.bench_function(BenchmarkId::new("push_pop", codec.name()), |b| {
            let mut jb: JitterBuffer<&[u8]> =
                JitterBuffer::new(JitterConfig::new(codec.rtp_clock_rate()));
            let t0 = Instant::now();
            let mut k: u64 = 0;
            b.iter(|| {
                let now = t0 + Duration::from_millis(20 * k);
                let p = &packets[(k % 50) as usize];
                jb.push(
                    now,
                    1,
                    k as u16,
                    (k as u32).wrapping_mul(ticks),
                    p.as_slice(),
                );
                let r = jb.pop(now);
                k += 1;
                black_box(matches!(r, Pop::Frame(_)))
            })
        });
        g.bench_function(BenchmarkId::new("push_pop_decode", codec.name()), |b| {
            let mut jb: JitterBuffer<&[u8]> =
                JitterBuffer::new(JitterConfig::new(codec.rtp_clock_rate()));
            let mut dec = codec.decoder().unwrap();
            let mut out = Vec::with_capacity(frame);
            let t0 = Instant::now();
            let mut k: u64 = 0;
            b.iter(|| {
                let now = t0 + Duration::from_millis(20 * k);
                let p = &packets[(k % 50) as usize];
                jb.push(
                    now,
                    1,
                    k as u16,
                    (k as u32).wrapping_mul(ticks),
                    p.as_slice(),
                );
                out.clear();
                match jb.pop(now) {
                    Pop::Frame(p) => dec.decode(Some(p), &mut out).unwrap(),
                    Pop::Lost => dec.decode(None, &mut out).unwrap(),
                    Pop::Empty => 0,
                };
                k += 1;
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, opus, g711_g722, resampling, jitter);
criterion_main!(benches);
