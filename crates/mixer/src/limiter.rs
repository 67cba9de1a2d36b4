//! Peak limiter with a soft-clipping safety stage, applied to every mix before it is
//! narrowed to 16 bits.
//!
//! Mixes are summed in `i32`, so several loud talkers can exceed the 16-bit range; wrapping
//! would turn that into loud clicks and hard clipping into harsh distortion. Each mix (the
//! shared one and every private N−1 mix) has its own [`Limiter`], whose gain is set once
//! per 20 ms frame from the frame's peak: when the peak exceeds [`THRESHOLD`] the gain
//! drops to bring it to the threshold (ramped over the first 48 samples, 1 ms at 48 kHz and
//! 6 ms at 8 kHz, so that the gain change itself does not click), and afterwards recovers by 0.5 dB per frame. Samples the
//! ramp lets through above the knee are bent by a `tanh` curve that never reaches full
//! scale, so the output never wraps and never flat-tops.
//!
//! A frame whose peak is below the threshold while the gain is at unity — every frame of an
//! ordinary conference — takes the fast path: a plain narrowing copy.

/// Peaks above this (about −1.5 dBFS) are limited.
pub(crate) const THRESHOLD: u32 = 27_500;
/// Above this magnitude samples are soft-clipped.
const KNEE: f32 = 28_000.0;
/// Gain recovery per frame: +0.5 dB.
const RELEASE: f32 = 1.059_254;
/// Samples over which a gain change is ramped (1 ms at 48 kHz, 6 ms at 8 kHz).
const RAMP: usize = 48;

/// The gain state of one mix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limiter {
    gain: f32,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter { gain: 1.0 }
    }
}

impl Limiter {
    /// Writes `limit(acc[i] − own[i])` (or `limit(acc[i])` without `own`) to `out`.
    /// Processes the shortest of the given lengths. `bound` is what the caller knows of
    /// the mix: no `|acc[i] − own[i]|` exceeds it (`u32::MAX`: nothing known). A mix known
    /// to stay below the threshold at unity gain is written without the test.
    pub(crate) fn process(
        &mut self,
        acc: &[i32],
        own: Option<&[i16]>,
        out: &mut [i16],
        bound: u32,
    ) {
        let n = acc
            .len()
            .min(out.len())
            .min(own.map_or(usize::MAX, <[i16]>::len));
        let (acc, out) = (&acc[..n], &mut out[..n]);
        let own = own.map(|o| &o[..n]);
        if bound <= THRESHOLD && self.gain >= 1.0 {
            // What the pass below would find: nothing over, the gain stays 1.
            match own {
                Some(o) => {
                    for ((y, &a), &b) in out.iter_mut().zip(acc).zip(o) {
                        *y = narrow(a.wrapping_sub(i32::from(b)));
                    }
                }
                None => {
                    for (y, &a) in out.iter_mut().zip(acc) {
                        *y = narrow(a);
                    }
                }
            }
            self.gain = 1.0;
            return;
        }
        // The sums are of at most a few thousand i16 frames: no i32 overflow; wrapping
        // arithmetic keeps the loops branch-free so that they vectorise.
        // One pass writes the unlimited mix and tells whether any sample is above the
        // threshold (signed compares, which vectorise on every x86-64): when none is and
        // the gain stays at 1 (the usual case) that is the answer; otherwise the exact peak
        // sets the gain and the ramp below rewrites the frame.
        let t = THRESHOLD as i32;
        let mut over = false;
        match own {
            Some(o) => {
                for ((y, &a), &b) in out.iter_mut().zip(acc).zip(o) {
                    let x = a.wrapping_sub(i32::from(b));
                    *y = narrow(x);
                    over |= outside(x, t);
                }
            }
            None => {
                for (y, &a) in out.iter_mut().zip(acc) {
                    *y = narrow(a);
                    over |= outside(a, t);
                }
            }
        }
        let peak = if !over {
            0
        } else {
            match own {
                Some(o) => acc
                    .iter()
                    .zip(o)
                    .map(|(&a, &b)| a.wrapping_sub(i32::from(b)).unsigned_abs())
                    .fold(0, u32::max),
                None => acc.iter().map(|a| a.unsigned_abs()).fold(0, u32::max),
            }
        };
        let target = if peak > THRESHOLD {
            THRESHOLD as f32 / peak as f32
        } else {
            1.0
        };
        let new_gain = if target < self.gain {
            target
        } else {
            (self.gain * RELEASE).min(target).min(1.0)
        };
        if self.gain >= 1.0 && new_gain >= 1.0 {
            self.gain = 1.0;
            return;
        }
        let start = self.gain;
        let step = (new_gain - start) / RAMP as f32;
        for (i, y) in out.iter_mut().enumerate() {
            let x = match own {
                Some(o) => acc[i].wrapping_sub(i32::from(o[i])),
                None => acc[i],
            };
            let g = if i < RAMP {
                start + step * (i + 1) as f32
            } else {
                new_gain
            };
            *y = soft_clip(x as f32 * g);
        }
        self.gain = new_gain;
    }

    /// Current gain (1.0 = no limiting).
    #[cfg(test)]
    pub(crate) fn gain(&self) -> f32 {
        self.gain
    }
}

/// `x` narrowed with saturation (one `packssdw` per 8 samples). Below the threshold it is
/// `x` itself; a frame with any sample above is rewritten by the ramp, so saturation never
/// shows.
#[inline(always)]
fn narrow(x: i32) -> i16 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// `|x| > t` for `0 <= t < 2^31` as one unsigned compare: `x + t` leaves `0..=2t`.
#[inline(always)]
fn outside(x: i32, t: i32) -> bool {
    x.wrapping_add(t) as u32 > (2 * t) as u32
}

/// Identity up to the knee, then a `tanh` curve approaching (never reaching) full scale.
fn soft_clip(y: f32) -> i16 {
    let a = y.abs();
    let v = if a <= KNEE {
        a
    } else {
        let room = 32767.0 - KNEE;
        KNEE + room * ((a - KNEE) / room).tanh()
    };
    v.copysign(y).round().clamp(-32767.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_mix_is_exact() {
        let acc: Vec<i32> = (0..960).map(|i| i * 20 - 9600).collect();
        let own: Vec<i16> = (0..960).map(|i| (i % 7) as i16).collect();
        let mut out = vec![0i16; 960];
        let mut l = Limiter::default();
        l.process(&acc, Some(&own), &mut out, u32::MAX);
        for i in 0..960 {
            assert_eq!(i32::from(out[i]), acc[i] - i32::from(own[i]));
        }
        assert_eq!(l.gain(), 1.0);
    }

    #[test]
    fn overload_is_limited_without_wrapping() {
        // Three full-scale square-ish waves in phase.
        let acc: Vec<i32> = (0..960)
            .map(|i| {
                if (i / 50) % 2 == 0 {
                    3 * 32767
                } else {
                    -3 * 32767
                }
            })
            .collect();
        let mut out = vec![0i16; 960];
        let mut l = Limiter::default();
        l.process(&acc, None, &mut out, u32::MAX);
        for (i, &o) in out.iter().enumerate() {
            assert_eq!(o.signum() as i32, acc[i].signum(), "sign flipped at {i}");
        }
        // After the ramp the level sits at the threshold.
        assert!(
            out[100..]
                .iter()
                .all(|&o| o.unsigned_abs() as u32 <= THRESHOLD + 1)
        );
        assert!(l.gain() < 0.3);
        // Gain recovers slowly once the overload is gone.
        let quiet = vec![1000i32; 960];
        l.process(&quiet, None, &mut out, u32::MAX);
        assert!(l.gain() < 0.35);
        assert!(out[500] < 400);
        for _ in 0..200 {
            l.process(&quiet, None, &mut out, u32::MAX);
        }
        assert_eq!(l.gain(), 1.0);
        assert_eq!(out[500], 1000);
    }

    #[test]
    fn soft_clip_is_monotonic_and_bounded() {
        let mut prev = i16::MIN;
        for x in (-200_000..200_000).step_by(97) {
            let y = soft_clip(x as f32);
            assert!(y >= prev);
            prev = y;
        }
        assert_eq!(soft_clip(1e9), 32767);
        assert_eq!(soft_clip(-1e9), -32767);
        assert_eq!(soft_clip(12345.0), 12345);
    }
}
