//! SigV4 verification (`api::sigv4::verify`): the Authorization header parser, the
//! canonical request (path and query encoding, signed headers with repeated and
//! non-ASCII values, payload hash) and the signature comparison, over arbitrary methods,
//! paths, queries, headers and bodies. The Authorization and X-Amz-Date headers are either
//! raw bytes or assembled from fuzzed parts around the right access key and a date near
//! the server's clock, so the fuzzer gets past the early refusals.
#![no_main]

use api::sigv4::{Credentials, verify};
use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

/// The clock of AWS's documented example request (2015-08-30T12:36:00Z).
const NOW: i64 = 1_440_938_160;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    body: &'a [u8],
    headers: Vec<(&'a [u8], &'a [u8])>,
    authorization: Authorization<'a>,
    date: Option<&'a [u8]>,
    /// The server's clock, relative to the request's date.
    skew_secs: i16,
}

#[derive(Arbitrary, Debug)]
enum Authorization<'a> {
    Missing,
    Raw(&'a [u8]),
    Parts {
        right_key: bool,
        access_key: &'a str,
        date: Option<&'a str>,
        region: &'a str,
        service: &'a str,
        signed_headers: Vec<&'a str>,
        signature: &'a str,
    },
}

fn insert(h: &mut HeaderMap, name: &[u8], value: &[u8]) {
    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
        h.append(n, v);
    }
}

fuzz_target!(|input: Input<'_>| {
    let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    let mut headers = HeaderMap::new();
    for (name, value) in input.headers.iter().take(32) {
        insert(&mut headers, name, value);
    }
    insert(
        &mut headers,
        b"x-amz-date",
        input.date.unwrap_or(b"20150830T123600Z"),
    );
    match &input.authorization {
        Authorization::Missing => {}
        Authorization::Raw(v) => insert(&mut headers, b"authorization", v),
        Authorization::Parts {
            right_key,
            access_key,
            date,
            region,
            service,
            signed_headers,
            signature,
        } => {
            let key = if *right_key { "AKIDEXAMPLE" } else { access_key };
            let mut signed = vec!["host", "x-amz-date"];
            signed.extend(signed_headers.iter().take(16).copied());
            let value = format!(
                "AWS4-HMAC-SHA256 Credential={key}/{}/{region}/{service}/aws4_request, \
                 SignedHeaders={}, Signature={signature}",
                date.unwrap_or("20150830"),
                signed.join(";"),
            );
            insert(&mut headers, b"authorization", value.as_bytes());
        }
    }
    let now = OffsetDateTime::from_unix_timestamp(NOW + i64::from(input.skew_secs))
        .expect("a time near 2015");
    let _ = verify(
        &creds,
        input.method,
        input.path,
        input.query,
        &headers,
        input.body,
        now,
    )
    .map_err(|e| e.to_string());
});
