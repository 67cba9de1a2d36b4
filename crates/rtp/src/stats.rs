//! Per-stream RTP statistics and the RTCP report blocks built from them (RFC 3550 §6.4,
//! Appendix A.1, A.3, A.8). Sans-IO: every call takes `now`.
//!
//! - [`ReceptionStats`]: sequence tracking with probation and restart (A.1), extended
//!   highest sequence number, cumulative and fractional loss (A.3), interarrival jitter
//!   (A.8), and the LSR/DLSR bookkeeping for the last SR received (§6.4.1).
//! - [`SenderStats`]: packet and octet counts and the RTP timestamp extrapolated to `now`
//!   for an SR's sender info.
//! - [`round_trip_time`]: RTT from a report block about our stream (§6.4.1: A − LSR − DLSR).
//! - [`write_receiver_report`], [`write_sender_report`]: RR/SR packets from the above.

use crate::rtcp::{self, MAX_COUNT, ReportBlock, RtcpError, SenderInfo};
use std::time::{Duration, Instant};

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
pub const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

const RTP_SEQ_MOD: u32 = 1 << 16;
/// A.1: largest forward jump still taken as in-sequence.
const MAX_DROPOUT: u32 = 3000;
/// A.1: largest backward jump taken as reordering rather than a restart.
const MAX_MISORDER: u32 = 100;
/// A.1: sequential packets needed before a source is valid.
const MIN_SEQUENTIAL: u32 = 2;

/// Converts a duration to 64-bit NTP format (32.32 fixed point seconds).
#[must_use]
pub fn duration_to_ntp(d: Duration) -> u64 {
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (d.as_secs() << 32).wrapping_add(frac)
}

/// The middle 32 bits of an NTP timestamp (the "compact" form of LSR, RFC 3550 §6.4.1).
#[must_use]
pub fn ntp_middle32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Duration in units of 1/65536 s, saturating (DLSR, RFC 3550 §6.4.1).
fn duration_to_q16(d: Duration) -> u32 {
    let v = (d.as_nanos() << 16) / 1_000_000_000;
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Maps the monotonic clock to NTP wallclock time for SRs and RTT: the edge samples the
/// system clock once, and the sans-IO code derives every later NTP time from `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtpClock {
    base: Instant,
    base_ntp: u64,
}

impl NtpClock {
    /// `since_unix_epoch` is the wallclock time at `base`.
    #[must_use]
    pub fn new(base: Instant, since_unix_epoch: Duration) -> Self {
        let ntp = since_unix_epoch + Duration::from_secs(NTP_UNIX_OFFSET_SECS);
        Self {
            base,
            base_ntp: duration_to_ntp(ntp),
        }
    }

    /// NTP timestamp of `now` (instants before `base` map to `base`).
    #[must_use]
    pub fn ntp(&self, now: Instant) -> u64 {
        self.base_ntp
            .wrapping_add(duration_to_ntp(now.saturating_duration_since(self.base)))
    }
}

/// What [`ReceptionStats::on_rtp`] made of a packet (RFC 3550 Appendix A.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// Counted.
    Valid,
    /// The source is still on probation (fewer than two sequential packets).
    Probation,
    /// A jump too large to be in sequence; a second sequential packet after it restarts
    /// the statistics.
    Invalid,
}

/// Reception statistics of one source (RFC 3550 Appendix A.1, A.3, A.8).
#[derive(Debug, Clone)]
pub struct ReceptionStats {
    ssrc: u32,
    clock_rate: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Last relative transit time (A.8), once a packet was timed.
    transit: Option<u32>,
    /// Jitter × 16 (A.8 integer form).
    jitter_q4: u32,
    arrival_base: Instant,
    /// Middle 32 bits of the last SR's NTP timestamp and when it arrived.
    last_sr: Option<(u32, Instant)>,
}

impl ReceptionStats {
    /// Starts statistics for `ssrc` on its first packet (A.1: `init_seq`, then probation),
    /// with the payload format's RTP clock rate in Hz. Call [`ReceptionStats::on_rtp`] for
    /// that first packet too.
    #[must_use]
    pub fn new(ssrc: u32, clock_rate: u32, first_seq: u16, now: Instant) -> Self {
        let mut s = Self {
            ssrc,
            clock_rate: clock_rate.max(1),
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: 0,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_q4: 0,
            arrival_base: now,
            last_sr: None,
        };
        s.init_seq(first_seq);
        s.max_seq = first_seq.wrapping_sub(1);
        s
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// The source.
    #[must_use]
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Accounts one received RTP packet: sequence tracking (A.1) and, for counted
    /// packets, interarrival jitter (A.8) from `now` and its RTP timestamp.
    pub fn on_rtp(&mut self, now: Instant, seq: u16, rtp_timestamp: u32) -> SeqVerdict {
        let verdict = self.update_seq(seq);
        if verdict == SeqVerdict::Valid {
            self.update_jitter(now, rtp_timestamp);
        }
        verdict
    }

    fn update_seq(&mut self, seq: u16) -> SeqVerdict {
        let udelta = u32::from(seq.wrapping_sub(self.max_seq));
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return SeqVerdict::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqVerdict::Probation;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if udelta <= RTP_SEQ_MOD - MAX_MISORDER {
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets after a big jump: the sender restarted.
                self.init_seq(seq);
                self.transit = None;
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return SeqVerdict::Invalid;
            }
        }
        // Otherwise a duplicate or reordered packet: counted, max_seq unchanged.
        self.received = self.received.wrapping_add(1);
        SeqVerdict::Valid
    }

    fn update_jitter(&mut self, now: Instant, rtp_timestamp: u32) {
        let elapsed = now.saturating_duration_since(self.arrival_base);
        let arrival = ((elapsed.as_nanos() * u128::from(self.clock_rate)) / 1_000_000_000) as u32;
        let transit = arrival.wrapping_sub(rtp_timestamp);
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            let j = u64::from(self.jitter_q4) + u64::from(d)
                - u64::from(self.jitter_q4.saturating_add(8) >> 4);
            self.jitter_q4 = u32::try_from(j).unwrap_or(u32::MAX);
        }
        self.transit = Some(transit);
    }

    /// Records a sender report from this source for LSR/DLSR (RFC 3550 §6.4.1).
    pub fn on_sender_report(&mut self, now: Instant, ntp_timestamp: u64) {
        self.last_sr = Some((ntp_middle32(ntp_timestamp), now));
    }

    /// Extended highest sequence number received (A.3: cycles + max_seq).
    #[must_use]
    pub fn extended_highest_seq(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected so far (A.3).
    #[must_use]
    pub fn expected(&self) -> u32 {
        self.extended_highest_seq()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Packets counted as received (duplicates included, as A.3 does).
    #[must_use]
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Cumulative packets lost (A.3), negative when duplicates outnumber losses.
    #[must_use]
    pub fn cumulative_lost(&self) -> i64 {
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// Interarrival jitter in RTP timestamp units (A.8).
    #[must_use]
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Whether the source has passed probation.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.probation == 0
    }

    /// Builds the report block for this source and starts a new reporting interval
    /// (A.3 fraction lost). `None` while the source is on probation.
    pub fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        if !self.is_valid() {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => (lsr, duration_to_q16(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            extended_highest_seq: self.extended_highest_seq(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }
}

/// Sending statistics of one of our sources (RFC 3550 §6.4.1 sender info).
#[derive(Debug, Clone)]
pub struct SenderStats {
    ssrc: u32,
    clock_rate: u32,
    packets: u32,
    octets: u32,
    last: Option<(u32, Instant)>,
}

impl SenderStats {
    /// Statistics for our source `ssrc` with RTP clock rate `clock_rate` Hz.
    #[must_use]
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        Self {
            ssrc,
            clock_rate: clock_rate.max(1),
            packets: 0,
            octets: 0,
            last: None,
        }
    }

    /// Our SSRC.
    #[must_use]
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Accounts one sent packet with `payload_len` payload octets (header and padding
    /// excluded, §6.4.1) and its RTP timestamp.
    pub fn on_rtp_sent(&mut self, now: Instant, rtp_timestamp: u32, payload_len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        self.last = Some((rtp_timestamp, now));
    }

    /// Whether anything was sent (an SR is due rather than an RR).
    #[must_use]
    pub fn has_sent(&self) -> bool {
        self.last.is_some()
    }

    /// Sender info for an SR at `now`: the RTP timestamp is the last one sent advanced by
    /// the time since, so it corresponds to the NTP timestamp (§6.4.1).
    #[must_use]
    pub fn sender_info(&self, clock: &NtpClock, now: Instant) -> SenderInfo {
        let rtp_timestamp = match self.last {
            Some((ts, at)) => {
                let since = now.saturating_duration_since(at);
                let ticks = (since.as_nanos() * u128::from(self.clock_rate)) / 1_000_000_000;
                ts.wrapping_add(ticks as u32)
            }
            None => 0,
        };
        SenderInfo {
            ntp_timestamp: clock.ntp(now),
            rtp_timestamp,
            packet_count: self.packets,
            octet_count: self.octets,
        }
    }
}

/// Round-trip time from a report block about our stream (RFC 3550 §6.4.1): the arrival
/// time A (from `clock` at `now`) minus LSR minus DLSR. `None` when the block carries no
/// LSR or the values are inconsistent (LSR in the future, DLSR larger than A − LSR).
#[must_use]
pub fn round_trip_time(block: &ReportBlock, clock: &NtpClock, now: Instant) -> Option<Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let a = ntp_middle32(clock.ntp(now));
    let since_sr = a.wrapping_sub(block.last_sr);
    if since_sr > u32::MAX / 2 {
        return None;
    }
    let rtt = since_sr.checked_sub(block.delay_since_last_sr)?;
    Some(Duration::from_nanos((u64::from(rtt) * 1_000_000_000) >> 16))
}

/// Collects up to 31 report blocks from `sources` that are past probation.
fn collect_blocks<'a>(
    sources: impl IntoIterator<Item = &'a mut ReceptionStats>,
    now: Instant,
    blocks: &mut [ReportBlock; MAX_COUNT],
) -> Result<usize, RtcpError> {
    let mut n = 0;
    for s in sources {
        if let Some(b) = s.report_block(now) {
            let slot = blocks.get_mut(n).ok_or(RtcpError::TooManyItems(n + 1))?;
            *slot = b;
            n += 1;
        }
    }
    Ok(n)
}

/// Appends an RR from `ssrc` with a block for each valid source (RFC 3550 §6.4.2).
/// More than 31 valid sources is an error; split them across packets.
pub fn write_receiver_report<'a>(
    out: &mut Vec<u8>,
    ssrc: u32,
    sources: impl IntoIterator<Item = &'a mut ReceptionStats>,
    now: Instant,
) -> Result<(), RtcpError> {
    let mut blocks = [ReportBlock::default(); MAX_COUNT];
    let n = collect_blocks(sources, now, &mut blocks)?;
    rtcp::write_receiver_report(out, ssrc, &blocks[..n])
}

/// Appends an SR for `sender` with a block for each valid source (RFC 3550 §6.4.1).
pub fn write_sender_report<'a>(
    out: &mut Vec<u8>,
    sender: &SenderStats,
    clock: &NtpClock,
    sources: impl IntoIterator<Item = &'a mut ReceptionStats>,
    now: Instant,
) -> Result<(), RtcpError> {
    let mut blocks = [ReportBlock::default(); MAX_COUNT];
    let n = collect_blocks(sources, now, &mut blocks)?;
    rtcp::write_sender_report(
        out,
        sender.ssrc,
        &sender.sender_info(clock, now),
        &blocks[..n],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{RtcpPacket, parse_one};

    const MS: Duration = Duration::from_millis(1);

    /// A source that sent seqs `seqs` every 20 ms, 160 ticks apart, arriving on time.
    fn feed(seqs: impl IntoIterator<Item = u16>, t0: Instant) -> ReceptionStats {
        let mut it = seqs.into_iter().peekable();
        let first = *it.peek().unwrap();
        let mut s = ReceptionStats::new(1, 8000, first, t0);
        for seq in it {
            let k = u32::from(seq.wrapping_sub(first));
            s.on_rtp(t0 + 20 * MS * k, seq, 160 * k);
        }
        s
    }

    #[test]
    fn probation_then_counting_and_wrap() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(1, 8000, 65530, t0);
        assert_eq!(s.on_rtp(t0, 65530, 0), SeqVerdict::Probation);
        assert!(s.report_block(t0).is_none());
        assert_eq!(s.on_rtp(t0, 65531, 160), SeqVerdict::Valid);
        for seq in (65532..=65535).chain(0..=5) {
            assert_eq!(s.on_rtp(t0, seq, 0), SeqVerdict::Valid);
        }
        assert_eq!(s.extended_highest_seq(), 65536 + 5);
        assert_eq!(s.expected(), 11);
        assert_eq!(s.received(), 11);
        assert_eq!(s.cumulative_lost(), 0);
    }

    #[test]
    fn loss_fraction_and_duplicates() {
        let t0 = Instant::now();
        // 0..100 with every 10th lost: 90 received of 100 expected (after probation
        // base is 1, so 99 expected and 89 received).
        let mut s = feed((0..100u16).filter(|k| k % 10 != 5), t0);
        let b = s.report_block(t0 + 2000 * MS).unwrap();
        assert_eq!(b.extended_highest_seq, 99);
        assert_eq!(s.expected(), 99);
        assert_eq!(b.cumulative_lost, 10);
        assert_eq!(b.fraction_lost, ((10u32 << 8) / 99) as u8);
        // Next interval: no new packets → fraction 0; duplicates make loss negative.
        let b = s.report_block(t0 + 3000 * MS).unwrap();
        assert_eq!(b.fraction_lost, 0);
        for _ in 0..15 {
            s.on_rtp(t0 + 3000 * MS, 50, 0);
        }
        assert_eq!(s.cumulative_lost(), -5);
        let b = s.report_block(t0 + 4000 * MS).unwrap();
        assert_eq!(b.cumulative_lost, -5);
        assert_eq!(b.fraction_lost, 0);
    }

    #[test]
    fn big_jump_restarts_after_two_sequential_packets() {
        let t0 = Instant::now();
        let mut s = feed(0..10u16, t0);
        assert_eq!(s.on_rtp(t0, 30_000, 0), SeqVerdict::Invalid);
        assert_eq!(s.on_rtp(t0, 30_001, 0), SeqVerdict::Valid);
        assert_eq!(s.extended_highest_seq(), 30_001);
        assert_eq!(s.expected(), 1);
        // A reordered old packet within MAX_MISORDER is counted without moving max_seq.
        assert_eq!(s.on_rtp(t0, 29_990, 0), SeqVerdict::Valid);
        assert_eq!(s.extended_highest_seq(), 30_001);
    }

    #[test]
    fn jitter_zero_for_steady_arrivals_and_tracks_alternating_delay() {
        let t0 = Instant::now();
        let s = feed(0..200u16, t0);
        assert_eq!(s.jitter(), 0);
        // Arrivals alternate 0 / +5 ms: every transit difference is 40 ticks at 8 kHz,
        // so J converges to 40 (J += (|D| - J) / 16).
        let mut s = ReceptionStats::new(1, 8000, 0, t0);
        for k in 0..400u32 {
            let late = if k % 2 == 1 { 5 * MS } else { Duration::ZERO };
            s.on_rtp(t0 + 20 * MS * k + late, k as u16, 160 * k);
        }
        assert!((38..=40).contains(&s.jitter()), "jitter {}", s.jitter());
    }

    #[test]
    fn rtt_from_lsr_dlsr() {
        let t0 = Instant::now();
        let clock = NtpClock::new(t0, Duration::from_secs(1_700_000_000));
        let mut sender = SenderStats::new(0xAAAA, 8000);
        sender.on_rtp_sent(t0, 1000, 160);
        // We send an SR at t0 + 10 ms; it reaches the peer 40 ms later.
        let sr_at = t0 + 10 * MS;
        let mut sr = Vec::new();
        write_sender_report(&mut sr, &sender, &clock, [], sr_at).unwrap();
        let Ok((RtcpPacket::SenderReport(parsed), _, _)) = parse_one(&sr) else {
            panic!()
        };
        assert_eq!(parsed.info.rtp_timestamp, 1000 + 80);
        assert_eq!(parsed.info.packet_count, 1);
        assert_eq!(parsed.info.octet_count, 160);
        // The peer (its own stats about us) records it, replies 100 ms later.
        let mut peer_view = feed(0..3u16, t0);
        peer_view.on_sender_report(sr_at + 40 * MS, parsed.info.ntp_timestamp);
        let mut rr = Vec::new();
        write_receiver_report(&mut rr, 0xBBBB, [&mut peer_view], sr_at + 140 * MS).unwrap();
        let Ok((RtcpPacket::ReceiverReport(rr), _, _)) = parse_one(&rr) else {
            panic!()
        };
        let block = rr.report_blocks().next().unwrap();
        assert_eq!(block.delay_since_last_sr, 6553); // 100 ms in 1/65536 s, truncated
        // It reaches us 40 ms later: RTT 80 ms.
        let rtt = round_trip_time(&block, &clock, sr_at + 180 * MS).unwrap();
        let diff = rtt.as_secs_f64() - 0.080;
        assert!(diff.abs() < 0.0002, "rtt {rtt:?}");
        // No LSR → no RTT.
        let mut b = block;
        b.last_sr = 0;
        assert_eq!(round_trip_time(&b, &clock, sr_at), None);
    }
}
