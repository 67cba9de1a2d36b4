//! Digest authentication (`sip::auth`): credentials and challenge parsing, redaction,
//! `DigestServer::verify` against a nonce it issued, and the client's answer to a
//! challenge, ours included. In the credentials, `NONCE` stands for the nonce the server issued, so the
//! fuzzer gets past the nonce check and into the response computation.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sip::auth::{Algorithm, AuthParams, DigestConfig, DigestServer, ha1, redact_credentials};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    credentials: &'a str,
    method: &'a str,
    request_uri: &'a str,
    /// Later attempts reuse the server (nonce counts, expiry).
    again: Vec<(u16, &'a str)>,
    challenge: &'a str,
    password: &'a str,
    nc: u32,
}

const ALGORITHMS: [Algorithm; 3] = [Algorithm::Sha512_256, Algorithm::Sha256, Algorithm::Md5];

fn server() -> DigestServer {
    DigestServer::new(DigestConfig {
        realm: "vc.example.com".into(),
        algorithms: ALGORITHMS.to_vec(),
        nonce_lifetime: Duration::from_secs(300),
        max_nonces: 4,
        secret: [7; 32],
    })
}

fn parse_all(s: &str) {
    if let Some(p) = AuthParams::parse(s) {
        let _ = (p.scheme, p.iter().count(), format!("{p:?}"));
        for name in ["username", "realm", "nonce", "uri", "response", "qop", "nc", "opaque"] {
            let _ = p.get(name);
        }
    }
    let _ = redact_credentials(s);
    let _ = Algorithm::from_token(s);
}

fuzz_target!(|input: Input<'_>| {
    parse_all(input.credentials);
    parse_all(input.challenge);

    let t0 = Instant::now();
    let mut srv = server();
    let nonce = srv
        .challenges(t0, false)
        .first()
        .and_then(|c| AuthParams::parse(c)?.get("nonce").map(|n| n.into_owned()))
        .expect("a challenge carries a nonce");
    let lookup = |user: &str, alg: Algorithm| {
        (user == "alice").then(|| ha1(alg, user, "vc.example.com", "secret"))
    };
    let creds = input.credentials.replace("NONCE", &nonce);
    if let Err(e) = srv.verify(t0, input.method, input.request_uri, &creds, lookup) {
        let _ = (e.answer(true), e.answer(false));
    }
    for (secs, c) in input.again.iter().take(8) {
        let now = t0 + Duration::from_secs(u64::from(*secs));
        let c = c.replace("NONCE", &nonce);
        let _ = srv.verify(now, input.method, input.request_uri, &c, lookup);
        if secs % 3 == 0 {
            let _ = srv.challenges(now, secs % 2 == 0);
        }
    }

    // The client side, against any challenge, and its answers to our own challenges
    // (with the fuzzed method, URI and password) back through verify.
    let _ = sip::auth::respond_to_challenge(
        input.challenge,
        input.method,
        input.request_uri,
        "alice",
        input.password,
        "cnonce",
        input.nc,
    );
    let mut srv = server();
    let lookup = |user: &str, alg: Algorithm| {
        (user == "alice").then(|| ha1(alg, user, "vc.example.com", input.password))
    };
    for challenge in srv.challenges(t0, false) {
        let Ok(answer) = sip::auth::respond_to_challenge(
            &challenge,
            input.method,
            input.request_uri,
            "alice",
            input.password,
            "0a4f113b",
            input.nc,
        ) else {
            panic!("our own challenge is answerable: {challenge}");
        };
        let _ = srv.verify(t0, input.method, input.request_uri, &answer, lookup);
    }
});
