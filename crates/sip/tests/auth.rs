//! Digest authentication (RFC 7616, RFC 8760): known answers and server behaviour.

use std::time::{Duration, Instant};

use sip::auth::{
    Algorithm, AuthError, AuthParams, DigestConfig, DigestServer, ha1, redact_credentials,
    respond_to_challenge,
};

fn response_of(creds: &str) -> String {
    AuthParams::parse(creds)
        .unwrap()
        .get("response")
        .unwrap()
        .into_owned()
}

#[test]
fn rfc2617_md5_known_answer() {
    let ch = r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
    let c = respond_to_challenge(
        ch,
        "GET",
        "/dir/index.html",
        "Mufasa",
        "Circle Of Life",
        "0a4f113b",
        1,
    )
    .unwrap();
    assert_eq!(response_of(&c), "6629fae49393a05397450978507c4ef1");
    assert!(c.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
}

#[test]
fn rfc7616_md5_and_sha256_known_answers() {
    for (alg, want) in [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        (
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let ch = format!(
            r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
        );
        let c = respond_to_challenge(
            &ch,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            1,
        )
        .unwrap();
        assert_eq!(response_of(&c), want, "{alg}");
    }
}

fn server() -> DigestServer {
    DigestServer::new(DigestConfig {
        realm: "vc.example.com".into(),
        algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        nonce_lifetime: Duration::from_secs(300),
        max_nonces: 1000,
        secret: [7; 32],
    })
}

fn store(user: &str, alg: Algorithm) -> Option<String> {
    (user == "pbx1").then(|| ha1(alg, "pbx1", "vc.example.com", "s3cret"))
}

const URI: &str = "sip:+17035550122@vc.example.com";

#[test]
fn server_verifies_against_stored_ha1_and_refuses_replays() {
    let now = Instant::now();
    let mut s = server();
    let chs = s.challenges(now, false);
    assert_eq!(chs.len(), 2);
    assert!(chs[0].contains("algorithm=SHA-256") && chs[1].contains("algorithm=MD5"));
    for (i, ch) in chs.iter().enumerate() {
        let c1 = respond_to_challenge(ch, "INVITE", URI, "pbx1", "s3cret", "abc", 1 + 2 * i as u32)
            .unwrap();
        let v = s.verify(now, "INVITE", URI, &c1, store).unwrap();
        assert_eq!(v.username, "pbx1");
        // Same nonce count again: replay.
        assert_eq!(
            s.verify(now, "INVITE", URI, &c1, store),
            Err(AuthError::Replay)
        );
    }
    // A higher count on the same nonce is fine.
    let c = respond_to_challenge(&chs[0], "BYE", URI, "pbx1", "s3cret", "abc", 9).unwrap();
    assert!(s.verify(now, "BYE", URI, &c, store).is_ok());
}

#[test]
fn server_refusals() {
    let now = Instant::now();
    let mut s = server();
    let ch = s.challenges(now, false).remove(0);
    let wrong = respond_to_challenge(&ch, "INVITE", URI, "pbx1", "guess", "abc", 1).unwrap();
    assert_eq!(
        s.verify(now, "INVITE", URI, &wrong, store),
        Err(AuthError::BadResponse)
    );
    let nobody = respond_to_challenge(&ch, "INVITE", URI, "nobody", "x", "abc", 1).unwrap();
    assert_eq!(
        s.verify(now, "INVITE", URI, &nobody, store),
        Err(AuthError::UnknownUser)
    );
    let good = respond_to_challenge(&ch, "INVITE", URI, "pbx1", "s3cret", "abc", 2).unwrap();
    assert_eq!(
        s.verify(now, "INVITE", "sip:other@vc.example.com", &good, store),
        Err(AuthError::UriMismatch)
    );
    assert_eq!(
        s.verify(now, "BYE", URI, &good, store),
        Err(AuthError::BadResponse),
        "method is covered"
    );
    // Expired nonce: stale, answered by a new challenge with stale=true.
    let late = now + Duration::from_secs(301);
    let err = s.verify(late, "INVITE", URI, &good, store).unwrap_err();
    assert_eq!(err, AuthError::StaleNonce);
    assert_eq!(err.answer(false), (401, true));
    assert!(s.challenges(late, true)[0].contains("stale=true"));
    // Unknown nonce (e.g. issued before a restart): stale as well.
    let mut other = server();
    assert_eq!(
        other.verify(now, "INVITE", URI, &good, store),
        Err(AuthError::StaleNonce)
    );
    // Other realm, scheme, qop, garbage.
    let foreign = good.replace("vc.example.com\"", "evil.example\"");
    assert_eq!(
        s.verify(now, "INVITE", URI, &foreign, store),
        Err(AuthError::RealmMismatch)
    );
    assert_eq!(
        s.verify(
            now,
            "INVITE",
            URI,
            "NoOneKnowsThisScheme opaque-data=here",
            store
        ),
        Err(AuthError::UnsupportedScheme)
    );
    let no_qop = good.replace(", qop=auth", "");
    assert_eq!(
        s.verify(now, "INVITE", URI, &no_qop, store),
        Err(AuthError::UnsupportedQop)
    );
    assert_eq!(
        s.verify(now, "INVITE", URI, "Digest username=", store),
        Err(AuthError::Malformed)
    );
    assert_eq!(AuthError::Malformed.answer(true), (400, false));
    assert_eq!(AuthError::BadResponse.answer(true), (407, false));
}

#[test]
fn nonce_table_is_bounded() {
    let now = Instant::now();
    let mut s = DigestServer::new(DigestConfig {
        max_nonces: 2,
        ..DigestConfig {
            realm: "r".into(),
            algorithms: vec![Algorithm::Md5],
            nonce_lifetime: Duration::from_secs(300),
            max_nonces: 2,
            secret: [1; 32],
        }
    });
    let first = s.challenges(now, false).remove(0);
    s.challenges(now, false);
    s.challenges(now, false);
    let c = respond_to_challenge(&first, "INVITE", "sip:a@r", "u", "p", "c", 1).unwrap();
    assert_eq!(
        s.verify(now, "INVITE", "sip:a@r", &c, |_, a| Some(ha1(
            a, "u", "r", "p"
        ))),
        Err(AuthError::StaleNonce),
        "the oldest nonce was forgotten"
    );
}

#[test]
fn debug_output_does_not_leak_credentials() {
    let ch = r#"Digest realm="r", nonce="n0nce", qop="auth""#;
    let c = respond_to_challenge(ch, "INVITE", "sip:a@r", "alice", "pw", "cn0nce", 1).unwrap();
    let red = redact_credentials(&c);
    assert!(red.contains("username=\"alice\""));
    assert!(
        !red.contains("n0nce") && !red.contains(&response_of(&c)),
        "{red}"
    );
    let mut h = sip::Headers::new();
    h.push(sip::HeaderName::Authorization, &c);
    let typed = h
        .credentials(sip::HeaderName::Authorization, Some("r"))
        .unwrap();
    assert_eq!(typed.get("username").as_deref(), Some("alice"));
    assert!(
        h.credentials(sip::HeaderName::Authorization, Some("other"))
            .is_none()
    );
    let dbg = format!("{h:?}");
    assert!(
        !dbg.contains(&response_of(&c)) && dbg.contains("<redacted>"),
        "{dbg}"
    );
    let dbg = format!("{:?}", AuthParams::parse(&c).unwrap());
    assert!(!dbg.contains(&response_of(&c)));
    assert!(!format!("{:?}", server()).contains("7, 7"));
}

#[test]
fn join_tokens_stay_out_of_debug_output() {
    let m = sip::Message::parse(
        b"INVITE sip:+17035550122@vc.example;transport=tls;X-chime-join-token=tok123 SIP/2.0\r\n\
Via: SIP/2.0/TLS 198.51.100.10:5061;branch=z9hG4bK1\r\n\
From: <sip:+12065550100@198.51.100.10>;tag=1\r\n\
To: <sip:+17035550122@vc.example;X-chime-join-token=tok123>\r\n\
Call-ID: j1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let sip::Message::Request(r) = &m else {
        panic!()
    };
    assert_eq!(
        r.uri.param("x-chime-join-token"),
        Some(Some("tok123")),
        "still readable"
    );
    let dbg = format!("{m:?}");
    assert!(!dbg.contains("tok123"), "{dbg}");
}
