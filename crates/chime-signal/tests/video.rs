//! Video and TURN in the protocol: a SUBSCRIBE's receive stream ids and camera come out
//! with the offer; INDEX lists the meeting's streams (the client's own left out);
//! SUBSCRIBE_ACK carries the camera's allocation and the track mappings; JOIN_ACK carries
//! TURN credentials when a TURN server is configured.

mod common;

use std::time::Instant;

use chime_signal::proto::*;
use chime_signal::{
    Output, SendVideo, Session, SessionConfig, SubscribeVideo, TrackMapping, TurnConfig,
    VideoAnswer, VideoSource,
};
use common::*;

fn source(stream_id: u32, attendee: &str) -> VideoSource {
    VideoSource {
        stream_id,
        group_id: stream_id + 100,
        attendee_id: attendee.into(),
        external_user_id: format!("ext-{attendee}"),
        max_bitrate_kbps: 1400,
        avg_bitrate_bps: 1_400_000,
        framerate: 15,
    }
}

fn frames(s: &mut Session) -> Vec<SdkSignalFrame> {
    drain(s)
        .into_iter()
        .filter_map(|o| match o {
            Out::Frame(f) => Some(*f),
            Out::Event(_) => None,
        })
        .collect()
}

#[test]
fn subscribe_index_and_ack_carry_the_video() {
    let t0 = Instant::now();
    let mut s = joined_and_active(t0);
    s.set_identity("self", "ext-self");

    // INDEX: the meeting's streams less the client's own.
    assert!(s.video_index(t0, &[source(1, "other"), source(2, "self")]));
    let index = frames(&mut s).remove(0).index.expect("an INDEX");
    assert_eq!(index.sources.len(), 1);
    let src = &index.sources[0];
    assert_eq!(
        (src.stream_id, src.group_id, src.attendee_id.as_deref()),
        (Some(1), Some(101), Some("other"))
    );
    assert_eq!(src.media_type, Some(SdkStreamMediaType::Video as i32));
    assert_eq!(src.external_user_id.as_deref(), Some("ext-other"));

    // SUBSCRIBE with the camera and a receive section for stream 1.
    let sub = client(FrameType::Subscribe, |f| {
        f.sub = Some(SdkSubscribeFrame {
            duplex: Some(SdkStreamServiceType::Duplex as i32),
            sdp_offer: Some(OFFER.into()),
            receive_stream_ids: vec![0, 1],
            send_streams: vec![
                SdkStreamDescriptor {
                    media_type: Some(SdkStreamMediaType::Audio as i32),
                    ..Default::default()
                },
                SdkStreamDescriptor {
                    media_type: Some(SdkStreamMediaType::Video as i32),
                    max_bitrate_kbps: Some(900),
                    framerate: Some(15),
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
    });
    s.handle_frame(t0, &sub).unwrap();
    let Some(Out::Event(Output::Subscribe { video, .. })) = drain(&mut s).pop() else {
        panic!("no Subscribe output");
    };
    assert_eq!(
        video,
        SubscribeVideo {
            receive_stream_ids: vec![0, 1],
            send: Some(SendVideo {
                max_bitrate_kbps: 900,
                framerate: 15
            }),
        }
    );
    let answer = VideoAnswer {
        allocation: Some((2, 102)),
        tracks: vec![TrackMapping {
            stream_id: 1,
            ssrc: 1234,
            track_label: "label-1".into(),
        }],
    };
    s.answer_subscribe_video(t0, ANSWER.into(), &answer)
        .unwrap();
    let ack = frames(&mut s).remove(0).suback.expect("a SUBSCRIBE_ACK");
    assert_eq!(ack.allocations.len(), 1);
    assert_eq!(ack.allocations[0].stream_id, Some(2));
    assert_eq!(ack.allocations[0].group_id, Some(102));
    assert_eq!(ack.tracks.len(), 1);
    let t = &ack.tracks[0];
    assert_eq!(
        (t.stream_id, t.ssrc, t.track_label.as_deref()),
        (Some(1), Some(1234), Some("label-1"))
    );
}

#[test]
fn an_audio_only_subscribe_sends_no_video() {
    let t0 = Instant::now();
    let mut s = joined_and_active(t0);
    let sub = client(FrameType::Subscribe, |f| {
        f.sub = Some(SdkSubscribeFrame {
            duplex: Some(SdkStreamServiceType::Rx as i32),
            sdp_offer: Some(OFFER.into()),
            send_streams: vec![SdkStreamDescriptor {
                media_type: Some(SdkStreamMediaType::Video as i32),
                ..Default::default()
            }],
            ..Default::default()
        })
    });
    s.handle_frame(t0, &sub).unwrap();
    let Some(Out::Event(Output::Subscribe { video, .. })) = drain(&mut s).pop() else {
        panic!("no Subscribe output");
    };
    assert_eq!(video.send, None, "duplex RX: the camera is off");
}

#[test]
fn join_ack_carries_turn_credentials_when_configured() {
    let t0 = Instant::now();
    let turn = TurnConfig {
        uris: vec!["turn:127.0.0.1:3478?transport=udp".into()],
        secret: b"0123456789abcdef".to_vec(),
        ttl_s: 600,
    };
    let mut s = Session::new(
        t0,
        T0_MS,
        SessionConfig {
            turn: Some(turn.clone()),
            ..SessionConfig::default()
        },
    );
    s.set_identity("att-1", "ext");
    s.handle_frame(t0, &join()).unwrap();
    let ack = frames(&mut s).remove(0).joinack.expect("JOIN_ACK");
    let c = ack.turn_credentials.expect("TURN credentials");
    let expiry = T0_MS / 1000 + 600;
    assert_eq!(
        c.username.as_deref(),
        Some(format!("{expiry}:att-1").as_str())
    );
    assert_eq!(
        c.password.as_deref(),
        Some(chime_signal::turn::password(&turn.secret, &format!("{expiry}:att-1")).as_str())
    );
    assert_eq!(c.ttl, Some(600));
    assert_eq!(c.uris, turn.uris);

    // Without a TURN server: none.
    let mut s = Session::new(t0, T0_MS, SessionConfig::default());
    s.handle_frame(t0, &join()).unwrap();
    let ack = frames(&mut s).remove(0).joinack.expect("JOIN_ACK");
    assert_eq!(ack.turn_credentials, None);
}
