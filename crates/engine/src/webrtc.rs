//! A browser attendee's WebRTC PeerConnection, sans-IO, on [`str0m`].
//!
//! The server is an ICE-lite agent (RFC 8445 §2.5: it only answers connectivity checks, from
//! one host candidate) and the passive DTLS endpoint (RFC 5763 §5: it answers an `actpass`
//! offer with `a=setup:passive` and waits for the browser's ClientHello). SRTP keys come
//! from DTLS (RFC 5764 §4.2). Audio is Opus (RFC 7587) in one BUNDLE group over one 5-tuple
//! with RTCP multiplexed (RFC 8843, RFC 5761). Video sections are answered with VP8 (an
//! inactive one stays inactive); video is forwarded between legs ([`video`]). Later offers of the same PeerConnection (a camera turned on, an ICE restart)
//! are answered on the same `Rtc` ([`WebRtcLeg::renegotiate`]).
//!
//! [`WebRtcLeg`] wraps one `str0m::Rtc` and keeps str0m's contract: after every mutation
//! (a datagram, a timeout, a written frame) its output is drained completely, into queues
//! that [`crate::MeetingMedia`] empties.
//!
//! All legs share one UDP port. The driver routes a datagram to its leg by source address,
//! and a STUN binding request from a new address by the ICE username fragment that
//! [`stun_local_ufrag`] reads (RFC 8445 §7.2.2: `USERNAME` is `local-ufrag:remote-ufrag`
//! from the receiver's side).
//!
//! Randomness: everything this module draws (the ICE ufrag and password, the first RTP
//! timestamp) comes from the meeting's seeded generator, passed to [`WebRtcLeg::accept_offer`].
//! str0m draws its own non-cryptographic values (the SSRCs and first sequence numbers of
//! the streams it sends, CNAME and MSID, the SDP session id, the ICE tie-breaker, STUN
//! transaction ids) from fastrand's thread-local generator: each leg keeps its own fastrand
//! state, seeded from the meeting's generator, and swaps it in around every call into str0m
//! (`Str0mRng`), so those follow the meeting's seed too, and neither disturb nor are
//! disturbed by other code on the thread. What is not seeded is cryptographic: the DTLS
//! certificate's key pair ([`generate_certificate`]), and the DTLS handshake's randoms,
//! keys and retransmission jitter inside str0m's DTLS stack (and an SCTP association's
//! verification tags, were a data channel ever negotiated); the SRTP keys come from DTLS.

mod video;

pub use video::VideoSection;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::format::Codec as Str0mCodec;
use str0m::media::{Frequency, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig};

/// Why a WebRTC leg could not be set up. The offer is the client's; the rest is ours.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// The SDP offer does not parse.
    #[error("SDP offer does not parse: {0}")]
    OfferSyntax(String),
    /// The offer parses but cannot be answered (no audio section, no Opus, no DTLS
    /// fingerprint, …).
    #[error("SDP offer cannot be answered: {0}")]
    OfferRefused(String),
    /// The leg ended before the offer came.
    #[error("the PeerConnection has ended")]
    Closed,
    /// The media address cannot be a host candidate (internal fault: configuration).
    #[error("media address {0} cannot be an ICE host candidate")]
    Candidate(SocketAddr),
}

/// Opus audio received from the browser, with the RTP header fields the mixer's jitter
/// buffer orders by (RFC 3550 §5.1).
#[derive(Debug, Clone)]
pub struct ReceivedAudio {
    pub seq: u16,
    pub timestamp: u32,
    pub payload: Arc<[u8]>,
}

/// What happened on a leg, besides audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebRtcEvent {
    /// ICE and DTLS are up; SRTP flows.
    Connected,
    /// ICE consent lapsed (RFC 7675 §5.1) or DTLS failed: the browser is gone.
    Disconnected,
}

/// One browser's PeerConnection. See the module documentation.
pub struct WebRtcLeg {
    rtc: Rtc,
    local: SocketAddr,
    ufrag: String,
    /// This leg's fastrand state for str0m's own draws (see the module documentation).
    str0m_rng: u64,
    audio_mid: Option<Mid>,
    opus_pt: Option<Pt>,
    /// RTP time of the first frame we send, so the stream starts at a random point
    /// (RFC 3550 §5.1).
    tx_time_base: u64,
    connected: bool,
    /// str0m refused to go on (an internal error); the leg is dead.
    dead: bool,
    next_timeout: Instant,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    audio: VecDeque<ReceivedAudio>,
    events: VecDeque<WebRtcEvent>,
    video: video::VideoState,
    /// Datagrams str0m refused (not STUN/DTLS/RTP/RTCP, or failing to parse).
    pub refused: u64,
}

/// Most datagrams or frames queued per leg when the owner does not drain.
const MAX_QUEUE: usize = 512;

/// ICE `ice-char` (RFC 8839 §5.4) of `n` random characters.
fn ice_chars(rng: &mut impl Rng, n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| {
            let i = rng.random_range(0..ALPHABET.len());
            char::from(ALPHABET.get(i).copied().unwrap_or(b'a'))
        })
        .collect()
}

/// A leg's fastrand state swapped into the thread-local generator str0m draws from, for
/// the length of one call into str0m: [`Str0mRng::enter`] saves the thread's state and
/// installs the leg's, [`Str0mRng::leave`] gives back the leg's advanced state and restores
/// the thread's (so does dropping it, should str0m panic).
struct Str0mRng {
    thread_state: Option<u64>,
}

impl Str0mRng {
    fn enter(leg_state: u64) -> Self {
        let thread_state = fastrand::get_seed();
        fastrand::seed(leg_state);
        Str0mRng {
            thread_state: Some(thread_state),
        }
    }

    fn leave(mut self) -> u64 {
        let leg_state = fastrand::get_seed();
        if let Some(s) = self.thread_state.take() {
            fastrand::seed(s);
        }
        leg_state
    }
}

impl Drop for Str0mRng {
    fn drop(&mut self) {
        if let Some(s) = self.thread_state.take() {
            fastrand::seed(s);
        }
    }
}

impl WebRtcLeg {
    /// Answers a browser's SDP offer. `local` is the shared WebRTC UDP socket's address as
    /// the browser reaches it (the host candidate). Returns the leg and the SDP answer:
    /// ICE-lite, one host candidate, `a=setup:passive`, Opus with its `a=fmtp` line, video
    /// inactive, BUNDLE and rtcp-mux as offered.
    ///
    /// `cert` is the DTLS certificate to present (shared by a meeting's legs: a key pair
    /// per leg costs a key generation per join for no gain, as each handshake derives fresh
    /// keys, RFC 5764 §4.2); `None` makes str0m generate one.
    ///
    /// Every non-cryptographic random value of the leg, str0m's included, derives from
    /// `rng` (see the module documentation).
    pub fn accept_offer(
        now: Instant,
        offer: &str,
        local: SocketAddr,
        cert: Option<DtlsCert>,
        rng: &mut impl Rng,
    ) -> Result<(Self, String), WebRtcError> {
        // ufrag of 16 and password of 32 ice-chars: above the RFC 8839 §5.4 minimums of 4
        // and 22, and unguessable, since the ufrag routes datagrams to this leg.
        let ufrag = ice_chars(rng, 16);
        let pass = ice_chars(rng, 32);
        let tx_time_base = u64::from(rng.random::<u32>());
        let scope = Str0mRng::enter(rng.random());
        let result = Self::accept_offer_str0m(now, offer, local, cert, ufrag, pass, tx_time_base);
        let state = scope.leave();
        result.map(|(mut leg, answer)| {
            leg.str0m_rng = state;
            (leg, answer)
        })
    }

    /// [`Self::accept_offer`]'s calls into str0m, inside the leg's [`Str0mRng`] scope.
    fn accept_offer_str0m(
        now: Instant,
        offer: &str,
        local: SocketAddr,
        cert: Option<DtlsCert>,
        ufrag: String,
        pass: String,
        tx_time_base: u64,
    ) -> Result<(Self, String), WebRtcError> {
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| WebRtcError::OfferSyntax(e.to_string()))?;
        let mut config = RtcConfig::new();
        if let Some(cert) = cert {
            config = config.set_dtls_cert(cert);
        }
        let mut rtc = config
            .set_ice_lite(true)
            .set_local_ice_credentials(IceCreds {
                ufrag: ufrag.clone(),
                pass,
            })
            .clear_codecs()
            .enable_opus(true, false)
            // Video is answered inactive: offering a codec lets the section match.
            .enable_vp8(true)
            .set_stats_interval(None)
            .build(now);
        let candidate = Candidate::host(local, "udp").map_err(|_| WebRtcError::Candidate(local))?;
        if rtc.add_local_candidate(candidate).is_none() {
            return Err(WebRtcError::Candidate(local));
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::OfferRefused(e.to_string()))?;
        let mut leg = WebRtcLeg {
            rtc,
            local,
            ufrag,
            str0m_rng: 0,
            audio_mid: None,
            opus_pt: None,
            tx_time_base,
            connected: false,
            dead: false,
            next_timeout: now,
            transmits: VecDeque::new(),
            audio: VecDeque::new(),
            events: VecDeque::new(),
            video: video::VideoState::default(),
            refused: 0,
        };
        leg.drain();
        let answer = answer.to_sdp_string();
        leg.video.sections = video::video_sections(&answer);
        // str0m reports media only once SRTP is ready; the answer names it now.
        leg.audio_mid = audio_mid(&answer).filter(|m| leg.rtc.media(*m).is_some());
        if leg.audio_mid.is_none() {
            return Err(WebRtcError::OfferRefused("no audio section".into()));
        }
        leg.opus_pt = leg.find_opus_pt();
        if leg.opus_pt.is_none() {
            return Err(WebRtcError::OfferRefused("no Opus payload type".into()));
        }
        Ok((leg, answer))
    }

    /// Answers a later offer of the same PeerConnection (JSEP renegotiation, RFC 8829
    /// §5.2.2): the client turned a camera on or off, or added a transceiver. The offer is
    /// applied to the existing `Rtc`, so ICE, DTLS and SRTP go on untouched and the answer
    /// keeps our ufrag and fingerprint; audio never pauses.
    ///
    /// An offer with new ICE credentials is an ICE restart (RFC 8445 §9): str0m answers it
    /// with new local credentials of its own (16 and 22 random characters, from the leg's
    /// seeded generator like its other draws), [`Self::ufrag`] is the new ufrag from then
    /// on, and DTLS and SRTP still go on.
    ///
    /// A refused offer leaves the leg as it was, except when the offer lacks a fingerprint
    /// or ICE credentials, which str0m takes as the end of the session ([`Self::is_dead`]).
    pub fn renegotiate(&mut self, now: Instant, offer: &str) -> Result<String, WebRtcError> {
        if self.dead {
            return Err(WebRtcError::Closed);
        }
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| WebRtcError::OfferSyntax(e.to_string()))?;
        let scope = Str0mRng::enter(self.str0m_rng);
        // str0m's timers go on from `now` before the change (its single-mutation rule).
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.str0m_rng = scope.leave();
            self.kill();
            return Err(WebRtcError::Closed);
        }
        self.drain();
        let answer = self.rtc.sdp_api().accept_offer(offer);
        self.drain();
        self.ufrag = self.rtc.direct_api().local_ice_credentials().ufrag;
        self.str0m_rng = scope.leave();
        if !self.rtc.is_alive() {
            self.kill();
        }
        let answer = answer
            .map_err(|e| WebRtcError::OfferRefused(e.to_string()))?
            .to_sdp_string();
        self.video.sections = video::video_sections(&answer);
        let mid = audio_mid(&answer).filter(|m| self.rtc.media(*m).is_some());
        if mid != self.audio_mid {
            // The audio section went or moved: the mix has nowhere to go.
            self.audio_mid = mid;
            self.opus_pt = self.find_opus_pt();
        }
        if self.audio_mid.is_none() || self.opus_pt.is_none() {
            return Err(WebRtcError::OfferRefused(
                "the renegotiated offer has no Opus audio".into(),
            ));
        }
        Ok(answer)
    }

    fn find_opus_pt(&mut self) -> Option<Pt> {
        let mid = self.audio_mid?;
        let writer = self.rtc.writer(mid)?;
        writer
            .payload_params()
            .find(|p| p.spec().codec == Str0mCodec::Opus)
            .map(|p| p.pt())
    }

    /// Our ICE username fragment: the key that routes this leg's first STUN request.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The leg can no longer carry media.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// A datagram from `from` on the shared socket.
    pub fn handle_receive(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if self.dead {
            return;
        }
        let Ok(receive) = Receive::new(Protocol::Udp, from, self.local, data) else {
            self.refused += 1;
            return;
        };
        let scope = Str0mRng::enter(self.str0m_rng);
        if self.rtc.handle_input(Input::Receive(now, receive)).is_err() {
            self.refused += 1;
        }
        self.drain();
        self.str0m_rng = scope.leave();
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None` once the
    /// leg is dead (nothing will happen on it again).
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.dead).then_some(self.next_timeout)
    }

    /// Advances str0m's timers (ICE consent, DTLS retransmission, RTCP); harmless early.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.dead {
            return;
        }
        let scope = Str0mRng::enter(self.str0m_rng);
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.kill();
        }
        self.drain();
        self.str0m_rng = scope.leave();
    }

    /// Sends one 20 ms Opus frame of the mix. `timestamp` is the mixer's RTP timestamp
    /// relative to this listener's first frame. Dropped until DTLS is up (no keys yet).
    /// Returns whether the frame was handed to str0m.
    pub fn write_audio(&mut self, now: Instant, timestamp: u32, payload: &[u8]) -> bool {
        if self.dead || !self.connected {
            return false;
        }
        let (Some(mid), Some(pt)) = (self.audio_mid, self.opus_pt) else {
            return false;
        };
        let time = MediaTime::new(
            self.tx_time_base + u64::from(timestamp),
            Frequency::FORTY_EIGHT_KHZ,
        );
        let scope = Str0mRng::enter(self.str0m_rng);
        let ok = self
            .rtc
            .writer(mid)
            .is_some_and(|writer| writer.write(pt, now, time, payload.to_vec()).is_ok());
        self.drain();
        self.str0m_rng = scope.leave();
        ok
    }

    /// Ends the PeerConnection (DTLS close_notify goes out, RFC 5246 §7.2.1).
    pub fn close(&mut self) {
        if !self.dead {
            let scope = Str0mRng::enter(self.str0m_rng);
            self.rtc.disconnect();
            self.drain();
            self.str0m_rng = scope.leave();
            self.dead = true;
        }
    }

    fn kill(&mut self) {
        if !self.dead {
            self.dead = true;
            self.events.push_back(WebRtcEvent::Disconnected);
        }
    }

    /// Drains str0m until it names its next timeout (its single-mutation invariant).
    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    if self.transmits.len() < MAX_QUEUE {
                        self.transmits
                            .push_back((t.destination, t.contents.to_vec()));
                    }
                }
                Ok(Output::Event(e)) => self.on_event(e),
                Err(_) => {
                    self.kill();
                    break;
                }
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            // The audio mid is known from the answer; MediaAdded only confirms it.
            Event::Connected => {
                self.connected = true;
                self.events.push_back(WebRtcEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => self.kill(),
            Event::MediaData(d)
                if Some(d.mid) == self.audio_mid && self.audio.len() < MAX_QUEUE =>
            {
                self.audio.push_back(ReceivedAudio {
                    // The wire sequence number (the low 16 bits of the extended one).
                    seq: d.seq_range.start().as_u16(),
                    timestamp: (d.time.numer() & 0xffff_ffff) as u32,
                    payload: d.data,
                });
            }
            Event::MediaData(d) if Some(d.mid) != self.audio_mid => self.video.on_frame(d),
            Event::KeyframeRequest(r) => self.video.on_keyframe_request(r),
            _ => {}
        }
    }

    /// The next datagram to send from the shared socket, with its destination.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next Opus frame received from the browser.
    pub fn poll_audio(&mut self) -> Option<ReceivedAudio> {
        self.audio.pop_front()
    }

    /// The next state change.
    pub fn poll_event(&mut self) -> Option<WebRtcEvent> {
        self.events.pop_front()
    }
}

/// A fresh self-signed DTLS certificate from the configured crypto provider (`None` if the
/// provider cannot make one; str0m then generates one per leg).
pub fn generate_certificate() -> Option<DtlsCert> {
    str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
}

/// The `a=mid` (RFC 8843 §9.1) of the first accepted (nonzero port) audio section of an
/// SDP answer.
fn audio_mid(sdp: &str) -> Option<Mid> {
    let mut in_audio = false;
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split(' ');
            in_audio = f.next() == Some("audio") && f.next().is_some_and(|port| port != "0");
        } else if in_audio && let Some(mid) = line.strip_prefix("a=mid:") {
            return Some(Mid::from(mid.trim()));
        }
    }
    None
}

/// The browser's offer asks for Opus DTX: an `a=fmtp` of an Opus payload type (an
/// `a=rtpmap:<pt> opus/48000...` of its first accepted audio section) has `usedtx=1`
/// (RFC 7587 §6.1). Parameter names are case-insensitive (RFC 8866 §6.15).
pub(crate) fn offer_asks_opus_dtx(sdp: &str) -> bool {
    let mut sections = 0u32;
    let mut in_audio = false;
    let mut opus_pts: Vec<&str> = Vec::new();
    let mut fmtps: Vec<(&str, &str)> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split(' ');
            let audio = f.next() == Some("audio") && f.next().is_some_and(|port| port != "0");
            in_audio = audio && sections == 0;
            sections += u32::from(audio);
            continue;
        }
        if !in_audio {
            continue;
        }
        if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
            if let Some((pt, enc)) = rtpmap.split_once(' ')
                && enc.to_ascii_lowercase().starts_with("opus/")
            {
                opus_pts.push(pt);
            }
        } else if let Some(fmtp) = line.strip_prefix("a=fmtp:")
            && let Some(pair) = fmtp.split_once(' ')
        {
            fmtps.push(pair);
        }
    }
    fmtps.iter().any(|(pt, params)| {
        opus_pts.contains(pt)
            && params.split(';').any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("usedtx") && v.trim() == "1"
                })
            })
    })
}

/// The receiver's ICE username fragment of a STUN Binding request (RFC 5389 §6, §15.3;
/// RFC 8445 §7.2.2): the part of `USERNAME` before the colon. `None` for anything that
/// is not a STUN request carrying a well-formed `USERNAME`. Never panics on input.
pub fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    const USERNAME: u16 = 0x0006;
    // RFC 7983 §7: STUN's first byte is 0..=3; a request has class bits 00.
    let header = data.get(..20)?;
    if header[0] > 3 || header[4..8] != MAGIC_COOKIE {
        return None;
    }
    let msg_type = u16::from_be_bytes([header[0], header[1]]);
    if msg_type & 0x0110 != 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let body = data.get(20..20 + len)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let alen = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + alen)?;
        if kind == USERNAME {
            let name = std::str::from_utf8(value).ok()?;
            let (local, _) = name.split_once(':')?;
            return (!local.is_empty()).then_some(local);
        }
        let padded = (alen + 3) & !3;
        rest = rest.get(4 + padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_dtx_is_read_from_the_audio_sections_opus_fmtp() {
        let offer = |fmtp: &str| {
            format!(
                "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:0\r\n\
                 a=rtpmap:111 opus/48000/2\r\na=fmtp:111 {fmtp}\r\n\
                 a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n\
                 m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n\
                 a=fmtp:96 usedtx=1\r\n"
            )
        };
        assert!(offer_asks_opus_dtx(&offer(
            "minptime=10;useinbandfec=1;usedtx=1"
        )));
        assert!(offer_asks_opus_dtx(&offer("minptime=10; UseDTX=1")));
        // Chrome's default: no usedtx. The video section's fmtp does not count.
        assert!(!offer_asks_opus_dtx(&offer("minptime=10;useinbandfec=1")));
        assert!(!offer_asks_opus_dtx(&offer("usedtx=0")));
        assert!(!offer_asks_opus_dtx(
            "m=audio 9 RTP/AVP 0\r\na=fmtp:0 usedtx=1\r\n"
        ));
        assert!(!offer_asks_opus_dtx(""));
    }

    fn binding_request(username: &[u8]) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&0x0006u16.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        // A PRIORITY attribute after it, to check the walk.
        attr.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn ufrag_is_read_from_a_binding_request() {
        let m = binding_request(b"serverUfrag:browser");
        assert_eq!(stun_local_ufrag(&m), Some("serverUfrag"));
    }

    #[test]
    fn junk_and_responses_yield_no_ufrag() {
        let mut resp = binding_request(b"a:b");
        resp[1] = 0x01;
        resp[0] = 0x01; // Binding success response (0x0101)
        assert_eq!(stun_local_ufrag(&resp), None);
        assert_eq!(stun_local_ufrag(&binding_request(b"nocolon")), None);
        assert_eq!(stun_local_ufrag(&binding_request(b":b")), None);
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None, "RTP");
        let mut short = binding_request(b"a:b");
        short.truncate(26);
        assert_eq!(stun_local_ufrag(&short), None, "truncated");
        for n in 0..64 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            let _ = stun_local_ufrag(&bytes);
        }
    }
}
