//! Packet index estimation (RFC 3711 §3.3.1, Appendix A) and the sliding replay window
//! (RFC 3711 §3.3.2).

/// Largest SRTP packet index: 48 bits (RFC 3711 §3.3.1).
pub(crate) const MAX_SRTP_INDEX: u64 = (1 << 48) - 1;
/// Largest SRTCP index: 31 bits (RFC 3711 §3.4).
pub(crate) const MAX_SRTCP_INDEX: u32 = (1 << 31) - 1;

/// RFC 3711 Appendix A: estimates the 48-bit index `v * 2^16 + SEQ` of a packet with
/// sequence number `seq` given the highest index seen so far (ROC `highest >> 16`,
/// `s_l = highest & 0xFFFF`).
///
/// A guess of ROC − 1 while ROC is 0 is taken as ROC 0 (the stream cannot have a negative
/// ROC); a result above 2^48 − 1 means the key is exhausted and the caller refuses it.
pub(crate) fn estimate_index(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let s_l = highest as u16;
    let v = if s_l < 32768 {
        if seq > s_l && seq - s_l > 32768 {
            roc.saturating_sub(1)
        } else {
            roc
        }
    } else if seq < s_l - 32768 {
        roc + 1
    } else {
        roc
    };
    (v << 16) | u64::from(seq)
}

/// Sliding replay window over packet indices (RFC 3711 §3.3.2). Bit `k` records whether
/// index `top - k` was received. The bitmap is allocated once per stream.
#[derive(Debug, Clone)]
pub(crate) struct ReplayWindow {
    top: u64,
    size: u64,
    bits: Box<[u64]>,
}

/// Why the window refused an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayVerdict {
    /// Seen before.
    Duplicate,
    /// Older than the window can tell.
    TooOld,
}

impl ReplayWindow {
    /// A window of `size` packets (rounded up to 64) whose first accepted index is `first`.
    pub(crate) fn new(size: usize, first: u64) -> Self {
        let words = size.div_ceil(64).max(1);
        let mut bits = vec![0u64; words].into_boxed_slice();
        bits[0] = 1;
        Self {
            top: first,
            size: size as u64,
            bits,
        }
    }

    /// Highest index accepted so far.
    pub(crate) fn top(&self) -> u64 {
        self.top
    }

    /// Checks `index` without recording it.
    pub(crate) fn check(&self, index: u64) -> Result<(), ReplayVerdict> {
        if index > self.top {
            return Ok(());
        }
        let age = self.top - index;
        if age >= self.size {
            return Err(ReplayVerdict::TooOld);
        }
        if self.bit(age) {
            Err(ReplayVerdict::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records `index` (after it passed [`ReplayWindow::check`] and authentication).
    pub(crate) fn record(&mut self, index: u64) {
        if index > self.top {
            self.shift(index - self.top);
            self.top = index;
            self.bits[0] |= 1;
        } else {
            let age = self.top - index;
            if age < self.size {
                let age = age as usize;
                self.bits[age / 64] |= 1 << (age % 64);
            }
        }
    }

    fn bit(&self, age: u64) -> bool {
        let age = age as usize;
        self.bits
            .get(age / 64)
            .is_some_and(|w| (w >> (age % 64)) & 1 == 1)
    }

    /// Moves every mark `d` positions older (a left shift of the multi-word integer).
    fn shift(&mut self, d: u64) {
        let n = self.bits.len();
        if d >= (n as u64) * 64 {
            self.bits.fill(0);
            return;
        }
        let ws = (d / 64) as usize;
        let bs = (d % 64) as u32;
        for i in (0..n).rev() {
            let mut v = 0;
            if i >= ws {
                let src = i - ws;
                v = self.bits[src] << bs;
                if bs > 0 && src >= 1 {
                    v |= self.bits[src - 1] >> (64 - bs);
                }
            }
            self.bits[i] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_estimation_rfc3711_appendix_a() {
        // No wrap.
        assert_eq!(estimate_index(100, 101), 101);
        // Wrap forwards: s_l high, seq low.
        assert_eq!(estimate_index(65535, 0), 65536);
        assert_eq!(estimate_index(65000, 10), 65536 + 10);
        // Late packet from before the wrap.
        assert_eq!(estimate_index(65536 + 5, 65530), 65530);
        // ROC 0 cannot go negative.
        assert_eq!(estimate_index(5, 65530), 65530);
        // Mid-range.
        assert_eq!(estimate_index((7 << 16) | 40000, 39000), (7 << 16) | 39000);
        assert_eq!(estimate_index((7 << 16) | 40000, 1000), (8 << 16) | 1000);
    }

    #[test]
    fn window_accepts_new_rejects_duplicates_and_old() {
        let base = 100_000u64;
        for size in [64usize, 128, 200, 1024] {
            let mut w = ReplayWindow::new(size, base);
            assert_eq!(w.check(base), Err(ReplayVerdict::Duplicate));
            assert_eq!(w.check(base + 1), Ok(()));
            w.record(base + 1);
            assert_eq!(w.check(base + 1), Err(ReplayVerdict::Duplicate));
            assert_eq!(w.check(base - 1), Ok(()));
            w.record(base - 1);
            assert_eq!(w.check(base - 1), Err(ReplayVerdict::Duplicate));
            let oldest_ok = base + 1 - (size as u64 - 1);
            assert_eq!(w.check(oldest_ok), Ok(()));
            assert_eq!(w.check(oldest_ok - 1), Err(ReplayVerdict::TooOld));
            // Jump forward by less than the window: old marks move but stay.
            let jump = size as u64 / 2;
            w.record(base + 1 + jump);
            assert_eq!(w.check(base + 1), Err(ReplayVerdict::Duplicate));
            assert_eq!(w.check(base - 1), Err(ReplayVerdict::Duplicate));
            assert_eq!(w.check(base + jump), Ok(()));
            // Jump far beyond.
            w.record(base * 10);
            assert_eq!(w.check(base * 10 - 1), Ok(()));
            assert_eq!(w.check(base * 10), Err(ReplayVerdict::Duplicate));
        }
    }

    #[test]
    fn window_matches_reference_model() {
        use std::collections::BTreeSet;
        let size = 130u64;
        let mut w = ReplayWindow::new(size as usize, 500);
        let mut seen = BTreeSet::from([500u64]);
        let mut top = 500u64;
        let mut x: u64 = 0x1234_5678;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let delta = (x >> 33) % 300;
            let idx = (top + 100).saturating_sub(delta);
            let expect = if idx > top {
                Ok(())
            } else if top - idx >= size {
                Err(ReplayVerdict::TooOld)
            } else if seen.contains(&idx) {
                Err(ReplayVerdict::Duplicate)
            } else {
                Ok(())
            };
            assert_eq!(w.check(idx), expect, "idx {idx} top {top}");
            if expect.is_ok() {
                w.record(idx);
                seen.insert(idx);
                top = top.max(idx);
            }
        }
    }
}
