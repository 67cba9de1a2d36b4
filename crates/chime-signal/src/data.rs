//! Realtime data messages (the SDK's `realtimeSendDataMessage`: chat, reactions) and the
//! limits Amazon Chime puts on them: a topic of 1 to 36 characters of `[A-Za-z0-9_-]`, at
//! most 2 KB of data, and a rate of 100 messages a second with bursts of 200 per sender.
//! A refused message goes back to its sender with no ingest time, which the SDK reports as
//! `DataMessage.throttled` ("true if server throttled or rejected message").

use std::time::{Duration, Instant};

/// Longest topic, in characters.
pub const MAX_TOPIC_LEN: usize = 36;
/// Largest payload, in bytes.
pub const MAX_DATA_LEN: usize = 2048;
/// Longest time a message may be kept for attendees who join later (its `lifetime_ms`).
pub const MAX_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// One realtime data message, as a `DATA_MESSAGE` frame's payload carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// The topic receivers subscribe to.
    pub topic: String,
    /// The payload (UTF-8 text or JSON in most applications; any bytes).
    pub data: Vec<u8>,
    /// How long the server may keep the message for attendees who join later, in
    /// milliseconds (0: not kept).
    pub lifetime_ms: u32,
    /// The sender's `AttendeeId`.
    pub sender_attendee_id: String,
    /// The sender's `ExternalUserId`.
    pub sender_external_user_id: String,
    /// When the server took the message, in nanoseconds since the Unix epoch; 0 on a
    /// message sent back to its sender refused.
    pub ingest_time_ns: i64,
}

/// Why a data message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataRefusal {
    /// The topic is empty, longer than [`MAX_TOPIC_LEN`], or has a character outside
    /// `[A-Za-z0-9_-]`.
    #[error("topic must be 1 to 36 characters of A-Z, a-z, 0-9, _ and -")]
    Topic,
    /// The payload is larger than [`MAX_DATA_LEN`].
    #[error("data larger than 2048 bytes")]
    TooLarge,
    /// The sender is over its rate ([`DataRate`]).
    #[error("more than the sender's rate of data messages")]
    Throttled,
}

/// Checks a topic and payload against Amazon Chime's limits.
pub fn check_message(topic: &str, data: &[u8]) -> Result<(), DataRefusal> {
    let topic_ok = !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !topic_ok {
        return Err(DataRefusal::Topic);
    }
    if data.len() > MAX_DATA_LEN {
        return Err(DataRefusal::TooLarge);
    }
    Ok(())
}

/// A sender's rate of data messages: a token bucket of `burst` messages refilled at
/// `per_second` (Amazon Chime's soft limit: 100 a second, bursts of 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRate {
    /// Messages a second, sustained.
    pub per_second: u32,
    /// Messages at once.
    pub burst: u32,
}

impl Default for DataRate {
    fn default() -> Self {
        DataRate {
            per_second: 100,
            burst: 200,
        }
    }
}

/// The bucket of one sender, on the session's clock.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    rate: DataRate,
    /// Tokens in thousandths of a message, so refills need no floating point.
    millitokens: u64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: DataRate, now: Instant) -> Self {
        Bucket {
            rate,
            millitokens: u64::from(rate.burst) * 1000,
            last: now,
        }
    }

    /// Takes one message's token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        let refill = elapsed
            .as_micros()
            .saturating_mul(u128::from(self.rate.per_second))
            / 1000;
        let cap = u64::from(self.rate.burst) * 1000;
        let refill = u64::try_from(refill).unwrap_or(u64::MAX);
        self.millitokens = self.millitokens.saturating_add(refill).min(cap);
        if self.millitokens >= 1000 {
            self.millitokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_sizes_follow_chimes_limits() {
        assert_eq!(check_message("chat", b"hi"), Ok(()));
        assert_eq!(check_message("a-b_C9", &[0; MAX_DATA_LEN]), Ok(()));
        assert_eq!(check_message(&"t".repeat(36), b""), Ok(()));
        assert_eq!(check_message("", b"x"), Err(DataRefusal::Topic));
        assert_eq!(
            check_message(&"t".repeat(37), b"x"),
            Err(DataRefusal::Topic)
        );
        assert_eq!(check_message("chat room", b"x"), Err(DataRefusal::Topic));
        assert_eq!(check_message("çhat", b"x"), Err(DataRefusal::Topic));
        assert_eq!(
            check_message("chat", &[0; MAX_DATA_LEN + 1]),
            Err(DataRefusal::TooLarge)
        );
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(DataRate::default(), t0);
        assert_eq!((0..250).filter(|_| b.take(t0)).count(), 200, "the burst");
        // One second refills 100.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..250).filter(|_| b.take(t1)).count(), 100);
        // 10 ms refill one.
        let t2 = t1 + Duration::from_millis(10);
        assert!(b.take(t2));
        assert!(!b.take(t2));
        // A long pause refills to the burst, no more.
        let t3 = t2 + Duration::from_secs(3600);
        assert_eq!((0..250).filter(|_| b.take(t3)).count(), 200);
    }
}
