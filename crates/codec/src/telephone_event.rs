//! RFC 4733 telephone-event payloads (DTMF over RTP): the payload format, a receiver that
//! turns the packet stream into start/end events, and a sender that produces the packet
//! sequence for one digit.

use std::time::{Duration, Instant};
use thiserror::Error;

/// Size of one telephone-event payload block (RFC 4733 §2.3).
pub const PAYLOAD_LEN: usize = 4;
/// Largest event code we accept: 0–15 are the DTMF digits and 16 is flash (RFC 4733
/// §3.2); higher codes are other tones we do not interpret.
pub const MAX_DTMF_EVENT: u8 = 16;

/// Malformed telephone-event payload (the sender's fault).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum EventError {
    /// Shorter than the 4-byte block of RFC 4733 §2.3.
    #[error("telephone-event payload of {0} bytes is shorter than 4")]
    Truncated(usize),
    /// An event code we do not interpret (RFC 4733 §3.2 defines 0–16 for DTMF).
    #[error("telephone-event code {0} is not a DTMF event")]
    UnknownEvent(u8),
}

/// One telephone-event payload block (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    /// Event code (RFC 4733 §3.2: 0–9, 10 `*`, 11 `#`, 12–15 A–D, 16 flash).
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0, 0..=63 (RFC 4733 §2.3: 6 bits).
    pub volume: u8,
    /// Duration so far in RTP timestamp units.
    pub duration: u16,
}

impl EventPayload {
    /// Parses the first block of `payload`. Extra bytes (padding or a second block) are
    /// ignored; the R bit is reserved and ignored (RFC 4733 §2.3).
    pub fn parse(payload: &[u8]) -> Result<Self, EventError> {
        let &[event, flags, d0, d1, ..] = payload else {
            return Err(EventError::Truncated(payload.len()));
        };
        if event > MAX_DTMF_EVENT {
            return Err(EventError::UnknownEvent(event));
        }
        Ok(EventPayload {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The 4-byte wire form.
    pub fn to_bytes(&self) -> [u8; PAYLOAD_LEN] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// The character of a DTMF event code (RFC 4733 §3.2 Table 7), `'!'` for flash.
pub fn event_char(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        16 => '!',
        _ => return None,
    })
}

/// The DTMF event code of a digit character (`0-9 * # A-D`, case-insensitive, `!` flash).
pub fn char_event(c: char) -> Option<u8> {
    Some(match c {
        '0'..='9' => c as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => c as u8 - b'A' + 12,
        'a'..='d' => c as u8 - b'a' + 12,
        '!' => 16,
        _ => return None,
    })
}

/// What the receiver reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEvent {
    /// A new event began (first packet seen of a new RTP timestamp, RFC 4733 §2.5.2.1).
    Start {
        /// Event code.
        event: u8,
        /// RTP timestamp of the event start.
        timestamp: u32,
        /// Power level in -dBm0.
        volume: u8,
    },
    /// The event ended: either its E bit arrived, or a new event started before any end
    /// packet did (all end packets lost).
    End {
        /// Event code.
        event: u8,
        /// RTP timestamp of the event start.
        timestamp: u32,
        /// Total duration in RTP timestamp units (summed over long-event segments).
        duration: u32,
        /// `false` if the end was inferred because the end packets were lost.
        confirmed: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Current {
    event: u8,
    /// Timestamp of the first segment (reported) and of the current segment (matched).
    start: u32,
    segment: u32,
    /// Duration of the completed segments before `segment`.
    earlier: u32,
    duration: u16,
    ended: bool,
}

/// Turns received telephone-event packets into [`DtmfEvent`]s: one `Start` and one `End`
/// per key press however many updates and end retransmissions arrive (RFC 4733 §2.5.2).
#[derive(Debug, Default)]
pub struct EventReceiver {
    current: Option<Current>,
    events: std::collections::VecDeque<DtmfEvent>,
}

/// Serial-number comparison of RTP timestamps: `a` is before `b`.
fn ts_before(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

impl EventReceiver {
    /// A receiver with no event in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one packet of the telephone-event payload type, in arrival order.
    pub fn handle_packet(&mut self, rtp_timestamp: u32, payload: &[u8]) -> Result<(), EventError> {
        let p = EventPayload::parse(payload)?;
        if let Some(cur) = self.current.as_mut() {
            if rtp_timestamp == cur.segment {
                // Same event: an update, or an (often retransmitted) end packet.
                if cur.ended {
                    return Ok(()); // RFC 4733 §2.5.2.2: duplicate end packets are ignored.
                }
                cur.duration = cur.duration.max(p.duration);
                if p.end {
                    cur.ended = true;
                    let c = *cur;
                    self.events.push_back(DtmfEvent::End {
                        event: c.event,
                        timestamp: c.start,
                        duration: c.earlier + u32::from(c.duration),
                        confirmed: true,
                    });
                }
                return Ok(());
            }
            if ts_before(rtp_timestamp, cur.segment) {
                return Ok(()); // A late packet of an earlier event.
            }
            // RFC 4733 §2.5.1.3: a long event continues in a new segment whose timestamp is
            // the previous segment's timestamp plus its (saturated) duration.
            if !cur.ended
                && p.event == cur.event
                && rtp_timestamp == cur.segment.wrapping_add(u32::from(cur.duration))
            {
                cur.earlier += u32::from(cur.duration);
                cur.segment = rtp_timestamp;
                cur.duration = p.duration;
                if p.end {
                    cur.ended = true;
                    let c = *cur;
                    self.events.push_back(DtmfEvent::End {
                        event: c.event,
                        timestamp: c.start,
                        duration: c.earlier + u32::from(c.duration),
                        confirmed: true,
                    });
                }
                return Ok(());
            }
            if !cur.ended {
                // The previous event's end packets were all lost.
                let c = *cur;
                self.events.push_back(DtmfEvent::End {
                    event: c.event,
                    timestamp: c.start,
                    duration: c.earlier + u32::from(c.duration),
                    confirmed: false,
                });
            }
        }
        self.current = Some(Current {
            event: p.event,
            start: rtp_timestamp,
            segment: rtp_timestamp,
            earlier: 0,
            duration: p.duration,
            ended: p.end,
        });
        self.events.push_back(DtmfEvent::Start {
            event: p.event,
            timestamp: rtp_timestamp,
            volume: p.volume,
        });
        if p.end {
            // Only the end packets arrived (a very short event, or the rest was lost).
            self.events.push_back(DtmfEvent::End {
                event: p.event,
                timestamp: rtp_timestamp,
                duration: u32::from(p.duration),
                confirmed: true,
            });
        }
        Ok(())
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.events.pop_front()
    }
}

/// One packet produced by [`EventSender`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// RTP marker bit: set on the first packet of the event (RFC 4733 §2.5.1.2).
    pub marker: bool,
    /// RTP timestamp: the event's start for every packet (RFC 4733 §2.5.1.2).
    pub timestamp: u32,
    /// The payload block.
    pub payload: EventPayload,
}

/// Sender state machine for one digit (RFC 4733 §2.5.1): a first packet with the marker
/// bit, an update every [`EventSender::UPDATE_INTERVAL`] with the duration so far, and the
/// final duration sent in three packets with the E bit (§2.5.1.4).
#[derive(Debug, Clone)]
pub struct EventSender {
    event: u8,
    volume: u8,
    timestamp: u32,
    clock_rate: u32,
    started: Instant,
    length: Duration,
    /// Time of the next packet, `None` once finished.
    next: Option<Instant>,
    sent_first: bool,
    ends_sent: u8,
    /// The duration in the last packet produced (durations never decrease, §2.5.1.3).
    reported: Duration,
}

impl EventSender {
    /// Interval between update packets (RFC 4733 §2.5.1.2 suggests 50 ms).
    pub const UPDATE_INTERVAL: Duration = Duration::from_millis(50);
    /// Number of times the end packet is sent (RFC 4733 §2.5.1.4).
    pub const END_REPEATS: u8 = 3;
    /// Longest event that fits the 16-bit duration in one segment at 8 kHz (8.19 s); we cap
    /// digits at 5 s instead of sending long-event segments.
    pub const MAX_LENGTH: Duration = Duration::from_secs(5);

    /// Starts sending `event` at `now` for `length` (capped at [`Self::MAX_LENGTH`]).
    /// `timestamp` is the RTP timestamp of the start, in units of `clock_rate` Hz (that of
    /// the audio codec the event accompanies, RFC 4733 §2.1); `volume` is in -dBm0.
    pub fn new(
        now: Instant,
        event: u8,
        volume: u8,
        length: Duration,
        timestamp: u32,
        clock_rate: u32,
    ) -> Result<Self, EventError> {
        if event > MAX_DTMF_EVENT {
            return Err(EventError::UnknownEvent(event));
        }
        Ok(EventSender {
            event,
            volume: volume.min(63),
            timestamp,
            clock_rate,
            started: now,
            length: length.min(Self::MAX_LENGTH),
            next: Some(now),
            sent_first: false,
            ends_sent: 0,
            reported: Duration::ZERO,
        })
    }

    /// Starts sending `event` at `now` without knowing yet how long it lasts: the event
    /// relayed from another stream whose end has not arrived. It goes on with updates
    /// until [`Self::finish`] (or [`Self::MAX_LENGTH`], the cap of a lost end).
    pub fn open(
        now: Instant,
        event: u8,
        volume: u8,
        timestamp: u32,
        clock_rate: u32,
    ) -> Result<Self, EventError> {
        Self::new(now, event, volume, Self::MAX_LENGTH, timestamp, clock_rate)
    }

    /// The event lasts `length` after all (its end arrived): the end packets go out at
    /// its end, or now if that has passed. The final duration is never below one already
    /// sent in an update.
    pub fn finish(&mut self, now: Instant, length: Duration) {
        let Some(next) = self.next else {
            return;
        };
        if self.ends_sent > 0 {
            return;
        }
        self.length = length.min(Self::MAX_LENGTH).max(self.reported);
        let end_at = self.started + self.length;
        self.next = Some(if end_at <= now { now } else { next.min(end_at) });
    }

    /// When the next packet is due, or `None` when the event is fully sent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// `true` once the last end packet has been produced.
    pub fn is_finished(&self) -> bool {
        self.next.is_none()
    }

    fn ticks(&self, d: Duration) -> u16 {
        let t = d.as_micros() * u128::from(self.clock_rate) / 1_000_000;
        t.min(u128::from(u16::MAX)) as u16
    }

    /// The packet due at `now`, if any. Call until it returns `None`, then wait for
    /// [`Self::poll_timeout`].
    pub fn poll_packet(&mut self, now: Instant) -> Option<EventPacket> {
        let due = self.next?;
        if now < due {
            return None;
        }
        let end_at = self.started + self.length;
        let ending = now >= end_at;
        let elapsed = if ending {
            self.length
        } else {
            now.saturating_duration_since(self.started)
        };
        self.reported = elapsed;
        let payload = EventPayload {
            event: self.event,
            end: ending,
            volume: self.volume,
            duration: self.ticks(elapsed),
        };
        let marker = !self.sent_first;
        self.sent_first = true;
        if ending {
            self.ends_sent += 1;
            // The three end packets go out back to back.
            self.next = (self.ends_sent < Self::END_REPEATS).then_some(now);
        } else {
            let next = due + Self::UPDATE_INTERVAL;
            self.next = Some(if next > end_at { end_at } else { next });
        }
        Some(EventPacket {
            marker,
            timestamp: self.timestamp,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_and_bits() {
        let p = EventPayload {
            event: 11,
            end: true,
            volume: 10,
            duration: 1600,
        };
        let b = p.to_bytes();
        assert_eq!(b, [11, 0x8A, 0x06, 0x40]);
        assert_eq!(EventPayload::parse(&b), Ok(p));
        // The reserved R bit is ignored.
        assert_eq!(EventPayload::parse(&[11, 0xCA, 0x06, 0x40]), Ok(p));
        assert_eq!(
            EventPayload::parse(&[1, 2, 3]),
            Err(EventError::Truncated(3))
        );
        assert_eq!(
            EventPayload::parse(&[17, 0, 0, 0]),
            Err(EventError::UnknownEvent(17))
        );
    }

    #[test]
    fn digit_characters() {
        for c in "0123456789*#ABCD!".chars() {
            assert_eq!(event_char(char_event(c).unwrap()), Some(c));
        }
        assert_eq!(char_event('d'), Some(15));
        assert_eq!(char_event('x'), None);
        assert_eq!(event_char(17), None);
    }

    /// Every packet an [`EventSender`] produces up to `until`, polled every 10 ms.
    fn drain(s: &mut EventSender, from: Instant, until: Duration) -> Vec<(Duration, EventPacket)> {
        let mut out = Vec::new();
        let mut t = Duration::ZERO;
        while t <= until {
            while let Some(p) = s.poll_packet(from + t) {
                out.push((t, p));
            }
            t += Duration::from_millis(10);
        }
        out
    }

    #[test]
    fn an_open_event_updates_until_its_end_arrives() {
        let t0 = Instant::now();
        let mut s = EventSender::open(t0, 5, 10, 4242, 8000).unwrap();
        let before = drain(&mut s, t0, Duration::from_millis(110));
        // Start with the marker, then an update every 50 ms, none ending.
        let times: Vec<u128> = before.iter().map(|(t, _)| t.as_millis()).collect();
        assert_eq!(times, [0, 50, 100]);
        assert!(before[0].1.marker && !before[1].1.marker);
        assert!(
            before
                .iter()
                .all(|(_, p)| !p.payload.end && p.timestamp == 4242)
        );
        assert_eq!(before[2].1.payload.duration, 800);
        // The end says 160 ms: three end packets at 160 ms with duration 1280.
        s.finish(t0 + Duration::from_millis(120), Duration::from_millis(160));
        let after = drain(&mut s, t0, Duration::from_millis(400));
        let ends: Vec<_> = after.iter().filter(|(_, p)| p.payload.end).collect();
        assert_eq!(ends.len(), 3);
        assert!(
            ends.iter()
                .all(|(t, p)| t.as_millis() == 160 && p.payload.duration == 1280)
        );
        assert!(s.is_finished());
    }

    #[test]
    fn an_end_shorter_than_what_was_sent_ends_now_without_shrinking() {
        let t0 = Instant::now();
        let mut s = EventSender::open(t0, 11, 10, 7, 8000).unwrap();
        let sent = drain(&mut s, t0, Duration::from_millis(100));
        assert_eq!(sent.last().unwrap().1.payload.duration, 800);
        s.finish(t0 + Duration::from_millis(105), Duration::from_millis(40));
        let ends: Vec<_> =
            std::iter::from_fn(|| s.poll_packet(t0 + Duration::from_millis(105))).collect();
        assert_eq!(ends.len(), 3);
        assert!(
            ends.iter()
                .all(|p| p.payload.end && p.payload.duration == 800)
        );
        // An end after the last end packet changes nothing.
        s.finish(t0 + Duration::from_millis(200), Duration::from_millis(500));
        assert!(s.is_finished());
    }
}
