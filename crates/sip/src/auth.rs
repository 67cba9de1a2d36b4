//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760).

use crate::text::{CommaList, is_token, trim_lws, unquote};
use std::borrow::Cow;

/// The `Digest` credentials or challenge parameters: `scheme` followed by comma-separated
/// `name=value` pairs (RFC 7616 §3.3, §3.4), read without copying.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AuthParams<'a> {
    /// The auth scheme (`Digest`).
    pub scheme: &'a str,
    raw: &'a str,
}

impl<'a> AuthParams<'a> {
    /// Splits `scheme params` (RFC 3261 §25.1 `credentials` / `challenge`).
    pub fn parse(s: &'a str) -> Option<AuthParams<'a>> {
        let s = trim_lws(s);
        let (scheme, raw) = match s.find([' ', '\t']) {
            Some(i) => (&s[..i], trim_lws(&s[i..])),
            None => (s, ""),
        };
        is_token(scheme).then_some(AuthParams { scheme, raw })
    }

    /// Iterates `(name, raw value)` pairs; quoted values keep their quotes.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        CommaList::new(self.raw).filter_map(|item| {
            let (n, v) = item.split_once('=')?;
            Some((trim_lws(n), trim_lws(v)))
        })
    }

    /// A parameter by case-insensitive name, unquoted.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| unquote(v))
    }
}

/// Debug shows the scheme, username, realm and algorithm, never response/cnonce/nonce.
impl std::fmt::Debug for AuthParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_credentials(&format!(
            "{} {}",
            self.scheme, self.raw
        )))
    }
}

/// Renders an Authorization value with everything but scheme, `username`, `realm`, `uri`,
/// `algorithm` and `qop` replaced by `<redacted>` (so `response`, `cnonce`, `nonce`, `nc` and
/// `opaque` are hidden), and join tokens removed from what stays (`uri` repeats the
/// Request-URI, token parameter and all): safe for logs.
pub fn redact_credentials(value: &str) -> String {
    let Some(p) = AuthParams::parse(value) else {
        return "<redacted>".to_owned();
    };
    let mut out = String::from(p.scheme);
    let mut first = true;
    for (n, v) in p.iter() {
        out.push_str(if first { " " } else { ", " });
        first = false;
        out.push_str(n);
        out.push('=');
        let shown = ["username", "realm", "uri", "algorithm", "qop"]
            .iter()
            .any(|k| n.eq_ignore_ascii_case(k));
        if shown {
            out.push_str(&crate::log::redact_join_tokens(v));
        } else {
            out.push_str("<redacted>");
        }
    }
    out
}

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};
use subtle::ConstantTimeEq;

/// Digest hash algorithms (RFC 7616 §3.2, RFC 8760 §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5 (RFC 3261 §22.4; kept for older PBXs).
    Md5,
    /// SHA-256 (RFC 8760).
    Sha256,
    /// SHA-512/256 (RFC 8760).
    Sha512_256,
}

impl Algorithm {
    /// The `algorithm=` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    /// Parses an `algorithm=` token (case-insensitive).
    pub fn from_token(s: &str) -> Option<Algorithm> {
        [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// Lower-case hex digest of `parts` joined by `:`.
    pub fn hash(self, parts: &[&str]) -> String {
        fn run<D: Digest>(parts: &[&str]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            to_hex(&d.finalize())
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
            Algorithm::Sha512_256 => run::<Sha512_256>(parts),
        }
    }
}

fn to_hex(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(HEX[usize::from(x >> 4)] as char);
        s.push(HEX[usize::from(x & 15)] as char);
    }
    s
}

/// `HA1 = H(username ":" realm ":" password)` (RFC 7616 §3.4.2). Store this, never the
/// password; one per algorithm you offer.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hash(&[username, realm, password])
}

/// Why credentials were refused. Mapped to an answer once, by [`AuthError::answer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No Authorization / Proxy-Authorization header for our realm.
    #[error("no credentials")]
    MissingCredentials,
    /// Credentials do not follow the grammar or lack a required parameter.
    #[error("malformed credentials")]
    Malformed,
    /// A scheme other than Digest.
    #[error("unsupported authentication scheme")]
    UnsupportedScheme,
    /// An algorithm we do not offer.
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// qop other than `auth` (or none, RFC 2069 style).
    #[error("unsupported qop")]
    UnsupportedQop,
    /// The realm is not ours.
    #[error("wrong realm")]
    RealmMismatch,
    /// The nonce expired or is unknown (e.g. after a restart): challenge again with
    /// `stale=true` (RFC 7616 §3.3).
    #[error("stale nonce")]
    StaleNonce,
    /// The nonce count did not increase: a replay (RFC 7616 §3.4).
    #[error("replayed nonce count")]
    Replay,
    /// The digest-uri differs from the Request-URI (RFC 7616 §3.4.6).
    #[error("digest uri does not match the request")]
    UriMismatch,
    /// No such user (reported like a wrong password to the peer).
    #[error("unknown user")]
    UnknownUser,
    /// Wrong response (wrong password).
    #[error("wrong credentials")]
    BadResponse,
}

impl AuthError {
    /// The answer: 400 for malformed credentials, otherwise a new challenge (401 for
    /// registrars/UAS, 407 for proxies, RFC 3261 §22.2, §22.3). Returns `(status, stale)`.
    pub fn answer(self, proxy: bool) -> (u16, bool) {
        match self {
            AuthError::Malformed => (400, false),
            AuthError::StaleNonce => (if proxy { 407 } else { 401 }, true),
            _ => (if proxy { 407 } else { 401 }, false),
        }
    }
}

/// Limits and secrets of the nonce store.
#[derive(Clone)]
pub struct DigestConfig {
    /// Our realm.
    pub realm: String,
    /// Algorithms offered, strongest first (RFC 8760 §2.4: one challenge each).
    pub algorithms: Vec<Algorithm>,
    /// How long a nonce stays valid.
    pub nonce_lifetime: Duration,
    /// Most outstanding nonces (oldest are forgotten first).
    pub max_nonces: usize,
    /// Secret mixed into nonces; use random bytes.
    pub secret: [u8; 32],
}

impl fmt::Debug for DigestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestConfig")
            .field("realm", &self.realm)
            .field("algorithms", &self.algorithms)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("max_nonces", &self.max_nonces)
            .field("secret", &"<redacted>")
            .finish()
    }
}

struct NonceState {
    issued: Instant,
    last_nc: u32,
}

/// Server-side digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), sans-IO: issues
/// challenges with fresh nonces, verifies credentials against a stored HA1 in constant
/// time, expires nonces and refuses nonce-count replays.
pub struct DigestServer {
    cfg: DigestConfig,
    nonces: HashMap<String, NonceState>,
    order: VecDeque<(Instant, String)>,
    counter: u64,
}

impl fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestServer")
            .field("cfg", &self.cfg)
            .field("outstanding_nonces", &self.nonces.len())
            .finish()
    }
}

/// A successful verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The authenticated user name.
    pub username: String,
    /// The algorithm used.
    pub algorithm: Algorithm,
}

impl DigestServer {
    /// A server with no outstanding nonces.
    pub fn new(cfg: DigestConfig) -> Self {
        DigestServer {
            cfg,
            nonces: HashMap::new(),
            order: VecDeque::new(),
            counter: 0,
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.cfg.realm
    }

    fn expire(&mut self, now: Instant) {
        while let Some((t, n)) = self.order.front() {
            let old = now.saturating_duration_since(*t) >= self.cfg.nonce_lifetime;
            if !old && self.order.len() < self.cfg.max_nonces.max(1) {
                break;
            }
            self.nonces.remove(n);
            self.order.pop_front();
        }
    }

    fn new_nonce(&mut self, now: Instant) -> String {
        self.expire(now);
        self.counter += 1;
        let mut d = Sha256::new();
        d.update(self.cfg.secret);
        d.update(self.counter.to_be_bytes());
        let n = to_hex(&d.finalize()[..20]);
        self.nonces.insert(
            n.clone(),
            NonceState {
                issued: now,
                last_nc: 0,
            },
        );
        self.order.push_back((now, n.clone()));
        n
    }

    /// WWW-Authenticate / Proxy-Authenticate values, one per configured algorithm, sharing
    /// one fresh nonce (RFC 8760 §2.4). `stale` after [`AuthError::StaleNonce`].
    pub fn challenges(&mut self, now: Instant, stale: bool) -> Vec<String> {
        let nonce = self.new_nonce(now);
        self.cfg
            .algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
                    self.cfg.realm,
                    a.as_str(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// Verifies one credentials value (an Authorization or Proxy-Authorization header).
    /// `lookup(username, algorithm)` returns the stored HA1 for our realm.
    pub fn verify(
        &mut self,
        now: Instant,
        method: &str,
        request_uri: &str,
        credentials: &str,
        lookup: impl FnOnce(&str, Algorithm) -> Option<String>,
    ) -> Result<Verified, AuthError> {
        let p = AuthParams::parse(credentials).ok_or(AuthError::Malformed)?;
        if !p.scheme.eq_ignore_ascii_case("Digest") {
            return Err(AuthError::UnsupportedScheme);
        }
        let get = |n: &str| p.get(n);
        let username = get("username").ok_or(AuthError::Malformed)?;
        let realm = get("realm").ok_or(AuthError::Malformed)?;
        let nonce = get("nonce").ok_or(AuthError::Malformed)?;
        let uri = get("uri").ok_or(AuthError::Malformed)?;
        let response = get("response").ok_or(AuthError::Malformed)?;
        let alg = match get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_token(&a).ok_or(AuthError::UnsupportedAlgorithm)?,
        };
        if !self.cfg.algorithms.contains(&alg) {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        match get("qop") {
            Some(q) if q.eq_ignore_ascii_case("auth") => {}
            _ => return Err(AuthError::UnsupportedQop),
        }
        let nc_text = get("nc").ok_or(AuthError::Malformed)?;
        let cnonce = get("cnonce").ok_or(AuthError::Malformed)?;
        if nc_text.len() != 8 {
            return Err(AuthError::Malformed);
        }
        let nc = u32::from_str_radix(&nc_text, 16).map_err(|_| AuthError::Malformed)?;
        if realm != self.cfg.realm {
            return Err(AuthError::RealmMismatch);
        }
        self.expire(now);
        let lifetime = self.cfg.nonce_lifetime;
        let state = self.nonces.get(&*nonce).ok_or(AuthError::StaleNonce)?;
        if now.saturating_duration_since(state.issued) >= lifetime {
            return Err(AuthError::StaleNonce);
        }
        if nc <= state.last_nc {
            return Err(AuthError::Replay);
        }
        // RFC 7616 §3.4.6: the digest-uri names the Request-URI; accept an equivalent
        // spelling (RFC 3261 §19.1.4), e.g. other escaping or parameter order.
        let same_uri = uri == request_uri
            || matches!(
                (crate::uri::UriRef::parse(&uri), crate::uri::UriRef::parse(request_uri)),
                (Ok(a), Ok(b)) if a.equivalent(&b)
            );
        if !same_uri {
            return Err(AuthError::UriMismatch);
        }
        let stored = lookup(&username, alg);
        // Compute even for unknown users so timing does not tell them apart.
        let ha1 = stored.clone().unwrap_or_else(|| alg.hash(&["", "", ""]));
        let ha2 = alg.hash(&[method, &uri]);
        let expected = alg.hash(&[&ha1, &nonce, &nc_text, &cnonce, "auth", &ha2]);
        let given = response.to_ascii_lowercase();
        let ok: bool = expected.as_bytes().ct_eq(given.as_bytes()).into();
        if stored.is_none() {
            return Err(AuthError::UnknownUser);
        }
        if !ok {
            return Err(AuthError::BadResponse);
        }
        if let Some(s) = self.nonces.get_mut(&*nonce) {
            s.last_nc = nc;
        }
        Ok(Verified {
            username: username.into_owned(),
            algorithm: alg,
        })
    }
}

/// Client side (tests, UAC legs towards carriers): answers one challenge (RFC 7616 §3.4)
/// with qop=auth. `nc` counts uses of the nonce, from 1.
pub fn respond_to_challenge(
    challenge: &str,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, AuthError> {
    let p = AuthParams::parse(challenge).ok_or(AuthError::Malformed)?;
    if !p.scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::UnsupportedScheme);
    }
    let realm = p.get("realm").ok_or(AuthError::Malformed)?;
    let nonce = p.get("nonce").ok_or(AuthError::Malformed)?;
    let alg = match p.get("algorithm") {
        None => Algorithm::Md5,
        Some(a) => Algorithm::from_token(&a).ok_or(AuthError::UnsupportedAlgorithm)?,
    };
    let qop = p.get("qop");
    let qop_ok = qop
        .as_ref()
        .is_some_and(|q| q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth")));
    let h1 = ha1(alg, username, &realm, password);
    if qop.is_none() {
        // RFC 2069 compatibility (RFC 3261 §22.4, RFC 2617 §3.2.2.1): no qop, no nc or
        // cnonce; response = H(HA1:nonce:HA2).
        let ha2 = alg.hash(&[method, uri]);
        let response = alg.hash(&[&h1, &nonce, &ha2]);
        let mut out = format!(
            "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            alg.as_str()
        );
        if let Some(o) = p.get("opaque") {
            out.push_str(&format!(", opaque=\"{o}\""));
        }
        return Ok(out);
    }
    if !qop_ok {
        return Err(AuthError::UnsupportedQop);
    }
    let nc = format!("{nc:08x}");
    let ha2 = alg.hash(&[method, uri]);
    let response = alg.hash(&[&h1, &nonce, &nc, cnonce, "auth", &ha2]);
    let mut out = format!(
        "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
        alg.as_str()
    );
    if let Some(o) = p.get("opaque") {
        out.push_str(&format!(", opaque=\"{o}\""));
    }
    Ok(out)
}
