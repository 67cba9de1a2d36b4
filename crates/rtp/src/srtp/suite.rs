//! The six SRTP suites and their parameters, and why a transform can fail.

use crate::packet::RtpError;
use thiserror::Error;

/// The SRTP crypto suites of the SDP `a=crypto` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// RFC 4568 §6.2.1: AES-128 counter mode, HMAC-SHA1 with an 80-bit tag.
    AesCm128HmacSha1_80,
    /// RFC 4568 §6.2.2: AES-128 counter mode, HMAC-SHA1 with a 32-bit SRTP tag (SRTCP
    /// keeps the 80-bit tag, RFC 4568 §6.2.2 / RFC 3711 §5.2).
    AesCm128HmacSha1_32,
    /// RFC 6188 §4.1: AES-256 counter mode, HMAC-SHA1 with an 80-bit tag.
    Aes256CmHmacSha1_80,
    /// RFC 6188 §4.1: AES-256 counter mode, HMAC-SHA1 with a 32-bit SRTP tag.
    Aes256CmHmacSha1_32,
    /// RFC 7714 §14.2: AES-256 GCM with a 16-octet tag.
    AeadAes256Gcm,
    /// RFC 7714 §14.2: AES-256 GCM with an 8-octet tag.
    AeadAes256Gcm8,
}

impl SrtpSuite {
    /// All six suites, strongest first (a sensible SDES offer order).
    pub const ALL: [SrtpSuite; 6] = [
        SrtpSuite::AeadAes256Gcm,
        SrtpSuite::AeadAes256Gcm8,
        SrtpSuite::Aes256CmHmacSha1_80,
        SrtpSuite::Aes256CmHmacSha1_32,
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ];

    /// The SDES name (RFC 4568 §6.2, RFC 6188 §7.1, RFC 7714 §14.2).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Self::Aes256CmHmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Self::Aes256CmHmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            Self::AeadAes256Gcm => "AEAD_AES_256_GCM",
            Self::AeadAes256Gcm8 => "AEAD_AES_256_GCM_8",
        }
    }

    /// Looks a suite up by its SDES name (case-sensitive, as RFC 4568 §9.2 registers them).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Master key length in octets.
    #[must_use]
    pub fn master_key_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 | Self::AesCm128HmacSha1_32 => 16,
            _ => 32,
        }
    }

    /// Master salt length in octets: 14 (RFC 3711 §8.2), 12 for GCM (RFC 7714 §12).
    #[must_use]
    pub fn master_salt_len(self) -> usize {
        if self.is_aead() { 12 } else { 14 }
    }

    /// Authentication tag length of SRTP packets in octets.
    #[must_use]
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 | Self::Aes256CmHmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 | Self::Aes256CmHmacSha1_32 => 4,
            Self::AeadAes256Gcm => 16,
            Self::AeadAes256Gcm8 => 8,
        }
    }

    /// Authentication tag length of SRTCP packets: 80 bits for every HMAC suite
    /// (RFC 4568 §6.2.2, RFC 6188 §4.1), the AEAD tag otherwise.
    #[must_use]
    pub fn rtcp_tag_len(self) -> usize {
        match self {
            Self::AeadAes256Gcm => 16,
            Self::AeadAes256Gcm8 => 8,
            _ => 10,
        }
    }

    /// Whether this is an AEAD (GCM) suite.
    #[must_use]
    pub fn is_aead(self) -> bool {
        matches!(self, Self::AeadAes256Gcm | Self::AeadAes256Gcm8)
    }
}

impl std::fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a packet could not be protected or unprotected, or a context not created.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum SrtpError {
    /// Input shorter than the headers and trailer it must carry (malformed input).
    #[error("packet of {len} bytes is shorter than the minimum of {min}")]
    TooShort {
        /// Bytes received.
        len: usize,
        /// Bytes required.
        min: usize,
    },
    /// The RTP header is malformed (malformed input).
    #[error("malformed RTP header: {0}")]
    Rtp(#[from] RtpError),
    /// The RTCP header is not version 2 (malformed input).
    #[error("RTCP version is not 2")]
    RtcpVersion,
    /// The authentication tag did not verify (forged, corrupted, or wrong key).
    #[error("authentication failed")]
    AuthFailed,
    /// The packet index was already received (RFC 3711 §3.3.2).
    #[error("replayed packet (index {index})")]
    Replay {
        /// Packet index (SRTP 48-bit index or SRTCP index).
        index: u64,
    },
    /// The packet index is behind the replay window, so freshness cannot be told
    /// (RFC 3711 §3.3.2).
    #[error("packet index {index} is older than the replay window")]
    ReplayTooOld {
        /// Packet index.
        index: u64,
    },
    /// 2^48 SRTP or 2^31 SRTCP packets were sent or received under this key
    /// (RFC 3711 §9.2): the session must be re-keyed.
    #[error("key exhausted: packet index limit reached, re-keying required")]
    KeyExhausted,
    /// The master key has the wrong length for the suite (local configuration).
    #[error("master key is {got} bytes, suite needs {expected}")]
    MasterKeyLength {
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// The master salt has the wrong length for the suite (local configuration).
    #[error("master salt is {got} bytes, suite needs {expected}")]
    MasterSaltLength {
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// Replay window outside 64..=32768 packets, or a stream limit of 0 (local
    /// configuration).
    #[error("invalid SRTP configuration")]
    InvalidConfig,
}
