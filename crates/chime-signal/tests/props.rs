//! Property tests: no input panics the decoder or the session, and what we encode
//! decodes to the same frame.

use std::time::{Duration, Instant};

use chime_signal::proto::*;
use chime_signal::{Output, Session, SessionConfig, decode_frame, encode_frame};
use proptest::prelude::*;

fn info() -> impl Strategy<Value = SdkAudioStreamIdInfo> {
    (
        proptest::option::of(any::<u32>()),
        proptest::option::of(".{0,12}"),
        proptest::option::of(any::<bool>()),
        proptest::option::of(".{0,12}"),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(id, att, muted, ext, dropped)| SdkAudioStreamIdInfo {
            audio_stream_id: id,
            attendee_id: att,
            muted,
            external_user_id: ext,
            dropped,
        })
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame(&bytes);
    }

    #[test]
    fn decode_prefixed_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = vec![0x05];
        bytes.extend_from_slice(&body);
        if let Ok(frame) = decode_frame(&bytes) {
            // Whatever decodes re-encodes to something that decodes to the same frame.
            prop_assert_eq!(decode_frame(&encode_frame(&frame)).ok(), Some(frame));
        }
    }

    /// A session fed arbitrary messages (raw, or valid envelopes of any type with
    /// random bodies) never panics, and every Send it produces is a valid frame.
    #[test]
    fn session_never_panics(
        msgs in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                (1i32..30, proptest::collection::vec(any::<u8>(), 0..48)).prop_map(|(t, body)| {
                    let mut b = encode_frame(&SdkSignalFrame { r#type: t, ..SdkSignalFrame::new(1, FrameType::Join) });
                    b.extend_from_slice(&body);
                    b
                }),
            ],
            0..16,
        ),
        step_ms in 0u64..20_000,
    ) {
        let t0 = Instant::now();
        let mut s = Session::new(t0, 0, SessionConfig::default());
        let mut now = t0;
        for m in &msgs {
            now += Duration::from_millis(step_ms);
            let _ = s.handle_frame(now, m);
            let _ = s.answer_subscribe(now, "v=0\r\n".into());
            s.handle_timeout(now);
            while let Some(out) = s.poll_output() {
                if let Output::Send(bytes) = out {
                    prop_assert!(decode_frame(&bytes).is_ok());
                }
            }
        }
    }

    #[test]
    fn stream_info_roundtrip(ts in any::<u64>(), streams in proptest::collection::vec(info(), 0..8)) {
        let frame = SdkSignalFrame {
            audio_stream_id_info: Some(SdkAudioStreamIdInfoFrame { streams }),
            ..SdkSignalFrame::new(ts, FrameType::AudioStreamIdInfo)
        };
        prop_assert_eq!(decode_frame(&encode_frame(&frame)), Ok(frame));
    }
}
