//! Interop with an independent protobuf implementation: `protoc` (Debian
//! `protobuf-compiler`) encodes client frames from text format for our decoder, and
//! decodes what the session sends (and complains on stderr about any missing
//! `required` field). The schema is `tests/proto/signal.proto`, written for this test.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chime_signal::proto::{FrameType, SdkPingPongType, SdkStreamServiceType};
use chime_signal::{
    AttendeeInfo, AttendeeVolume, AudioStatus, Output, Session, SessionConfig, decode_frame,
};

const T0_MS: u64 = 1_764_000_000_000;

/// Runs protoc with `--encode` or `--decode` on `input`; returns stdout. Fails the test
/// on any diagnostic (such as a missing required field).
fn protoc(mode: &str, input: &[u8]) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proto");
    let mut child = Command::new("protoc")
        .arg(format!("-I{dir}"))
        .arg(format!("--{mode}=SdkSignalFrame"))
        .arg(format!("{dir}/signal.proto"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("protoc (Debian protobuf-compiler; scripts/setup-deps installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to protoc");
    let out = child.wait_with_output().expect("protoc runs");
    assert!(out.status.success(), "protoc failed: {out:?}");
    assert!(
        out.stderr.is_empty(),
        "protoc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A client frame: protoc's encoding of `text`, with the SDK's 0x05 prefix.
fn client(text: &str) -> Vec<u8> {
    let mut bytes = vec![0x05];
    bytes.extend(protoc("encode", text.as_bytes()));
    bytes
}

/// protoc's text rendering of a frame we sent (prefix stripped).
fn render(bytes: &[u8]) -> String {
    assert_eq!(bytes.first(), Some(&0x05));
    String::from_utf8(protoc("decode", &bytes[1..])).expect("utf-8")
}

fn sent(s: &mut Session) -> Vec<String> {
    std::iter::from_fn(|| s.poll_output())
        .filter_map(|o| match o {
            Output::Send(b) => Some(render(&b)),
            _ => None,
        })
        .collect()
}

#[test]
fn protoc_encoded_client_frames_decode() {
    let join = decode_frame(&client(
        r#"timestamp_ms: 1764000000000 type: JOIN
           join { protocol_version: 2 max_num_of_videos: 25 flags: 2
                  client_details { platform_name: "Chrome" client_source: "amazon-chime-sdk-js" }
                  audio_session_id: 18446744073709551615 }"#,
    ))
    .unwrap();
    assert_eq!(join.timestamp_ms, 1_764_000_000_000);
    assert_eq!(join.frame_type(), Some(FrameType::Join));
    let j = join.join.unwrap();
    assert_eq!(j.protocol_version, Some(2));
    assert_eq!(j.flags, Some(2));
    assert_eq!(j.audio_session_id, Some(u64::MAX));
    assert_eq!(
        j.client_details.unwrap().client_source.as_deref(),
        Some("amazon-chime-sdk-js")
    );

    let sub = decode_frame(&client(
        r#"timestamp_ms: 1 type: SUBSCRIBE
           sub { duplex: DUPLEX receive_stream_ids: 4 receive_stream_ids: 5
                 sdp_offer: "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" audio_checkin: false audio_muted: true }"#,
    ))
    .unwrap()
    .sub
    .unwrap();
    assert_eq!(sub.duplex, Some(SdkStreamServiceType::Duplex as i32));
    assert_eq!(sub.receive_stream_ids, vec![4, 5]);
    assert_eq!(
        sub.sdp_offer.as_deref(),
        Some("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n")
    );
    assert_eq!(sub.audio_checkin, Some(false));
    assert_eq!(sub.audio_muted, Some(true));

    let ping = decode_frame(&client(
        "timestamp_ms: 2 type: PING_PONG ping_pong { type: PING ping_id: 4294967295 }",
    ))
    .unwrap()
    .ping_pong
    .unwrap();
    assert_eq!(ping.r#type, SdkPingPongType::Ping as i32);
    assert_eq!(ping.ping_id, u32::MAX);
}

#[test]
fn session_frames_decode_in_protoc() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    s.attendee_joined(
        t0,
        AttendeeInfo {
            audio_stream_id: 1,
            attendee_id: "a-1".into(),
            external_user_id: "alice".into(),
            muted: false,
        },
    )
    .unwrap();
    s.handle_frame(
        at(1),
        &client("timestamp_ms: 1 type: JOIN join { protocol_version: 2 }"),
    )
    .unwrap();
    assert_eq!(
        sent(&mut s),
        vec![
            "timestamp_ms: 1764000000001\ntype: JOIN_ACK\njoinack {\n}\n",
            "timestamp_ms: 1764000000001\ntype: INDEX\nindex {\n  at_capacity: false\n  num_participants: 1\n}\n",
        ]
    );
    s.handle_frame(
        at(2),
        &client(r#"timestamp_ms: 2 type: SUBSCRIBE sub { duplex: DUPLEX sdp_offer: "o" }"#),
    )
    .unwrap();
    s.answer_subscribe(at(3), "v=0\r\n".into()).unwrap();
    assert_eq!(
        sent(&mut s),
        vec![
            "timestamp_ms: 1764000000003\ntype: SUBSCRIBE_ACK\nsuback {\n  duplex: DUPLEX\n  sdp_answer: \"v=0\\r\\n\"\n}\n",
            "timestamp_ms: 1764000000003\ntype: AUDIO_STREAM_ID_INFO\naudio_stream_id_info {\n  streams {\n    audio_stream_id: 1\n    attendee_id: \"a-1\"\n    muted: false\n    external_user_id: \"alice\"\n  }\n}\n",
        ]
    );
    s.handle_frame(
        at(4),
        &client("timestamp_ms: 4 type: PING_PONG ping_pong { type: PING ping_id: 7 }"),
    )
    .unwrap();
    s.attendee_left(at(5), 1, false).unwrap();
    assert!(s.audio_metadata(
        at(6),
        &[AttendeeVolume {
            audio_stream_id: 1,
            attenuation_db: Some(30),
            signal_strength: None,
        }]
    ));
    assert_eq!(
        sent(&mut s),
        vec![
            "timestamp_ms: 1764000000004\ntype: PING_PONG\nping_pong {\n  type: PONG\n  ping_id: 7\n}\n",
            "timestamp_ms: 1764000000005\ntype: AUDIO_STREAM_ID_INFO\naudio_stream_id_info {\n  streams {\n    audio_stream_id: 1\n  }\n}\n",
            "timestamp_ms: 1764000000006\ntype: AUDIO_METADATA\naudio_metadata {\n  attendee_states {\n    audio_stream_id: 1\n    volume: 30\n  }\n}\n",
        ]
    );
    s.handle_frame(at(7), &client("timestamp_ms: 7 type: LEAVE leave {}"))
        .unwrap();
    assert_eq!(
        sent(&mut s),
        vec!["timestamp_ms: 1764000000007\ntype: LEAVE_ACK\nleave_ack {\n}\n"]
    );

    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    s.handle_frame(at(1), &client("timestamp_ms: 1 type: JOIN join {}"))
        .unwrap();
    sent(&mut s);
    s.audio_status(at(9), AudioStatus::AttendeeRemoved);
    assert_eq!(
        sent(&mut s),
        vec![
            "timestamp_ms: 1764000000009\ntype: AUDIO_STATUS\naudio_status {\n  audio_status: 411\n}\n"
        ]
    );
}
