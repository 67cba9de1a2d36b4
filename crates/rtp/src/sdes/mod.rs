//! SDP Security Descriptions for media streams (RFC 4568): the `a=crypto` attribute,
//!
//! ```text
//! a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]
//! key-params = inline:<base64(master key || master salt)>[|lifetime][|MKI:length] *(";" ...)
//! ```
//!
//! Parsing is syntax plus suite and key-length checks ([`CryptoAttribute::parse`]); what
//! this implementation can honour is decided separately ([`CryptoAttribute::usable_key`]),
//! so an answerer can skip an offer line with a typed [`Unsupported`] reason. We support
//! one key without MKI, a lifetime that is absent or at least 2^31 packets, no KDR, and
//! neither unencrypted nor unauthenticated modes (RFC 4568 §6.3).
//!
//! Key material never appears in `Debug` output, and is zeroed when dropped. There is no
//! `Display` impl, so a crypto line is only printed on purpose with
//! [`CryptoAttribute::to_sdp_value`].

use crate::srtp::{SrtpConfig, SrtpContext, SrtpError, SrtpSuite};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use rand::RngCore;
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroize;

/// Base64 that accepts keys with or without `=` padding (both are seen in the wild).
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Lifetimes below this are refused: SRTCP can carry 2^31 packets per key (RFC 3711
/// §9.2), and we do not re-key within a session.
pub const MIN_LIFETIME: u64 = 1 << 31;

/// A syntax or consistency error in an `a=crypto` value (the offerer's fault).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SdesError {
    /// Fewer than three whitespace-separated fields.
    #[error("crypto attribute needs a tag, a suite and key parameters")]
    MissingField,
    /// The tag is not 1–9 decimal digits (RFC 4568 §9.1).
    #[error("crypto tag is not 1-9 decimal digits")]
    BadTag,
    /// A suite we do not implement (the line can be skipped).
    #[error("unknown crypto suite {0:?}")]
    UnknownSuite(String),
    /// A key parameter does not start with `inline:` (RFC 4568 §6.1).
    #[error("key method is not inline")]
    BadKeyMethod,
    /// The key is not valid base64.
    #[error("key is not valid base64")]
    BadBase64,
    /// The decoded key||salt has the wrong length for the suite.
    #[error("key and salt are {got} bytes, suite needs {expected}")]
    BadKeyLength {
        /// Bytes the suite needs.
        expected: usize,
        /// Bytes decoded.
        got: usize,
    },
    /// A lifetime that is neither decimal nor `2^n` (RFC 4568 §6.1).
    #[error("malformed key lifetime")]
    BadLifetime,
    /// An MKI field that is not `value:length` with length 1–128 (RFC 4568 §6.1).
    #[error("malformed MKI")]
    BadMki,
    /// A malformed session parameter (e.g. `KDR=x`).
    #[error("malformed session parameter")]
    BadSessionParam,
}

/// A well-formed offer that this implementation cannot honour (RFC 4568 §6.3, §7.1.2).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// Keys with an MKI.
    #[error("MKI is not supported")]
    Mki,
    /// More than one key parameter.
    #[error("multiple master keys are not supported")]
    MultipleKeys,
    /// A lifetime below 2^31 packets (we do not re-key in-session).
    #[error("key lifetime {0} is below the supported minimum of 2^31")]
    Lifetime(u64),
    /// A key derivation rate other than the default (RFC 4568 §6.3.1).
    #[error("key derivation rate is not supported")]
    Kdr,
    /// UNENCRYPTED_SRTP (RFC 4568 §6.3.2).
    #[error("unencrypted SRTP is not supported")]
    UnencryptedSrtp,
    /// UNENCRYPTED_SRTCP (RFC 4568 §6.3.2).
    #[error("unencrypted SRTCP is not supported")]
    UnencryptedSrtcp,
    /// UNAUTHENTICATED_SRTP (RFC 4568 §6.3.3).
    #[error("unauthenticated SRTP is not supported")]
    UnauthenticatedSrtp,
    /// FEC_KEY (RFC 4568 §6.3.5): we do no FEC.
    #[error("FEC keys are not supported")]
    FecKey,
    /// An unknown mandatory session parameter (no `-` prefix, RFC 4568 §6.3.7).
    #[error("unknown session parameter {0:?}")]
    UnknownParam(String),
}

/// Master key and salt for one suite. Compared in constant time, zeroed on drop, and
/// redacted from `Debug`.
#[derive(Clone)]
pub struct SrtpKeyMaterial {
    suite: SrtpSuite,
    key: [u8; 32],
    salt: [u8; 14],
}

impl SrtpKeyMaterial {
    /// Fresh random key and salt from the thread-local CSPRNG (`rand::rng()`, seeded from
    /// the operating system).
    #[must_use]
    pub fn generate(suite: SrtpSuite) -> Self {
        let mut m = Self {
            suite,
            key: [0; 32],
            salt: [0; 14],
        };
        let mut rng = rand::rng();
        rng.fill_bytes(&mut m.key[..suite.master_key_len()]);
        rng.fill_bytes(&mut m.salt[..suite.master_salt_len()]);
        m
    }

    /// From the concatenated master key and salt.
    pub fn from_key_salt(suite: SrtpSuite, key_salt: &[u8]) -> Result<Self, SdesError> {
        let (kl, sl) = (suite.master_key_len(), suite.master_salt_len());
        if key_salt.len() != kl + sl {
            return Err(SdesError::BadKeyLength {
                expected: kl + sl,
                got: key_salt.len(),
            });
        }
        let mut m = Self {
            suite,
            key: [0; 32],
            salt: [0; 14],
        };
        m.key[..kl].copy_from_slice(&key_salt[..kl]);
        m.salt[..sl].copy_from_slice(&key_salt[kl..]);
        Ok(m)
    }

    /// The suite.
    #[must_use]
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }
    /// Master key.
    #[must_use]
    pub fn master_key(&self) -> &[u8] {
        &self.key[..self.suite.master_key_len()]
    }
    /// Master salt.
    #[must_use]
    pub fn master_salt(&self) -> &[u8] {
        &self.salt[..self.suite.master_salt_len()]
    }

    /// An SRTP context keyed with this material.
    pub fn context(&self, config: SrtpConfig) -> Result<SrtpContext, SrtpError> {
        SrtpContext::with_config(self.suite, self.master_key(), self.master_salt(), config)
    }

    fn to_base64(&self) -> String {
        let mut ks = [0u8; 46];
        let (kl, sl) = (self.suite.master_key_len(), self.suite.master_salt_len());
        ks[..kl].copy_from_slice(self.master_key());
        ks[kl..kl + sl].copy_from_slice(self.master_salt());
        let s = STANDARD.encode(&ks[..kl + sl]);
        ks.zeroize();
        s
    }
}

impl PartialEq for SrtpKeyMaterial {
    fn eq(&self, other: &Self) -> bool {
        self.suite == other.suite
            && bool::from(self.key.ct_eq(&other.key) & self.salt.ct_eq(&other.salt))
    }
}
impl Eq for SrtpKeyMaterial {}

impl Drop for SrtpKeyMaterial {
    fn drop(&mut self) {
        self.key.zeroize();
        self.salt.zeroize();
    }
}

impl std::fmt::Debug for SrtpKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeyMaterial")
            .field("suite", &self.suite)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Master Key Identifier of a key parameter (RFC 4568 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mki {
    /// MKI value (decimal in SDP).
    pub value: u64,
    /// MKI length in octets on the wire, 1–128.
    pub length: u8,
}

/// One `inline:` key parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParam {
    /// Master key and salt.
    pub material: SrtpKeyMaterial,
    /// Packets the key may protect, if given.
    pub lifetime: Option<u64>,
    /// MKI, if given.
    pub mki: Option<Mki>,
}

/// FEC_ORDER values (RFC 4568 §6.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FecOrder {
    /// FEC before SRTP processing (the default).
    FecSrtp,
    /// SRTP processing before FEC.
    SrtpFec,
}

/// Session parameters (RFC 4568 §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionParam {
    /// `KDR=n`: key derivation rate 2^n.
    Kdr(u8),
    /// `UNENCRYPTED_SRTP`.
    UnencryptedSrtp,
    /// `UNENCRYPTED_SRTCP`.
    UnencryptedSrtcp,
    /// `UNAUTHENTICATED_SRTP`.
    UnauthenticatedSrtp,
    /// `FEC_ORDER=...`.
    FecOrder(FecOrder),
    /// `FEC_KEY=<key-params>` (RFC 4568 §6.3.5): the master keys for the FEC stream, with
    /// the same syntax and suite as the attribute's own key parameters. Kept (and printed)
    /// so that an attribute goes through print and parse unchanged; never used, since
    /// [`CryptoAttribute::usable_key`] refuses FEC.
    FecKey(Vec<KeyParam>),
    /// `WSH=n`: window size hint.
    WindowSizeHint(u32),
    /// Any other parameter, verbatim.
    Other(String),
}

impl SessionParam {
    /// One session parameter of an attribute for `suite` (which FEC keys are for too).
    fn parse(suite: SrtpSuite, s: &str) -> Result<Self, SdesError> {
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        let digits = |v: Option<&str>| -> Result<u32, SdesError> {
            let v = v.ok_or(SdesError::BadSessionParam)?;
            if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SdesError::BadSessionParam);
            }
            v.parse().map_err(|_| SdesError::BadSessionParam)
        };
        Ok(match name {
            "KDR" => Self::Kdr(
                u8::try_from(digits(value)?)
                    .ok()
                    .filter(|n| *n <= 24)
                    .ok_or(SdesError::BadSessionParam)?,
            ),
            "UNENCRYPTED_SRTP" => Self::UnencryptedSrtp,
            "UNENCRYPTED_SRTCP" => Self::UnencryptedSrtcp,
            "UNAUTHENTICATED_SRTP" => Self::UnauthenticatedSrtp,
            "FEC_ORDER" => match value {
                Some("FEC_SRTP") => Self::FecOrder(FecOrder::FecSrtp),
                Some("SRTP_FEC") => Self::FecOrder(FecOrder::SrtpFec),
                _ => return Err(SdesError::BadSessionParam),
            },
            // A malformed FEC key is a malformed session parameter, whatever is wrong in it.
            "FEC_KEY" => Self::FecKey(
                parse_key_params(suite, value.ok_or(SdesError::BadSessionParam)?)
                    .map_err(|_| SdesError::BadSessionParam)?,
            ),
            "WSH" => Self::WindowSizeHint(digits(value)?),
            _ => Self::Other(s.to_owned()),
        })
    }

    fn print(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = match self {
            Self::Kdr(n) => write!(out, "KDR={n}"),
            Self::UnencryptedSrtp => write!(out, "UNENCRYPTED_SRTP"),
            Self::UnencryptedSrtcp => write!(out, "UNENCRYPTED_SRTCP"),
            Self::UnauthenticatedSrtp => write!(out, "UNAUTHENTICATED_SRTP"),
            Self::FecOrder(FecOrder::FecSrtp) => write!(out, "FEC_ORDER=FEC_SRTP"),
            Self::FecOrder(FecOrder::SrtpFec) => write!(out, "FEC_ORDER=SRTP_FEC"),
            Self::FecKey(keys) => {
                out.push_str("FEC_KEY=");
                print_key_params(keys, out);
                Ok(())
            }
            Self::WindowSizeHint(n) => write!(out, "WSH={n}"),
            Self::Other(s) => write!(out, "{s}"),
        };
    }
}

/// A parsed `a=crypto` attribute (RFC 4568 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// Tag matching the answer to the offer line (1–999999999).
    pub tag: u32,
    /// Crypto suite.
    pub suite: SrtpSuite,
    /// One or more key parameters.
    pub keys: Vec<KeyParam>,
    /// Session parameters.
    pub session_params: Vec<SessionParam>,
}

fn parse_lifetime(s: &str) -> Result<u64, SdesError> {
    let all_digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if let Some(exp) = s.strip_prefix("2^") {
        if !all_digits(exp) {
            return Err(SdesError::BadLifetime);
        }
        let e: u32 = exp.parse().map_err(|_| SdesError::BadLifetime)?;
        // Anything from 2^64 up saturates; it is "forever" for us.
        Ok(1u64.checked_shl(e).filter(|_| e < 64).unwrap_or(u64::MAX))
    } else if all_digits(s) {
        Ok(s.parse().unwrap_or(u64::MAX))
    } else {
        Err(SdesError::BadLifetime)
    }
}

fn parse_mki(s: &str) -> Result<Mki, SdesError> {
    let (v, l) = s.split_once(':').ok_or(SdesError::BadMki)?;
    let value = v.parse::<u64>().map_err(|_| SdesError::BadMki)?;
    let length = l
        .parse::<u8>()
        .ok()
        .filter(|l| (1..=128).contains(l))
        .ok_or(SdesError::BadMki)?;
    Ok(Mki { value, length })
}

/// `key-param *(";" key-param)` (RFC 4568 §9.2): the attribute's keys, or a `FEC_KEY`'s.
fn parse_key_params(suite: SrtpSuite, s: &str) -> Result<Vec<KeyParam>, SdesError> {
    s.split(';').map(|k| parse_key_param(suite, k)).collect()
}

/// Prints what [`parse_key_params`] reads. Writes key material: see
/// [`CryptoAttribute::to_sdp_value`].
fn print_key_params(keys: &[KeyParam], out: &mut String) {
    use std::fmt::Write;
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str("inline:");
        let mut b64 = k.material.to_base64();
        out.push_str(&b64);
        b64.zeroize();
        if let Some(l) = k.lifetime {
            if l.is_power_of_two() {
                let _ = write!(out, "|2^{}", l.trailing_zeros());
            } else {
                let _ = write!(out, "|{l}");
            }
        }
        if let Some(m) = k.mki {
            let _ = write!(out, "|{}:{}", m.value, m.length);
        }
    }
}

fn parse_key_param(suite: SrtpSuite, s: &str) -> Result<KeyParam, SdesError> {
    let rest = s.strip_prefix("inline:").ok_or(SdesError::BadKeyMethod)?;
    let mut parts = rest.split('|');
    let b64 = parts.next().unwrap_or_default();
    let mut decoded = LENIENT_B64.decode(b64).map_err(|_| SdesError::BadBase64)?;
    let material = SrtpKeyMaterial::from_key_salt(suite, &decoded);
    decoded.zeroize();
    let material = material?;
    let (mut lifetime, mut mki) = (None, None);
    for p in parts {
        // RFC 4568 §6.1: lifetime comes before MKI; MKI contains ':'.
        if p.contains(':') {
            if mki.is_some() {
                return Err(SdesError::BadMki);
            }
            mki = Some(parse_mki(p)?);
        } else {
            if lifetime.is_some() || mki.is_some() {
                return Err(SdesError::BadLifetime);
            }
            lifetime = Some(parse_lifetime(p)?);
        }
    }
    Ok(KeyParam {
        material,
        lifetime,
        mki,
    })
}

impl CryptoAttribute {
    /// A fresh attribute with a newly generated key (no lifetime, no MKI).
    #[must_use]
    pub fn generate(tag: u32, suite: SrtpSuite) -> Self {
        Self {
            tag,
            suite,
            keys: vec![KeyParam {
                material: SrtpKeyMaterial::generate(suite),
                lifetime: None,
                mki: None,
            }],
            session_params: Vec::new(),
        }
    }

    /// Parses an attribute value; a leading `a=crypto:` or `crypto:` is accepted.
    pub fn parse(s: &str) -> Result<Self, SdesError> {
        let s = s.trim();
        let s = s
            .strip_prefix("a=crypto:")
            .or_else(|| s.strip_prefix("crypto:"))
            .unwrap_or(s);
        let mut fields = s.split_ascii_whitespace();
        let (Some(tag), Some(suite), Some(keys)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(SdesError::MissingField);
        };
        if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SdesError::BadTag);
        }
        let tag: u32 = tag.parse().map_err(|_| SdesError::BadTag)?;
        let suite =
            SrtpSuite::from_name(suite).ok_or_else(|| SdesError::UnknownSuite(suite.to_owned()))?;
        let keys = parse_key_params(suite, keys)?;
        let session_params = fields
            .map(|p| SessionParam::parse(suite, p))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            tag,
            suite,
            keys,
            session_params,
        })
    }

    /// The key to use if this implementation can honour the attribute, or why not.
    pub fn usable_key(&self) -> Result<&KeyParam, Unsupported> {
        for p in &self.session_params {
            match p {
                SessionParam::Kdr(_) => return Err(Unsupported::Kdr),
                SessionParam::UnencryptedSrtp => return Err(Unsupported::UnencryptedSrtp),
                SessionParam::UnencryptedSrtcp => return Err(Unsupported::UnencryptedSrtcp),
                SessionParam::UnauthenticatedSrtp => {
                    return Err(Unsupported::UnauthenticatedSrtp);
                }
                SessionParam::FecKey(_) => return Err(Unsupported::FecKey),
                // No FEC in use, so the order is moot; the window hint is advisory.
                SessionParam::FecOrder(_) | SessionParam::WindowSizeHint(_) => {}
                // RFC 4568 §6.3.7: a "-" prefix marks a parameter that may be ignored.
                SessionParam::Other(s) if s.starts_with('-') => {}
                SessionParam::Other(s) => return Err(Unsupported::UnknownParam(s.clone())),
            }
        }
        let [key] = self.keys.as_slice() else {
            return Err(Unsupported::MultipleKeys);
        };
        if key.mki.is_some() {
            return Err(Unsupported::Mki);
        }
        if let Some(l) = key.lifetime
            && l < MIN_LIFETIME
        {
            return Err(Unsupported::Lifetime(l));
        }
        Ok(key)
    }

    /// SRTP configuration honouring a `WSH` hint (clamped to 64–32768).
    #[must_use]
    pub fn srtp_config(&self) -> SrtpConfig {
        let mut cfg = SrtpConfig::default();
        for p in &self.session_params {
            if let SessionParam::WindowSizeHint(n) = p {
                cfg.replay_window = (*n as usize).clamp(64, 32768);
            }
        }
        cfg
    }

    /// The attribute value (after `a=crypto:`) for SDP. Contains the key: send it only
    /// over a protected signalling channel (RFC 4568 §8.3) and never log it.
    #[must_use]
    pub fn to_sdp_value(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(96);
        let _ = write!(out, "{} {} ", self.tag, self.suite.name());
        print_key_params(&self.keys, &mut out);
        for p in &self.session_params {
            out.push(' ');
            p.print(&mut out);
        }
        out
    }
}
#[cfg(test)]
mod tests;
