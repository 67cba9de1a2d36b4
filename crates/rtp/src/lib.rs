//! RTP/RTCP views and writers, SRTP/SRTCP (six suites), SDES keys, jitter buffer (sans-IO).
#![forbid(unsafe_code)]
pub mod jitter;
