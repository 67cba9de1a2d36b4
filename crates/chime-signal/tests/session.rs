//! The per-connection state machine, driven like the SDK drives it, asserting every
//! frame that goes out.

use std::time::{Duration, Instant};

mod common;

use chime_signal::proto::*;
use chime_signal::{
    AttendeeInfo, AttendeeVolume, AudioStatus, CloseReason, DecodeError, Output, Session,
    SessionConfig, SessionError, State, UsageError, encode_frame,
};
use common::*;

fn attendee(id: u32, name: &str, muted: bool) -> AttendeeInfo {
    AttendeeInfo {
        audio_stream_id: id,
        attendee_id: format!("att-{name}"),
        external_user_id: format!("user-{name}"),
        muted,
    }
}

fn announce(a: &AttendeeInfo) -> SdkAudioStreamIdInfo {
    SdkAudioStreamIdInfo {
        audio_stream_id: Some(a.audio_stream_id),
        attendee_id: Some(a.attendee_id.clone()),
        muted: Some(a.muted),
        external_user_id: Some(a.external_user_id.clone()),
        dropped: None,
    }
}

fn stream_info(ts: u64, streams: Vec<SdkAudioStreamIdInfo>) -> Out {
    frame(ts, FrameType::AudioStreamIdInfo, |f| {
        f.audio_stream_id_info = Some(SdkAudioStreamIdInfoFrame { streams })
    })
}

#[test]
fn scripted_session() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(15)));

    // The meeting already has Bob; the joiner is Alice. Nothing goes out before JOIN.
    let bob = attendee(1, "bob", true);
    let alice = attendee(2, "alice", false);
    s.attendee_joined(at(1), bob.clone()).unwrap();
    s.attendee_joined(at(1), alice.clone()).unwrap();
    assert_eq!(drain(&mut s), vec![]);

    // JOIN → JOIN_ACK (no TURN), INDEX {sources: [], num_participants: 2}, Joined.
    s.handle_frame(at(10), &join()).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![
            frame(T0_MS + 10, FrameType::JoinAck, |f| {
                f.joinack = Some(SdkJoinAckFrame {
                    turn_credentials: None,
                })
            }),
            frame(T0_MS + 10, FrameType::Index, |f| {
                f.index = Some(SdkIndexFrame {
                    at_capacity: Some(false),
                    sources: vec![],
                    paused_at_source_ids: vec![],
                    num_participants: Some(2),
                })
            }),
            Out::Event(Output::Joined {
                protocol_version: 2,
                client_details: Some(SdkClientDetails {
                    client_source: Some("amazon-chime-sdk-js".into()),
                    ..Default::default()
                }),
            }),
        ]
    );
    assert_eq!(s.state(), State::Joined);
    // Levels are not sent before the session is active.
    assert!(!s.audio_metadata(
        at(11),
        &[AttendeeVolume {
            audio_stream_id: 1,
            attenuation_db: Some(10),
            signal_strength: None
        }]
    ));

    // SUBSCRIBE → Output::Subscribe with the offer; answer → SUBSCRIBE_ACK + roster.
    s.handle_frame(at(20), &subscribe(OFFER)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![Out::Event(Output::Subscribe {
            sdp_offer: OFFER.into(),
            audio_muted: Some(false),
            video: chime_signal::SubscribeVideo::default(),
        })]
    );
    assert_eq!(s.state(), State::Subscribing);
    s.answer_subscribe(at(25), ANSWER.into()).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![
            frame(T0_MS + 25, FrameType::SubscribeAck, |f| {
                f.suback = Some(SdkSubscribeAckFrame {
                    duplex: Some(SdkStreamServiceType::Duplex as i32),
                    allocations: vec![],
                    sdp_answer: Some(ANSWER.into()),
                    tracks: vec![],
                })
            }),
            stream_info(T0_MS + 25, vec![announce(&bob), announce(&alice)]),
        ]
    );
    assert_eq!(s.state(), State::Active);

    // PING → PONG with the same id.
    s.handle_frame(at(1000), &ping(0xfeed)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![frame(T0_MS + 1000, FrameType::PingPong, |f| {
            f.ping_pong = Some(SdkPingPongFrame {
                r#type: SdkPingPongType::Pong as i32,
                ping_id: 0xfeed,
            })
        })]
    );

    // Presence after the snapshot goes out one change at a time.
    let carol = attendee(3, "carol", false);
    s.attendee_joined(at(1100), carol.clone()).unwrap();
    s.attendee_muted(at(1200), 1, false).unwrap();
    s.attendee_left(at(1300), 3, false).unwrap();
    s.attendee_left(at(1400), 1, true).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![
            stream_info(T0_MS + 1100, vec![announce(&carol)]),
            stream_info(
                T0_MS + 1200,
                vec![SdkAudioStreamIdInfo {
                    audio_stream_id: Some(1),
                    muted: Some(false),
                    ..Default::default()
                }]
            ),
            stream_info(
                T0_MS + 1300,
                vec![SdkAudioStreamIdInfo {
                    audio_stream_id: Some(3),
                    ..Default::default()
                }]
            ),
            stream_info(
                T0_MS + 1400,
                vec![SdkAudioStreamIdInfo {
                    audio_stream_id: Some(1),
                    dropped: Some(true),
                    ..Default::default()
                }]
            ),
        ]
    );
    assert_eq!(s.roster().cloned().collect::<Vec<_>>(), vec![alice.clone()]);
    assert_eq!(
        s.attendee_muted(at(1500), 3, true),
        Err(UsageError::UnknownStream(3))
    );

    // Levels.
    assert!(s.audio_metadata(
        at(1500),
        &[AttendeeVolume {
            audio_stream_id: 2,
            attenuation_db: Some(23),
            signal_strength: Some(2)
        }]
    ));
    assert_eq!(
        drain(&mut s),
        vec![frame(T0_MS + 1500, FrameType::AudioMetadata, |f| {
            f.audio_metadata = Some(SdkAudioMetadataFrame {
                attendee_states: vec![SdkAudioAttendeeState {
                    audio_stream_id: Some(2),
                    volume: Some(23),
                    muted: None,
                    signal_strength: Some(2),
                }],
            })
        })]
    );

    // Self-mute from the client, and metrics (ignored).
    s.handle_frame(
        at(1600),
        &client(FrameType::AudioControl, |f| {
            f.audio_control = Some(SdkAudioControlFrame { muted: Some(true) })
        }),
    )
    .unwrap();
    s.handle_frame(
        at(1700),
        &client(FrameType::ClientMetric, |f| {
            f.client_metric = Some(SdkClientMetricFrame::default())
        }),
    )
    .unwrap();
    assert_eq!(
        drain(&mut s),
        vec![Out::Event(Output::MuteChanged { muted: true })]
    );

    // Renegotiation: a second SUBSCRIBE while active; no second roster snapshot.
    s.handle_frame(at(2000), &subscribe(OFFER)).unwrap();
    assert!(matches!(
        drain(&mut s).as_slice(),
        [Out::Event(Output::Subscribe { .. })]
    ));
    s.answer_subscribe(at(2001), ANSWER.into()).unwrap();
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    assert!(matches!(&out[0], Out::Frame(f) if f.frame_type() == Some(FrameType::SubscribeAck)));

    // LEAVE → LEAVE_ACK + Leave; no timers afterwards; later frames are refused.
    s.handle_frame(
        at(3000),
        &client(FrameType::Leave, |f| f.leave = Some(SdkLeaveFrame {})),
    )
    .unwrap();
    assert_eq!(
        drain(&mut s),
        vec![
            frame(T0_MS + 3000, FrameType::LeaveAck, |f| {
                f.leave_ack = Some(SdkLeaveAckFrame {})
            }),
            Out::Event(Output::Leave),
        ]
    );
    assert_eq!(s.state(), State::Left);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.handle_frame(at(3001), &ping(1)), Err(SessionError::Ended));
    assert_eq!(s.attendee_joined(at(3002), carol), Err(UsageError::Ended));
    assert_eq!(drain(&mut s), vec![]);
}

#[test]
fn audio_status_ends_the_session() {
    for (status, code) in [
        (AudioStatus::MeetingEnded, 410),
        (AudioStatus::AttendeeRemoved, 411),
        (AudioStatus::JoinedFromAnotherDevice, 301),
    ] {
        let t0 = Instant::now();
        let mut s = joined_and_active(t0);
        s.audio_status(t0 + Duration::from_millis(5), status);
        assert_eq!(
            drain(&mut s),
            vec![
                frame(T0_MS + 5, FrameType::AudioStatus, |f| {
                    f.audio_status = Some(SdkAudioStatusFrame {
                        audio_status: Some(code),
                    })
                }),
                Out::Event(Output::Close {
                    reason: CloseReason::Ended(status)
                }),
            ]
        );
        assert_eq!(s.state(), State::Closed);
        s.audio_status(t0, status);
        assert_eq!(drain(&mut s), vec![]);
    }
    // Before JOIN only the close goes out.
    let t0 = Instant::now();
    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    s.audio_status(t0, AudioStatus::MeetingEnded);
    assert_eq!(
        drain(&mut s),
        vec![Out::Event(Output::Close {
            reason: CloseReason::Ended(AudioStatus::MeetingEnded)
        })]
    );
}

#[test]
fn protocol_errors_close_by_blame() {
    let t0 = Instant::now();
    let closed = vec![Out::Event(Output::Close {
        reason: CloseReason::ProtocolError,
    })];

    // Anything but JOIN (or PING) first.
    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    assert_eq!(
        s.handle_frame(t0, &subscribe("v=0")),
        Err(SessionError::Unexpected {
            frame: FrameType::Subscribe,
            state: State::AwaitingJoin
        })
    );
    assert_eq!(drain(&mut s), closed);
    assert_eq!(s.state(), State::Closed);

    // Garbage.
    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    assert_eq!(
        s.handle_frame(t0, &[0x00, 0x01]),
        Err(SessionError::Malformed(DecodeError::BadPrefix(0)))
    );
    assert_eq!(drain(&mut s), closed);

    // Too large for the configured limit.
    let mut s = Session::new(
        t0,
        T0_MS,
        SessionConfig {
            max_frame_len: 64,
            ..SessionConfig::default()
        },
    );
    s.handle_frame(t0, &join()).unwrap();
    drain(&mut s);
    let big = subscribe(&"a".repeat(100));
    assert!(matches!(
        s.handle_frame(t0, &big),
        Err(SessionError::Malformed(DecodeError::TooLarge { .. }))
    ));
    assert_eq!(drain(&mut s), closed);

    // A second JOIN; a SUBSCRIBE without an offer; a server-only frame; SUBSCRIBE
    // while one is pending.
    let cases: Vec<(Vec<u8>, SessionError)> = vec![
        (
            join(),
            SessionError::Unexpected {
                frame: FrameType::Join,
                state: State::Joined,
            },
        ),
        (
            client(FrameType::Subscribe, |f| {
                f.sub = Some(SdkSubscribeFrame::default())
            }),
            SessionError::MissingField {
                frame: FrameType::Subscribe,
                field: "sdp_offer",
            },
        ),
        (
            subscribe(""),
            SessionError::MissingField {
                frame: FrameType::Subscribe,
                field: "sdp_offer",
            },
        ),
        (
            client(FrameType::Subscribe, |_| {}),
            SessionError::MissingField {
                frame: FrameType::Subscribe,
                field: "sub",
            },
        ),
        (
            client(FrameType::PingPong, |_| {}),
            SessionError::MissingField {
                frame: FrameType::PingPong,
                field: "ping_pong",
            },
        ),
        (
            client(FrameType::AudioStreamIdInfo, |_| {}),
            SessionError::Unexpected {
                frame: FrameType::AudioStreamIdInfo,
                state: State::Joined,
            },
        ),
    ];
    for (bytes, err) in cases {
        let mut s = Session::new(t0, T0_MS, SessionConfig::default());
        s.handle_frame(t0, &join()).unwrap();
        drain(&mut s);
        assert_eq!(s.handle_frame(t0, &bytes), Err(err));
        assert_eq!(drain(&mut s), closed);
    }
    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    s.handle_frame(t0, &join()).unwrap();
    s.handle_frame(t0, &subscribe(OFFER)).unwrap();
    drain(&mut s);
    assert_eq!(
        s.handle_frame(t0, &subscribe(OFFER)),
        Err(SessionError::Unexpected {
            frame: FrameType::Subscribe,
            state: State::Subscribing
        })
    );
}

/// The SDK pings as soon as the WebSocket opens, before JOIN (seen from 3.32.0 in
/// Chromium): the PING is answered and the session still awaits JOIN.
#[test]
fn ping_before_join_is_answered() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    s.handle_frame(t0, &ping(9)).unwrap();
    let out = drain(&mut s);
    assert_eq!(out.len(), 1, "{out:?}");
    let Out::Frame(f) = &out[0] else {
        panic!("a PONG frame: {out:?}")
    };
    assert_eq!(f.frame_type(), Some(FrameType::PingPong));
    let pong = f.ping_pong.as_ref().unwrap();
    assert_eq!(pong.r#type, SdkPingPongType::Pong as i32);
    assert_eq!(pong.ping_id, 9);
    assert_eq!(s.state(), State::AwaitingJoin);
    s.handle_frame(t0, &join()).unwrap();
    assert_eq!(s.state(), State::Joined);
}

#[test]
fn unknown_frame_types_are_ignored() {
    let t0 = Instant::now();
    let mut s = joined_and_active(t0);
    let mut f = SdkSignalFrame::new(1, FrameType::Join);
    f.r#type = 99;
    s.handle_frame(t0, &encode_frame(&f)).unwrap();
    assert_eq!(drain(&mut s), vec![]);
    assert_eq!(s.state(), State::Active);
}

#[test]
fn usage_errors_leave_the_connection_alone() {
    let t0 = Instant::now();
    let mut s = Session::new(
        t0,
        T0_MS,
        SessionConfig {
            max_attendees: 2,
            ..SessionConfig::default()
        },
    );
    assert_eq!(
        s.answer_subscribe(t0, ANSWER.into()),
        Err(UsageError::NoPendingSubscribe(State::AwaitingJoin))
    );
    s.attendee_joined(t0, attendee(1, "a", false)).unwrap();
    s.attendee_joined(t0, attendee(2, "b", false)).unwrap();
    // Re-announcing a known stream replaces it even when full.
    s.attendee_joined(t0, attendee(2, "b", true)).unwrap();
    assert_eq!(
        s.attendee_joined(t0, attendee(3, "c", false)),
        Err(UsageError::RosterFull(2))
    );
    assert_eq!(
        s.attendee_left(t0, 9, false),
        Err(UsageError::UnknownStream(9))
    );
    assert_eq!(s.state(), State::AwaitingJoin);
    assert_eq!(drain(&mut s), vec![]);
    // Pre-join mute changes are folded into the snapshot.
    s.attendee_muted(t0, 1, true).unwrap();
    s.handle_frame(t0, &join()).unwrap();
    s.handle_frame(t0, &subscribe(OFFER)).unwrap();
    s.answer_subscribe(t0, ANSWER.into()).unwrap();
    let out = drain(&mut s);
    assert_eq!(
        out.last(),
        Some(&stream_info(
            T0_MS,
            vec![
                announce(&attendee(1, "a", true)),
                announce(&attendee(2, "b", true))
            ]
        ))
    );
}

#[test]
fn timers() {
    let t0 = Instant::now();
    // No JOIN in time.
    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    let deadline = s.poll_timeout().unwrap();
    s.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(drain(&mut s), vec![]);
    s.handle_timeout(deadline);
    assert_eq!(
        drain(&mut s),
        vec![Out::Event(Output::Close {
            reason: CloseReason::JoinTimeout
        })]
    );
    assert_eq!(s.poll_timeout(), None);

    // Idle: every frame pushes the deadline.
    let mut s = joined_and_active(t0);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    s.handle_frame(t0 + Duration::from_secs(50), &ping(1))
        .unwrap();
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(110)));
    s.handle_timeout(t0 + Duration::from_secs(100));
    assert_eq!(drain(&mut s), vec![]);
    s.handle_timeout(t0 + Duration::from_secs(110));
    assert_eq!(
        drain(&mut s),
        vec![Out::Event(Output::Close {
            reason: CloseReason::Idle
        })]
    );
}

#[test]
fn stream_id_zero_is_refused() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    assert_eq!(
        s.attendee_joined(t0, attendee(0, "z", false)),
        Err(UsageError::ZeroStreamId)
    );
    assert_eq!(s.roster().count(), 0);
}

#[test]
fn close_codes() {
    use chime_signal::CLOSE_MEETING_ENDED;
    assert_eq!(CLOSE_MEETING_ENDED, 4410);
    assert_eq!(
        CloseReason::Ended(AudioStatus::MeetingEnded).close_code(),
        4410
    );
    assert_eq!(
        CloseReason::Ended(AudioStatus::AttendeeRemoved).close_code(),
        1000
    );
    assert_eq!(
        CloseReason::Ended(AudioStatus::JoinedFromAnotherDevice).close_code(),
        1000
    );
    // Not in the 4500–4599 "server error" range, and not 4410.
    for r in [
        CloseReason::ProtocolError,
        CloseReason::JoinTimeout,
        CloseReason::Idle,
    ] {
        let c = r.close_code();
        assert!((4000..4500).contains(&c) && c != 4410, "{r:?} → {c}");
    }
}

#[test]
fn attenuation_from_level() {
    assert_eq!(AttendeeVolume::attenuation_from_dbov(0.0), 0);
    assert_eq!(AttendeeVolume::attenuation_from_dbov(3.0), 0);
    assert_eq!(AttendeeVolume::attenuation_from_dbov(-14.4), 14);
    assert_eq!(AttendeeVolume::attenuation_from_dbov(-41.6), 42);
    assert_eq!(AttendeeVolume::attenuation_from_dbov(-300.0), 127);
    assert_eq!(
        AttendeeVolume::attenuation_from_dbov(f32::NEG_INFINITY),
        127
    );
    assert_eq!(AttendeeVolume::attenuation_from_dbov(f32::NAN), 127);
}
