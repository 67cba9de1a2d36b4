//! Framing: round trips of every frame type, rejection of malformed input, and
//! decoding of bytes produced by hand from the protobuf wire format (an encoder
//! independent of prost).

use chime_signal::proto::*;
use chime_signal::{
    DecodeError, FRAME_PREFIX, decode_frame, decode_frame_with_limit, encode_frame,
};

fn roundtrip(frame: SdkSignalFrame) {
    let bytes = encode_frame(&frame);
    assert_eq!(bytes[0], FRAME_PREFIX);
    let back = decode_frame(&bytes).expect("decodes");
    assert_eq!(back, frame);
}

fn at(kind: FrameType) -> SdkSignalFrame {
    SdkSignalFrame::new(1_764_189_000_123, kind)
}

fn descriptor() -> SdkStreamDescriptor {
    SdkStreamDescriptor {
        stream_id: Some(7),
        framerate: Some(15),
        max_bitrate_kbps: Some(1400),
        track_label: Some("b18d".into()),
        group_id: Some(3),
        avg_bitrate_bps: Some(900_000),
        attendee_id: Some("a1".into()),
        media_type: Some(SdkStreamMediaType::Video as i32),
        external_user_id: Some("u1".into()),
    }
}

#[test]
fn roundtrip_every_frame_type() {
    roundtrip(SdkSignalFrame {
        join: Some(SdkJoinFrame {
            protocol_version: Some(2),
            max_num_of_videos: Some(25),
            flags: Some(SdkJoinFlags::HasStreamUpdate as u32 | SdkJoinFlags::UseSendSideBwe as u32),
            client_details: Some(SdkClientDetails {
                app_name: Some("meet".into()),
                app_version: Some("1.0".into()),
                device_model: Some("x86_64".into()),
                device_make: Some("pc".into()),
                platform_name: Some("Chrome".into()),
                platform_version: Some("131".into()),
                client_source: Some("amazon-chime-sdk-js".into()),
                chime_sdk_version: Some("3.27.0".into()),
            }),
            audio_session_id: Some(u64::MAX - 1),
        }),
        ..at(FrameType::Join)
    });
    roundtrip(SdkSignalFrame {
        joinack: Some(SdkJoinAckFrame {
            turn_credentials: Some(SdkTurnCredentials {
                username: Some("u".into()),
                password: Some("p".into()),
                ttl: Some(300),
                uris: vec!["turn:a".into(), "turns:b".into()],
            }),
        }),
        ..at(FrameType::JoinAck)
    });
    roundtrip(SdkSignalFrame {
        sub: Some(SdkSubscribeFrame {
            duplex: Some(SdkStreamServiceType::Duplex as i32),
            send_streams: vec![descriptor()],
            receive_stream_ids: vec![1, 2, 3],
            sdp_offer: Some("v=0\r\n".into()),
            audio_host: Some("h".into()),
            audio_checkin: Some(false),
            audio_muted: Some(true),
        }),
        ..at(FrameType::Subscribe)
    });
    roundtrip(SdkSignalFrame {
        suback: Some(SdkSubscribeAckFrame {
            duplex: Some(SdkStreamServiceType::Rx as i32),
            allocations: vec![SdkStreamAllocation {
                track_label: Some("t".into()),
                stream_id: Some(4),
                group_id: Some(5),
            }],
            sdp_answer: Some("v=0\r\n".into()),
            tracks: vec![SdkTrackMapping {
                stream_id: Some(4),
                ssrc: Some(0xdead_beef),
                track_label: Some("t".into()),
            }],
        }),
        ..at(FrameType::SubscribeAck)
    });
    roundtrip(SdkSignalFrame {
        index: Some(SdkIndexFrame {
            at_capacity: Some(false),
            sources: vec![descriptor()],
            paused_at_source_ids: vec![9],
            num_participants: Some(3),
        }),
        ..at(FrameType::Index)
    });
    for kind in [FrameType::Pause, FrameType::Resume] {
        roundtrip(SdkSignalFrame {
            pause: Some(SdkPauseResumeFrame {
                stream_ids: vec![1, 300_000],
            }),
            ..at(kind)
        });
    }
    roundtrip(SdkSignalFrame {
        leave: Some(SdkLeaveFrame {}),
        ..at(FrameType::Leave)
    });
    roundtrip(SdkSignalFrame {
        leave_ack: Some(SdkLeaveAckFrame {}),
        ..at(FrameType::LeaveAck)
    });
    roundtrip(SdkSignalFrame {
        bitrates: Some(SdkBitrateFrame {
            bitrates: vec![SdkBitrate {
                source_stream_id: Some(2),
                avg_bitrate_bps: Some(64_000),
            }],
        }),
        ..at(FrameType::Bitrates)
    });
    roundtrip(SdkSignalFrame {
        audio_control: Some(SdkAudioControlFrame { muted: Some(true) }),
        ..at(FrameType::AudioControl)
    });
    roundtrip(SdkSignalFrame {
        audio_metadata: Some(SdkAudioMetadataFrame {
            attendee_states: vec![SdkAudioAttendeeState {
                audio_stream_id: Some(1),
                volume: Some(27),
                muted: Some(false),
                signal_strength: Some(2),
            }],
        }),
        ..at(FrameType::AudioMetadata)
    });
    roundtrip(SdkSignalFrame {
        audio_stream_id_info: Some(SdkAudioStreamIdInfoFrame {
            streams: vec![
                SdkAudioStreamIdInfo {
                    audio_stream_id: Some(1),
                    attendee_id: Some("a".into()),
                    muted: Some(false),
                    external_user_id: Some("e".into()),
                    dropped: None,
                },
                SdkAudioStreamIdInfo {
                    audio_stream_id: Some(2),
                    dropped: Some(true),
                    ..Default::default()
                },
            ],
        }),
        ..at(FrameType::AudioStreamIdInfo)
    });
    for kind in [SdkPingPongType::Ping, SdkPingPongType::Pong] {
        roundtrip(SdkSignalFrame {
            ping_pong: Some(SdkPingPongFrame {
                r#type: kind as i32,
                ping_id: 0,
            }),
            ..at(FrameType::PingPong)
        });
    }
    roundtrip(SdkSignalFrame {
        audio_status: Some(SdkAudioStatusFrame {
            audio_status: Some(410),
        }),
        ..at(FrameType::AudioStatus)
    });
    roundtrip(SdkSignalFrame {
        client_metric: Some(SdkClientMetricFrame {
            global_metrics: vec![SdkMetric {
                r#type: Some(7),
                value: Some(12.5),
            }],
            stream_metric_frames: vec![SdkStreamMetricFrame {
                stream_id: Some(1),
                group_id: Some(1),
                metrics: vec![SdkMetric {
                    r#type: Some(86),
                    value: Some(-0.25),
                }],
            }],
        }),
        ..at(FrameType::ClientMetric)
    });
    roundtrip(SdkSignalFrame {
        data_message: Some(SdkDataMessageFrame {
            messages: vec![SdkDataMessagePayload {
                topic: Some("chat".into()),
                data: Some(vec![0, 1, 255]),
                lifetime_ms: Some(1000),
                sender_attendee_id: Some("a".into()),
                ingest_time_ns: Some(-5),
                sender_external_user_id: Some("e".into()),
            }],
        }),
        ..at(FrameType::DataMessage)
    });
    roundtrip(SdkSignalFrame {
        remote_video_update: Some(SdkRemoteVideoUpdateFrame {
            added_or_updated_video_subscriptions: vec![SdkVideoSubscriptionConfiguration {
                mid: "1".into(),
                attendee_id: Some("a".into()),
                stream_id: Some(3),
            }],
            removed_video_subscription_mids: vec!["2".into()],
        }),
        ..at(FrameType::RemoteVideoUpdate)
    });
    roundtrip(SdkSignalFrame {
        error: Some(SdkErrorFrame {
            status: Some(403),
            description: Some("no".into()),
        }),
        ..at(FrameType::JoinAck)
    });
}

/// Hand-encoded protobuf (wire format: key = field << 3 | wire type; varints LEB128).
#[test]
fn decodes_hand_encoded_ping() {
    // 0x05 | ts=1 (08 01) | type=PING_PONG 19 (10 13) |
    // field 20 (key a2 01) length 5: type=PING (08 01), ping_id=300 (10 ac 02).
    let bytes = [
        0x05, 0x08, 0x01, 0x10, 0x13, 0xa2, 0x01, 0x05, 0x08, 0x01, 0x10, 0xac, 0x02,
    ];
    let frame = decode_frame(&bytes).unwrap();
    assert_eq!(frame.timestamp_ms, 1);
    assert_eq!(frame.frame_type(), Some(FrameType::PingPong));
    assert_eq!(
        frame.ping_pong,
        Some(SdkPingPongFrame {
            r#type: SdkPingPongType::Ping as i32,
            ping_id: 300
        })
    );
}

#[test]
fn decodes_hand_encoded_subscribe() {
    // ts = 1_700_000_000_000 ms: varint 80 d0 95 ff bc 31
    // type SUBSCRIBE = 3; field 6 (sub), length-delimited (0x32) of:
    //   duplex = DUPLEX 3 (08 03), receive_stream_ids 2 and 1 unpacked (18 02 18 01),
    //   sdp_offer "v=0" (22 03 76 3d 30), audio_muted = true (38 01)
    let mut bytes = vec![0x05, 0x08, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x10, 0x03];
    let sub = [
        0x08, 0x03, 0x18, 0x02, 0x18, 0x01, 0x22, 0x03, b'v', b'=', b'0', 0x38, 0x01,
    ];
    bytes.push(0x32);
    bytes.push(sub.len() as u8);
    bytes.extend_from_slice(&sub);
    let frame = decode_frame(&bytes).unwrap();
    assert_eq!(frame.timestamp_ms, 1_700_000_000_000);
    assert_eq!(frame.frame_type(), Some(FrameType::Subscribe));
    let sub = frame.sub.unwrap();
    assert_eq!(sub.duplex, Some(SdkStreamServiceType::Duplex as i32));
    assert_eq!(sub.receive_stream_ids, vec![2, 1]);
    assert_eq!(sub.sdp_offer.as_deref(), Some("v=0"));
    assert_eq!(sub.audio_muted, Some(true));
    assert_eq!(sub.audio_host, None);
}

#[test]
fn packed_repeated_ids_also_decode() {
    // receive_stream_ids packed: field 3 wire type 2 (1a), len 2, values 2, 1.
    let bytes = [
        0x05, 0x08, 0x00, 0x10, 0x03, 0x32, 0x04, 0x1a, 0x02, 0x02, 0x01,
    ];
    let frame = decode_frame(&bytes).unwrap();
    assert_eq!(frame.sub.unwrap().receive_stream_ids, vec![2, 1]);
}

/// Our encoding of a known frame, byte for byte: the server's side of the
/// independent-encoder check.
#[test]
fn encodes_known_bytes() {
    let frame = SdkSignalFrame {
        index: Some(SdkIndexFrame {
            at_capacity: Some(false),
            num_participants: Some(2),
            ..Default::default()
        }),
        ..SdkSignalFrame::new(0, FrameType::Index)
    };
    // ts 0 is still written (required), type 5, field 8 (0x42) len 4: 08 00 20 02.
    assert_eq!(
        encode_frame(&frame),
        vec![
            0x05, 0x08, 0x00, 0x10, 0x05, 0x42, 0x04, 0x08, 0x00, 0x20, 0x02
        ]
    );
    let pong = SdkSignalFrame {
        ping_pong: Some(SdkPingPongFrame {
            r#type: SdkPingPongType::Pong as i32,
            ping_id: 0,
        }),
        ..SdkSignalFrame::new(300, FrameType::PingPong)
    };
    assert_eq!(
        encode_frame(&pong),
        vec![
            0x05, 0x08, 0xac, 0x02, 0x10, 0x13, 0xa2, 0x01, 0x04, 0x08, 0x02, 0x10, 0x00
        ]
    );
}

#[test]
fn rejects_malformed() {
    assert_eq!(decode_frame(&[]), Err(DecodeError::Empty));
    assert_eq!(
        decode_frame(&[0x04, 0x08, 0x01, 0x10, 0x01]),
        Err(DecodeError::BadPrefix(0x04))
    );
    // type only
    assert_eq!(
        decode_frame(&[0x05, 0x10, 0x01]),
        Err(DecodeError::MissingRequired("timestamp_ms"))
    );
    // timestamp only
    assert_eq!(
        decode_frame(&[0x05, 0x08, 0x01]),
        Err(DecodeError::MissingRequired("type"))
    );
    // truncated varint
    assert!(matches!(
        decode_frame(&[0x05, 0x08, 0x80]),
        Err(DecodeError::Protobuf(_))
    ));
    // length-delimited field running past the end
    assert!(matches!(
        decode_frame(&[0x05, 0x08, 0x01, 0x10, 0x03, 0x32, 0x10, 0x08]),
        Err(DecodeError::Protobuf(_))
    ));
    let big = vec![0x05; 101];
    assert_eq!(
        decode_frame_with_limit(&big, 100),
        Err(DecodeError::TooLarge { len: 101, max: 100 })
    );
}

#[test]
fn unknown_type_and_fields_are_kept_apart() {
    // type 99 (unknown) plus an unknown field 100 (varint): decodes, type unknown.
    let bytes = [0x05, 0x08, 0x01, 0x10, 0x63, 0xa0, 0x06, 0x01];
    let frame = decode_frame(&bytes).unwrap();
    assert_eq!(frame.r#type, 99);
    assert_eq!(frame.frame_type(), None);
}
