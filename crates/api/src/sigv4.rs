//! AWS Signature Version 4 verification, header form
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>).
//!
//! The server rebuilds the canonical request from what arrived, derives the signing key from
//! the secret it holds for the access key, and compares signatures in constant time. The
//! credential scope's region and service are taken from the request, so any region name the
//! client is configured with works. Requests more than 15 minutes from the server's clock are
//! refused, as AWS does.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::AuthError;

/// The API's access keys. The secret never appears in Debug output or logs.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
        }
    }
    pub fn secret(&self) -> &str {
        &self.secret_access_key
    }
}

/// Maximum difference between the request's `X-Amz-Date` and the server clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

struct AuthHeader<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(v: &str) -> Result<AuthHeader<'_>, AuthError> {
    let rest = v
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or(AuthError::Malformed("only AWS4-HMAC-SHA256 is supported"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or(AuthError::Malformed("Credential is missing"))?;
    let signed = signed.ok_or(AuthError::Malformed("SignedHeaders is missing"))?;
    let signature = signature.ok_or(AuthError::Malformed("Signature is missing"))?;
    let mut scope = credential.split('/');
    let (Some(access_key), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(AuthError::Malformed(
            "Credential must be KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    Ok(AuthHeader {
        access_key,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// RFC 3986 unreserved characters stay; everything else is %XX (uppercase), as SigV4 wants.
/// With `keep_slash`, `/` stays too (a path; S3 object keys are encoded this way once).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (uri_encode(&dec(k), false), uri_encode(&dec(v), false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The credential scope of a signature: `DATE/REGION/SERVICE/aws4_request`.
pub struct Scope<'a> {
    /// `YYYYMMDD`, the day of `X-Amz-Date`.
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl std::fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// The hex signature of a canonical request: the string to sign (algorithm, `amz_date`,
/// scope, the canonical request's SHA-256) under the key derived from `secret` and the
/// scope. Shared by the verifier here and the server's S3 client, which signs.
pub fn signature(
    secret: &str,
    scope: &Scope<'_>,
    amz_date: &str,
    canonical_request: &str,
) -> String {
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), scope.date.as_bytes());
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

/// A request whose Authorization header, access key and date passed
/// [`verify_headers`]: what is left to check needs the body.
pub struct SignedHeaders<'a> {
    auth: AuthHeader<'a>,
    amz_date: &'a str,
}

/// The checks that need no body, made before a byte of it is read: the request is signed
/// at all, the Authorization header has the SigV4 shape, it names our access key, its date
/// is X-Amz-Date's and within [`MAX_SKEW_SECS`] of `now`, and `host` is signed. An unsigned
/// or wrongly-keyed request is refused here, so its body is never buffered.
pub fn verify_headers<'h>(
    creds: &Credentials,
    headers: &'h HeaderMap,
    now: OffsetDateTime,
) -> Result<SignedHeaders<'h>, AuthError> {
    let auth = headers.get("authorization").ok_or(AuthError::Missing)?;
    let auth = auth
        .to_str()
        .map_err(|_| AuthError::Malformed("not ASCII"))?;
    let a = parse_authorization(auth)?;
    if !bool::from(
        a.access_key
            .as_bytes()
            .ct_eq(creds.access_key_id.as_bytes()),
    ) {
        return Err(AuthError::UnknownKey);
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Malformed("X-Amz-Date header is missing"))?;
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    let when = time::PrimitiveDateTime::parse(amz_date, &fmt)
        .map_err(|_| AuthError::Malformed("X-Amz-Date must be YYYYMMDDTHHMMSSZ"))?
        .assume_utc();
    if (now - when).whole_seconds().abs() > MAX_SKEW_SECS {
        return Err(AuthError::Expired(amz_date.to_string()));
    }
    if !amz_date.starts_with(a.date) || a.date.len() != 8 {
        return Err(AuthError::Malformed(
            "the Credential date does not match X-Amz-Date",
        ));
    }
    if !a.signed_headers.contains(&"host") {
        return Err(AuthError::Malformed("SignedHeaders must include host"));
    }
    if let Some(claimed) = headers.get("x-amz-content-sha256") {
        let ok = claimed.to_str().is_ok_and(|c| {
            c == "UNSIGNED-PAYLOAD" || (c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        });
        if !ok {
            return Err(AuthError::Malformed(
                "X-Amz-Content-SHA256 must be the payload's hex SHA-256 or UNSIGNED-PAYLOAD",
            ));
        }
    }
    Ok(SignedHeaders { auth: a, amz_date })
}

impl SignedHeaders<'_> {
    /// The checks that need the body: its hash (against X-Amz-Content-SHA256 when sent) and
    /// the signature over the canonical request. `raw_path` is the path as sent (still
    /// percent-encoded) and `raw_query` the query string as sent; `headers` are the ones
    /// given to [`verify_headers`].
    pub fn verify_body(
        &self,
        creds: &Credentials,
        method: &str,
        raw_path: &str,
        raw_query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), AuthError> {
        let a = &self.auth;
        let mut canonical_headers = String::new();
        for name in &a.signed_headers {
            let values: Vec<String> = headers
                .get_all(*name)
                .iter()
                .map(|v| {
                    let s = String::from_utf8_lossy(v.as_bytes());
                    s.split_whitespace().collect::<Vec<_>>().join(" ")
                })
                .collect();
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            canonical_headers.push_str(&values.join(","));
            canonical_headers.push('\n');
        }
        let payload_hash = hex::encode(Sha256::digest(body));
        if let Some(claimed) = headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            && claimed != "UNSIGNED-PAYLOAD"
            && !claimed.eq_ignore_ascii_case(&payload_hash)
        {
            return Err(AuthError::BadSignature);
        }
        let canonical_request = format!(
            "{method}\n{}\n{}\n{canonical_headers}\n{}\n{payload_hash}",
            uri_encode(if raw_path.is_empty() { "/" } else { raw_path }, true),
            canonical_query(raw_query),
            a.signed_headers.join(";"),
        );
        let scope = Scope {
            date: a.date,
            region: a.region,
            service: a.service,
        };
        let expected = signature(creds.secret(), &scope, self.amz_date, &canonical_request);
        if bool::from(expected.as_bytes().ct_eq(a.signature.as_bytes())) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

/// Verifies a whole request: [`verify_headers`], then [`SignedHeaders::verify_body`].
/// `raw_path` is the path as sent (still percent-encoded) and `raw_query` the query string
/// as sent.
pub fn verify(
    creds: &Credentials,
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), AuthError> {
    verify_headers(creds, headers, now)?
        .verify_body(creds, method, raw_path, raw_query, headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example from AWS's SigV4 documentation (IAM ListUsers, GET with query).
    #[test]
    fn aws_documentation_example() {
        let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let mut h = HeaderMap::new();
        h.insert("host", "iam.amazonaws.com".parse().expect("hv"));
        h.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .expect("hv"),
        );
        h.insert("x-amz-date", "20150830T123600Z".parse().expect("hv"));
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
                .parse()
                .expect("hv"),
        );
        let now = OffsetDateTime::from_unix_timestamp(1_440_938_160).expect("ts");
        verify(
            &creds,
            "GET",
            "/",
            "Action=ListUsers&Version=2010-05-08",
            &h,
            b"",
            now,
        )
        .expect("valid");

        let wrong = Credentials::new("AKIDEXAMPLE", "not-the-secret");
        assert!(matches!(
            verify(
                &wrong,
                "GET",
                "/",
                "Action=ListUsers&Version=2010-05-08",
                &h,
                b"",
                now
            ),
            Err(AuthError::BadSignature)
        ));
        let other_key = Credentials::new("AKIDOTHER", "x");
        assert!(matches!(
            verify(&other_key, "GET", "/", "", &h, b"", now),
            Err(AuthError::UnknownKey)
        ));
        let later = now + time::Duration::minutes(16);
        assert!(matches!(
            verify(
                &creds,
                "GET",
                "/",
                "Action=ListUsers&Version=2010-05-08",
                &h,
                b"",
                later
            ),
            Err(AuthError::Expired(_))
        ));
        assert!(matches!(
            verify(&creds, "GET", "/", "", &HeaderMap::new(), b"", now),
            Err(AuthError::Missing)
        ));
    }

    /// The body-free checks refuse unsigned, wrongly-keyed and stale requests on their
    /// headers alone; the body is checked only after them.
    #[test]
    fn headers_are_checked_before_the_body() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret");
        let now = OffsetDateTime::from_unix_timestamp(1_440_938_160).expect("ts");
        let signed = |key: &str, date: &str| {
            let mut h = HeaderMap::new();
            h.insert("host", "vc.example".parse().expect("hv"));
            h.insert("x-amz-date", date.parse().expect("hv"));
            let auth = format!(
                "AWS4-HMAC-SHA256 Credential={key}/20150830/us-east-1/chime/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=00"
            );
            h.insert("authorization", auth.parse().expect("hv"));
            h
        };
        assert!(matches!(
            verify_headers(&creds, &HeaderMap::new(), now),
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            verify_headers(&creds, &signed("AKIDOTHER", "20150830T123600Z"), now),
            Err(AuthError::UnknownKey)
        ));
        assert!(matches!(
            verify_headers(&creds, &signed("AKIDEXAMPLE", "20150830T100000Z"), now),
            Err(AuthError::Expired(_))
        ));
        let mut h = signed("AKIDEXAMPLE", "20150830T123600Z");
        let checked = verify_headers(&creds, &h, now).expect("headers pass");
        assert!(matches!(
            checked.verify_body(&creds, "POST", "/", "", &h, b"{}"),
            Err(AuthError::BadSignature)
        ));
        h.insert("x-amz-content-sha256", "STREAMING".parse().expect("hv"));
        assert!(matches!(
            verify_headers(&creds, &h, now),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = Credentials::new("AKID", "supersecret");
        assert!(!format!("{c:?}").contains("supersecret"));
    }
}
