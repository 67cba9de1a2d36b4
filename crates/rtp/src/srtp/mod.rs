//! SRTP and SRTCP (RFC 3711) for the six SDES suites: AES_CM_128_HMAC_SHA1_80/_32
//! (RFC 4568 §6.2), AES_256_CM_HMAC_SHA1_80/_32 (RFC 6188) and AEAD_AES_256_GCM,
//! AEAD_AES_256_GCM_8 (RFC 7714).
//!
//! Sans-IO: [`SrtpContext`] transforms byte buffers; it never reads a clock or a socket.
//! One context holds the session keys derived from one master key and salt (key
//! derivation rate 0, no MKI) and per-SSRC state for both directions: the sending ROC
//! (RFC 3711 §3.3.1) and SRTCP index, and the receiving ROC estimate and replay windows.
//! With SDES each side sends with its own key, so an endpoint normally keeps two contexts:
//! one made from the key it offered (protect) and one from the peer's (unprotect).
//!
//! Per-packet work allocates nothing once the output `Vec` has grown to the packet size.

mod crypto;
mod replay;
mod suite;

use crate::packet;
use crypto::{CmTransform, GcmTransform};
use replay::{MAX_SRTCP_INDEX, MAX_SRTP_INDEX, ReplayVerdict, ReplayWindow, estimate_index};

pub use suite::{SrtpError, SrtpSuite};

/// Tunables of an [`SrtpContext`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpConfig {
    /// Replay window size in packets (RFC 3711 §3.3.2 asks for at least 64). Default 128.
    pub replay_window: usize,
    /// Most SSRCs per direction with state kept; the least recently used is forgotten when
    /// a new one arrives beyond this. Default 16.
    pub max_streams: usize,
}

impl Default for SrtpConfig {
    fn default() -> Self {
        Self {
            replay_window: 128,
            max_streams: 16,
        }
    }
}

/// The per-packet transform of one direction-independent session key set.
#[derive(Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per session, kept inline for locality on the per-packet path"
)]
enum Transform {
    Cm(CmTransform),
    Gcm(GcmTransform),
}

/// Per-SSRC state, small linear table with least-recently-used eviction.
#[derive(Debug, Clone)]
struct Streams<T> {
    entries: Vec<(u32, u64, T)>,
    max: usize,
}

impl<T> Streams<T> {
    fn new(max: usize) -> Self {
        Self {
            entries: Vec::new(),
            max,
        }
    }

    fn get(&mut self, ssrc: u32, tick: u64) -> Option<&mut T> {
        let e = self.entries.iter_mut().find(|e| e.0 == ssrc)?;
        e.1 = tick;
        Some(&mut e.2)
    }

    fn insert(&mut self, ssrc: u32, tick: u64, value: T) {
        if self.entries.len() >= self.max
            && let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.1)
                .map(|(i, _)| i)
        {
            self.entries.swap_remove(oldest);
        }
        self.entries.push((ssrc, tick, value));
    }
}

/// An SRTP/SRTCP cryptographic context for one master key (RFC 3711 §3.2).
///
/// ```
/// use rtp::srtp::{SrtpContext, SrtpSuite};
/// let suite = SrtpSuite::AesCm128HmacSha1_80;
/// let (key, salt) = ([1u8; 16], [2u8; 14]);
/// let mut tx = SrtpContext::new(suite, &key, &salt).unwrap();
/// let mut rx = SrtpContext::new(suite, &key, &salt).unwrap();
/// let rtp = [0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0xAA, 0xBB];
/// let (mut srtp, mut plain) = (Vec::new(), Vec::new());
/// tx.protect_rtp(&rtp, &mut srtp).unwrap();
/// rx.unprotect_rtp(&srtp, &mut plain).unwrap();
/// assert_eq!(plain, rtp);
/// ```
pub struct SrtpContext {
    suite: SrtpSuite,
    config: SrtpConfig,
    rtp: Transform,
    rtcp: Transform,
    tick: u64,
    /// Highest SRTP index sent per SSRC.
    tx_rtp: Streams<u64>,
    /// Replay window (whose top is the highest index) per received SSRC.
    rx_rtp: Streams<ReplayWindow>,
    /// Next SRTCP index to send per SSRC.
    tx_rtcp: Streams<u32>,
    /// SRTCP replay window per received SSRC.
    rx_rtcp: Streams<ReplayWindow>,
}

impl std::fmt::Debug for SrtpContext {
    /// Shows the suite and stream counts only: key material never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .field("config", &self.config)
            .field("tx_rtp_streams", &self.tx_rtp.entries.len())
            .field("rx_rtp_streams", &self.rx_rtp.entries.len())
            .field("tx_rtcp_streams", &self.tx_rtcp.entries.len())
            .field("rx_rtcp_streams", &self.rx_rtcp.entries.len())
            .finish_non_exhaustive()
    }
}

/// Length of the fixed RTCP header plus sender SSRC, which SRTCP never encrypts
/// (RFC 3711 §3.4).
const RTCP_CLEAR_LEN: usize = 8;
/// E flag in the SRTCP trailer word (RFC 3711 §3.4).
const E_FLAG: u32 = 0x8000_0000;

impl SrtpContext {
    /// Derives the session keys (RFC 3711 §4.3, key derivation rate 0) for `suite` from
    /// the master key and salt, with the default [`SrtpConfig`].
    pub fn new(suite: SrtpSuite, master_key: &[u8], master_salt: &[u8]) -> Result<Self, SrtpError> {
        Self::with_config(suite, master_key, master_salt, SrtpConfig::default())
    }

    /// Like [`SrtpContext::new`] with explicit tunables.
    pub fn with_config(
        suite: SrtpSuite,
        master_key: &[u8],
        master_salt: &[u8],
        config: SrtpConfig,
    ) -> Result<Self, SrtpError> {
        if master_key.len() != suite.master_key_len() {
            return Err(SrtpError::MasterKeyLength {
                expected: suite.master_key_len(),
                got: master_key.len(),
            });
        }
        if master_salt.len() != suite.master_salt_len() {
            return Err(SrtpError::MasterSaltLength {
                expected: suite.master_salt_len(),
                got: master_salt.len(),
            });
        }
        let (rtp, rtcp) = if suite.is_aead() {
            (
                Transform::Gcm(GcmTransform::derive(
                    master_key,
                    master_salt,
                    false,
                    suite.rtp_tag_len(),
                )),
                Transform::Gcm(GcmTransform::derive(
                    master_key,
                    master_salt,
                    true,
                    suite.rtcp_tag_len(),
                )),
            )
        } else {
            (
                Transform::Cm(CmTransform::derive(
                    master_key,
                    master_salt,
                    false,
                    suite.rtp_tag_len(),
                )),
                Transform::Cm(CmTransform::derive(
                    master_key,
                    master_salt,
                    true,
                    suite.rtcp_tag_len(),
                )),
            )
        };
        Self::from_transforms(suite, config, rtp, rtcp)
    }

    fn from_transforms(
        suite: SrtpSuite,
        config: SrtpConfig,
        rtp: Transform,
        rtcp: Transform,
    ) -> Result<Self, SrtpError> {
        if !(64..=32768).contains(&config.replay_window) || config.max_streams == 0 {
            return Err(SrtpError::InvalidConfig);
        }
        let max = config.max_streams;
        Ok(Self {
            suite,
            config,
            rtp,
            rtcp,
            tick: 0,
            tx_rtp: Streams::new(max),
            rx_rtp: Streams::new(max),
            tx_rtcp: Streams::new(max),
            rx_rtcp: Streams::new(max),
        })
    }

    /// The suite this context was made for.
    #[must_use]
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// Rollover counter of the highest packet sent on `ssrc`, if any was sent.
    #[must_use]
    pub fn tx_roc(&self, ssrc: u32) -> Option<u32> {
        self.tx_rtp
            .entries
            .iter()
            .find(|e| e.0 == ssrc)
            .map(|e| (e.2 >> 16) as u32)
    }

    /// Rollover counter of the highest packet received on `ssrc`, if any was received.
    #[must_use]
    pub fn rx_roc(&self, ssrc: u32) -> Option<u32> {
        self.rx_rtp
            .entries
            .iter()
            .find(|e| e.0 == ssrc)
            .map(|e| (e.2.top() >> 16) as u32)
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// Protects an RTP packet (RFC 3711 §3.3): `out` is cleared and receives the SRTP
    /// packet. The packet index comes from the sequence number and this context's ROC for
    /// the SSRC, which increments when the sequence number wraps.
    pub fn protect_rtp(&mut self, pkt: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        out.reserve(pkt.len() + self.suite.rtp_tag_len());
        out.extend_from_slice(pkt);
        let r = self.protect_rtp_in_place(out);
        if r.is_err() {
            out.clear();
        }
        r
    }

    /// Like [`SrtpContext::protect_rtp`], transforming `buf` in place (the tag is
    /// appended).
    pub fn protect_rtp_in_place(&mut self, buf: &mut Vec<u8>) -> Result<(), SrtpError> {
        let hdr = packet::header_len(buf)?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let tick = self.next_tick();
        let index = match self.tx_rtp.get(ssrc, tick) {
            Some(highest) => {
                let index = estimate_index(*highest, seq);
                if index > MAX_SRTP_INDEX {
                    return Err(SrtpError::KeyExhausted);
                }
                if index > *highest {
                    *highest = index;
                }
                index
            }
            None => {
                let index = u64::from(seq);
                self.tx_rtp.insert(ssrc, tick, index);
                index
            }
        };
        let roc = (index >> 16) as u32;
        match &self.rtp {
            Transform::Cm(t) => {
                t.cipher.apply(t.iv(ssrc, index), &mut buf[hdr..]);
                // RFC 3711 §4.2: M = authenticated portion || ROC.
                let tag = t.mac(buf, &roc.to_be_bytes());
                buf.extend_from_slice(&tag[..t.tag_len]);
            }
            Transform::Gcm(t) => {
                let iv = t.iv(ssrc, index);
                let (aad, data) = buf.split_at_mut(hdr);
                let tag = t.seal(&iv, aad, data);
                buf.extend_from_slice(&tag[..t.tag_len]);
            }
        }
        Ok(())
    }

    /// Verifies and decrypts an SRTP packet (RFC 3711 §3.3): `out` is cleared and receives
    /// the RTP packet. Replays and packets behind the replay window are refused; the
    /// stream state only advances for packets that authenticate.
    pub fn unprotect_rtp(&mut self, pkt: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        out.extend_from_slice(pkt);
        let r = self.unprotect_rtp_in_place(out);
        if r.is_err() {
            out.clear();
        }
        r
    }

    /// Like [`SrtpContext::unprotect_rtp`], transforming `buf` in place (the tag is
    /// removed). On error `buf` content is unspecified.
    pub fn unprotect_rtp_in_place(&mut self, buf: &mut Vec<u8>) -> Result<(), SrtpError> {
        let hdr = packet::header_len(buf)?;
        let tag_len = self.suite.rtp_tag_len();
        let min = hdr + tag_len;
        if buf.len() < min {
            return Err(SrtpError::TooShort {
                len: buf.len(),
                min,
            });
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let tick = self.next_tick();
        let index = match self.rx_rtp.get(ssrc, tick) {
            Some(window) => {
                let index = estimate_index(window.top(), seq);
                window.check(index).map_err(|v| replay_error(v, index))?;
                index
            }
            None => u64::from(seq),
        };
        if index > MAX_SRTP_INDEX {
            return Err(SrtpError::KeyExhausted);
        }
        let roc = (index >> 16) as u32;
        let body_len = buf.len() - tag_len;
        match &self.rtp {
            Transform::Cm(t) => {
                let (body, tag) = buf.split_at(body_len);
                if !t.verify(body, &roc.to_be_bytes(), tag) {
                    return Err(SrtpError::AuthFailed);
                }
                t.cipher.apply(t.iv(ssrc, index), &mut buf[hdr..body_len]);
            }
            Transform::Gcm(t) => {
                let iv = t.iv(ssrc, index);
                let (body, tag) = buf.split_at_mut(body_len);
                let (aad, data) = body.split_at_mut(hdr);
                t.open(&iv, aad, data, tag)
                    .map_err(|_| SrtpError::AuthFailed)?;
            }
        }
        buf.truncate(body_len);
        match self.rx_rtp.get(ssrc, tick) {
            Some(window) => window.record(index),
            None => self.rx_rtp.insert(
                ssrc,
                tick,
                ReplayWindow::new(self.config.replay_window, index),
            ),
        }
        Ok(())
    }

    /// Protects an RTCP compound packet (RFC 3711 §3.4): encrypts everything after the
    /// sender SSRC, appends E=1 and the 31-bit SRTCP index, then the tag (HMAC suites), or
    /// seals with AES-GCM and appends tag then E||index (RFC 7714 §9). `out` is cleared.
    pub fn protect_rtcp(&mut self, pkt: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        out.reserve(pkt.len() + 4 + self.suite.rtcp_tag_len());
        out.extend_from_slice(pkt);
        let r = self.protect_rtcp_in_place(out);
        if r.is_err() {
            out.clear();
        }
        r
    }

    /// Like [`SrtpContext::protect_rtcp`], in place.
    pub fn protect_rtcp_in_place(&mut self, buf: &mut Vec<u8>) -> Result<(), SrtpError> {
        let ssrc = rtcp_ssrc(buf)?;
        let tick = self.next_tick();
        let index = match self.tx_rtcp.get(ssrc, tick) {
            Some(next) => {
                if *next > MAX_SRTCP_INDEX {
                    return Err(SrtpError::KeyExhausted);
                }
                let index = *next;
                *next += 1;
                index
            }
            None => {
                self.tx_rtcp.insert(ssrc, tick, 1);
                0
            }
        };
        self.seal_rtcp(buf, ssrc, index, true);
        Ok(())
    }

    /// Seals `buf` with SRTCP `index`; `encrypt` selects the E flag.
    fn seal_rtcp(&self, buf: &mut Vec<u8>, ssrc: u32, index: u32, encrypt: bool) {
        let trailer = (if encrypt { E_FLAG } else { 0 } | index).to_be_bytes();
        match &self.rtcp {
            Transform::Cm(t) => {
                if encrypt {
                    t.cipher
                        .apply(t.iv(ssrc, u64::from(index)), &mut buf[RTCP_CLEAR_LEN..]);
                }
                buf.extend_from_slice(&trailer);
                let tag = t.mac(buf, &[]);
                buf.extend_from_slice(&tag[..t.tag_len]);
            }
            Transform::Gcm(t) => {
                let iv = t.iv(ssrc, u64::from(index));
                let tag = if encrypt {
                    // RFC 7714 §9.2: AAD = header and sender SSRC || E || SRTCP index.
                    let mut aad = [0u8; RTCP_CLEAR_LEN + 4];
                    aad[..RTCP_CLEAR_LEN].copy_from_slice(&buf[..RTCP_CLEAR_LEN]);
                    aad[RTCP_CLEAR_LEN..].copy_from_slice(&trailer);
                    t.seal(&iv, &aad, &mut buf[RTCP_CLEAR_LEN..])
                } else {
                    // RFC 7714 §9.3: the whole packet || E || index is AAD, no plaintext.
                    buf.extend_from_slice(&trailer);
                    let tag = t.seal(&iv, buf, &mut []);
                    buf.truncate(buf.len() - 4);
                    tag
                };
                buf.extend_from_slice(&tag[..t.tag_len]);
                buf.extend_from_slice(&trailer);
            }
        }
    }

    /// Verifies and decrypts an SRTCP packet (RFC 3711 §3.4, RFC 7714 §9); `out` is
    /// cleared and receives the RTCP compound packet. Packets with E=0 are accepted when
    /// they authenticate (the sender chose not to encrypt).
    pub fn unprotect_rtcp(&mut self, pkt: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        out.extend_from_slice(pkt);
        let r = self.unprotect_rtcp_in_place(out);
        if r.is_err() {
            out.clear();
        }
        r
    }

    /// Like [`SrtpContext::unprotect_rtcp`], in place. On error `buf` content is
    /// unspecified.
    pub fn unprotect_rtcp_in_place(&mut self, buf: &mut Vec<u8>) -> Result<(), SrtpError> {
        let ssrc = rtcp_ssrc(buf)?;
        let tag_len = self.suite.rtcp_tag_len();
        let min = RTCP_CLEAR_LEN + 4 + tag_len;
        if buf.len() < min {
            return Err(SrtpError::TooShort {
                len: buf.len(),
                min,
            });
        }
        let len = buf.len();
        // HMAC suites: ... || E+index || tag. GCM: ... || tag || E+index.
        let trailer_at = match self.rtcp {
            Transform::Cm(_) => len - tag_len - 4,
            Transform::Gcm(_) => len - 4,
        };
        let mut trailer = [0u8; 4];
        trailer.copy_from_slice(&buf[trailer_at..trailer_at + 4]);
        let word = u32::from_be_bytes(trailer);
        let encrypted = word & E_FLAG != 0;
        let index = word & !E_FLAG;
        let tick = self.next_tick();
        if let Some(window) = self.rx_rtcp.get(ssrc, tick) {
            window
                .check(u64::from(index))
                .map_err(|v| replay_error(v, u64::from(index)))?;
        }
        let plain_len = len - tag_len - 4;
        match &self.rtcp {
            Transform::Cm(t) => {
                let (body, tag) = buf.split_at(len - tag_len);
                if !t.verify(body, &[], tag) {
                    return Err(SrtpError::AuthFailed);
                }
                if encrypted {
                    t.cipher.apply(
                        t.iv(ssrc, u64::from(index)),
                        &mut buf[RTCP_CLEAR_LEN..plain_len],
                    );
                }
            }
            Transform::Gcm(t) => {
                let iv = t.iv(ssrc, u64::from(index));
                let mut tag = [0u8; 16];
                tag[..tag_len].copy_from_slice(&buf[plain_len..plain_len + tag_len]);
                if encrypted {
                    let mut aad = [0u8; RTCP_CLEAR_LEN + 4];
                    aad[..RTCP_CLEAR_LEN].copy_from_slice(&buf[..RTCP_CLEAR_LEN]);
                    aad[RTCP_CLEAR_LEN..].copy_from_slice(&trailer);
                    t.open(
                        &iv,
                        &aad,
                        &mut buf[RTCP_CLEAR_LEN..plain_len],
                        &tag[..tag_len],
                    )
                    .map_err(|_| SrtpError::AuthFailed)?;
                } else {
                    // Make packet || E+index contiguous as the AAD.
                    buf.truncate(plain_len);
                    buf.extend_from_slice(&trailer);
                    t.open(&iv, buf, &mut [], &tag[..tag_len])
                        .map_err(|_| SrtpError::AuthFailed)?;
                }
            }
        }
        buf.truncate(plain_len);
        match self.rx_rtcp.get(ssrc, tick) {
            Some(window) => window.record(u64::from(index)),
            None => self.rx_rtcp.insert(
                ssrc,
                tick,
                ReplayWindow::new(self.config.replay_window, u64::from(index)),
            ),
        }
        Ok(())
    }
}

fn replay_error(v: ReplayVerdict, index: u64) -> SrtpError {
    match v {
        ReplayVerdict::Duplicate => SrtpError::Replay { index },
        ReplayVerdict::TooOld => SrtpError::ReplayTooOld { index },
    }
}

/// Checks the RTCP version and returns the sender SSRC (RFC 3550 §6.4).
fn rtcp_ssrc(buf: &[u8]) -> Result<u32, SrtpError> {
    if buf.len() < RTCP_CLEAR_LEN {
        return Err(SrtpError::TooShort {
            len: buf.len(),
            min: RTCP_CLEAR_LEN,
        });
    }
    if buf[0] >> 6 != 2 {
        return Err(SrtpError::RtcpVersion);
    }
    Ok(u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]))
}

#[cfg(test)]
mod kat;
