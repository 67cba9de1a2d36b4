//! The Chime SDK signaling protocol (`chime_signal`): frame decoding, and a `Session` driven
//! by a script of client frames (`handle_frame`), the clock (`handle_timeout`) and the
//! application's calls (roster changes, levels, audio status), answering every SUBSCRIBE.
//!
//! Input: the whole input is first decoded as one frame (and a frame that decodes encodes
//! to bytes that decode to it again). Then it is read as records `[op] [len: u16 BE]
//! [len bytes]`; op 0 is a client frame, the others are in `step`. Checked beyond "no
//! panic": every frame the session sends decodes.
#![no_main]

use std::time::{Duration, Instant};

use chime_signal::{
    AttendeeInfo, AttendeeVolume, AudioStatus, Output, Session, SessionConfig, decode_frame,
    decode_frame_with_limit, encode_frame,
};
use libfuzzer_sys::fuzz_target;

const ANSWER: &str = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nt=0 0\r\n\
                      m=audio 3478 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";

struct Harness {
    session: Session,
    now: Instant,
}

impl Harness {
    fn drain(&mut self) {
        while let Some(out) = self.session.poll_output() {
            match out {
                Output::Send(bytes) => {
                    if let Err(e) = decode_frame_with_limit(&bytes, usize::MAX) {
                        panic!("the session sent a frame that does not decode: {e}");
                    }
                }
                Output::Subscribe { sdp_offer, .. } => {
                    assert!(!sdp_offer.is_empty());
                    self.session
                        .answer_subscribe(self.now, ANSWER.to_owned())
                        .expect("a SUBSCRIBE awaits its answer");
                }
                Output::DataMessage(m) => {
                    // Only messages within AWS's limits are relayed.
                    assert!(
                        !m.topic.is_empty() && m.topic.len() <= chime_signal::data::MAX_TOPIC_LEN
                    );
                    assert!(m.data.len() <= chime_signal::data::MAX_DATA_LEN);
                }
                Output::Joined { .. }
                | Output::MuteChanged { .. }
                | Output::DataRefused { .. }
                | Output::Leave
                | Output::Close { .. } => {}
            }
        }
    }

    fn step(&mut self, op: u8, arg: &[u8]) {
        let byte = |i: usize| arg.get(i).copied().unwrap_or(0);
        let id = u32::from(byte(0) % 8);
        match op % 7 {
            0 => {
                let _ = self.session.handle_frame(self.now, arg);
            }
            1 => {
                let ms = u64::from(u16::from_be_bytes([byte(0), byte(1)])) * 10;
                self.now += Duration::from_millis(ms);
                self.session.handle_timeout(self.now);
            }
            2 => {
                let info = AttendeeInfo {
                    audio_stream_id: id,
                    attendee_id: String::from_utf8_lossy(arg.get(2..).unwrap_or(&[])).into(),
                    external_user_id: format!("user-{id}"),
                    muted: byte(1) & 1 == 1,
                };
                let _ = self.session.attendee_joined(self.now, info);
            }
            3 => {
                let _ = self.session.attendee_left(self.now, id, byte(1) & 1 == 1);
            }
            4 => {
                let _ = self.session.attendee_muted(self.now, id, byte(1) & 1 == 1);
            }
            5 => {
                let volumes: Vec<AttendeeVolume> = arg
                    .chunks(3)
                    .map(|c| AttendeeVolume {
                        audio_stream_id: u32::from(c[0] % 8),
                        attenuation_db: c.get(1).map(|&a| u32::from(a)),
                        signal_strength: c.get(2).map(|&s| u32::from(s % 3)),
                    })
                    .collect();
                let _ = self.session.audio_metadata(self.now, &volumes);
            }
            _ => {
                let status = [
                    AudioStatus::MeetingEnded,
                    AudioStatus::AttendeeRemoved,
                    AudioStatus::JoinedFromAnotherDevice,
                ][usize::from(byte(0) % 3)];
                self.session.audio_status(self.now, status);
            }
        }
        self.drain();
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_frame(data) {
        let _ = frame.frame_type();
        let again = decode_frame_with_limit(&encode_frame(&frame), usize::MAX)
            .expect("an encoded frame decodes");
        assert_eq!(again, frame);
    }

    let now = Instant::now();
    let mut h = Harness {
        session: Session::new(now, 1_764_000_000_000, SessionConfig::default()),
        now,
    };
    let _ = h.session.attendee_joined(
        now,
        AttendeeInfo {
            audio_stream_id: 1,
            attendee_id: "attendee-1".into(),
            external_user_id: "alice".into(),
            muted: false,
        },
    );
    let mut rest = data;
    while let [op, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (arg, next) = tail.split_at(len);
        h.step(*op, arg);
        rest = next;
    }
    let _ = h.session.roster().count();
    h.now += Duration::from_secs(120);
    h.session.handle_timeout(h.now);
    h.drain();
});
