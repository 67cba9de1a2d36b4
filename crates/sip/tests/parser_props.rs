//! Property tests: the parser never panics, and parse -> print -> parse is stable.

use proptest::prelude::*;
use sip::{Message, ParseLimits, StreamParse, parse_datagram, parse_stream};

fn corpus() -> Vec<Vec<u8>> {
    let dir = format!("{}/testdata/rfc4475", env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "dat"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    v.sort();
    v
}

/// Printing a parsed message and parsing it again gives the same printed bytes.
fn assert_stable(m: &Message) {
    let once = m.to_bytes();
    let again = parse_datagram(&once, &ParseLimits::default()).unwrap_or_else(|e| {
        panic!(
            "reprint failed to parse: {e:?}\n{}",
            String::from_utf8_lossy(&once)
        )
    });
    assert_eq!(again.to_bytes(), once);
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<usize>(),
            prop::sample::select(b" \t\r\n:;,<>\"\\%@=/".to_vec())
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    if data.is_empty() {
        return;
    }
    match *m {
        Mutation::Flip(i, b) => {
            let i = i % data.len();
            data[i] ^= b;
        }
        Mutation::Insert(i, b) => {
            let i = i % (data.len() + 1);
            data.insert(i, b);
        }
        Mutation::Delete(i) => {
            let i = i % data.len();
            data.remove(i);
        }
        Mutation::Truncate(i) => data.truncate(i % (data.len() + 1)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        let limits = ParseLimits::default();
        if let Ok(m) = parse_datagram(&data, &limits) {
            assert_stable(&m);
        }
        let _ = parse_stream(&data, &limits);
        let _ = sip::log::redact_message(&data);
    }

    #[test]
    fn mutated_valid_messages(idx in any::<usize>(), muts in prop::collection::vec(mutation(), 1..6)) {
        let corpus = corpus();
        let mut data = corpus[idx % corpus.len()].clone();
        for m in &muts {
            apply(&mut data, m);
        }
        let limits = ParseLimits::default();
        if let Ok(m) = parse_datagram(&data, &limits) {
            assert_stable(&m);
            // Typed accessors never panic either.
            let h = m.headers();
            let _ = (h.top_via(), h.from(), h.to(), h.cseq(), h.contacts().count(), h.routes().count());
        }
        match parse_stream(&data, &limits) {
            Ok(StreamParse::Message { consumed, .. }) => prop_assert!(consumed <= data.len()),
            Ok(StreamParse::KeepAlive { consumed }) => prop_assert!(consumed <= data.len()),
            _ => {}
        }
        let _ = sip::log::redact_message(&data);
        // Automatic answers are always well-formed (a 505 echoes a foreign-version Via).
        if let Err(e) = parse_datagram(&data, &limits)
            && let Some(answer) = sip::bad_request_response(&data, &e, "x")
            && e.kind != sip::ParseErrorKind::UnsupportedVersion
        {
            prop_assert!(
                parse_datagram(&answer, &limits).is_ok(),
                "{}",
                String::from_utf8_lossy(&answer)
            );
        }
    }
}

#[test]
fn stream_framing() {
    let one = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody";
    let mut buf = b"\r\n\r\n".to_vec();
    let limits = ParseLimits::default();
    assert!(matches!(
        parse_stream(&buf, &limits),
        Ok(StreamParse::KeepAlive { consumed: 4 })
    ));
    buf.extend_from_slice(one);
    buf.extend_from_slice(&one[..20]);
    let Ok(StreamParse::Message { message, consumed }) = parse_stream(&buf, &limits) else {
        panic!("first message")
    };
    assert_eq!(consumed, 4 + one.len());
    assert_eq!(message.body(), b"body");
    assert!(matches!(
        parse_stream(&buf[consumed..], &limits),
        Ok(StreamParse::Incomplete)
    ));
    // A body still in flight is incomplete, not an error.
    assert!(matches!(
        parse_stream(&one[..one.len() - 2], &limits),
        Ok(StreamParse::Incomplete)
    ));
    // Limits.
    let small = ParseLimits {
        max_message_size: 64,
        ..limits
    };
    assert!(parse_stream(one, &small).is_err());
    let few = ParseLimits {
        max_headers: 3,
        ..limits
    };
    assert!(parse_datagram(one, &few).is_err());
    let short = ParseLimits {
        max_line_length: 20,
        ..limits
    };
    assert!(parse_datagram(one, &short).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Mutated messages fed to the full stack (transactions + UA) never panic, and the
    /// stack keeps answering afterwards.
    #[test]
    fn user_agent_survives_mutated_input(seq in prop::collection::vec((any::<usize>(), prop::collection::vec(mutation(), 0..4)), 1..8)) {
        use std::time::{Duration, Instant};
        let corpus = corpus();
        let peer = sip::Peer {
            transport: sip::TransportKind::Udp,
            local: "192.0.2.2:5060".parse().unwrap(),
            remote: "192.0.2.1:5060".parse().unwrap(),
        };
        let mut ua = sip::UserAgent::new(sip::UaConfig::default(), 9);
        let start = Instant::now();
        for (step, (idx, muts)) in seq.iter().enumerate() {
            let mut data = corpus[idx % corpus.len()].clone();
            for m in muts {
                apply(&mut data, m);
            }
            let now = start + Duration::from_millis(step as u64 * 700);
            let _ = ua.handle_datagram(now, &data, peer);
            while let Some(ev) = ua.poll_event() {
                if let sip::UaEvent::IncomingCall { call, .. } = ev {
                    let _ = ua.answer(now, call, 200, Some(sip::Body::sdp("v=0\r\n")));
                }
            }
            ua.handle_timeout(now);
            while ua.poll_transmit().is_some() {}
        }
        ua.handle_timeout(start + Duration::from_secs(7200));
        while ua.poll_event().is_some() {}
    }
}

proptest! {
    /// URIs built from components parse back into the same components.
    #[test]
    fn sip_uri_components_round_trip(
        sips in any::<bool>(),
        user in proptest::option::of("[a-zA-Z0-9+._~-]{1,12}(%[0-9A-F]{2})?"),
        host in prop_oneof!["[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}", "(25[0-5]|1[0-9]{2}|[1-9]?[0-9])\\.1\\.2\\.3", Just("[2001:db8::7]".to_string())],
        port in proptest::option::of(any::<u16>()),
        params in prop::collection::vec(("[a-zA-Z][a-zA-Z0-9-]{0,8}", proptest::option::of("[a-zA-Z0-9._-]{1,8}")), 0..4),
    ) {
        let mut s = String::from(if sips { "sips:" } else { "sip:" });
        if let Some(u) = &user {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(&host);
        if let Some(p) = port {
            s.push_str(&format!(":{p}"));
        }
        for (n, v) in &params {
            s.push(';');
            s.push_str(n);
            if let Some(v) = v {
                s.push('=');
                s.push_str(v);
            }
        }
        let u = sip::Uri::parse(&s).unwrap();
        prop_assert_eq!(u.as_ref().is_sips(), sips);
        prop_assert_eq!(u.user(), user.as_deref());
        prop_assert_eq!(u.host(), host.as_str());
        prop_assert_eq!(u.port(), port);
        let got: Vec<_> = u.params().iter().map(|(n, v)| (n.to_string(), v.map(str::to_string))).collect();
        prop_assert_eq!(got, params);
        prop_assert_eq!(u.to_string(), s);
    }
}
