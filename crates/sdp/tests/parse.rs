//! Parser and printer: the seed INVITE's SDP, RFC 8866 examples, errors and limits.

use sdp::{
    AddrType, Attribute, Direction, ParseError, ParseErrorKind, ParseLimits, RtcpAttribute, RtpMap,
    SessionDescription,
};

/// The SDP of the seed INVITE (pjsua), verbatim, placeholders included.
const SEED: &str = "v=0\r
o=- 3775321410 3775321410 IN IP4 IPaddress\r
s=pjmedia\r
b=AS:117\r
t=0 0\r
a=X-nat:0\r
m=audio 4000 RTP/SAVP 0 3 8 9 125 101\r
c=IN IP4 IPaddress\r
b=TIAS:96000\r
a=rtcp:4001 IN IP4 IPaddress\r
a=sendrecv\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:3 GSM/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:9 G722/8000\r
a=rtpmap:125 opus/48000/2\r
a=fmtp:125 useinbandfec=1\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=crypto:1 AEAD_AES_256_GCM inline:EXAMPLE\r
a=crypto:2 AEAD_AES_256_GCM_8 inline:EXAMPLE\r
a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:EXAMPLE\r
a=crypto:4 AES_256_CM_HMAC_SHA1_32 inline:EXAMPLE\r
a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:EXAMPLE\r
a=crypto:6 AES_CM_128_HMAC_SHA1_32 inline:EXAMPLE\r
";

#[test]
fn seed_sdp_parses_and_prints_back_byte_for_byte() {
    let sdp: SessionDescription = SEED.parse().unwrap();
    assert_eq!(sdp.origin.username, "-");
    assert_eq!(sdp.origin.session_id, 3_775_321_410);
    assert_eq!(sdp.origin.session_version, 3_775_321_410);
    assert_eq!(sdp.origin.addr_type, AddrType::Ip4);
    assert_eq!(sdp.session_name, "pjmedia");
    assert_eq!(sdp.bandwidths[0].kind, "AS");
    assert_eq!(sdp.bandwidths[0].value, 117);
    assert_eq!(sdp.timings.len(), 1);
    assert_eq!(sdp.attribute("X-nat"), Some("0"));
    assert_eq!(sdp.media.len(), 1);
    let m = &sdp.media[0];
    assert!(m.is_audio());
    assert_eq!(m.port, 4000);
    assert_eq!(m.proto, "RTP/SAVP");
    assert_eq!(m.formats, ["0", "3", "8", "9", "125", "101"]);
    // "IPaddress" is a placeholder: a host name, not an IP address.
    assert_eq!(m.connections[0].host(), "IPaddress");
    assert_eq!(m.connections[0].ip(), None);
    assert_eq!(m.bandwidths[0].kind, "TIAS");
    assert_eq!(m.bandwidths[0].value, 96000);
    let rtcp = m.rtcp().unwrap();
    assert_eq!(rtcp.port, 4001);
    assert_eq!(rtcp.connection.unwrap().address, "IPaddress");
    assert_eq!(Direction::of_media(&sdp, 0), Direction::SendRecv);
    assert_eq!(
        m.rtpmap(125),
        Some(RtpMap {
            payload_type: 125,
            encoding: "opus".into(),
            clock_rate: 48000,
            channels: Some(2)
        })
    );
    assert_eq!(m.fmtp("125"), Some("useinbandfec=1"));
    assert_eq!(m.fmtp("101"), Some("0-16"));
    assert_eq!(m.attributes_named("crypto").count(), 6);
    assert_eq!(sdp.to_string(), SEED);
}

#[test]
fn lf_line_ends_blank_lines_and_trailing_spaces_are_accepted() {
    let lf = SEED.replace("\r\n", "\n");
    let a: SessionDescription = lf.parse().unwrap();
    let b: SessionDescription = SEED.parse().unwrap();
    assert_eq!(a, b);
    let messy = SEED.replace("s=pjmedia\r\n", "s=pjmedia  \r\n\r\n") + "\r\n";
    assert_eq!(messy.parse::<SessionDescription>().unwrap(), b);
    // No final line end at all.
    let trimmed = SEED.trim_end();
    assert_eq!(trimmed.parse::<SessionDescription>().unwrap(), b);
}

#[test]
fn rfc8866_example_with_every_line_type_round_trips() {
    // RFC 8866 §5 example, plus u=/e=/p=/r=/z=/k=/i= lines and two media sections.
    let text = "v=0\r
o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1\r
s=Call to John Smith\r
i=SDP Offer #1\r
u=http://www.jdoe.example.com/home.html\r
e=Jane Doe <jane@jdoe.example.com>\r
p=+1 617 555-6011\r
c=IN IP4 198.51.100.1\r
b=CT:128\r
t=3724394400 3724398000\r
r=7d 1h 0 25h\r
z=3730928400 -1h 3749680800 0\r
k=prompt\r
a=recvonly\r
m=audio 49170 RTP/AVP 0\r
i=voice\r
b=AS:64\r
m=audio 49180 RTP/AVP 0\r
m=video 51372/2 RTP/AVP 99\r
c=IN IP6 2001:db8::2\r
k=clear:secret\r
a=rtpmap:99 h263-1998/90000\r
m=application 0 udp wb\r
";
    let sdp: SessionDescription = text.parse().unwrap();
    assert_eq!(sdp.information.as_deref(), Some("SDP Offer #1"));
    assert_eq!(sdp.emails.len(), 1);
    assert_eq!(sdp.phones, ["+1 617 555-6011"]);
    assert_eq!(sdp.timings[0].repeats, ["7d 1h 0 25h"]);
    assert!(sdp.time_zones.is_some());
    assert_eq!(sdp.media.len(), 4);
    assert_eq!(sdp.media[2].port_count, Some(2));
    assert_eq!(sdp.media[2].connections[0].addr_type, AddrType::Ip6);
    assert_eq!(
        sdp.media[2].connections[0].ip(),
        Some("2001:db8::2".parse().unwrap())
    );
    // Session-level recvonly applies where the media section says nothing.
    assert_eq!(Direction::of_media(&sdp, 0), Direction::RecvOnly);
    assert_eq!(
        sdp.connection_for(2).unwrap().address,
        "2001:db8::2".to_string()
    );
    assert_eq!(sdp.connection_for(1).unwrap().address, "198.51.100.1");
    assert_eq!(sdp.to_string(), text);
    // Keys stay out of Debug output.
    let dbg = format!("{sdp:?}");
    assert!(!dbg.contains("secret"), "{dbg}");
}

#[test]
fn debug_redacts_crypto_keys() {
    let sdp: SessionDescription = SEED
        .replace("inline:EXAMPLE", "inline:c2VjcmV0a2V5")
        .parse()
        .unwrap();
    let dbg = format!("{sdp:?}");
    assert!(!dbg.contains("c2VjcmV0a2V5"));
    assert!(dbg.contains("AEAD_AES_256_GCM <redacted>"));
    // Display prints them on purpose.
    assert!(sdp.to_string().contains("inline:c2VjcmV0a2V5"));
}

fn err(text: &str) -> ParseError {
    text.parse::<SessionDescription>().unwrap_err()
}

#[test]
fn errors_name_the_line_and_the_problem() {
    let base = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";
    let cases: Vec<(String, usize, ParseErrorKind)> = vec![
        (String::new(), 0, ParseErrorKind::Empty),
        (
            "o=- 1 1 IN IP4 h\r\n".into(),
            1,
            ParseErrorKind::MissingVersion,
        ),
        ("v=1\r\n".into(), 1, ParseErrorKind::UnsupportedVersion(1)),
        ("v=0\r\ns=-\r\n".into(), 0, ParseErrorKind::MissingLine('o')),
        (
            format!("{base}m=audio 70000 RTP/AVP 0\r\n"),
            5,
            ParseErrorKind::InvalidField {
                line_type: 'm',
                field: "port",
            },
        ),
        (
            format!("{base}m=audio 4000\r\n"),
            5,
            ParseErrorKind::MissingField {
                line_type: 'm',
                field: "proto",
            },
        ),
        (
            "v=0\r\no=- x 1 IN IP4 h\r\n".into(),
            2,
            ParseErrorKind::InvalidField {
                line_type: 'o',
                field: "sess-id",
            },
        ),
        (
            format!("{base}c=IN IP4\r\n"),
            5,
            ParseErrorKind::MissingField {
                line_type: 'c',
                field: "connection-address",
            },
        ),
        (
            format!("{base}b=AS:x\r\n"),
            5,
            ParseErrorKind::InvalidField {
                line_type: 'b',
                field: "bandwidth",
            },
        ),
        (
            format!("{base}s=again\r\n"),
            5,
            ParseErrorKind::Duplicate('s'),
        ),
        (
            format!("{base}m=audio 1 RTP/AVP 0\r\nt=0 0\r\n"),
            6,
            ParseErrorKind::OutOfPlace('t'),
        ),
        (
            format!("{base}a=x\r\nr=1d 1h 0\r\n"),
            6,
            ParseErrorKind::OutOfPlace('r'),
        ),
        (
            format!("{base}x=1\r\n"),
            5,
            ParseErrorKind::UnknownType('x'),
        ),
        (format!("{base}hello\r\n"), 5, ParseErrorKind::MalformedLine),
        (format!("{base}A=b\r\n"), 5, ParseErrorKind::MalformedLine),
        (
            format!("{base}a=bad name\r\n"),
            5,
            ParseErrorKind::InvalidField {
                line_type: 'a',
                field: "att-field",
            },
        ),
        (
            format!("{base}a=x:1\ra=y\r\n"),
            5,
            ParseErrorKind::ControlCharacter,
        ),
    ];
    for (text, line, kind) in cases {
        let e = err(&text);
        assert_eq!((e.line, &e.kind), (line, &kind), "{text:?}");
    }
    let e = err(&format!("{base}m=audio 70000 RTP/AVP 0\r\n"));
    assert_eq!(e.to_string(), "line 5: invalid port in m= line");
    assert_eq!(e.sip_status(), 400);
    assert_eq!(
        e.warning_text(),
        "malformed SDP: line 5: invalid port in m= line"
    );
    assert_eq!(err("v=2\r\n").sip_status(), 488);
    let mut bytes = base.as_bytes().to_vec();
    bytes.extend_from_slice(b"c=IN IP4 \xff\r\n");
    let e = SessionDescription::parse(&bytes).unwrap_err();
    assert_eq!((e.line, e.kind), (5, ParseErrorKind::NotUtf8));
    // Latin-1 in free text is kept, lossily.
    let latin1 = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=T\xe9l\xe9phone\r\na=tool:\xe9\r\n";
    let sdp = SessionDescription::parse(latin1).unwrap();
    assert_eq!(sdp.session_name, "T\u{fffd}l\u{fffd}phone");
    assert_eq!(sdp.attribute("tool"), Some("\u{fffd}"));
}

#[test]
fn limits_are_enforced_before_parsing() {
    let limits = ParseLimits {
        max_size: 200,
        max_lines: 8,
        max_media: 2,
    };
    let big = "v=0\r\n".to_string() + &"a=x\r\n".repeat(100);
    let e = SessionDescription::parse_with_limits(big.as_bytes(), &limits).unwrap_err();
    assert_eq!(
        e.kind,
        ParseErrorKind::TooLarge {
            size: big.len(),
            max: 200
        }
    );
    let lines = "v=0\r\n".to_string() + &"a=x\r\n".repeat(10);
    let e = SessionDescription::parse_with_limits(lines.as_bytes(), &limits).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::TooManyLines { max: 8 });
    let media =
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n".to_string() + &"m=audio 0 RTP/AVP 0\r\n".repeat(3);
    let e = SessionDescription::parse_with_limits(media.as_bytes(), &limits).unwrap_err();
    assert_eq!(
        (e.line, e.kind),
        (6, ParseErrorKind::TooManyMedia { max: 2 })
    );
}

#[test]
fn typed_attribute_views() {
    assert_eq!(
        RtpMap::parse("96 opus/48000/2").unwrap().to_string(),
        "opus/48000/2"
    );
    assert_eq!(RtpMap::parse("0 PCMU/8000").unwrap().channels, None);
    assert_eq!(RtpMap::parse("128 PCMU/8000"), None);
    assert_eq!(RtpMap::parse("96 opus"), None);
    assert_eq!(RtpMap::parse("96 opus/x"), None);
    assert_eq!(RtpMap::from_static(3).unwrap().to_string(), "GSM/8000");
    assert_eq!(
        RtcpAttribute::parse("53020 IN IP6 2001:2345:6789:ABCD:EF01:2345:6789:ABCD")
            .unwrap()
            .connection
            .unwrap()
            .addr_type,
        AddrType::Ip6
    );
    assert_eq!(RtcpAttribute::parse("53020 IN IP4"), None);
    assert_eq!(RtcpAttribute::parse("99999"), None);
    assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
    assert_eq!(Direction::Inactive.reversed(), Direction::Inactive);
    assert_eq!(
        Direction::SendRecv.intersect(Direction::SendOnly),
        Direction::SendOnly
    );
    let a = Attribute::new("ptime", "20");
    assert!(a.is("PTIME"));
    let p = sdp::FormatParams::parse("useinbandfec=1; stereo=0;maxplaybackrate=16000");
    assert_eq!(p.get_flag("useinbandfec"), Some(true));
    assert_eq!(p.get_flag("stereo"), Some(false));
    assert_eq!(p.get_u32("maxplaybackrate"), Some(16000));
    assert_eq!(
        p.to_string(),
        "useinbandfec=1;stereo=0;maxplaybackrate=16000"
    );
}
