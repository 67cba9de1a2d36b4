//! The latency the server adds per event round trip, from one call's timeline on the
//! generator's clock:
//!
//! * digit → event: the last digit's final RFC 4733 end packet handed to the kernel →
//!   the function has read the ACTION_SUCCESSFUL that reports the digits;
//! * answer → prompt: the function's answer written to its socket → the first loud frame
//!   of the prompt it asked for received (kernel time). For the first prompt this includes
//!   answering the call (200, ACK); for the goodbye it is the action alone. Both include up
//!   to one 20 ms mixer tick of alignment.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::prompt::Burst;

/// Most samples kept per figure (a run's calls are bounded well below it).
pub const MAX_SAMPLES: usize = 200_000;

/// Latency samples with exact percentiles.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    ms: Vec<f64>,
    dropped: u64,
}

impl Samples {
    /// Adds one sample.
    pub fn push(&mut self, d: Duration) {
        if self.ms.len() < MAX_SAMPLES {
            self.ms.push(d.as_secs_f64() * 1000.0);
        } else {
            self.dropped += 1;
        }
    }

    /// The `p`-th percentile (nearest rank) in ms; `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.ms.is_empty() {
            return None;
        }
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
        v.get(rank.min(v.len()) - 1).copied()
    }

    /// Count, p50, p90, p99 and max, rounded to µs.
    pub fn json(&self) -> Value {
        let r = |x: Option<f64>| x.map(|v| (v * 1000.0).round() / 1000.0);
        json!({
            "n": self.ms.len(), "dropped": self.dropped,
            "p50_ms": r(self.percentile(50.0)), "p90_ms": r(self.percentile(90.0)),
            "p99_ms": r(self.percentile(99.0)), "max_ms": r(self.percentile(100.0)),
        })
    }
}

/// What one call went through, on the generator's clock (`None`: did not happen).
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// The function's answer to NEW_INBOUND_CALL written.
    pub new_call_answered: Option<Instant>,
    /// The last digit's end packet sent.
    pub digits_sent: Option<Instant>,
    /// The digits' ACTION_SUCCESSFUL read by the function.
    pub digits_event: Option<Instant>,
    /// The function's answer to it written.
    pub digits_answered: Option<Instant>,
}

/// The three latencies of one call: (digit → event, answer → first prompt, answer →
/// goodbye), given the prompts heard (`bursts`, on the receivers' `origin`).
pub fn call_latencies(
    t: &Timeline,
    bursts: &[Burst],
    origin: Instant,
) -> (Option<Duration>, Option<Duration>, Option<Duration>) {
    let since = |i: Instant| i.saturating_duration_since(origin);
    let first_after = |i: Option<Instant>| {
        let at = since(i?);
        let onset = bursts.iter().map(|b| b.onset).find(|o| *o >= at)?;
        Some(onset - at)
    };
    let digit = match (t.digits_sent, t.digits_event) {
        (Some(s), Some(e)) if e >= s => Some(e - s),
        _ => None,
    };
    (
        digit,
        first_after(t.new_call_answered),
        first_after(t.digits_answered),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Samples::default();
        assert_eq!(s.percentile(50.0), None);
        for i in 1..=100 {
            s.push(ms(101 - i));
        }
        assert_eq!(s.percentile(50.0), Some(50.0));
        assert_eq!(s.percentile(99.0), Some(99.0));
        assert_eq!(s.percentile(100.0), Some(100.0));
        assert_eq!(s.percentile(0.0), Some(1.0));
        let j = s.json();
        assert_eq!(
            (j["n"].as_u64(), j["p90_ms"].as_f64()),
            (Some(100), Some(90.0))
        );
    }

    #[test]
    fn a_calls_latencies_come_from_its_timeline() {
        let o = Instant::now();
        let t = Timeline {
            new_call_answered: Some(o + ms(100)),
            digits_sent: Some(o + ms(1500)),
            digits_event: Some(o + ms(1503)),
            digits_answered: Some(o + ms(1504)),
        };
        let bursts = [
            Burst {
                onset: ms(130),
                loud: 50,
            },
            Burst {
                onset: ms(1520),
                loud: 25,
            },
        ];
        let (digit, first, goodbye) = call_latencies(&t, &bursts, o);
        assert_eq!(digit, Some(ms(3)));
        assert_eq!(first, Some(ms(30)));
        assert_eq!(goodbye, Some(ms(16)));
        // Nothing heard after the answer, or no digits event: no figure.
        let (d, f, g) = call_latencies(&Timeline::default(), &bursts[..1], o);
        assert_eq!((d, f, g), (None, None, None));
        let late = Timeline {
            digits_answered: Some(o + ms(2000)),
            ..t
        };
        assert_eq!(call_latencies(&late, &bursts, o).2, None);
    }
}
