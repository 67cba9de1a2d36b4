//! Audio a bidirectional consumer sends back, paced into prompts for the caller's leg
//! (sans-IO: time comes in, the next chunk to play comes out).
//!
//! The meeting task plays one prompt per leg at a time (`MeetingMsg::Play` replaces the
//! one playing), so the queue is cut into chunks of at most [`MAX_CHUNK_MS`], each handed
//! over when the previous one has played out. Playing starts once [`START_MS`] is queued or
//! the first sample has waited that long, so a consumer that sends 20 ms at a time in real
//! time is heard without gaps. At most [`MAX_QUEUED_MS`] waits; more is dropped and
//! counted.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Queued audio that starts a chunk.
pub const START_MS: u64 = 100;
/// The longest chunk handed over at once.
pub const MAX_CHUNK_MS: u64 = 1_000;
/// The most audio kept waiting.
pub const MAX_QUEUED_MS: u64 = 20_000;

/// The consumer's audio for one leg.
#[derive(Debug)]
pub struct Playback {
    rate: u32,
    queue: VecDeque<i16>,
    /// When the first queued sample came.
    waiting_since: Option<Instant>,
    /// When the chunk playing now ends.
    busy_until: Option<Instant>,
    /// 20 ms frames handed over to play, and samples dropped for lack of room.
    pub frames_played: u64,
    pub samples_dropped: u64,
}

impl Playback {
    pub fn new(rate: u32) -> Self {
        Playback {
            rate: rate.max(1),
            queue: VecDeque::new(),
            waiting_since: None,
            busy_until: None,
            frames_played: 0,
            samples_dropped: 0,
        }
    }

    fn samples(&self, ms: u64) -> usize {
        (u64::from(self.rate) * ms / 1000) as usize
    }

    /// Queues audio that came at `now`.
    pub fn push(&mut self, now: Instant, samples: &[i16]) {
        let room = self.samples(MAX_QUEUED_MS).saturating_sub(self.queue.len());
        let take = samples.len().min(room);
        self.samples_dropped += (samples.len() - take) as u64;
        self.queue.extend(&samples[..take]);
        if take > 0 && self.waiting_since.is_none() {
            self.waiting_since = Some(now);
        }
    }

    /// Drops what is queued; true when a chunk is still playing (to be stopped).
    pub fn clear(&mut self, now: Instant) -> bool {
        self.queue.clear();
        self.waiting_since = None;
        let playing = self.busy_until.is_some_and(|t| t > now);
        self.busy_until = None;
        playing
    }

    /// When [`Playback::poll`] has something next.
    pub fn deadline(&self) -> Option<Instant> {
        let since = self.waiting_since?;
        let start = if self.queue.len() >= self.samples(START_MS) {
            since
        } else {
            since + Duration::from_millis(START_MS)
        };
        Some(self.busy_until.map_or(start, |b| b.max(start)))
    }

    /// The next chunk to play, when it is due: whole 20 ms frames (the last one padded
    /// with silence).
    pub fn poll(&mut self, now: Instant) -> Option<Vec<i16>> {
        if self.deadline()? > now {
            return None;
        }
        let frame = self.samples(20).max(1);
        let n = self.queue.len().min(self.samples(MAX_CHUNK_MS));
        let mut chunk: Vec<i16> = self.queue.drain(..n).collect();
        let frames = chunk.len().div_ceil(frame);
        chunk.resize(frames * frame, 0);
        self.frames_played += frames as u64;
        let ms = frames as u64 * 20;
        self.busy_until = Some(now + Duration::from_millis(ms));
        self.waiting_since = if self.queue.is_empty() {
            None
        } else {
            Some(now)
        };
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_time_frames_play_in_chunks_without_gaps() {
        let t0 = Instant::now();
        let mut p = Playback::new(8000);
        // 20 ms every 20 ms: nothing until 100 ms is queued.
        for i in 0..5u64 {
            let now = t0 + Duration::from_millis(20 * i);
            assert_eq!(p.poll(now), None);
            p.push(now, &[1; 160]);
        }
        let now = t0 + Duration::from_millis(80);
        let chunk = p.poll(now).expect("100 ms queued");
        assert_eq!(chunk.len(), 800);
        // The next chunk is due when this one ends, and holds what came meanwhile.
        for i in 5..10u64 {
            p.push(t0 + Duration::from_millis(20 * i), &[2; 160]);
        }
        assert_eq!(p.poll(now + Duration::from_millis(99)), None);
        let next = p.poll(now + Duration::from_millis(100)).unwrap();
        assert_eq!(next.len(), 800);
        assert_eq!(p.frames_played, 10);
    }

    #[test]
    fn a_short_burst_plays_after_the_start_delay_padded_to_a_frame() {
        let t0 = Instant::now();
        let mut p = Playback::new(16000);
        p.push(t0, &[5; 100]);
        assert_eq!(p.poll(t0 + Duration::from_millis(99)), None);
        let chunk = p.poll(t0 + Duration::from_millis(100)).unwrap();
        assert_eq!(chunk.len(), 320);
        assert_eq!(&chunk[..100], &[5; 100][..]);
        assert!(chunk[100..].iter().all(|s| *s == 0));
        assert_eq!(p.deadline(), None);
    }

    #[test]
    fn clear_drops_the_queue_and_says_whether_to_stop() {
        let t0 = Instant::now();
        let mut p = Playback::new(8000);
        p.push(t0, &[1; 16000]);
        assert_eq!(p.poll(t0).unwrap().len(), 8000);
        assert!(p.clear(t0 + Duration::from_millis(10)));
        assert_eq!(p.deadline(), None);
        assert!(!p.clear(t0 + Duration::from_millis(20)));
    }

    #[test]
    fn the_queue_is_bounded() {
        let t0 = Instant::now();
        let mut p = Playback::new(8000);
        p.push(t0, &vec![1; 8000 * 25]);
        assert_eq!(p.samples_dropped, 8000 * 5);
    }
}
