//! The parts of a run's JSON report that every mode shares: the receive totals of a set
//! of legs, the sender's totals, and CPU use over the measurement from `/proc` samples.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::media::{RxResult, TxTotals};
use crate::procstat::{self, ProcSample};
use crate::stats::Histogram;

/// A CPU/RSS sample: when, this process, the watched processes (summed).
pub type Sample = (Instant, ProcSample, Option<ProcSample>);

/// `part` of `whole` in percent (0 when `whole` is 0).
pub fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// The ten seconds with the most late packets, as (second since the start of the
/// measurement, late packets), busiest first.
pub fn late_seconds(by: &BTreeMap<u64, u64>, offset: Option<Duration>) -> Vec<(i64, u64)> {
    let base = offset.map_or(0, |o| o.as_secs() as i64);
    let mut v: Vec<(i64, u64)> = by.iter().map(|(s, n)| (*s as i64 - base, *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(10);
    v
}

/// Receive totals over `legs`: counts, loss and lateness (percent and percentiles), and
/// the seconds with the most late packets (`measure_offset`: the start of the
/// measurement on the receivers' clock).
pub fn rx_summary<'a>(
    legs: impl IntoIterator<Item = &'a RxResult>,
    measure_offset: Option<Duration>,
) -> Value {
    let mut lateness = Histogram::default();
    let mut late_by_second: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut n, mut received, mut expected, mut lost, mut late) = (0u64, 0, 0, 0, 0);
    let (mut dup, mut reord, mut srtp_fail, mut rtcp, mut dropped, mut silent) = (0, 0, 0, 0, 0, 0);
    for res in legs {
        let s = &res.stats;
        n += 1;
        received += s.received;
        expected += s.expected();
        lost += s.lost();
        late += s.late;
        dup += s.duplicates;
        reord += s.reordered;
        srtp_fail += res.srtp_failures;
        rtcp += res.rtcp;
        dropped += res.dropped_by_test;
        if s.received == 0 {
            silent += 1;
        }
        lateness.merge(&s.lateness);
        for (sec, k) in &s.late_by_second {
            *late_by_second.entry(*sec).or_default() += k;
        }
    }
    json!({
        "legs": n, "legs_without_packets": silent,
        "received": received, "expected": expected, "lost": lost, "late": late,
        "duplicates": dup, "reordered": reord, "srtp_failures": srtp_fail, "rtcp": rtcp,
        "dropped_by_test": dropped,
        "lost_pct": pct(lost, expected), "late_pct": pct(late, received),
        "lateness_ms_p50": lateness.percentile_ms(50.0),
        "lateness_ms_p99": lateness.percentile_ms(99.0),
        "lateness_ms_p999": lateness.percentile_ms(99.9),
        "lateness_ms_max": lateness.max_ms(),
        "late_by_second": late_seconds(&late_by_second, measure_offset),
    })
}

/// The sender's totals.
pub fn tx_summary(tx: &TxTotals) -> Value {
    json!({
        "sent": tx.sent, "sent_measured": tx.sent_measured, "send_errors": tx.send_errors,
        "skipped": tx.skipped,
        "behind_ms_p50": tx.behind.percentile_ms(50.0),
        "behind_ms_p99": tx.behind.percentile_ms(99.0),
        "behind_ms_max": tx.behind.max_ms(),
    })
}

/// CPU and RSS of this process and of the watched ones, sampled every 500 ms; CPU counts
/// only the samples taken while measuring.
pub struct Sampler {
    pids: Vec<u32>,
    samples: Vec<Sample>,
    peak_rss_watch: u64,
    next: Instant,
}

impl Sampler {
    pub fn new(now: Instant, pids: Vec<u32>) -> Self {
        Sampler {
            pids,
            samples: Vec::new(),
            peak_rss_watch: 0,
            next: now,
        }
    }

    pub fn tick(&mut self, now: Instant, measuring: bool) {
        if now < self.next {
            return;
        }
        self.next = now + Duration::from_millis(500);
        let watched = procstat::sample_sum(&self.pids);
        if let Some(w) = &watched {
            self.peak_rss_watch = self.peak_rss_watch.max(w.rss_kib);
        }
        if let Some(me) = procstat::sample(None)
            && measuring
        {
            self.samples.push((now, me, watched));
        }
    }

    /// The report's `generator` and `watched` objects.
    pub fn json(&self) -> (Value, Value) {
        let (me, watched) = cpu_pct(&self.samples);
        (
            json!({ "cpu_pct": me, "rss_kib": self.samples.iter().map(|s| s.1.rss_kib).max() }),
            json!({ "pids": self.pids, "cpu_pct": watched, "rss_kib_peak": self.peak_rss_watch }),
        )
    }
}

/// CPU use over the samples in percent of one core: (this process, the watched ones).
pub fn cpu_pct(samples: &[Sample]) -> (Option<f64>, Option<f64>) {
    let cpu = |pick: &dyn Fn(&Sample) -> Option<f64>| {
        let (first, last) = (samples.first()?, samples.last()?);
        let wall = last.0.saturating_duration_since(first.0).as_secs_f64();
        if wall <= 0.0 {
            return None;
        }
        Some(100.0 * (pick(last)? - pick(first)?) / wall)
    };
    (
        cpu(&|s| Some(s.1.cpu_s)),
        cpu(&|s| s.2.as_ref().map(|w| w.cpu_s)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_seconds_are_relative_to_the_measurement_and_busiest_first() {
        let by = BTreeMap::from([(10, 1), (12, 5), (11, 5)]);
        assert_eq!(
            late_seconds(&by, Some(Duration::from_secs(10))),
            vec![(1, 5), (2, 5), (0, 1)]
        );
    }

    #[test]
    fn cpu_is_the_difference_over_the_wall_time() {
        let t0 = Instant::now();
        let s = |t: u64, me: f64, w: f64| {
            let p = |cpu_s| ProcSample { cpu_s, rss_kib: 1 };
            (t0 + Duration::from_secs(t), p(me), Some(p(w)))
        };
        let (me, watched) = cpu_pct(&[s(0, 1.0, 2.0), s(2, 2.0, 5.0)]);
        assert_eq!((me, watched), (Some(50.0), Some(150.0)));
        assert_eq!(cpu_pct(&[]), (None, None));
    }
}
