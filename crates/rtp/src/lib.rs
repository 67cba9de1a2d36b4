//! RTP/RTCP views and writers, SRTP/SRTCP (six suites), SDES keys, jitter buffer (sans-IO).
//!
//! Everything in this crate is sans-IO: bytes come in as `&[u8]`, time comes in as a
//! parameter, and nothing here touches a socket, a thread or the clock.
//!
//! - [`packet`]: zero-copy RTP header views ([`RtpPacket`]) and writers (RFC 3550 §5.1,
//!   RFC 8285 header extensions), and the RFC 5761 §4 rtcp-mux demultiplexer.
//! - [`rtcp`]: RTCP compound packet views and writers (SR, RR, SDES, BYE, APP; RFC 3550 §6).
//! - [`stats`]: per-stream reception and sending statistics (RFC 3550 §6.4, Appendix A.3
//!   and A.8) and the report blocks built from them.
//! - [`srtp`]: SRTP/SRTCP (RFC 3711, RFC 6188, RFC 7714) for the six SDES suites.
//! - [`sdes`]: the SDP `a=crypto` attribute (RFC 4568) and fresh key generation.
//!
//! SRTP is written here rather than taken from a crate because no maintained crate covers
//! `AEAD_AES_256_GCM_8`; the cryptographic primitives are the RustCrypto `aes`, `ctr`,
//! `hmac`, `sha1`, `aes-gcm` and `ghash` crates.
#![forbid(unsafe_code)]
pub mod jitter;
pub mod packet;
pub mod rtcp;
pub mod sdes;
pub mod srtp;
pub mod stats;

pub use packet::{RtpError, RtpPacket, RtpPacketMut, RtpWriter, is_rtcp};
pub use srtp::{SrtpContext, SrtpError, SrtpSuite};
