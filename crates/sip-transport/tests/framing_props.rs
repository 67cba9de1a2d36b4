//! Properties of the stream framer: any split of a stream of messages yields the same
//! messages, and arbitrary bytes never panic it.

use bytes::Bytes;
use proptest::prelude::*;
use sip_transport::framing::{Frame, FramingLimits, StreamFramer};

const LIMITS: FramingLimits = FramingLimits {
    max_message_size: 8192,
    max_header_size: 2048,
    max_line_length: 512,
};

fn message(n: usize, body: &[u8], compact: bool) -> Vec<u8> {
    let name = if compact { "l" } else { "Content-Length" };
    let mut m = format!(
        "MESSAGE sip:u@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK{n}\r\nCSeq: {n} MESSAGE\r\n{name}: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

proptest! {
    #[test]
    fn any_split_yields_the_same_messages(
        bodies in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..300), any::<bool>(), 0usize..3), 1..6),
        cuts in prop::collection::vec(1usize..200, 0..40),
    ) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (n, (body, compact, pings)) in bodies.iter().enumerate() {
            for _ in 0..*pings {
                stream.extend_from_slice(b"\r\n\r\n");
                want.push(Frame::Ping);
            }
            let m = message(n, body, *compact);
            stream.extend_from_slice(&m);
            want.push(Frame::Message(Bytes::from(m)));
        }
        let mut framer = StreamFramer::new(LIMITS);
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut cuts = cuts.into_iter();
        while !rest.is_empty() {
            let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            framer.push(chunk);
            while let Some(frame) = framer.next_frame().unwrap() {
                got.push(frame);
            }
        }
        prop_assert_eq!(got, want);
        prop_assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..1024), 0..20),
    ) {
        let mut framer = StreamFramer::new(LIMITS);
        for chunk in chunks {
            framer.push(&chunk);
            loop {
                match framer.next_frame() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return Ok(()),
                }
            }
            // Between pushes, at most one partial message is held.
            prop_assert!(framer.buffered() <= LIMITS.max_message_size + 1024);
        }
    }
}
