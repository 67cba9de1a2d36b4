//! RFC 4733 telephone-event: sender → receiver round trips, duplicate end packets, lost end
//! packets, reordering and long-event segments.

use codec::telephone_event::*;
use std::time::{Duration, Instant};

/// Runs a sender for `digits` to completion on virtual time; returns (timestamp, payload
/// bytes, marker) per packet in send order. Digits are spaced by a 100 ms gap.
fn send_digits(digits: &str, length: Duration) -> Vec<(u32, [u8; 4], bool)> {
    let t0 = Instant::now();
    let mut now = t0;
    let mut packets = Vec::new();
    for c in digits.chars() {
        let ts = ((now - t0).as_millis() * 8) as u32 + 1000;
        let mut s = EventSender::new(now, char_event(c).unwrap(), 10, length, ts, 8000).unwrap();
        while let Some(at) = s.poll_timeout() {
            now = now.max(at);
            while let Some(p) = s.poll_packet(now) {
                packets.push((p.timestamp, p.payload.to_bytes(), p.marker));
            }
        }
        assert!(s.is_finished());
        now += Duration::from_millis(100);
    }
    packets
}

fn receive(packets: &[(u32, [u8; 4], bool)]) -> Vec<DtmfEvent> {
    let mut r = EventReceiver::new();
    let mut out = Vec::new();
    for (ts, p, _) in packets {
        r.handle_packet(*ts, p).unwrap();
        while let Some(e) = r.poll_event() {
            out.push(e);
        }
    }
    out
}

#[test]
fn sender_packet_sequence() {
    let packets = send_digits("5", Duration::from_millis(160));
    // Start at 0 ms, updates at 50, 100, 150 ms, then three end packets at 160 ms.
    let durations: Vec<u16> = packets
        .iter()
        .map(|(_, p, _)| EventPayload::parse(p).unwrap().duration)
        .collect();
    assert_eq!(durations, [0, 400, 800, 1200, 1280, 1280, 1280]);
    let ends: Vec<bool> = packets.iter().map(|(_, p, _)| p[1] & 0x80 != 0).collect();
    assert_eq!(ends, [false, false, false, false, true, true, true]);
    let markers: Vec<bool> = packets.iter().map(|(_, _, m)| *m).collect();
    assert_eq!(markers, [true, false, false, false, false, false, false]);
    assert!(
        packets
            .iter()
            .all(|(ts, p, _)| *ts == 1000 && p[0] == 5 && p[1] & 0x3F == 10)
    );
}

#[test]
fn round_trip_digits_deduplicates_end_packets() {
    let packets = send_digits("12#*A", Duration::from_millis(120));
    let events = receive(&packets);
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for e in &events {
        match *e {
            DtmfEvent::Start { event, volume, .. } => {
                assert_eq!(volume, 10);
                starts.push(event_char(event).unwrap());
            }
            DtmfEvent::End {
                event,
                duration,
                confirmed,
                ..
            } => {
                assert!(confirmed);
                assert_eq!(duration, 960); // 120 ms at 8 kHz
                ends.push(event_char(event).unwrap());
            }
        }
    }
    assert_eq!(starts.iter().collect::<String>(), "12#*A");
    assert_eq!(ends.iter().collect::<String>(), "12#*A");
    // Strictly alternating start/end.
    assert_eq!(events.len(), 10);
}

#[test]
fn lost_start_and_lost_ends() {
    let packets = send_digits("78", Duration::from_millis(200));
    // Drop the first packet of '7' (start detection must use the next update), and every
    // end packet of '7' (its end is inferred when '8' starts).
    let lossy: Vec<_> = packets
        .iter()
        .enumerate()
        .filter(|(i, (_, p, _))| *i != 0 && !(p[0] == 7 && p[1] & 0x80 != 0))
        .map(|(_, p)| *p)
        .collect();
    let events = receive(&lossy);
    assert!(matches!(events[0], DtmfEvent::Start { event: 7, .. }));
    assert!(matches!(
        events[1],
        DtmfEvent::End {
            event: 7,
            confirmed: false,
            duration: 1200,
            ..
        }
    ));
    assert!(matches!(events[2], DtmfEvent::Start { event: 8, .. }));
    assert!(matches!(
        events[3],
        DtmfEvent::End {
            event: 8,
            confirmed: true,
            duration: 1600,
            ..
        }
    ));
    assert_eq!(events.len(), 4);
}

#[test]
fn only_end_packets_and_late_packets() {
    let packets = send_digits("9", Duration::from_millis(100));
    let ends: Vec<_> = packets
        .iter()
        .filter(|(_, p, _)| p[1] & 0x80 != 0)
        .copied()
        .collect();
    let events = receive(&ends);
    assert_eq!(events.len(), 2);
    assert!(matches!(
        events[1],
        DtmfEvent::End {
            event: 9,
            duration: 800,
            ..
        }
    ));

    // A late update from an earlier event after a newer one started is ignored.
    let mut r = EventReceiver::new();
    let upd = |e: u8, d: u16| {
        EventPayload {
            event: e,
            end: false,
            volume: 5,
            duration: d,
        }
        .to_bytes()
    };
    r.handle_packet(8000, &upd(3, 400)).unwrap();
    r.handle_packet(16000, &upd(4, 400)).unwrap();
    r.handle_packet(8000, &upd(3, 800)).unwrap();
    let mut n = 0;
    while r.poll_event().is_some() {
        n += 1;
    }
    assert_eq!(n, 3); // start 3, (inferred) end 3, start 4
    assert_eq!(r.handle_packet(1, &[1, 2]), Err(EventError::Truncated(2)));
}

#[test]
fn long_event_segments_are_one_event() {
    // RFC 4733 §2.5.1.3: after 0xFFFF ticks a new segment starts at ts + 0xFFFF.
    let mut r = EventReceiver::new();
    let p = |d: u16, end: bool| {
        EventPayload {
            event: 0,
            end,
            volume: 0,
            duration: d,
        }
        .to_bytes()
    };
    r.handle_packet(100, &p(400, false)).unwrap();
    r.handle_packet(100, &p(0xFFFF, false)).unwrap();
    r.handle_packet(100u32.wrapping_add(0xFFFF), &p(400, false))
        .unwrap();
    r.handle_packet(100u32.wrapping_add(0xFFFF), &p(800, true))
        .unwrap();
    r.handle_packet(100u32.wrapping_add(0xFFFF), &p(800, true))
        .unwrap();
    assert!(matches!(
        r.poll_event(),
        Some(DtmfEvent::Start {
            event: 0,
            timestamp: 100,
            ..
        })
    ));
    assert_eq!(
        r.poll_event(),
        Some(DtmfEvent::End {
            event: 0,
            timestamp: 100,
            duration: 0xFFFF + 800,
            confirmed: true
        })
    );
    assert_eq!(r.poll_event(), None);
}

#[test]
fn timestamp_wrap() {
    let mut r = EventReceiver::new();
    let p = |e: u8, end: bool| {
        EventPayload {
            event: e,
            end,
            volume: 0,
            duration: 800,
        }
        .to_bytes()
    };
    r.handle_packet(u32::MAX - 100, &p(1, true)).unwrap();
    r.handle_packet(500, &p(2, true)).unwrap(); // after the wrap: a new event
    let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert_eq!(events.len(), 4);
    assert!(matches!(events[2], DtmfEvent::Start { event: 2, .. }));
}
