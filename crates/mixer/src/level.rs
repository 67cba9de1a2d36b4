//! Audio levels in dBov and their smoothing.
//!
//! The level of a frame is its mean power relative to that of a full-scale sine, the 0 dBov
//! reference of ITU-T G.100.1 used by RFC 6464 §3 ("the level relative to the overload
//! point"). A full-scale square wave would read +3 dBov; levels are clamped to
//! 0 ..= −127 dBov, and −127 stands for digital silence, as in RFC 6464 §3.
//!
//! The attenuation figure the browser client consumes (Chime's audio metadata "volume") is
//! simply the level negated: 0 is as loud as it gets, 127 is silence. The client maps it to
//! a 0..1 meter with `clamp((42 − volume) / 28, 0, 1)`, so anything quieter than −42 dBov
//! shows as nothing and anything louder than −14 dBov as full scale.

/// Power of a full-scale sine of amplitude 32767: the 0 dBov reference.
const FULL_SCALE_SINE_POWER: f64 = 32767.0 * 32767.0 / 2.0;

/// The lowest level reported: digital silence (RFC 6464 §3).
pub const SILENCE_DBOV: f32 = -127.0;

/// Mean power of `frame` relative to a full-scale sine (1.0 = 0 dBov). Zero for an empty
/// frame or digital silence.
pub fn frame_power(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return 0.0;
    }
    // Adjacent pairs of squares summed in 32 bits (at most 2 * 2^30 = 2^31: fits u32;
    // the pattern of SSE2's pmaddwd, which wraps the same way), into 64 bits: exact, and
    // vectorised.
    let pair = |a: i16, b: i16| {
        let (a, b) = (i32::from(a), i32::from(b));
        u64::from((a * a).wrapping_add(b * b) as u32)
    };
    let pairs = frame.chunks_exact(2);
    let rest = pairs.remainder();
    let sum: u64 = pairs.map(|p| pair(p[0], p[1])).sum::<u64>()
        + rest.iter().map(|&s| pair(s, 0)).sum::<u64>();
    (sum as f64 / frame.len() as f64 / FULL_SCALE_SINE_POWER) as f32
}

/// The largest magnitude in `frame` (0 for an empty frame): i16 minimum and maximum,
/// which vectorise (`pminsw`/`pmaxsw`).
pub(crate) fn frame_peak(frame: &[i16]) -> u32 {
    let (lo, hi) = frame
        .iter()
        .fold((0i16, 0i16), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    lo.unsigned_abs().max(hi.unsigned_abs()).into()
}

/// Converts a power relative to a full-scale sine to dBov, clamped to −127 ..= 0.
pub fn power_to_dbov(power: f32) -> f32 {
    if power <= 0.0 || !power.is_finite() {
        return SILENCE_DBOV;
    }
    (10.0 * power.log10()).clamp(SILENCE_DBOV, 0.0)
}

/// The attenuation ("volume") for a level: 0 for 0 dBov (loud) to 127 for −127 dBov
/// (silence), the RFC 6464 §3 scale that Chime's audio metadata also uses.
pub fn dbov_to_volume(dbov: f32) -> u8 {
    if dbov.is_nan() {
        return 127;
    }
    (-dbov).round().clamp(0.0, 127.0) as u8
}

/// Smoothed level of one participant: fast attack, slower release, in the power domain.
///
/// With one update per 20 ms frame, a new talker reaches within 1 dB of their level in two
/// frames, and a level falls by about 0.7 dB per frame once they stop (about 0.55 s from
/// speech at −26 dBov down to the default speech threshold of −45 dBov), which doubles as
/// the hang-over of the speaker selection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LevelMeter {
    power: f32,
}

impl LevelMeter {
    /// Weight of a louder frame.
    const ATTACK: f32 = 0.6;
    /// Weight of a quieter frame.
    const RELEASE: f32 = 0.15;

    /// Folds in the power of one frame.
    pub(crate) fn update(&mut self, frame_power: f32) {
        let x = if frame_power.is_finite() {
            frame_power.max(0.0)
        } else {
            0.0
        };
        let w = if x > self.power {
            Self::ATTACK
        } else {
            Self::RELEASE
        };
        self.power += w * (x - self.power);
        // Flush denormals: after a long silence the level is plain silence.
        if self.power < 1e-13 {
            self.power = 0.0;
        }
    }

    /// The smoothed level in dBov.
    pub(crate) fn dbov(&self) -> f32 {
        power_to_dbov(self.power)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 48000.0).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn full_scale_sine_is_zero_dbov() {
        let p = frame_power(&sine(32767.0, 960));
        assert!((power_to_dbov(p)).abs() < 0.1, "{}", power_to_dbov(p));
        assert_eq!(dbov_to_volume(power_to_dbov(p)), 0);
    }

    #[test]
    fn minus_twenty_db_sine() {
        let p = frame_power(&sine(3276.7, 960));
        let db = power_to_dbov(p);
        assert!((db + 20.0).abs() < 0.1, "{db}");
        assert_eq!(dbov_to_volume(db), 20);
    }

    #[test]
    fn power_is_the_exact_sum_of_squares() {
        // Extremes (a pair of −32768 sums to 2^31 in 32 bits), odd lengths, one sample.
        let frames: [Vec<i16>; 5] = [
            vec![i16::MIN; 961],
            vec![i16::MAX; 960],
            (0..959)
                .map(|i| if i % 3 == 0 { i16::MIN } else { 12_345 })
                .collect(),
            vec![1],
            vec![-1, 0, 0],
        ];
        for f in &frames {
            let exact: i64 = f.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
            let want = (exact as f64 / f.len() as f64 / FULL_SCALE_SINE_POWER) as f32;
            assert_eq!(frame_power(f), want, "{} samples", f.len());
        }
    }

    #[test]
    fn peak_is_the_largest_magnitude() {
        assert_eq!(frame_peak(&[]), 0);
        assert_eq!(frame_peak(&[3, -7, 5]), 7);
        assert_eq!(frame_peak(&[1, i16::MIN, 2]), 32_768);
        assert_eq!(frame_peak(&vec![i16::MAX; 961]), 32_767);
    }

    #[test]
    fn silence_is_127() {
        assert_eq!(frame_power(&[0; 960]), 0.0);
        assert_eq!(power_to_dbov(0.0), SILENCE_DBOV);
        assert_eq!(dbov_to_volume(SILENCE_DBOV), 127);
        assert_eq!(dbov_to_volume(f32::NAN), 127);
        assert_eq!(frame_power(&[]), 0.0);
    }

    #[test]
    fn meter_attacks_fast_and_releases_slowly() {
        let loud = frame_power(&sine(3276.7, 960));
        let mut m = LevelMeter::default();
        m.update(loud);
        m.update(loud);
        assert!(m.dbov() > -21.0, "{}", m.dbov());
        let mut frames = 0;
        while m.dbov() > -45.0 {
            m.update(0.0);
            frames += 1;
        }
        // 25 dB at ~0.7 dB per frame: about 35 frames.
        assert!((25..=50).contains(&frames), "{frames}");
        for _ in 0..2000 {
            m.update(0.0);
        }
        assert_eq!(m.dbov(), SILENCE_DBOV);
    }
}
