//! Tone detection: the energy of one frequency in a block of samples (the Goertzel
//! algorithm, one DFT bin computed by a second-order recursion). Tests of every media path
//! use it to tell which talker a listener hears.

/// Energy of `freq` Hz in `pcm` sampled at `sample_rate` Hz, normalised by the square of
/// the length so blocks of different sizes compare. A full-scale sine at `freq` gives
/// about 0.25 × 32768²; silence gives 0.
pub fn goertzel_energy(pcm: &[i16], sample_rate: f64, freq: f64) -> f64 {
    if pcm.is_empty() || sample_rate <= 0.0 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / sample_rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (pcm.len() as f64).powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: f64, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as i16)
            .collect()
    }

    #[test]
    fn finds_its_tone_and_not_another() {
        let pcm = sine(1000.0, 8000.0, 800, 16000.0);
        let on = goertzel_energy(&pcm, 8000.0, 1000.0);
        let off = goertzel_energy(&pcm, 8000.0, 440.0);
        // Half-scale sine: 0.25 * 16000^2 = 6.4e7.
        assert!((on / 6.4e7 - 1.0).abs() < 0.05, "{on}");
        assert!(off < on / 1000.0, "{off} vs {on}");
        assert_eq!(goertzel_energy(&[], 8000.0, 1000.0), 0.0);
        assert_eq!(goertzel_energy(&[0; 160], 8000.0, 1000.0), 0.0);
    }
}
