//! Properties: parse(print(x)) == x for every well-formed model, and no input panics the
//! parser or the answerer.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use sdp::{
    AddrType, Attribute, Bandwidth, Connection, KeyLine, LocalTransport, MediaConfig,
    MediaDescription, MediaSession, Origin, SessionDescription, Timing,
};
use std::net::{IpAddr, Ipv4Addr};

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.+!_-]{0,8}"
}

fn word() -> impl Strategy<Value = String> {
    "[!-~]{1,12}"
}

/// Printable text with no leading or trailing blank (those are not significant).
fn text() -> impl Strategy<Value = String> {
    "[!-~]( ?[!-~]){0,10}"
}

fn addr_type() -> impl Strategy<Value = AddrType> {
    prop_oneof![
        Just(AddrType::Ip4),
        Just(AddrType::Ip6),
        token()
            .prop_filter("not IP4/IP6", |t| {
                !t.eq_ignore_ascii_case("ip4") && !t.eq_ignore_ascii_case("ip6")
            })
            .prop_map(AddrType::Other),
    ]
}

fn connection() -> impl Strategy<Value = Connection> {
    (token(), addr_type(), word()).prop_map(|(net_type, addr_type, address)| Connection {
        net_type,
        addr_type,
        address,
    })
}

fn bandwidth() -> impl Strategy<Value = Bandwidth> {
    (token(), any::<u64>()).prop_map(|(kind, value)| Bandwidth { kind, value })
}

fn attribute() -> impl Strategy<Value = Attribute> {
    (
        token(),
        option::of(prop_oneof![Just(String::new()), text()]),
    )
        .prop_map(|(name, value)| Attribute { name, value })
}

fn media() -> impl Strategy<Value = MediaDescription> {
    (
        (
            token(),
            any::<u16>(),
            option::of(1u16..),
            word(),
            vec(word(), 0..5),
        ),
        option::of(text()),
        vec(connection(), 0..2),
        vec(bandwidth(), 0..2),
        option::of(text().prop_map(KeyLine)),
        vec(attribute(), 0..6),
    )
        .prop_map(
            |(
                (media, port, port_count, proto, formats),
                information,
                connections,
                bandwidths,
                key,
                attributes,
            )| {
                MediaDescription {
                    media,
                    port,
                    port_count,
                    proto,
                    formats,
                    information,
                    connections,
                    bandwidths,
                    key,
                    attributes,
                }
            },
        )
}

fn description() -> impl Strategy<Value = SessionDescription> {
    let origin = (
        word(),
        any::<u64>(),
        any::<u64>(),
        token(),
        addr_type(),
        word(),
    )
        .prop_map(
            |(username, session_id, session_version, net_type, addr_type, address)| Origin {
                username,
                session_id,
                session_version,
                net_type,
                addr_type,
                address,
            },
        );
    let timing =
        (any::<u64>(), any::<u64>(), vec(text(), 0..2)).prop_map(|(start, stop, repeats)| Timing {
            start,
            stop,
            repeats,
        });
    (
        (
            origin,
            prop_oneof![Just(String::new()), text()],
            option::of(text()),
            option::of(text()),
            vec(text(), 0..2),
            vec(text(), 0..2),
        ),
        (
            option::of(connection()),
            vec(bandwidth(), 0..2),
            vec(timing, 0..3),
            option::of(text()),
            option::of(text().prop_map(KeyLine)),
            vec(attribute(), 0..5),
            vec(media(), 0..4),
        ),
    )
        .prop_map(
            |(
                (origin, session_name, information, uri, emails, phones),
                (connection, bandwidths, timings, time_zones, key, attributes, media),
            )| SessionDescription {
                origin,
                session_name,
                information,
                uri,
                emails,
                phones,
                connection,
                bandwidths,
                timings,
                time_zones,
                key,
                attributes,
                media,
            },
        )
}

fn answerer() -> MediaSession {
    MediaSession::new(
        MediaConfig::default(),
        LocalTransport {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rtp_port: 40000,
            rtcp_port: None,
        },
        1,
    )
}

/// Lines an offer is made of, for the mutation property.
const OFFER_LINES: &[&str] = &[
    "c=IN IP4 192.0.2.1",
    "c=IN IP6 ::",
    "c=IN IP4 0.0.0.0",
    "m=audio 4000 RTP/SAVP 0 3 8 9 125 101",
    "m=audio 4000 RTP/AVP 96 97 0",
    "m=video 5000 RTP/AVP 96",
    "m=audio 65535 RTP/SAVPF 111",
    "m=audio 0 RTP/AVP 0",
    "a=rtpmap:125 opus/48000/2",
    "a=rtpmap:96 opus/48000",
    "a=rtpmap:97 telephone-event/48000",
    "a=rtpmap:101 telephone-event/8000",
    "a=rtpmap:9 G722/8000/1",
    "a=rtpmap:0 PCMU/0",
    "a=rtpmap:300 x/1",
    "a=fmtp:125 useinbandfec=1;stereo=1;maxplaybackrate=99999999999",
    "a=fmtp:101",
    "a=rtcp:4001 IN IP4 192.0.2.1",
    "a=rtcp:70000",
    "a=rtcp-mux",
    "a=sendonly",
    "a=inactive",
    "a=ptime:0.5",
    "a=crypto:1 AEAD_AES_256_GCM inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5",
    "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkw",
    "a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkw|2^20|1:4",
    "a=crypto:x",
    "a=crypto:999999999999 FOO inline:",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn print_then_parse_is_identity(sdp in description()) {
        let printed = sdp.to_string();
        let parsed: SessionDescription = printed.parse().map_err(|e| {
            TestCaseError::fail(format!("{e}\n{printed}"))
        })?;
        prop_assert_eq!(&parsed, &sdp);
        // And printing is stable.
        prop_assert_eq!(parsed.to_string(), printed);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        let _ = SessionDescription::parse(&bytes);
    }

    #[test]
    fn sdp_shaped_text_never_panics(lines in vec("[a-z]=[ -~]{0,40}", 0..30)) {
        let text = format!("v=0\r\n{}", lines.join("\r\n"));
        if let Ok(sdp) = text.parse::<SessionDescription>() {
            let _ = answerer().answer(&sdp);
        }
    }

    #[test]
    fn mutated_offers_never_panic_the_answerer(
        picks in vec(0..OFFER_LINES.len(), 0..25),
    ) {
        let mut text = String::from("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n");
        for i in picks {
            text.push_str(OFFER_LINES[i]);
            text.push_str("\r\n");
        }
        // Two session-level c= lines are malformed; such picks test the parser only.
        let Ok(sdp) = text.parse::<SessionDescription>() else { return Ok(()) };
        let mut s = answerer();
        if let Ok(answer) = s.answer(&sdp) {
            // An answer always has the offer's m-lines, and parses back.
            prop_assert_eq!(answer.sdp.media.len(), sdp.media.len());
            let reparsed: SessionDescription = answer.sdp.to_string().parse().unwrap();
            prop_assert_eq!(&reparsed, &answer.sdp);
            // Exactly one audio codec plus at most telephone-event.
            let m = &answer.sdp.media[answer.audio.media_index];
            prop_assert!(!m.formats.is_empty() && m.formats.len() <= 2);
        } else if let Err(e) = s.answer(&sdp) {
            prop_assert!(matches!(e.sip_status(), 400 | 488));
            prop_assert!(!e.warning_text().contains('"'));
        }
    }
}

/// A hostile offer within the default limits (one huge m= line, hundreds of rtpmaps)
/// is answered or refused in linear time: this finishes quickly in a debug build.
#[test]
fn many_formats_and_rtpmaps_stay_linear() {
    let mut text = String::from(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP",
    );
    for i in 0..10_000 {
        text.push_str(&format!(" {}", 96 + i % 32));
    }
    text.push_str("\r\n");
    for i in 0..700 {
        text.push_str(&format!("a=rtpmap:{} X{i}/8000\r\n", 96 + i % 32));
    }
    let sdp: SessionDescription = text.parse().unwrap();
    let e = answerer().answer(&sdp).unwrap_err();
    // Each payload type is listed once in the refusal.
    let sdp::AnswerError::NoCommonCodec { offered, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(offered.len(), 32);
}
