//! What the session tests share: client frames as the SDK encodes them, the session's
//! outputs decoded back, and a session joined and active.
#![allow(dead_code)]

use std::time::Instant;

use chime_signal::proto::*;
use chime_signal::{Output, Session, SessionConfig, decode_frame, encode_frame};

pub const T0_MS: u64 = 1_764_000_000_000;
pub const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\na=rtcp-mux\r\na=setup:actpass\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=inactive\r\n";
pub const ANSWER: &str = "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 40000 UDP/TLS/RTP/SAVPF 111\r\na=setup:passive\r\n";

/// A client-side frame, encoded as the SDK does (prefix 0x05).
pub fn client(kind: FrameType, fill: impl FnOnce(&mut SdkSignalFrame)) -> Vec<u8> {
    let mut f = SdkSignalFrame::new(42, kind);
    fill(&mut f);
    encode_frame(&f)
}

pub fn join() -> Vec<u8> {
    client(FrameType::Join, |f| {
        f.join = Some(SdkJoinFrame {
            protocol_version: Some(2),
            max_num_of_videos: Some(16),
            flags: Some(SdkJoinFlags::HasStreamUpdate as u32),
            client_details: Some(SdkClientDetails {
                client_source: Some("amazon-chime-sdk-js".into()),
                ..Default::default()
            }),
            audio_session_id: Some(77),
        })
    })
}

pub fn subscribe(offer: &str) -> Vec<u8> {
    client(FrameType::Subscribe, |f| {
        f.sub = Some(SdkSubscribeFrame {
            duplex: Some(SdkStreamServiceType::Duplex as i32),
            sdp_offer: Some(offer.into()),
            audio_host: Some("127.0.0.1:8080".into()),
            audio_checkin: Some(false),
            audio_muted: Some(false),
            ..Default::default()
        })
    })
}

pub fn ping(id: u32) -> Vec<u8> {
    client(FrameType::PingPong, |f| {
        f.ping_pong = Some(SdkPingPongFrame {
            r#type: SdkPingPongType::Ping as i32,
            ping_id: id,
        })
    })
}

/// Drains outputs, decoding `Send`s back into frames (through the public decoder,
/// so the prefix is checked too).
pub fn drain(s: &mut Session) -> Vec<Out> {
    std::iter::from_fn(|| s.poll_output())
        .map(|o| match o {
            Output::Send(bytes) => Out::Frame(Box::new(decode_frame(&bytes).expect("valid frame"))),
            other => Out::Event(other),
        })
        .collect()
}

#[derive(Debug, PartialEq)]
pub enum Out {
    Frame(Box<SdkSignalFrame>),
    Event(Output),
}

pub fn frame(ts: u64, kind: FrameType, fill: impl FnOnce(&mut SdkSignalFrame)) -> Out {
    let mut f = SdkSignalFrame::new(ts, kind);
    fill(&mut f);
    Out::Frame(Box::new(f))
}

pub fn joined_and_active(t0: Instant) -> Session {
    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    s.handle_frame(t0, &join()).unwrap();
    s.handle_frame(t0, &subscribe(OFFER)).unwrap();
    s.answer_subscribe(t0, ANSWER.into()).unwrap();
    drain(&mut s);
    s
}
