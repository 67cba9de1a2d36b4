//! The caller's ears and fingers: which of the server's packets carry a prompt (a burst of
//! loud frames, told apart from the silence around it), the RFC 4733 packets that key the
//! digits, and the prompt files the function names.

use std::path::Path;
use std::time::{Duration, Instant};

use codec::telephone_event::{EventSender, char_event};
use rtp::RtpPacket;
use tokio::sync::mpsc;

use crate::media::{FRAME, Inserted, OverrideSlot, RtpObserver};

/// A frame whose loudest sample is above this is prompt audio (the prompts are tones at
/// about -12 dBFS; the silence between them decodes to a few units).
pub const LOUD: i16 = 1000;
/// Quiet frames after which a burst has ended.
pub const QUIET_FRAMES: u32 = 2;
/// Bursts remembered per call (a call hears two prompts).
pub const MAX_BURSTS: usize = 8;

/// One prompt as heard: when its first loud frame arrived and how many loud frames it had.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Burst {
    /// Arrival of the first loud frame (on the receivers' origin).
    pub onset: Duration,
    /// Loud frames.
    pub loud: u32,
}

/// A prompt has just ended on call `call` (its `index`-th burst).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The generator's call id.
    pub call: u64,
    /// Which burst of the call (0: the first prompt).
    pub index: usize,
}

/// Watches one call's G.711 µ-law stream for prompts ([`RtpObserver`]).
pub struct PromptListener {
    call: u64,
    payload_type: u8,
    ended: Option<mpsc::UnboundedSender<Ended>>,
    /// The prompts heard so far.
    pub bursts: Vec<Burst>,
    /// Bursts past [`MAX_BURSTS`] (not kept).
    pub extra_bursts: u32,
    quiet_run: u32,
    in_burst: bool,
    pcm: Vec<i16>,
}

impl PromptListener {
    /// Listens on call `call` for PCMU packets of `payload_type`; each prompt's end is
    /// sent on `ended`.
    pub fn new(call: u64, payload_type: u8, ended: Option<mpsc::UnboundedSender<Ended>>) -> Self {
        PromptListener {
            call,
            payload_type,
            ended,
            bursts: Vec::new(),
            extra_bursts: 0,
            quiet_run: 0,
            in_burst: false,
            pcm: Vec::with_capacity(160),
        }
    }

    /// Accounts one frame: its arrival and whether it is loud.
    pub fn on_frame(&mut self, arrival: Duration, loud: bool) {
        if loud {
            self.quiet_run = 0;
            if !self.in_burst {
                self.in_burst = true;
                if self.bursts.len() < MAX_BURSTS {
                    self.bursts.push(Burst {
                        onset: arrival,
                        loud: 0,
                    });
                } else {
                    self.extra_bursts += 1;
                }
            }
            if self.bursts.len() <= MAX_BURSTS
                && self.extra_bursts == 0
                && let Some(b) = self.bursts.last_mut()
            {
                b.loud += 1;
            }
            return;
        }
        self.quiet_run += 1;
        if self.in_burst && self.quiet_run >= QUIET_FRAMES {
            self.in_burst = false;
            if let Some(tx) = &self.ended {
                let _ = tx.send(Ended {
                    call: self.call,
                    index: self.bursts.len().saturating_sub(1) + self.extra_bursts as usize,
                });
            }
        }
    }
}

impl RtpObserver for PromptListener {
    fn on_rtp(&mut self, arrival: Duration, pkt: &RtpPacket<'_>) {
        if pkt.payload_type() != self.payload_type {
            return;
        }
        self.pcm.clear();
        codec::g711::ulaw_decode(pkt.payload(), &mut self.pcm);
        let peak = self.pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        self.on_frame(arrival, peak > LOUD.unsigned_abs());
    }
}

/// The slots that key `digits` as RFC 4733 events of payload type `pt` at `clock_rate`:
/// each digit held `digit` long (updates every 50 ms, three end packets), then `gap` of
/// the caller's audio before the next. Unknown characters are skipped.
pub fn digit_slots(
    digits: &str,
    pt: u8,
    clock_rate: u32,
    digit: Duration,
    gap: Duration,
) -> Vec<OverrideSlot> {
    let step = clock_rate * codec::FRAME_MS / 1000;
    let frames = |d: Duration| (d.as_millis() / FRAME.as_millis()).max(1) as u32;
    let t0 = Instant::now();
    let mut out = Vec::new();
    for event in digits.chars().filter_map(char_event) {
        let Ok(mut sender) = EventSender::new(t0, event, 10, digit, 0, clock_rate) else {
            continue;
        };
        // One slot per frame until the last end packet is out (bounded by the 5 s cap).
        for k in 0..=frames(EventSender::MAX_LENGTH) + 1 {
            let now = t0 + FRAME * k;
            let mut packets = Vec::new();
            while let Some(p) = sender.poll_packet(now) {
                packets.push(Inserted {
                    payload_type: pt,
                    marker: p.marker,
                    ts_back: k * step,
                    payload: p.payload.to_bytes().to_vec(),
                });
            }
            out.push(Some(packets));
            if sender.is_finished() {
                break;
            }
        }
        out.extend((0..frames(gap)).map(|_| None));
    }
    // The last digit's end is the last slot sent.
    while matches!(out.last(), Some(None)) {
        out.pop();
    }
    out
}

/// A tone of `hz` for `ms` at 8 kHz, about -12 dBFS, as a WAV file.
pub fn tone_wav(hz: u32, ms: u32) -> Vec<u8> {
    let n = (8 * ms) as usize;
    let samples = (0..n)
        .map(|i| {
            let x = 2.0 * std::f64::consts::PI * f64::from(hz) * i as f64 / 8000.0;
            (8000.0 * x.sin()) as i16
        })
        .collect();
    codec::wav::encode(&codec::wav::Pcm {
        rate: 8000,
        samples,
    })
}

/// Writes the prompt (`prompt_ms` of 600 Hz) and the goodbye (`goodbye_ms` of 900 Hz) as
/// `dir/<prompt_key>` and `dir/<goodbye_key>`.
pub fn write_prompts(dir: &Path, prompt: (&str, u32), goodbye: (&str, u32)) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(prompt.0), tone_wav(600, prompt.1))?;
    std::fs::write(dir.join(goodbye.0), tone_wav(900, goodbye.1))
}

#[cfg(test)]
mod tests {
    use codec::telephone_event::{DtmfEvent, EventPayload, EventReceiver};

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bursts_are_counted_and_their_ends_told() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut l = PromptListener::new(7, 0, Some(tx));
        let mut t = 0;
        let mut frame = |l: &mut PromptListener, loud: bool| {
            t += 20;
            l.on_frame(ms(t), loud);
        };
        for _ in 0..3 {
            frame(&mut l, false);
        }
        for _ in 0..50 {
            frame(&mut l, true);
        }
        // One quiet frame inside a prompt does not end it.
        frame(&mut l, false);
        frame(&mut l, true);
        assert!(rx.try_recv().is_err());
        frame(&mut l, false);
        frame(&mut l, false);
        assert_eq!(rx.try_recv(), Ok(Ended { call: 7, index: 0 }));
        for _ in 0..10 {
            frame(&mut l, false);
        }
        for _ in 0..25 {
            frame(&mut l, true);
        }
        frame(&mut l, false);
        frame(&mut l, false);
        assert_eq!(rx.try_recv(), Ok(Ended { call: 7, index: 1 }));
        assert_eq!(
            l.bursts,
            vec![
                Burst {
                    onset: ms(80),
                    loud: 51
                },
                Burst {
                    onset: ms(20 * 68),
                    loud: 25
                }
            ]
        );
    }

    #[test]
    fn loudness_comes_from_the_decoded_payload() {
        let mut l = PromptListener::new(1, 0, None);
        let wav = codec::wav::decode(&tone_wav(600, 40), 10).unwrap();
        let mut loud = Vec::new();
        codec::g711::ulaw_encode(&wav.samples[..160], &mut loud);
        let quiet = vec![0xFFu8; 160]; // µ-law zero
        let mut buf = Vec::new();
        for (i, payload) in [&quiet, &loud, &loud].into_iter().enumerate() {
            let w = rtp::RtpWriter {
                payload_type: 0,
                sequence_number: i as u16,
                ..rtp::RtpWriter::default()
            };
            w.write(payload, &mut buf).unwrap();
            l.on_rtp(ms(20 * i as u64), &RtpPacket::parse(&buf).unwrap());
        }
        // Another payload type (an event, say) is not audio.
        let w = rtp::RtpWriter {
            payload_type: 101,
            ..rtp::RtpWriter::default()
        };
        w.write(&loud, &mut buf).unwrap();
        l.on_rtp(ms(60), &RtpPacket::parse(&buf).unwrap());
        assert_eq!(
            l.bursts,
            vec![Burst {
                onset: ms(20),
                loud: 2
            }]
        );
        assert_eq!(wav.rate, 8000);
        assert_eq!(wav.samples.len(), 320);
    }

    /// The slots decode, with the codec crate's receiver, to the digits keyed.
    #[test]
    fn digit_slots_key_the_digits() {
        let slots = digit_slots("1#9", 101, 8000, ms(100), ms(60));
        let mut rx = EventReceiver::new();
        let mut got = String::new();
        let mut ts: u32 = 50_000;
        let mut ends = 0;
        for slot in &slots {
            for p in slot.iter().flatten() {
                assert_eq!(p.payload_type, 101);
                let payload = EventPayload::parse(&p.payload).unwrap();
                ends += usize::from(payload.end);
                rx.handle_packet(ts - p.ts_back, &p.payload).unwrap();
                while let Some(e) = rx.poll_event() {
                    if let DtmfEvent::End { event, .. } = e {
                        got.push(codec::telephone_event::event_char(event).unwrap());
                    }
                }
            }
            ts += 160;
        }
        assert_eq!(got, "1#9");
        assert_eq!(ends, 9, "three end packets per digit");
        // 100 ms digits end on their sixth slot; 60 ms gaps are three audio slots.
        assert_eq!(slots.len(), 6 * 3 + 3 * 2);
        assert!(slots.last().unwrap().as_ref().unwrap().len() == 3);
        assert!(slots[6..9].iter().all(Option::is_none));
        assert!(digit_slots("xyz", 101, 8000, ms(100), ms(60)).is_empty());
    }
}
