//! Realtime data messages: a client's messages come out for relaying with the sender and
//! ingest time filled in; Amazon Chime's limits (topic, 2 KB, rate) send a message back
//! to its sender marked throttled; others' messages are delivered as one frame.

mod common;

use std::time::{Duration, Instant};

use chime_signal::proto::*;
use chime_signal::{
    DataMessage, DataRate, DataRefusal, Output, Session, SessionConfig, SessionError, State,
};
use common::*;

fn data_frame(messages: &[(&str, &[u8], u32)]) -> Vec<u8> {
    client(FrameType::DataMessage, |f| {
        f.data_message = Some(SdkDataMessageFrame {
            messages: messages
                .iter()
                .map(|(topic, data, lifetime)| SdkDataMessagePayload {
                    topic: Some((*topic).into()),
                    data: Some(data.to_vec()),
                    lifetime_ms: Some(*lifetime),
                    ..Default::default()
                })
                .collect(),
        })
    })
}

fn alice(t0: Instant) -> Session {
    let mut s = joined_and_active(t0);
    s.set_identity("att-alice", "user-alice");
    s
}

/// The payloads of the DATA_MESSAGE frames among `out`.
fn sent_back(out: &[Out]) -> Vec<SdkDataMessagePayload> {
    out.iter()
        .filter_map(|o| match o {
            Out::Frame(f) if f.frame_type() == Some(FrameType::DataMessage) => {
                f.data_message.clone()
            }
            _ => None,
        })
        .flat_map(|d| d.messages)
        .collect()
}

#[test]
fn a_message_comes_out_with_its_sender_and_ingest_time() {
    let t0 = Instant::now();
    let mut s = alice(t0);
    let at = t0 + Duration::from_millis(1500);
    s.handle_frame(
        at,
        &data_frame(&[("chat", b"hello", 0), ("react", b"{}", 30_000)]),
    )
    .unwrap();
    let out = drain(&mut s);
    let ingest = i64::try_from(T0_MS + 1500).unwrap() * 1_000_000;
    assert_eq!(
        out,
        vec![
            Out::Event(Output::DataMessage(DataMessage {
                topic: "chat".into(),
                data: b"hello".to_vec(),
                lifetime_ms: 0,
                sender_attendee_id: "att-alice".into(),
                sender_external_user_id: "user-alice".into(),
                ingest_time_ns: ingest,
            })),
            Out::Event(Output::DataMessage(DataMessage {
                topic: "react".into(),
                data: b"{}".to_vec(),
                lifetime_ms: 30_000,
                sender_attendee_id: "att-alice".into(),
                sender_external_user_id: "user-alice".into(),
                ingest_time_ns: ingest,
            })),
        ]
    );
    assert_eq!(s.state(), State::Active);
}

#[test]
fn messages_over_the_limits_go_back_throttled() {
    let t0 = Instant::now();
    let mut s = alice(t0);
    let big = vec![7u8; 2049];
    let long_topic = "t".repeat(40);
    s.handle_frame(
        t0,
        &data_frame(&[
            ("bad topic", b"x", 0),
            (&long_topic, b"y", 0),
            ("chat", &big, 0),
            ("chat", &big[..2048], 0),
        ]),
    )
    .unwrap();
    let out = drain(&mut s);
    let refusals: Vec<(String, DataRefusal)> = out
        .iter()
        .filter_map(|o| match o {
            Out::Event(Output::DataRefused { topic, reason }) => Some((topic.clone(), *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        refusals,
        vec![
            ("bad topic".to_string(), DataRefusal::Topic),
            ("t".repeat(36), DataRefusal::Topic),
            ("chat".to_string(), DataRefusal::TooLarge),
        ]
    );
    let relayed = out
        .iter()
        .filter(|o| matches!(o, Out::Event(Output::DataMessage(m)) if m.data.len() == 2048))
        .count();
    assert_eq!(relayed, 1, "2048 bytes are within the limit");
    // One frame back to the sender: each refused message with no ingest time (the
    // SDK's `throttled`), its sender, and no oversized data.
    let back = sent_back(&out);
    assert_eq!(back.len(), 3);
    for m in &back {
        assert_eq!(m.ingest_time_ns, Some(0));
        assert_eq!(m.sender_attendee_id.as_deref(), Some("att-alice"));
    }
    assert_eq!(back[0].data.as_deref(), Some(&b"x"[..]));
    assert_eq!(
        back[2].data.as_deref(),
        Some(&b""[..]),
        "2049 bytes are not echoed"
    );
    assert_eq!(s.state(), State::Active, "refusals leave the session up");
}

#[test]
fn the_rate_is_a_burst_then_per_second() {
    let t0 = Instant::now();
    let mut s = Session::new(
        t0,
        T0_MS,
        SessionConfig {
            data_rate: DataRate {
                per_second: 10,
                burst: 5,
            },
            ..SessionConfig::default()
        },
    );
    s.handle_frame(t0, &join()).unwrap();
    drain(&mut s);
    let count = |out: &[Out]| {
        let relayed = out
            .iter()
            .filter(|o| matches!(o, Out::Event(Output::DataMessage(_))))
            .count();
        let throttled = out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Out::Event(Output::DataRefused {
                        reason: DataRefusal::Throttled,
                        ..
                    })
                )
            })
            .count();
        (relayed, throttled)
    };
    let eight = data_frame(&[("chat", &b"m"[..], 0); 8]);
    s.handle_frame(t0, &eight).unwrap();
    assert_eq!(
        count(&drain(&mut s)),
        (5, 3),
        "the burst of 5, then refused"
    );
    // 300 ms at 10 a second: 3 more.
    s.handle_frame(t0 + Duration::from_millis(300), &eight)
        .unwrap();
    let out = drain(&mut s);
    assert_eq!(count(&out), (3, 5));
    assert_eq!(sent_back(&out).len(), 5);
}

#[test]
fn others_messages_are_delivered_in_one_frame_while_joined() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    let m = DataMessage {
        topic: "chat".into(),
        data: b"hi bob".to_vec(),
        lifetime_ms: 0,
        sender_attendee_id: "att-alice".into(),
        sender_external_user_id: "user-alice".into(),
        ingest_time_ns: 1_764_000_000_123_000_000,
    };
    assert!(
        !s.data_messages(t0, std::slice::from_ref(&m)),
        "not before JOIN"
    );
    s.handle_frame(t0, &join()).unwrap();
    drain(&mut s);
    assert!(s.data_messages(t0, &[m.clone(), m.clone()]));
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    let back = sent_back(&out);
    assert_eq!(back.len(), 2);
    assert_eq!(
        back[0],
        SdkDataMessagePayload {
            topic: Some("chat".into()),
            data: Some(b"hi bob".to_vec()),
            lifetime_ms: Some(0),
            sender_attendee_id: Some("att-alice".into()),
            ingest_time_ns: Some(1_764_000_000_123_000_000),
            sender_external_user_id: Some("user-alice".into()),
        }
    );
    assert!(!s.data_messages(t0, &[]));
}

#[test]
fn a_data_frame_without_its_message_is_a_protocol_error() {
    let t0 = Instant::now();
    let mut s = alice(t0);
    let err = s
        .handle_frame(t0, &client(FrameType::DataMessage, |_| {}))
        .unwrap_err();
    assert!(matches!(err, SessionError::MissingField { .. }), "{err:?}");
    assert_eq!(s.state(), State::Closed);
}
