//! RFC 4475 torture tests: the 13 valid messages of §3.1.1 parse (with the values the RFC
//! calls out), the 19 invalid messages of §3.1.2 are rejected with the answer the RFC asks
//! for, and a few §3.2 transaction-layer cases behave as described.

use sip::{
    Disposition, HeaderName, Message, Method, ParseErrorKind, ParseLimits, Scheme,
    bad_request_response, parse_datagram,
};

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/rfc4475/{name}.dat", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(name: &str) -> Message {
    parse_datagram(&load(name), &ParseLimits::default())
        .unwrap_or_else(|e| panic!("{name} must parse: {e:?}"))
}

fn req(name: &str) -> sip::Request {
    match parse(name) {
        Message::Request(r) => r,
        Message::Response(_) => panic!("{name} is a request"),
    }
}

const VALID: [&str; 13] = [
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
];

#[test]
fn all_valid_messages_parse_and_round_trip() {
    for name in VALID {
        let m = parse(name);
        let printed = m.to_bytes();
        let again = parse_datagram(&printed, &ParseLimits::default())
            .unwrap_or_else(|e| panic!("{name} reprint must parse: {e:?}"));
        let a: Vec<_> = m
            .headers()
            .iter()
            .filter(|h| h.1 != HeaderName::ContentLength)
            .collect();
        let b: Vec<_> = again
            .headers()
            .iter()
            .filter(|h| h.1 != HeaderName::ContentLength)
            .collect();
        assert_eq!(a, b, "{name}: headers survive print/parse");
        assert_eq!(m.body(), again.body(), "{name}: body survives");
        assert_eq!(again.to_bytes(), printed, "{name}: printing is stable");
    }
}

#[test]
fn wsinv_whitespace() {
    let r = req("wsinv");
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri.param("unknownparam"), Some(None));
    let h = &r.headers;
    assert_eq!(h.to().unwrap().tag(), Some("1918181833n"));
    let from = h.from().unwrap();
    assert_eq!(from.display_name().unwrap(), "J Rosenberg \\\"");
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(h.max_forwards(), Some(68));
    let cseq = h.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, "INVITE"));
    let vias: Vec<_> = h.vias().collect();
    assert_eq!(vias.len(), 3);
    assert_eq!((vias[0].transport, vias[0].host), ("UDP", "192.0.2.2"));
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert_eq!(
        (vias[1].transport, vias[1].host),
        ("TCP", "spindle.example.com")
    );
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].host, "192.168.255.111");
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(h.get(HeaderName::Subject), Some(""));
    let nf = h.get_raw("newfangledheader").next().unwrap();
    assert!(nf.starts_with("newfangled value") && nf.ends_with("continued newfangled value"));
    assert_eq!(
        h.get_raw("UnknownHeaderWithUnusualValue").next(),
        Some(";;,,;;,;")
    );
    let c = h.contact().unwrap();
    assert_eq!(c.display, Some("\"Quoted string \\\"\\\"\""));
    assert_eq!(c.params.value("newparam"), Some("newvalue"));
    assert!(c.params.contains("secondparam"));
    assert_eq!(c.params.value("q"), Some("0.33"));
    let route = h.routes().next().unwrap();
    assert!(route.uri.lr());
    assert_eq!(r.body.len(), 150);
}

#[test]
fn intmeth_unusual_tokens() {
    let r = req("intmeth");
    assert_eq!(
        r.method.as_str(),
        "!interesting-Method0123456789_*+`.%indeed'~"
    );
    assert!(matches!(r.method, Method::Other(_)));
    assert_eq!(
        r.uri.user(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        r.uri.as_ref().password(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(r.uri.host(), "example.com");
    let h = &r.headers;
    assert_eq!(
        h.call_id(),
        Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
    assert_eq!(h.top_via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));
    assert_eq!(
        h.to().unwrap().display_name().unwrap(),
        "BEL:\x07 NUL:\0 DEL:\x7f"
    );
    let from = h.from().unwrap();
    assert_eq!(from.display, Some("token1~` token2'+_ token3*%!.-"));
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        from.params
            .value("fromParam''~+*_!.-%")
            .map(sip::unquote)
            .unwrap(),
        "работающий"
    );
    assert_eq!(
        h.get_raw("extensionHeader-!.%*+_`'~").next(),
        Some("\u{FEFF}\u{5927}\u{505C}\u{96FB}")
    );
    assert_eq!(h.max_forwards(), Some(255));
}

#[test]
fn escapes() {
    let r = req("esc01");
    assert_eq!(
        r.uri.as_ref().user_decoded().unwrap(),
        "sips:user@example.com"
    );
    assert_eq!(r.uri.host(), "example.net");
    let to = r.headers.to().unwrap();
    assert_eq!(to.uri.user_decoded().unwrap(), "user");
    assert_eq!(
        r.headers.from().unwrap().uri.user_decoded().unwrap(),
        "I have spaces"
    );
    let c = r.headers.contact().unwrap();
    let params: Vec<_> = c.uri.params().iter().collect();
    assert_eq!(
        params,
        vec![("%6C%72", None), ("n%61me", Some("v%61lue%25%34%31"))]
    );
    assert_eq!(&*sip::percent_decode("v%61lue%25%34%31"), b"value%41");
    assert_eq!(r.headers.content_type().unwrap().subtype, "sdp");

    let r = req("escnull");
    assert_eq!(
        r.headers.to().unwrap().uri.user_decoded().unwrap(),
        "null-\0-null"
    );
    let contacts: Vec<_> = r.headers.contacts().collect();
    assert_eq!(contacts.len(), 2);
    assert_eq!(
        contacts[1].addr().unwrap().uri.user_decoded().unwrap(),
        "\0\0"
    );

    let r = req("esc02");
    assert_eq!(r.method.as_str(), "RE%47IST%45R");
    assert_ne!(r.method, Method::Register);
    assert_eq!(r.headers.contacts().count(), 2, "C%6Fntact is not Contact");
    assert_eq!(
        r.headers.get_raw("C%6Fntact").next(),
        Some("<sip:alias2@host2.example.com>")
    );
    assert_eq!(r.headers.to().unwrap().display, Some("\"%Z%45\""));
    assert_eq!(
        r.headers.top_via().unwrap().branch(),
        Some("z9hG4bK209%fzsnel234")
    );
}

#[test]
fn display_names_long_values_semicolons_transports() {
    let r = req("lwsdisp");
    assert_eq!(r.headers.from().unwrap().display, Some("caller"));

    let r = req("longreq");
    assert_eq!(r.headers.vias().count(), 34);
    let last = r.headers.vias().last().unwrap();
    assert_eq!(last.received(), Some("192.0.2.5"));
    assert!(last.branch().unwrap().len() > 200);
    let to = r.headers.to().unwrap();
    assert_eq!(to.uri.port(), Some(6000));
    assert!(
        to.uri
            .params()
            .iter()
            .any(|(n, v)| n.starts_with("longparamname") && v == Some("shortvalue"))
    );
    assert!(
        r.headers
            .from()
            .unwrap()
            .tag()
            .unwrap()
            .starts_with("12982982")
    );
    assert!(
        !r.body.is_empty(),
        "no Content-Length: the rest of the datagram is the body"
    );

    let r = req("semiuri");
    assert_eq!(r.uri.user(), Some("user;par=u%40example.net"));
    assert_eq!(r.uri.host(), "example.com");
    assert!(r.uri.params().is_empty());
    assert_eq!(r.headers.list(HeaderName::Accept).count(), 6);

    let r = req("transports");
    let t: Vec<_> = r.headers.vias().map(|v| v.transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    assert_eq!(
        r.headers.call_id(),
        Some("transports.kijh4akdnaqjkwendsasfdj")
    );
}

#[test]
fn dblreq_only_first_request() {
    let r = req("dblreq");
    assert_eq!(r.method, Method::Register);
    assert!(
        r.body.is_empty(),
        "bytes past Content-Length are discarded (RFC 3261 §18.3)"
    );
}

#[test]
fn mpart_and_odd_reasons() {
    let r = req("mpart01");
    assert_eq!(r.body.len(), 553);
    let ct = r.headers.content_type().unwrap();
    assert!(ct.is("multipart", "mixed"));
    assert_eq!(ct.params.value("boundary"), Some("7a9cbec02ceef655"));

    let Message::Response(r) = parse("unreason") else {
        panic!()
    };
    assert_eq!(r.status, 200);
    assert!(r.reason.starts_with("= 2**3 * 5**2 "));
    assert_eq!(r.body.len(), 154);
    let Message::Response(r) = parse("noreason") else {
        panic!()
    };
    assert_eq!((r.status, r.reason.as_str()), (100, ""));
}

/// §3.1.2: every invalid message is rejected; requests are answered (400, or 505 for the
/// unknown version as §3.1.2.16 asks), responses are dropped.
#[test]
fn all_invalid_messages_rejected() {
    use ParseErrorKind as K;
    type Case = (&'static str, Option<u16>, fn(&K) -> bool);
    let cases: [Case; 19] = [
        ("badinv01", Some(400), |k| {
            matches!(k, K::InvalidHeader(HeaderName::Via | HeaderName::Contact))
        }),
        ("clerr", Some(400), |k| *k == K::BodyTooShort),
        ("ncl", Some(400), |k| {
            *k == K::InvalidHeader(HeaderName::ContentLength)
        }),
        ("scalar02", Some(400), |k| matches!(k, K::InvalidHeader(_))),
        ("scalarlg", None, |k| matches!(k, K::InvalidHeader(_))),
        ("quotbal", Some(400), |k| {
            *k == K::InvalidHeader(HeaderName::To)
        }),
        ("ltgtruri", Some(400), |k| matches!(k, K::RequestUri(_))),
        ("lwsruri", Some(400), |k| {
            matches!(k, K::StartLine | K::RequestUri(_))
        }),
        ("lwsstart", Some(400), |k| matches!(k, K::StartLine)),
        ("trws", Some(400), |k| matches!(k, K::StartLine)),
        ("escruri", Some(400), |k| *k == K::RequestUriHeaders),
        ("baddate", Some(400), |k| {
            *k == K::InvalidHeader(HeaderName::Date)
        }),
        ("regbadct", Some(400), |k| {
            *k == K::InvalidHeader(HeaderName::Contact)
        }),
        ("badaspec", Some(400), |k| {
            *k == K::InvalidHeader(HeaderName::To)
        }),
        ("baddn", Some(400), |k| {
            matches!(k, K::InvalidHeader(HeaderName::From) | K::MissingEmptyLine)
        }),
        ("badvers", Some(505), |k| *k == K::UnsupportedVersion),
        ("mismatch01", Some(400), |k| *k == K::CSeqMismatch),
        ("mismatch02", Some(400), |k| *k == K::CSeqMismatch),
        ("bigcode", None, |k| *k == K::StatusCode),
    ];
    for (name, status, kind_ok) in cases {
        let data = load(name);
        let err = parse_datagram(&data, &ParseLimits::default())
            .err()
            .unwrap_or_else(|| panic!("{name} must be rejected"));
        assert!(kind_ok(&err.kind), "{name}: unexpected {:?}", err.kind);
        match (status, err.status_and_reason()) {
            (Some(s), Disposition::Reply { status, reason }) => {
                assert_eq!(status, s, "{name}");
                assert!(!reason.is_empty());
            }
            (None, Disposition::Drop) => {}
            (want, got) => panic!("{name}: wanted {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn bad_request_answer_built_from_raw_bytes() {
    let data = load("mismatch01");
    let err = parse_datagram(&data, &ParseLimits::default()).unwrap_err();
    let answer = bad_request_response(&data, &err, "vc.example.net").expect("answerable");
    let Message::Response(resp) = parse_datagram(&answer, &ParseLimits::default()).unwrap() else {
        panic!("a response")
    };
    assert_eq!(resp.status, 400);
    assert_eq!(resp.headers.call_id(), Some("mismatch01.dj0234sxdfl3"));
    assert_eq!(resp.headers.cseq().unwrap().seq, 8);
    assert!(resp.headers.to().unwrap().tag().is_some());
    assert_eq!(
        resp.headers.top_via().unwrap().branch(),
        Some("z9hG4bKkdjuw")
    );
    let warning = resp.headers.get(HeaderName::Warning).unwrap();
    assert!(
        warning.starts_with("399 vc.example.net \"CSeq method"),
        "{warning}"
    );

    // badvers gets 505 the same way.
    let data = load("badvers");
    let err = parse_datagram(&data, &ParseLimits::default()).unwrap_err();
    let answer = bad_request_response(&data, &err, "vc").unwrap();
    assert!(answer.starts_with(b"SIP/2.0 505 "));

    // insuf (§3.2.1) lacks From/To/Call-ID: rejected, but there is nothing to answer with.
    let data = load("insuf");
    let err = parse_datagram(&data, &ParseLimits::default()).unwrap_err();
    assert!(matches!(err.kind, ParseErrorKind::MissingHeader(_)));
    assert_eq!(bad_request_response(&data, &err, "vc"), None);

    // A response is never answered.
    let data = load("bigcode");
    let err = parse_datagram(&data, &ParseLimits::default()).unwrap_err();
    assert_eq!(bad_request_response(&data, &err, "vc"), None);
}

/// §3.2 cases that are the parser's business.
#[test]
fn transaction_layer_cases() {
    // §3.2.8, §3.2.9: duplicate single-valued headers.
    for name in ["multi01", "mcl01"] {
        let err = parse_datagram(&load(name), &ParseLimits::default()).unwrap_err();
        assert!(
            matches!(err.kind, ParseErrorKind::DuplicateHeader(_)),
            "{name}: {err:?}"
        );
    }
    // §3.2.2, §3.2.3: unknown schemes parse; the application answers 416.
    assert_eq!(req("unkscm").uri.scheme(), Scheme::Other);
    assert_eq!(req("novelsc").uri.scheme(), Scheme::Other);
    // §3.2.4: unknown schemes in To/From/Contact are fine.
    let r = req("unksm2");
    assert_eq!(r.headers.to().unwrap().uri.as_str(), "isbn:2983792873");
    // §3.2.12-14: contact forms.
    let r = req("cparam01");
    let c = r.headers.contact().unwrap();
    assert!(c.params.contains("unknownparam") && c.uri.params().is_empty());
    let r = req("cparam02");
    let c = r.headers.contact().unwrap();
    assert!(c.uri.params().contains("unknownparam") && c.params.is_empty());
    let r = req("regescrt");
    assert_eq!(
        r.headers.contact().unwrap().uri.headers(),
        Some("Route=%3Csip:sip.example.com%3E")
    );
    // §3.2.11 zero Max-Forwards is readable (the transaction user answers 483).
    assert_eq!(req("zeromf").headers.max_forwards(), Some(0));
    // §3.2.7, §3.2.10, §3.3 cases parse.
    for name in [
        "regaut01",
        "bcast",
        "sdp01",
        "inv2543",
        "invut",
        "bext01",
        "badbranch",
        "cparam01",
    ] {
        parse(name);
    }
}

/// Every invalid request of §3.1.2 whose Via/From/To/Call-ID/CSeq lines are readable gets a
/// well-formed answer that echoes them; responses never get one.
#[test]
fn every_answerable_invalid_request_gets_a_parseable_answer() {
    let mut answered = 0;
    for name in [
        "badinv01",
        "clerr",
        "ncl",
        "scalar02",
        "quotbal",
        "ltgtruri",
        "lwsruri",
        "lwsstart",
        "trws",
        "escruri",
        "baddate",
        "regbadct",
        "badaspec",
        "baddn",
        "badvers",
        "mismatch01",
        "mismatch02",
        "scalarlg",
        "bigcode",
    ] {
        let data = load(name);
        let err = parse_datagram(&data, &ParseLimits::default()).unwrap_err();
        let Some(answer) = bad_request_response(&data, &err, "vc") else {
            continue;
        };
        answered += 1;
        if name == "badvers" {
            // The 505 echoes the SIP/7.0 Via for its sender; we would not parse it ourselves.
            assert!(answer.starts_with(b"SIP/2.0 505 "));
            continue;
        }
        let Message::Response(r) = parse_datagram(&answer, &ParseLimits::default())
            .unwrap_or_else(|e| panic!("{name}: answer does not parse: {e:?}"))
        else {
            panic!("{name}: not a response")
        };
        assert!(r.status == 400 || r.status == 505, "{name}");
        let original = String::from_utf8_lossy(&data);
        assert!(
            original.contains(r.headers.call_id().unwrap()),
            "{name}: Call-ID echoed"
        );
    }
    // 17 requests; not answerable: the 2 responses, and the 5 requests whose Via, From, To
    // or CSeq is the malformed part (badinv01, quotbal, badaspec, baddn, scalar02).
    assert_eq!(answered, 12);
}
