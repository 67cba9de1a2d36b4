//! What an S3 request is made of, without I/O: the endpoint and credentials of an
//! S3-compatible server (`--s3-endpoint` and friends), the names a SIP media application
//! may use (bucket and key rules, checked before any request or file access), and SigV4
//! signing of path-style requests
//! (<https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>).

use api::sigv4::{Scope, signature, uri_encode};
pub use domain::carrier::Secret;
use sha2::{Digest, Sha256};

/// The SHA-256 of an empty payload, the `x-amz-content-sha256` of a GET.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Longest object key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// An S3-compatible server: where it is, the region to sign for, and the access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `host:port` to connect to.
    pub connect: String,
    /// The `Host` header (and signed `host`): the endpoint's authority as given.
    pub authority: String,
    /// For an `https://` endpoint, the name its certificate must be valid for.
    pub tls_name: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

impl S3Config {
    /// Checks an endpoint URL, `http://HOST[:PORT]` or `https://HOST[:PORT]` (a trailing `/`
    /// is allowed); https is verified as [`super::tls`] says.
    pub fn new(
        endpoint: &str,
        region: &str,
        access_key_id: &str,
        secret_access_key: Secret,
    ) -> Result<S3Config, String> {
        let bad = |why: &str| format!("--s3-endpoint {endpoint:?}: {why}");
        let (origin, rest) = super::tls::Origin::parse(endpoint).map_err(bad)?;
        if !matches!(rest, "" | "/") {
            return Err(bad(
                "must be http(s)://HOST[:PORT] without a path, query or user",
            ));
        }
        let region_ok = !region.is_empty()
            && region.len() <= 64
            && region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !region_ok {
            return Err(format!("--s3-region {region:?} is not a region name"));
        }
        if access_key_id.is_empty() || access_key_id.contains(['/', ',', ' ']) {
            return Err("--s3-access-key-id is empty or holds / , or a space".into());
        }
        if secret_access_key.expose().is_empty() {
            return Err("--s3-secret-access-key is empty".into());
        }
        Ok(S3Config {
            connect: origin.connect,
            authority: origin.authority,
            tls_name: origin.tls_name,
            region: region.to_string(),
            access_key_id: access_key_id.to_string(),
            secret_access_key,
        })
    }
}

/// Whether `bucket` follows S3's general-purpose bucket naming rules: 3 to 63 characters
/// of lowercase letters, digits, dots and hyphens, starting and ending with a letter or
/// digit, no two adjacent dots, not shaped like an IP address, no reserved prefix or suffix.
pub fn check_bucket(bucket: &str) -> Result<(), &'static str> {
    let b = bucket.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return Err("a bucket name has 3 to 63 characters");
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-'))
    {
        return Err("a bucket name has only lowercase letters, digits, dots and hyphens");
    }
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !edge(b[0]) || !edge(b[b.len() - 1]) {
        return Err("a bucket name starts and ends with a letter or digit");
    }
    if bucket.contains("..") {
        return Err("a bucket name has no two adjacent dots");
    }
    if bucket.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("a bucket name is not an IP address");
    }
    if bucket.starts_with("xn--") || bucket.starts_with("sthree-") {
        return Err("a bucket name does not start with xn-- or sthree-");
    }
    if bucket.ends_with("-s3alias") || bucket.ends_with("--ol-s3") {
        return Err("a bucket name does not end with -s3alias or --ol-s3");
    }
    Ok(())
}

/// Whether `key` is an object key we read or write: 1 to [`MAX_KEY_BYTES`] bytes, no
/// control characters, not starting with `/`, and no `.` or `..` segment, so that it maps
/// to a file below its bucket's folder and nowhere else.
pub fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("the key is empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return Err("the key is longer than 1024 bytes");
    }
    if key.chars().any(char::is_control) {
        return Err("the key holds a control character");
    }
    if key.starts_with('/') {
        return Err("the key starts with /");
    }
    if key.split('/').any(|s| s == "." || s == "..") {
        return Err("the key has a . or .. path segment");
    }
    Ok(())
}

/// The path of a path-style request: `/bucket/key`, the key URI-encoded once with its
/// slashes kept (S3 does not encode the canonical URI twice).
pub fn object_path(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{}", uri_encode(key, true))
}

/// One request to sign: method, path as sent (see [`object_path`]), headers besides
/// `host`, `x-amz-date` and `x-amz-content-sha256` (lowercase names), and the payload hash.
pub struct ToSign<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    pub payload_hash: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
}

/// The hex SHA-256 of a payload.
pub fn payload_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The `Authorization` header of a request with no query string, signing `host`,
/// `x-amz-content-sha256`, `x-amz-date` and the request's other headers.
pub fn authorization(s3: &S3Config, req: &ToSign<'_>) -> String {
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), s3.authority.clone()),
        ("x-amz-content-sha256".into(), req.payload_hash.into()),
        ("x-amz-date".into(), req.amz_date.into()),
    ];
    headers.extend(
        req.headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string())),
    );
    headers.sort();
    let mut canonical_headers = String::new();
    for (n, v) in &headers {
        canonical_headers.push_str(&format!("{n}:{v}\n"));
    }
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let canonical_request = format!(
        "{}\n{}\n\n{canonical_headers}\n{signed}\n{}",
        req.method, req.path, req.payload_hash
    );
    let date = &req.amz_date[..req.amz_date.len().min(8)];
    let scope = Scope {
        date,
        region: &s3.region,
        service: "s3",
    };
    let sig = signature(
        s3.secret_access_key.expose(),
        &scope,
        req.amz_date,
        &canonical_request,
    );
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={signed},Signature={sig}",
        s3.access_key_id
    )
}

/// `YYYYMMDDTHHMMSSZ` of a time, as `x-amz-date` wants.
pub fn amz_date(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> S3Config {
        S3Config::new(
            "http://examplebucket.s3.amazonaws.com",
            "us-east-1",
            "AKIAIOSFODNN7EXAMPLE",
            Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        )
        .expect("valid endpoint")
    }

    /// AWS's "GET Object" example of header-based SigV4 for S3 (virtual-hosted, so the
    /// path is the key alone).
    #[test]
    fn aws_get_object_example() {
        let auth = authorization(
            &example(),
            &ToSign {
                method: "GET",
                path: "/test.txt",
                headers: &[("Range", "bytes=0-9")],
                payload_hash: EMPTY_SHA256,
                amz_date: "20130524T000000Z",
            },
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// AWS's "PUT Object" example: a `$` in the key is encoded, the body's hash is signed.
    #[test]
    fn aws_put_object_example() {
        let body = b"Welcome to Amazon S3.";
        let hash = payload_sha256(body);
        assert_eq!(
            hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let path = format!("/{}", uri_encode("test$file.text", true));
        let auth = authorization(
            &example(),
            &ToSign {
                method: "PUT",
                path: &path,
                headers: &[
                    ("date", "Fri, 24 May 2013 00:00:00 GMT"),
                    ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                ],
                payload_hash: &hash,
                amz_date: "20130524T000000Z",
            },
        );
        assert!(
            auth.ends_with(
                "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,\
                 Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            ),
            "{auth}"
        );
    }

    #[test]
    fn endpoints() {
        let s = |e: &str| S3Config::new(e, "us-east-1", "AK", Secret::new("s"));
        let c = s("http://127.0.0.1:9000/").expect("valid");
        assert_eq!(
            (c.connect.as_str(), c.authority.as_str()),
            ("127.0.0.1:9000", "127.0.0.1:9000")
        );
        assert_eq!(s("http://minio").expect("valid").connect, "minio:80");
        assert_eq!(s("http://[::1]:9000").expect("valid").connect, "[::1]:9000");
        let https = s("https://s3.amazonaws.com").expect("valid");
        assert_eq!(https.connect, "s3.amazonaws.com:443");
        assert_eq!(https.tls_name.as_deref(), Some("s3.amazonaws.com"));
        assert_eq!(s("http://minio/").expect("valid").tls_name, None);
        assert!(s("https://h:9000/bucket").is_err());
        assert!(s("http://h:9000/bucket").is_err());
        assert!(s("http://u@h").is_err());
        assert!(s("http://h:0").is_err());
        assert!(s("ftp://h").is_err());
        assert!(S3Config::new("http://h", "us east", "AK", Secret::new("s")).is_err());
        assert!(S3Config::new("http://h", "us-east-1", "AK", Secret::new("")).is_err());
        let debug = format!(
            "{:?}",
            S3Config::new("http://h", "r", "AK", Secret::new("hunter2"))
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-prompts.example", "a1-b2", &"a".repeat(63)] {
            assert_eq!(check_bucket(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "-abc",
            "abc.",
            "a..b",
            "192.168.5.4",
            "xn--abc",
            "abc-s3alias",
            "a_b",
            "a/b",
            "../x",
        ] {
            assert!(check_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        for ok in [
            "prompt.wav",
            "ivr/en/welcome.wav",
            "a..b",
            "x/.hidden",
            "sp ace+é",
        ] {
            assert_eq!(check_key(ok), Ok(()), "{ok}");
        }
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a/./b",
            "a/..",
            "a\nb",
            &long,
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            object_path("b1b", "dir/a b+c$.wav"),
            "/b1b/dir/a%20b%2Bc%24.wav"
        );
    }

    #[test]
    fn date_format() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_369_353_600).expect("ts");
        assert_eq!(amz_date(t), "20130524T000000Z");
    }
}
