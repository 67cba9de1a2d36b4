//! Receive accounting for one leg: packets received, lost (sequence gaps), duplicates,
//! reordered, and late (arrival jitter), on caller-supplied time so it is testable on
//! virtual clocks.
//!
//! # Definitions
//!
//! * **Sequence extension** (RFC 3550 §A.1): 16-bit sequence numbers are extended to 64 bits
//!   by counting wraps of the highest number seen; a number more than 32,768 behind the
//!   highest is taken as from before the last wrap.
//! * **Expected** (RFC 3550 §A.3): highest extended sequence number − first + 1.
//! * **Received**: distinct sequence numbers seen (duplicates within the last 128 numbers
//!   are counted apart and not as received).
//! * **Lost** = expected − received, never below 0. Packets lost after the last one
//!   received are not seen (as in RFC 3550).
//! * **Late**: a packet's *offset* is `arrival − first_arrival − (ts − first_ts) / clock`,
//!   i.e. how far after its media-time slot it arrived, using the RTP timestamp (media time,
//!   RFC 3550 §5.1) of the packet and the leg's RTP clock. The *lateness* of a packet is
//!   its offset minus the smallest offset seen so far on the leg (the earliest any packet
//!   has arrived relative to its slot). A packet is late when its lateness exceeds the
//!   threshold (60 ms by default: three 20 ms frames, more than a 40–60 ms jitter buffer
//!   absorbs). This is the RFC 3550 §6.4.1 transit-time idea measured against the best
//!   transit instead of the previous packet, so one late packet is counted once and the
//!   packets after it are not counted late unless they are late too.

use std::collections::BTreeMap;
use std::time::Duration;

/// Lateness histogram: 1 ms buckets from 0 to `HIST_MS - 1`, and one overflow bucket.
pub const HIST_MS: usize = 500;

/// A histogram of milliseconds with 1 ms buckets and an overflow bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    buckets: Vec<u64>,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; HIST_MS + 1],
            max_ns: 0,
        }
    }
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let ms = usize::try_from(ns / 1_000_000).unwrap_or(usize::MAX);
        let i = ms.min(HIST_MS);
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.max_ns = self.max_ns.max(ns);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper edge in ms of the bucket holding the `p`-th percentile (0..=100), or the
    /// maximum for the overflow bucket; `None` when empty.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(if i == HIST_MS {
                    self.max_ms()
                } else {
                    (i + 1) as f64
                });
            }
        }
        Some(self.max_ms())
    }

    /// The largest value in ms.
    pub fn max_ms(&self) -> f64 {
        self.max_ns as f64 / 1e6
    }
}

/// Per-leg receive counters.
#[derive(Clone, Debug, Default)]
pub struct RxStats {
    /// Distinct packets received.
    pub received: u64,
    /// Packets received again (same sequence number within the window).
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// Packets later than the threshold.
    pub late: u64,
    /// Lateness of every received packet.
    pub lateness: Histogram,
    /// Late packets by the whole second of their arrival time (the caller's origin), to
    /// tell one stall of everything from steady lateness.
    pub late_by_second: BTreeMap<u64, u64>,
    /// Highest and first extended sequence numbers.
    first_ext: Option<u64>,
    max_ext: u64,
    /// Bit i set: `max_ext - i` was seen (i < 128).
    seen: u128,
    /// First arrival and its RTP timestamp; smallest offset so far (ns; the first
    /// packet's offset is 0 by definition).
    first: Option<(Duration, u32)>,
    best_offset_ns: i128,
}

impl RxStats {
    /// Packets expected from the sequence numbers seen (RFC 3550 §A.3).
    pub fn expected(&self) -> u64 {
        match self.first_ext {
            Some(f) => self.max_ext - f + 1,
            None => 0,
        }
    }

    /// Expected minus received, at least 0.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Extends a 16-bit sequence number against the highest seen (RFC 3550 §A.1).
    fn extend(&self, seq: u16) -> Option<u64> {
        self.first_ext?;
        let max16 = (self.max_ext & 0xFFFF) as u16;
        let ahead = seq.wrapping_sub(max16);
        if ahead < 0x8000 {
            Some(self.max_ext + u64::from(ahead))
        } else {
            let behind = u64::from(max16.wrapping_sub(seq));
            self.max_ext.checked_sub(behind)
        }
    }

    /// Accounts one authenticated RTP packet: sequence number, RTP timestamp, the leg's RTP
    /// clock rate, and the arrival time (any monotonic origin). `late_after` is the
    /// lateness threshold.
    pub fn on_packet(
        &mut self,
        seq: u16,
        ts: u32,
        clock_rate: u32,
        arrival: Duration,
        late_after: Duration,
    ) {
        // Sequence accounting.
        match self.extend(seq) {
            None if self.first_ext.is_none() => {
                // Start the 64-bit space high enough that early reordering cannot underflow.
                let ext = (1u64 << 32) + u64::from(seq);
                self.first_ext = Some(ext);
                self.max_ext = ext;
                self.seen = 1;
                self.received = 1;
            }
            None => {
                // Too far behind the start: a stale packet from before the first one.
                self.reordered += 1;
                return;
            }
            Some(ext) if ext > self.max_ext => {
                let shift = ext - self.max_ext;
                self.seen = if shift >= 128 { 0 } else { self.seen << shift };
                self.seen |= 1;
                self.max_ext = ext;
                self.received += 1;
            }
            Some(ext) => {
                let back = self.max_ext - ext;
                if back < 128 && self.seen & (1u128 << back) != 0 {
                    self.duplicates += 1;
                    return;
                }
                if back < 128 {
                    self.seen |= 1u128 << back;
                }
                if let Some(f) = self.first_ext
                    && ext < f
                {
                    self.first_ext = Some(ext);
                }
                self.reordered += 1;
                self.received += 1;
            }
        }
        // Lateness against the best transit so far.
        let clock = i128::from(clock_rate.max(1));
        let (t0, ts0) = *self.first.get_or_insert((arrival, ts));
        let media_ns = i128::from(ts.wrapping_sub(ts0) as i32) * 1_000_000_000 / clock;
        let offset = arrival.as_nanos() as i128 - t0.as_nanos() as i128 - media_ns;
        self.best_offset_ns = self.best_offset_ns.min(offset);
        let lateness_ns = u64::try_from(offset - self.best_offset_ns).unwrap_or(0);
        let lateness = Duration::from_nanos(lateness_ns);
        self.lateness.record(lateness);
        if lateness > late_after {
            self.late += 1;
            *self.late_by_second.entry(arrival.as_secs()).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const LATE: Duration = Duration::from_millis(60);

    fn feed(s: &mut RxStats, seq: u16, frame: u32, at_ms: u64) {
        s.on_packet(seq, frame * 160, 8000, MS * at_ms as u32, LATE);
    }

    #[test]
    fn steady_stream_has_no_loss_or_lateness() {
        let mut s = RxStats::default();
        for i in 0..500u32 {
            feed(&mut s, i as u16, i, 1000 + 20 * u64::from(i));
        }
        assert_eq!(
            (s.received, s.expected(), s.lost(), s.late),
            (500, 500, 0, 0)
        );
        assert_eq!(s.lateness.percentile_ms(99.0), Some(1.0));
    }

    #[test]
    fn gaps_are_lost_and_sequence_wrap_is_followed() {
        let mut s = RxStats::default();
        // Start near the wrap, drop two packets across it.
        let start = 65530u16;
        for i in 0..20u32 {
            if i == 5 || i == 7 {
                continue;
            }
            feed(&mut s, start.wrapping_add(i as u16), i, 20 * u64::from(i));
        }
        assert_eq!(s.expected(), 20);
        assert_eq!(s.received, 18);
        assert_eq!(s.lost(), 2);
        assert_eq!(s.late, 0);
    }

    #[test]
    fn duplicates_and_reordering_are_counted_apart() {
        let mut s = RxStats::default();
        feed(&mut s, 10, 0, 0);
        feed(&mut s, 12, 2, 40);
        feed(&mut s, 11, 1, 41); // reordered, 21 ms late: not late
        feed(&mut s, 12, 2, 42); // duplicate
        feed(&mut s, 13, 3, 60);
        assert_eq!((s.received, s.duplicates, s.reordered), (4, 1, 1));
        assert_eq!((s.expected(), s.lost(), s.late), (4, 0, 0));
    }

    #[test]
    fn a_stall_makes_the_packets_behind_it_late_once() {
        let mut s = RxStats::default();
        for i in 0..10u32 {
            feed(&mut s, i as u16, i, 20 * u64::from(i));
        }
        // The sender stalls 100 ms, then the backlog arrives at once, then steady again.
        for i in 10..15u32 {
            feed(&mut s, i as u16, i, 300);
        }
        for i in 15..30u32 {
            feed(&mut s, i as u16, i, 20 * u64::from(i));
        }
        // Slots of 10..15 are 200..280 ms; arriving at 300 ms: 100, 80, 60, 40, 20 ms late.
        assert_eq!(
            s.late, 2,
            "lateness 100 and 80 ms exceed 60 ms; 60 does not"
        );
        assert_eq!(
            s.late_by_second.clone().into_iter().collect::<Vec<_>>(),
            vec![(0, 2)]
        );
        assert_eq!(s.lost(), 0);
        assert!((s.lateness.max_ms() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_constant_delay_is_not_lateness_and_early_packets_rebase() {
        let mut s = RxStats::default();
        // First packet arrives 70 ms after its slot (the path was slow), then the path
        // speeds up: the best transit moves, so nothing is late.
        feed(&mut s, 0, 0, 70);
        for i in 1..50u32 {
            feed(&mut s, i as u16, i, 20 * u64::from(i));
        }
        assert_eq!(s.late, 0);
    }

    #[test]
    fn opus_clock_and_timestamp_gaps_use_media_time() {
        let mut s = RxStats::default();
        // 48 kHz clock; the sender skipped 5 frames of media time (DTX) without a
        // sequence gap: no loss and no lateness.
        s.on_packet(1, 0, 48000, Duration::ZERO, LATE);
        s.on_packet(2, 960, 48000, MS * 20, LATE);
        s.on_packet(3, 960 * 7, 48000, MS * 140, LATE);
        assert_eq!((s.lost(), s.late), (0, 0));
    }

    #[test]
    fn histogram_percentiles_and_merge() {
        let mut a = Histogram::default();
        for ms in 0..100u32 {
            a.record(MS * ms);
        }
        let mut b = Histogram::default();
        b.record(Duration::from_secs(2));
        a.merge(&b);
        assert_eq!(a.count(), 101);
        assert_eq!(a.percentile_ms(50.0), Some(51.0));
        assert_eq!(a.percentile_ms(100.0), Some(2000.0));
        assert_eq!(Histogram::default().percentile_ms(50.0), None);
    }
}
