//! Per-access-key token bucket: `rate` requests per second, bursts up to twice that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub(crate) struct Throttle {
    rate: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Throttle {
    pub(crate) fn new(rate: u32) -> Self {
        Throttle {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn admit(&self, key: &str) -> bool {
        self.admit_at(key, Instant::now())
    }

    fn admit_at(&self, key: &str, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let burst = f64::from(self.rate) * 2.0;
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        let (tokens, last) = buckets.entry(key.to_string()).or_insert((burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * f64::from(self.rate)).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_the_rate() {
        let t = Throttle::new(10);
        let t0 = Instant::now();
        let admitted = (0..100).filter(|_| t.admit_at("k", t0)).count();
        assert_eq!(admitted, 20, "burst is twice the rate");
        assert!(!t.admit_at("k", t0));
        assert!(
            t.admit_at("k", t0 + Duration::from_millis(100)),
            "one token after 1/rate s"
        );
        assert!(t.admit_at("other", t0), "buckets are per key");
        assert!(Throttle::new(0).admit_at("k", t0));
    }
}
