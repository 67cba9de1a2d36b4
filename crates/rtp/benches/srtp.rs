//! SRTP protect/unprotect packets per second, ours beside libsrtp2 in the same run.
//!
//! `cargo bench -p rtp --bench srtp`

#[path = "../tests/libsrtp/mod.rs"]
mod libsrtp;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use libsrtp::LibSrtp;
use rtp::srtp::{SrtpContext, SrtpSuite};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SUITES: [SrtpSuite; 4] = [
    SrtpSuite::AesCm128HmacSha1_80,
    SrtpSuite::Aes256CmHmacSha1_80,
    SrtpSuite::AeadAes256Gcm,
    SrtpSuite::AeadAes256Gcm8,
];
/// Total RTP packet sizes (12-octet header included).
const SIZES: [usize; 2] = [172, 1200];
/// Packets protected up front per timed unprotect chunk (fresh indices, no replays).
const CHUNK: usize = 2048;

fn rtp_packet(size: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x00, 0, 0, 0, 0, 0x12, 0x34, 0xCA, 0xFE, 0xBA, 0xBE];
    p.extend((0..size - 12).map(|i| i as u8));
    p
}

fn set_seq(p: &mut [u8], seq: u16) {
    p[2..4].copy_from_slice(&seq.to_be_bytes());
}

fn bench(c: &mut Criterion) {
    for suite in SUITES {
        let key = vec![0x42; suite.master_key_len()];
        let salt = vec![0x24; suite.master_salt_len()];
        let mut g = c.benchmark_group(format!("srtp/{suite}"));
        g.sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_millis(1500))
            .throughput(Throughput::Elements(1));
        for size in SIZES {
            let base = rtp_packet(size);

            g.bench_function(BenchmarkId::new("protect/ours", size), |b| {
                let mut ctx = SrtpContext::new(suite, &key, &salt).unwrap();
                let mut pkt = base.clone();
                let mut out = Vec::with_capacity(size + 16);
                let mut seq = 0u16;
                b.iter(|| {
                    seq = seq.wrapping_add(1);
                    set_seq(&mut pkt, seq);
                    ctx.protect_rtp(black_box(&pkt), &mut out).unwrap();
                    black_box(&out);
                });
            });
            g.bench_function(BenchmarkId::new("protect/libsrtp2", size), |b| {
                let mut ctx = LibSrtp::new(suite, &key, &salt, true);
                let mut pkt = base.clone();
                let mut out = Vec::with_capacity(size + 160);
                let mut seq = 0u16;
                b.iter(|| {
                    seq = seq.wrapping_add(1);
                    set_seq(&mut pkt, seq);
                    ctx.protect_rtp(black_box(&pkt), &mut out).unwrap();
                    black_box(&out);
                });
            });

            // Unprotect: protect CHUNK fresh packets untimed, then time unprotecting them.
            let unprotect = |b: &mut criterion::Bencher, theirs: bool| {
                let mut tx = SrtpContext::new(suite, &key, &salt).unwrap();
                let mut ours = SrtpContext::new(suite, &key, &salt).unwrap();
                let mut lib = LibSrtp::new(suite, &key, &salt, false);
                let mut pkt = base.clone();
                let mut wires: Vec<Vec<u8>> =
                    (0..CHUNK).map(|_| Vec::with_capacity(size + 16)).collect();
                let mut out = Vec::with_capacity(size + 160);
                let mut seq = 0u16;
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut left = iters as usize;
                    while left > 0 {
                        let n = left.min(CHUNK);
                        for w in &mut wires[..n] {
                            seq = seq.wrapping_add(1);
                            set_seq(&mut pkt, seq);
                            tx.protect_rtp(&pkt, w).unwrap();
                        }
                        let start = Instant::now();
                        if theirs {
                            for w in &wires[..n] {
                                lib.unprotect_rtp(black_box(w), &mut out).unwrap();
                            }
                        } else {
                            for w in &wires[..n] {
                                ours.unprotect_rtp(black_box(w), &mut out).unwrap();
                            }
                        }
                        total += start.elapsed();
                        left -= n;
                    }
                    total
                });
            };
            g.bench_function(BenchmarkId::new("unprotect/ours", size), |b| {
                unprotect(b, false)
            });
            g.bench_function(BenchmarkId::new("unprotect/libsrtp2", size), |b| {
                unprotect(b, true)
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
