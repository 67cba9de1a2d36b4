//! The send schedule: one clock for every leg. The 20 ms frame period is cut into `slots`
//! sub-ticks; leg `i` sends on sub-tick `i mod slots` of every period, so 1,000 legs with 10
//! slots send 100 packets every 2 ms instead of 1,000 at once. The sender sleeps until the
//! next sub-tick's deadline and asks [`Pacer::poll`] which sub-ticks are due; deadlines are
//! absolute (`start + k · period / slots`), so a late wake-up does not shift later frames.
//!
//! Time is passed in as a [`Duration`] since the start, so the schedule is tested on a
//! virtual clock.
//!
//! [`Paced`] spreads a burst of work (the BYEs of every call at the end of a run) over time
//! at a fixed rate, so a thousand BYEs do not overflow the server's socket buffer at once.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

/// A queue drained at `per_s` items per second.
#[derive(Debug)]
pub struct Paced<K> {
    queue: VecDeque<K>,
    clock: Instant,
}

impl<K> Paced<K> {
    pub fn new(now: Instant) -> Self {
        Paced {
            queue: VecDeque::new(),
            clock: now,
        }
    }

    pub fn extend(&mut self, items: impl IntoIterator<Item = K>) {
        self.queue.extend(items);
    }

    /// The items due at `now`: as many as `per_s` allows since the last due item (the
    /// rate's clock starts when the queue fills).
    pub fn due(&mut self, now: Instant, per_s: f64) -> Vec<K> {
        if self.queue.is_empty() {
            self.clock = now;
            return Vec::new();
        }
        let budget = per_s * now.saturating_duration_since(self.clock).as_secs_f64();
        let n = (budget.floor() as usize).min(self.queue.len());
        self.clock += Duration::from_secs_f64(n as f64 / per_s);
        self.queue.drain(..n).collect()
    }
}

/// What [`Pacer::poll`] found due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// Sub-ticks older than the catch-up limit: their frames are not sent (counted as
    /// skipped by the generator, so they show up as loss at the server).
    pub skip: Range<u64>,
    /// Sub-ticks to send now, oldest first.
    pub send: Range<u64>,
    /// How far behind the oldest due sub-tick's deadline this poll ran.
    pub behind: Duration,
}

/// The absolute schedule of sub-ticks.
#[derive(Clone, Debug)]
pub struct Pacer {
    period_ns: u128,
    slots: u64,
    next: u64,
    max_behind: Duration,
}

impl Pacer {
    /// A schedule of `slots` (at least 1) sub-ticks per `period`; sub-ticks more than
    /// `max_behind` late are skipped rather than sent in a burst.
    pub fn new(period: Duration, slots: u64, max_behind: Duration) -> Self {
        Pacer {
            period_ns: period.as_nanos().max(1),
            slots: slots.max(1),
            next: 0,
            max_behind,
        }
    }

    /// Sub-ticks per period.
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Deadline of sub-tick `k`, since the start.
    pub fn deadline(&self, k: u64) -> Duration {
        let ns = self.period_ns * u128::from(k) / u128::from(self.slots);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// When to wake up next, since the start.
    pub fn next_deadline(&self) -> Duration {
        self.deadline(self.next)
    }

    /// Which slot sub-tick `k` serves, and which frame (period) it belongs to.
    pub fn slot_and_frame(&self, k: u64) -> (u64, u64) {
        (k % self.slots, k / self.slots)
    }

    /// The sub-ticks due at `now` (since the start), in order; advances past them.
    pub fn poll(&mut self, now: Duration) -> Due {
        let now_ns = now.as_nanos();
        // Last sub-tick whose deadline is <= now.
        let last =
            u64::try_from(now_ns * u128::from(self.slots) / self.period_ns).unwrap_or(u64::MAX);
        let first = self.next;
        if last < first {
            return Due {
                skip: first..first,
                send: first..first,
                behind: Duration::ZERO,
            };
        }
        let end = last + 1;
        let behind = now.saturating_sub(self.deadline(first));
        // Skip sub-ticks whose deadline is more than max_behind before now.
        let mut send_from = first;
        while send_from < end && now.saturating_sub(self.deadline(send_from)) > self.max_behind {
            send_from += 1;
        }
        self.next = end;
        Due {
            skip: first..send_from,
            send: send_from..end,
            behind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_items_come_at_the_rate() {
        let t0 = Instant::now();
        let mut p = Paced::new(t0);
        p.extend(0..10);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(p.due(at(0), 100.0), Vec::<i32>::new());
        assert_eq!(p.due(at(25), 100.0), vec![0, 1]);
        assert_eq!(p.due(at(30), 100.0), vec![2]);
        assert_eq!(p.due(at(1000), 100.0), (3..10).collect::<Vec<_>>());
        assert_eq!(p.due(at(2000), 100.0), Vec::<i32>::new());
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn on_time_wakeups_send_one_subtick_each() {
        let mut p = Pacer::new(MS * 20, 10, MS * 100);
        assert_eq!(p.next_deadline(), Duration::ZERO);
        for k in 0..100u64 {
            let now = p.next_deadline();
            assert_eq!(now, MS * (2 * k as u32));
            let due = p.poll(now);
            assert_eq!(due.send, k..k + 1);
            assert!(due.skip.is_empty());
            assert_eq!(due.behind, Duration::ZERO);
        }
        assert_eq!(p.slot_and_frame(57), (7, 5));
    }

    #[test]
    fn early_wakeup_sends_nothing_and_late_one_catches_up_in_order() {
        let mut p = Pacer::new(MS * 20, 4, MS * 100);
        let _ = p.poll(Duration::ZERO);
        let due = p.poll(MS * 3); // next deadline is 5 ms
        assert!(due.send.is_empty());
        let due = p.poll(MS * 31); // deadlines 5, 10, 15, 20, 25, 30 are due
        assert_eq!(due.send, 1..7);
        assert_eq!(due.behind, MS * 26);
        assert_eq!(p.next_deadline(), MS * 35);
    }

    #[test]
    fn far_behind_subticks_are_skipped_not_burst() {
        let mut p = Pacer::new(MS * 20, 1, MS * 50);
        let _ = p.poll(Duration::ZERO);
        // A 200 ms stall: ticks at 20..200 are due; those more than 50 ms old are skipped.
        let due = p.poll(MS * 200);
        assert_eq!(due.skip, 1..8); // 20..140 ms
        assert_eq!(due.send, 8..11); // 160, 180, 200 ms
        // Every sub-tick is either skipped or sent exactly once.
        let due = p.poll(MS * 220);
        assert_eq!(due.send, 11..12);
    }

    #[test]
    fn deadlines_do_not_drift_with_uneven_division() {
        let p = Pacer::new(MS * 20, 3, MS * 100);
        assert_eq!(p.deadline(3), MS * 20);
        assert_eq!(p.deadline(3000), MS * 20_000);
        assert_eq!(p.deadline(1), Duration::from_nanos(6_666_666));
    }
}
