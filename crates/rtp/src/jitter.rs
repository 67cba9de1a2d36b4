//! Adaptive per-stream jitter buffer (sans-IO).
//!
//! The mixer pushes every received RTP packet with [`JitterBuffer::push`] and pulls one
//! frame every 20 ms with [`JitterBuffer::pop`]. Time is always a parameter.
//!
//! How it works:
//!
//! * **Playout schedule.** Each RTP timestamp `ts` has a playout instant `T(ts) + offset`,
//!   where `T` converts the (extended) timestamp to time. Every pop plays the slot
//!   `playout_ts` and advances it by one frame, so `offset` stays fixed between adaptations.
//! * **Transit times.** For each packet, `transit = arrival - T(ts)` (the relative transit
//!   time of RFC 3550 §6.4.1). The spread between the smallest transit and a high quantile of
//!   the transits over the last few seconds is the delay needed to absorb the network jitter;
//!   the target delay is that spread plus a small margin, clamped to
//!   [`JitterConfig::min_delay`]..[`JitterConfig::max_delay`]. The RFC 3550 interarrival
//!   jitter estimate is kept as well, for statistics and RTCP.
//! * **Adaptation and drift.** At each pop the current delay (how long the fastest packets
//!   wait) is compared with the target. The delay is a property of the schedule (the slot
//!   offset minus the window's minimum transit), not of single packets, so it only moves
//!   when the schedule does or the pop timer runs late. When it stays more than a frame
//!   plus 5 ms long for 5 pops in a row (the jitter went down, or
//!   the sender's clock is faster than ours) one frame is dropped; the delay then still
//!   meets the target, so there is no oscillation, and a single late pop (a busy machine)
//!   cannot trigger a drop. When it falls below the target (jitter went up, or the
//!   sender's clock is slower) one concealment frame is inserted. The delay thus settles
//!   in `[target, target + frame + margin]`, wherever the arrival phase falls against the
//!   pop grid. At most one change happens per 100 ms.
//! * **Loss, reordering, duplicates, lateness.** Packets are kept ordered by timestamp; a
//!   slot with no packet yields [`Pop::Lost`] (the decoder conceals it, using
//!   [`JitterBuffer::peek_next`] for in-band FEC); a packet whose slot has already been
//!   played is counted late and dropped; a sequence number already received (a 128-packet
//!   window, as for SRTP replay) is a duplicate.
//! * **DTX and silence.** Discontinuous transmission keeps the RTP timestamp advancing with
//!   real time (RFC 3551 §4.1), so packets after a silent gap fit the schedule. When nothing
//!   has arrived for [`JitterBuffer::IDLE_AFTER`], pops return [`Pop::Empty`] (the stream is
//!   silent) instead of concealing.
//! * **Resets.** A new SSRC, a run of packets that are all late (the sender re-timed its
//!   stream, e.g. after hold without advancing timestamps), or a run of packets far ahead of
//!   the schedule (a timestamp jump) reset the buffer, which then buffers up again.
//!
//! The buffer assumes one frame per packet (`a=ptime:20`, our media path's frame size).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP timestamp clock rate in Hz (8000 for G.711/G.722, 48000 for Opus).
    pub clock_rate: u32,
    /// Duration of one frame, and the interval between pops.
    pub frame: Duration,
    /// Lowest target delay.
    pub min_delay: Duration,
    /// Highest target delay.
    pub max_delay: Duration,
    /// Target delay before enough packets have been seen to measure the jitter.
    pub initial_delay: Duration,
    /// Most packets held; beyond this the oldest is dropped.
    pub max_packets: usize,
}

impl JitterConfig {
    /// Defaults for a stream at `clock_rate`: 20 ms frames, delay adapting between 40 and
    /// 200 ms starting at 60 ms, at most 100 packets (2 s) held.
    pub fn new(clock_rate: u32) -> Self {
        JitterConfig {
            clock_rate,
            frame: Duration::from_millis(20),
            min_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(200),
            initial_delay: Duration::from_millis(60),
            max_packets: 100,
        }
    }
}

/// Result of [`JitterBuffer::pop`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pop<P> {
    /// The payload of the frame due now.
    Frame(P),
    /// The frame due now is missing (lost, late, or inserted to grow the delay): conceal.
    Lost,
    /// Nothing to play: still buffering, or the stream is silent (no packets recently).
    Empty,
}

/// Counters and estimates for one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub received: u64,
    /// Frames played from a packet.
    pub played: u64,
    /// Pops that had to conceal a missing packet.
    pub lost: u64,
    /// Concealment frames inserted to lengthen the delay (not losses).
    pub inserted: u64,
    /// Frames dropped to shorten the delay or because the buffer was full.
    pub dropped: u64,
    /// Packets that arrived after their slot had been played.
    pub late: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Packets rejected as far ahead of the schedule (possible timestamp jump).
    pub discarded: u64,
    /// Times the buffer was reset (new SSRC, re-timed or jumped stream).
    pub resets: u64,
    /// RFC 3550 §6.4.1 interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Current target delay.
    pub target_delay: Duration,
    /// Current delay of the earliest packets (how long they wait before playout).
    pub current_delay: Duration,
    /// Packets held now.
    pub buffered: usize,
}

/// A packet held in the buffer.
#[derive(Debug)]
struct Entry<P> {
    payload: P,
}

/// Adaptive playout buffer for one RTP stream. `P` is the payload type (bytes, or anything
/// the caller wants to carry to the decoder).
#[derive(Debug)]
pub struct JitterBuffer<P> {
    cfg: JitterConfig,
    /// One frame in timestamp units.
    frame_ticks: i64,
    ssrc: Option<u32>,
    /// Time base for transit computations: the first arrival.
    base: Option<Instant>,
    /// Packets by extended timestamp.
    packets: BTreeMap<i64, Entry<P>>,
    /// Highest extended timestamp seen.
    highest_ts: i64,
    /// Highest extended sequence number and the window of received ones below it.
    highest_seq: i64,
    seq_window: u128,
    /// First arrival time after a (re)start, for the initial buffering.
    first_arrival: Option<Instant>,
    last_arrival: Option<Instant>,
    /// Next slot to play, once playing.
    playout_ts: Option<i64>,
    /// Recent transit times (µs) and their cached minimum and target delay.
    transits: VecDeque<i64>,
    transit_min: i64,
    target_us: i64,
    pops_since_target: u32,
    /// Pops until the next drop/insert is allowed.
    cooldown: u32,
    /// Consecutive pops at which the delay ran long enough to drop a frame.
    long_pops: u32,
    /// RFC 3550 jitter state: previous transit in ticks and J scaled by 16.
    prev_transit_ticks: Option<i64>,
    jitter_x16: i64,
    late_run: u32,
    early_run: u32,
    stats: JitterStats,
    scratch: Vec<i64>,
}

/// Transits kept for the delay estimate: 3 s of 20 ms packets (short enough that clock
/// drift does not inflate the spread noticeably).
const WINDOW: usize = 150;
/// Fewest transits before the measured target replaces the initial delay.
const MIN_SAMPLES: usize = 20;
/// Quantile of the transit spread the target covers.
const QUANTILE: f64 = 0.99;
/// Margin added to the measured spread, µs.
const MARGIN_US: i64 = 5_000;
/// Pops between target recomputations.
const TARGET_EVERY: u32 = 10;
/// Pops between two delay adjustments.
const COOLDOWN: u32 = 5;
/// How far beyond target + one frame the delay may run before a frame is dropped, µs: room
/// for the pop timer's own lateness.
const DROP_MARGIN_US: i64 = 5_000;
/// Consecutive pops the delay must run long before a frame is dropped.
const LONG_POPS: u32 = 5;
/// Consecutive late packets that mean the stream was re-timed.
const LATE_RESET: u32 = 5;
/// Consecutive far-early packets that mean the timestamps jumped.
const EARLY_RESET: u32 = 2;
/// How far beyond `max_delay` ahead of schedule a packet may be before it counts as a jump.
const EARLY_SLACK: Duration = Duration::from_secs(1);

impl<P> JitterBuffer<P> {
    /// Nothing received for this long means the stream is silent: pops return
    /// [`Pop::Empty`] rather than [`Pop::Lost`].
    pub const IDLE_AFTER: Duration = Duration::from_millis(120);

    /// An empty buffer.
    pub fn new(cfg: JitterConfig) -> Self {
        let clock = i64::from(cfg.clock_rate.max(1));
        let frame_ticks = (cfg.frame.as_micros() as i64 * clock / 1_000_000).max(1);
        let mut jb = JitterBuffer {
            cfg,
            frame_ticks,
            ssrc: None,
            base: None,
            packets: BTreeMap::new(),
            highest_ts: 0,
            highest_seq: 0,
            seq_window: 0,
            first_arrival: None,
            last_arrival: None,
            playout_ts: None,
            transits: VecDeque::with_capacity(WINDOW),
            transit_min: 0,
            target_us: 0,
            pops_since_target: 0,
            cooldown: 0,
            long_pops: 0,
            prev_transit_ticks: None,
            jitter_x16: 0,
            late_run: 0,
            early_run: 0,
            stats: JitterStats::default(),
            scratch: Vec::with_capacity(WINDOW),
        };
        jb.target_us = jb.initial_target();
        jb
    }

    fn initial_target(&self) -> i64 {
        let d = self.cfg.initial_delay.clamp(
            self.cfg.min_delay,
            self.cfg.max_delay.max(self.cfg.min_delay),
        );
        d.as_micros() as i64
    }

    /// Statistics so far.
    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.jitter = (self.jitter_x16 >> 4).clamp(0, i64::from(u32::MAX)) as u32;
        s.target_delay = Duration::from_micros(self.target_us.max(0) as u64);
        s.buffered = self.packets.len();
        s
    }

    /// Forgets the stream (keeps the statistics): the next packet starts buffering anew.
    pub fn reset(&mut self) {
        self.ssrc = None;
        self.base = None;
        self.packets.clear();
        self.first_arrival = None;
        self.last_arrival = None;
        self.playout_ts = None;
        self.transits.clear();
        self.target_us = self.initial_target();
        self.pops_since_target = 0;
        self.cooldown = 0;
        self.long_pops = 0;
        self.prev_transit_ticks = None;
        self.late_run = 0;
        self.early_run = 0;
        self.stats.resets += 1;
    }

    /// µs since the time base.
    fn micros(&self, now: Instant) -> i64 {
        self.base
            .map_or(0, |b| now.saturating_duration_since(b).as_micros() as i64)
    }

    /// Extended timestamp in µs.
    fn ts_micros(&self, ts: i64) -> i64 {
        ts.saturating_mul(1_000_000) / i64::from(self.cfg.clock_rate.max(1))
    }

    /// Adds a received packet.
    pub fn push(&mut self, now: Instant, ssrc: u32, seq: u16, timestamp: u32, payload: P) {
        if self.ssrc.is_some_and(|s| s != ssrc) {
            // RFC 3550 §8.2: a new SSRC is a new stream.
            self.reset();
        }
        if self.ssrc.is_none() {
            self.ssrc = Some(ssrc);
            self.base = Some(now);
            self.highest_ts = i64::from(timestamp);
            self.highest_seq = i64::from(seq);
            self.seq_window = 0;
        }

        // Extend sequence number and timestamp relative to the highest seen (RFC 3550 A.1).
        let seq_delta = i64::from(seq.wrapping_sub(self.highest_seq as u16) as i16);
        let ext_seq = self.highest_seq + seq_delta;
        let ts_delta = i64::from(timestamp.wrapping_sub(self.highest_ts as u32) as i32);
        let ext_ts = self.highest_ts + ts_delta;

        if self.is_duplicate(ext_seq) {
            self.stats.duplicates += 1;
            return;
        }

        let arrival = self.micros(now);
        let transit = arrival - self.ts_micros(ext_ts);

        if let Some(playout) = self.playout_ts {
            // Where does this packet fall relative to the schedule?
            let slot_start = playout - self.frame_ticks / 2;
            if ext_ts < slot_start {
                self.late_run += 1;
                self.early_run = 0;
                if self.late_run >= LATE_RESET {
                    // Every recent packet is late: the stream was re-timed.
                    self.reset();
                    self.push(now, ssrc, seq, timestamp, payload);
                    return;
                }
                self.stats.late += 1;
                self.mark_received(ext_seq);
                self.record_transit(transit, ext_ts, arrival);
                return;
            }
            let ahead_us = self.ts_micros(ext_ts - playout);
            let limit = (self.cfg.max_delay + EARLY_SLACK).as_micros() as i64;
            if ahead_us > limit {
                self.early_run += 1;
                self.late_run = 0;
                if self.early_run >= EARLY_RESET {
                    self.reset();
                    self.push(now, ssrc, seq, timestamp, payload);
                    return;
                }
                self.stats.discarded += 1;
                return;
            }
        }
        self.late_run = 0;
        self.early_run = 0;

        self.mark_received(ext_seq);
        self.highest_ts = self.highest_ts.max(ext_ts);
        self.record_transit(transit, ext_ts, arrival);
        if self.first_arrival.is_none() {
            self.first_arrival = Some(now);
        }
        self.last_arrival = Some(now);
        self.stats.received += 1;
        if self.packets.insert(ext_ts, Entry { payload }).is_some() {
            // Same timestamp, different sequence number: the newer copy replaces it.
            self.stats.duplicates += 1;
        }
        while self.packets.len() > self.cfg.max_packets.max(1) {
            self.packets.pop_first();
            self.stats.dropped += 1;
        }
    }

    fn is_duplicate(&self, ext_seq: i64) -> bool {
        if ext_seq > self.highest_seq {
            return false;
        }
        let back = self.highest_seq - ext_seq;
        if back >= 128 {
            // Too old to tell; it would be late anyway.
            return false;
        }
        self.seq_window & (1u128 << back) != 0
    }

    fn mark_received(&mut self, ext_seq: i64) {
        if ext_seq > self.highest_seq {
            let shift = ext_seq - self.highest_seq;
            self.seq_window = if shift >= 128 {
                0
            } else {
                self.seq_window << shift
            };
            self.highest_seq = ext_seq;
        }
        let back = self.highest_seq - ext_seq;
        if back < 128 {
            self.seq_window |= 1u128 << back;
        }
    }

    fn record_transit(&mut self, transit_us: i64, ext_ts: i64, arrival_us: i64) {
        if self.transits.len() == WINDOW {
            self.transits.pop_front();
        }
        self.transits.push_back(transit_us);
        if self.transits.len() == 1 || transit_us < self.transit_min {
            self.transit_min = transit_us;
        }
        // RFC 3550 §6.4.1 / A.8: J += (|D| - J) / 16, in timestamp units.
        let clock = i64::from(self.cfg.clock_rate.max(1));
        let transit_ticks = arrival_us * clock / 1_000_000 - ext_ts;
        if let Some(prev) = self.prev_transit_ticks {
            let d = (transit_ticks - prev).abs();
            self.jitter_x16 += d - ((self.jitter_x16 + 8) >> 4);
        }
        self.prev_transit_ticks = Some(transit_ticks);
    }

    /// Recomputes the minimum transit and the target delay from the window.
    fn update_target(&mut self) {
        if self.transits.is_empty() {
            return;
        }
        self.scratch.clear();
        self.scratch.extend(self.transits.iter().copied());
        let min = self.scratch.iter().copied().min().unwrap_or(0);
        self.transit_min = min;
        if self.scratch.len() < MIN_SAMPLES {
            return;
        }
        let k = ((self.scratch.len() - 1) as f64 * QUANTILE).round() as usize;
        let k = k.min(self.scratch.len() - 1);
        let (_, q, _) = self.scratch.select_nth_unstable(k);
        let spread = *q - min + MARGIN_US;
        let lo = self.cfg.min_delay.as_micros() as i64;
        let hi = (self.cfg.max_delay.as_micros() as i64).max(lo);
        self.target_us = spread.clamp(lo, hi);
    }

    /// The payload of the frame the next pop will play, if it is here: after a
    /// [`Pop::Lost`], a decoder with in-band FEC recovers the lost frame from it.
    pub fn peek_next(&self) -> Option<&P> {
        let playout = self.playout_ts?;
        self.slot_entry(playout).map(|(_, e)| &e.payload)
    }

    /// The buffered packet for the slot starting at `playout`, if any.
    fn slot_entry(&self, playout: i64) -> Option<(i64, &Entry<P>)> {
        let half = self.frame_ticks / 2;
        self.packets
            .range(playout - half..playout + half)
            .next()
            .map(|(k, e)| (*k, e))
    }

    /// The frame due at `now`. Call once per frame interval.
    pub fn pop(&mut self, now: Instant) -> Pop<P> {
        let Some(mut playout) = self.playout_ts else {
            return self.try_start(now);
        };
        let half = self.frame_ticks / 2;
        // Packets left behind the schedule (e.g. after a drop) will never play.
        while let Some((&k, _)) = self.packets.first_key_value() {
            if k >= playout - half {
                break;
            }
            self.packets.pop_first();
            self.stats.late += 1;
        }

        self.pops_since_target += 1;
        if self.pops_since_target >= TARGET_EVERY {
            self.pops_since_target = 0;
            self.update_target();
        }
        self.cooldown = self.cooldown.saturating_sub(1);

        // Delay of the fastest packets: offset of the schedule minus the minimum transit.
        let offset = self.micros(now) - self.ts_micros(playout);
        let delay = offset - self.transit_min;
        self.stats.current_delay = Duration::from_micros(delay.max(0) as u64);
        let frame_us = self.cfg.frame.as_micros() as i64;
        let idle = self
            .last_arrival
            .is_none_or(|t| now.saturating_duration_since(t) >= Self::IDLE_AFTER);

        let long = delay > self.target_us + frame_us + DROP_MARGIN_US;
        self.long_pops = if long { self.long_pops + 1 } else { 0 };
        if self.cooldown == 0 && !idle {
            if self.long_pops >= LONG_POPS && self.packets.len() >= 2 {
                // Running long: skip this slot's frame.
                if let Some((k, _)) = self.slot_entry(playout) {
                    self.packets.remove(&k);
                }
                self.stats.dropped += 1;
                playout += self.frame_ticks;
                self.cooldown = COOLDOWN;
                self.long_pops = 0;
            } else if delay < self.target_us {
                // Running short: play a concealment frame and hold the schedule.
                // The slot is not advanced, which moves all later playout one frame later.
                self.stats.inserted += 1;
                self.cooldown = COOLDOWN;
                self.long_pops = 0;
                return Pop::Lost;
            }
        }

        let found = self.slot_entry(playout).map(|(k, _)| k);
        if let Some(k) = found {
            let entry = self.packets.remove(&k);
            // Re-align the schedule to the packet's own timestamp grid.
            self.playout_ts = Some(k + self.frame_ticks);
            if let Some(e) = entry {
                self.stats.played += 1;
                return Pop::Frame(e.payload);
            }
        }
        self.playout_ts = Some(playout + self.frame_ticks);
        if idle && self.packets.is_empty() {
            Pop::Empty
        } else {
            self.stats.lost += 1;
            Pop::Lost
        }
    }

    /// Before playout starts: wait until the first packet has waited the target delay.
    fn try_start(&mut self, now: Instant) -> Pop<P> {
        let Some(first) = self.first_arrival else {
            return Pop::Empty;
        };
        let waited = now.saturating_duration_since(first).as_micros() as i64;
        if waited < self.target_us {
            return Pop::Empty;
        }
        let Some((&k, _)) = self.packets.first_key_value() else {
            return Pop::Empty;
        };
        self.playout_ts = Some(k);
        self.pop(now)
    }
}
