//! One meeting's media: legs around a mixer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::webrtc::{WebRtcEvent, WebRtcLeg};
use codec::Codec;
use codec::telephone_event::{DtmfEvent, EventReceiver, event_char};
use mixer::{Media, Mixer, MixerConfig, MixerEvent, ParticipantConfig, ParticipantId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtp::jitter::JitterConfig;
use rtp::packet::{RtpPacket, RtpWriter, is_rtcp};
use rtp::rtcp::{RtcpPacket, parse_compound, sdes_item, write_sdes};
use rtp::srtp::{SrtpContext, SrtpError, SrtpSuite};
use rtp::stats::{
    NtpClock, ReceptionStats, SenderStats, round_trip_time, write_receiver_report,
    write_sender_report,
};

/// Names a leg of this meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(u64);

impl std::fmt::Display for LegId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "leg-{}", self.0)
    }
}

/// Keys of an SDES-SRTP leg (RFC 4568): the peer's, to decrypt what it sends, and ours, to
/// encrypt what we send. Never printed.
#[derive(Clone)]
pub struct SrtpKeys {
    pub suite: SrtpSuite,
    pub remote_key: Vec<u8>,
    pub remote_salt: Vec<u8>,
    pub local_key: Vec<u8>,
    pub local_salt: Vec<u8>,
}

impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// Media direction from our side (RFC 3264 §5.1), after offer/answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Direction {
    /// We send media to the leg.
    pub send: bool,
    /// We take media from the leg.
    pub recv: bool,
}

impl Direction {
    pub const SENDRECV: Direction = Direction {
        send: true,
        recv: true,
    };
}

/// One leg, as negotiated.
#[derive(Debug, Clone)]
pub struct LegConfig {
    pub codec: Codec,
    pub payload_type: u8,
    pub dtmf_payload_type: Option<u8>,
    pub srtp: Option<SrtpKeys>,
    /// The peer's RTP address as its SDP gives it (`None`: no usable address, e.g. `0.0.0.0`
    /// or a host name). Media is taken only from it and sent only to it, unless
    /// [`EngineConfig::media_latch`] lets the leg latch onto another source (NAT).
    pub remote_rtp: Option<SocketAddr>,
    /// The peer's RTCP address (`a=rtcp`, RFC 3605); `None` means the RTP port plus one,
    /// or the RTP address itself under rtcp-mux.
    pub remote_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    pub direction: Direction,
    pub muted: bool,
}

/// Meeting-wide settings.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Silence on the wire for this long ends a leg (RFC 3550 does not say; 30 s is common).
    pub inactivity: Duration,
    pub mixer: MixerConfig,
    /// Jitter-buffer bounds per leg: the buffer adapts between them from the measured
    /// transit-time spread. A clean network settles at `jitter_min`, which with one 20 ms
    /// mixer tick is most of the delay the server adds.
    pub jitter_min: Duration,
    pub jitter_initial: Duration,
    pub jitter_max: Duration,
    /// Symmetric-RTP latching (RFC 4961, "comedia") for peers behind NAT, whose SDP names an
    /// address their packets do not come from. The server's `--media-latch`; off by default.
    ///
    /// Off, a SIP leg takes RTP only from the address its SDP signalled (`remote_rtp`) and
    /// RTCP only from the signalled RTCP address (the RTP port plus one, or `a=rtcp`), the
    /// RTP address, or under rtcp-mux the RTP address alone, and sends only there. Packets
    /// from anywhere else are dropped unread and counted in [`LegStats::foreign_source`].
    /// A leg whose SDP gave no usable address (`0.0.0.0`, a host name) takes and sends
    /// nothing until a renegotiation gives one. The SSRC is not pinned: a PBX may switch
    /// streams (a transfer) without renegotiating, and the address already says who it is.
    ///
    /// On, a leg latches once: the first packet that authenticates (SRTP legs), parses and
    /// carries a negotiated payload type, from any source, moves the destination to that
    /// source and pins its SSRC. Afterwards only that source with that SSRC is taken (RTCP:
    /// from its IP address, the first RTCP port seen); other sources, and other SSRCs from
    /// the latched source, are dropped and counted as foreign. The address the SDP signalled
    /// stays trusted: a valid packet from it takes the leg back from whoever latched first,
    /// so latching weakens nothing for a peer that is not behind NAT once it has sent. A
    /// renegotiation ([`MeetingMedia::update_leg`]) unpins the SSRC, and forgets the latched
    /// address when the SDP signals a different one.
    ///
    /// Without SRTP, latching trusts the first packet that reaches the port: a third party
    /// that knows the port and sends first takes a NATed leg's audio. Hence off by default:
    /// a connector's PBX or SBC is expected at a public address, as Amazon's termination
    /// allow-list of public CIDRs assumes, and one behind NAT can signal its public address
    /// (Asterisk's `external_media_address`, FreeSWITCH's `ext-rtp-ip`). Such a call is told
    /// by its record (foreign packets, none received) and a warning when it ends; turn
    /// latching on when the PBXs cannot be fixed, preferably with SRTP.
    pub media_latch: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            inactivity: Duration::from_secs(30),
            mixer: MixerConfig::default(),
            jitter_min: Duration::from_millis(20),
            jitter_initial: Duration::from_millis(40),
            jitter_max: Duration::from_millis(200),
            media_latch: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("mixer: {0}")]
    Mixer(#[from] mixer::MixerError),
    #[error("SRTP keys refused: {0}")]
    Srtp(#[from] SrtpError),
    #[error("unknown leg {0}")]
    UnknownLeg(LegId),
    #[error("WebRTC: {0}")]
    WebRtc(#[from] crate::webrtc::WebRtcError),
}

/// Bytes for the driver to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub leg: LegId,
    pub dest: SocketAddr,
    /// RTCP (to the RTCP port unless muxed).
    pub rtcp: bool,
    pub bytes: Vec<u8>,
}

/// What the application hears about.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// A DTMF digit ended (RFC 4733), with its duration in milliseconds.
    Dtmf {
        leg: LegId,
        digit: char,
        duration_ms: u32,
    },
    /// No packet from the leg for [`EngineConfig::inactivity`].
    Inactive { leg: LegId },
    /// The loudest talkers changed (loudest first).
    ActiveSpeakers(Vec<LegId>),
    /// Periodic levels: (leg, Chime-style volume attenuation 0..=127, muted).
    Levels(Vec<(LegId, u8, bool)>),
    /// A WebRTC leg's ICE and DTLS are up: media flows.
    WebRtcConnected { leg: LegId },
}

/// What [`MeetingMedia::add_webrtc_leg`] returns.
#[derive(Debug, Clone)]
pub struct WebRtcAnswer {
    /// The new leg.
    pub leg: LegId,
    /// The SDP answer for the browser.
    pub sdp: String,
    /// The leg's ICE username fragment, which routes its first STUN request.
    pub ufrag: String,
}

/// Per-leg counters, for call records and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Packets refused by SRTP authentication or replay protection.
    pub srtp_failures: u64,
    /// Packets with a payload type we did not negotiate, or that do not parse.
    pub invalid: u64,
    pub rtcp_in: u64,
    /// RFC 3550 A.3 cumulative loss.
    pub lost: i64,
    /// RFC 3550 A.8 interarrival jitter, in milliseconds.
    pub jitter_ms: u32,
    pub rtcp_out: u64,
    /// Round-trip time from the peer's last report block about us (RFC 3550 §6.4.1).
    pub rtt_ms: Option<u32>,
    /// Datagrams dropped unread because of where they came from: a source other than the
    /// signalled (or latched) one, or, once latched, another SSRC from the latched source.
    /// See [`EngineConfig::media_latch`].
    pub foreign_source: u64,
}

struct Leg {
    cfg: LegConfig,
    participant: ParticipantId,
    rx: Option<SrtpContext>,
    /// The receive context before a re-key, kept for [`REKEY_GRACE`] so packets sent with
    /// the old key and still in flight are not refused (RFC 4568 §7.1.4).
    rx_previous: Option<(SrtpContext, Instant)>,
    tx: Option<SrtpContext>,
    /// Where the peer's RTP comes from, once latched ([`EngineConfig::media_latch`] only).
    latched: Option<SocketAddr>,
    /// The SSRC of the stream that latched: the only one taken from `latched`.
    latched_ssrc: Option<u32>,
    ssrc: u32,
    seq: u16,
    ts_base: u32,
    last_rx: Instant,
    inactive_reported: bool,
    reception: Option<ReceptionStats>,
    sender: SenderStats,
    next_rtcp: Instant,
    /// Where the peer's RTCP comes from (symmetric RTCP, RFC 4961), once latched.
    latched_rtcp: Option<SocketAddr>,
    dtmf: EventReceiver,
    stats: LegStats,
    /// A browser's PeerConnection: str0m does ICE, DTLS-SRTP, RTP and RTCP for this leg,
    /// and the fields above about SRTP, RTP framing and RTCP are unused.
    webrtc: Option<Box<WebRtcLeg>>,
}

impl Leg {
    /// Whether an RTP datagram from `from` may be read at all (before SRTP and parsing).
    /// See [`EngineConfig::media_latch`].
    fn rtp_source_ok(&self, latch: bool, from: SocketAddr) -> bool {
        let signalled = self.cfg.remote_rtp == Some(from);
        if !latch {
            return signalled;
        }
        match self.latched {
            None => true,
            Some(a) => a == from || signalled,
        }
    }

    /// Whether an RTCP datagram from `from` may be read at all.
    fn rtcp_source_ok(&self, latch: bool, from: SocketAddr) -> bool {
        let rtp = self.cfg.remote_rtp;
        if rtp == Some(from) || (latch && self.latched == Some(from)) {
            return true;
        }
        if self.cfg.rtcp_mux {
            return false;
        }
        let signalled = self
            .cfg
            .remote_rtcp
            .or_else(|| rtp.map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1))));
        if signalled == Some(from) {
            return true;
        }
        // Behind NAT the RTCP port's mapping is unknown: the latched peer's address, on the
        // first port its RTCP comes from.
        latch
            && self.latched.is_some_and(|a| a.ip() == from.ip())
            && self.latched_rtcp.is_none_or(|r| r == from)
    }
}

/// RFC 3550 §6.2: at least 5 s between reports, randomised by 0.5–1.5 (§6.3.1).
fn rtcp_interval(rng: &mut StdRng) -> Duration {
    Duration::from_millis(rng.random_range(2500..7500))
}

/// One meeting's media. See the crate documentation.
pub struct MeetingMedia {
    cfg: EngineConfig,
    mixer: Mixer,
    /// Ordered, so that legs are visited (and draw from `rng`) in the same order each run.
    legs: BTreeMap<LegId, Leg>,
    by_participant: HashMap<ParticipantId, LegId>,
    next_id: u64,
    out: VecDeque<Transmit>,
    events: VecDeque<EngineEvent>,
    scratch: Vec<u8>,
    rtp_buf: Vec<u8>,
    next_inactivity_check: Instant,
    ntp: NtpClock,
    cname: Vec<u8>,
    /// The DTLS certificate this meeting's WebRTC legs present, made at the first one.
    dtls_cert: Option<str0m::config::DtlsCert>,
    /// Every non-cryptographic random value of the meeting: SSRCs, first sequence numbers,
    /// RTP timestamp bases, RTCP intervals, the CNAME, and WebRTC legs' ICE credentials
    /// and str0m's own draws (see [`crate::webrtc`]).
    rng: StdRng,
}

fn jitter_config(cfg: &EngineConfig, codec: Codec) -> JitterConfig {
    let mut j = JitterConfig::new(codec.rtp_clock_rate());
    j.min_delay = cfg.jitter_min;
    j.initial_delay = cfg.jitter_initial.max(cfg.jitter_min);
    j.max_delay = cfg.jitter_max.max(j.initial_delay);
    j
}

/// How long the receive key before a re-key stays usable.
const REKEY_GRACE: Duration = Duration::from_secs(2);

/// Most transmits queued when the driver does not drain (a frame per leg per tick fits).
const MAX_OUT: usize = 4096;
const MAX_EVENTS: usize = 256;

impl MeetingMedia {
    /// `wallclock` is the time since the Unix epoch at `now` (for RTCP NTP timestamps).
    ///
    /// `seed` seeds every random value the meeting makes (SSRCs, sequence numbers, RTP
    /// timestamps, ICE credentials, …; the DTLS certificate and handshake excepted, see
    /// [`crate::webrtc`]): the same seed and the same inputs give the same output. Pass a
    /// random number: SSRCs and ICE credentials must differ across meetings, and a WebRTC
    /// leg's ufrag must be unguessable.
    pub fn new(now: Instant, wallclock: Duration, cfg: EngineConfig, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        MeetingMedia {
            ntp: NtpClock::new(now, wallclock),
            cname: format!("vc-{:08x}@voice-connector", rng.random::<u32>()).into_bytes(),
            rng,
            mixer: Mixer::new(cfg.mixer, now),
            cfg,
            legs: BTreeMap::new(),
            by_participant: HashMap::new(),
            next_id: 1,
            out: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::with_capacity(1500),
            rtp_buf: Vec::with_capacity(1500),
            next_inactivity_check: now + Duration::from_secs(1),
            dtls_cert: None,
        }
    }

    fn jitter_config(&self, codec: Codec) -> JitterConfig {
        jitter_config(&self.cfg, codec)
    }

    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    /// Adds a leg; its audio joins the mix and it hears everyone else.
    pub fn add_leg(&mut self, now: Instant, cfg: LegConfig) -> Result<LegId, EngineError> {
        let (rx, tx) = match &cfg.srtp {
            Some(k) => (
                Some(SrtpContext::new(k.suite, &k.remote_key, &k.remote_salt)?),
                Some(SrtpContext::new(k.suite, &k.local_key, &k.local_salt)?),
            ),
            None => (None, None),
        };
        let mut pc = ParticipantConfig::rtp(cfg.codec);
        pc.muted = cfg.muted;
        pc.jitter = Some(self.jitter_config(cfg.codec));
        let participant = self.mixer.add_participant(pc)?;
        let id = LegId(self.next_id);
        self.next_id += 1;
        self.by_participant.insert(participant, id);
        let ssrc: u32 = self.rng.random();
        let seq: u16 = self.rng.random();
        let ts_base: u32 = self.rng.random();
        let next_rtcp = now + rtcp_interval(&mut self.rng);
        let clock = cfg.codec.rtp_clock_rate();
        self.legs.insert(
            id,
            Leg {
                participant,
                rx,
                rx_previous: None,
                tx,
                latched: None,
                latched_ssrc: None,
                ssrc,
                sender: SenderStats::new(ssrc, clock),
                next_rtcp,
                latched_rtcp: None,
                seq,
                ts_base,
                last_rx: now,
                inactive_reported: false,
                reception: None,
                dtmf: EventReceiver::new(),
                stats: LegStats::default(),
                cfg,
                webrtc: None,
            },
        );
        Ok(id)
    }

    /// Adds a browser attendee: answers its SDP offer (see [`crate::webrtc`]) and adds a
    /// leg whose Opus joins the mix and who hears everyone else as one continuous Opus
    /// stream of 20 ms frames. `local` is the shared WebRTC socket's address as the
    /// browser reaches it. Its datagrams go to [`MeetingMedia::handle_packet`] like any
    /// leg's; its transmits come out of [`MeetingMedia::poll_transmit`].
    pub fn add_webrtc_leg(
        &mut self,
        now: Instant,
        sdp_offer: &str,
        local: SocketAddr,
        muted: bool,
    ) -> Result<WebRtcAnswer, EngineError> {
        if self.dtls_cert.is_none() {
            self.dtls_cert = crate::webrtc::generate_certificate();
        }
        let (webrtc, sdp) =
            WebRtcLeg::accept_offer(now, sdp_offer, local, self.dtls_cert.clone(), &mut self.rng)?;
        let ufrag = webrtc.ufrag().to_string();
        let cfg = LegConfig {
            codec: Codec::Opus(codec::Channels::Mono),
            payload_type: 111,
            dtmf_payload_type: None,
            srtp: None,
            remote_rtp: None,
            remote_rtcp: None,
            rtcp_mux: true,
            direction: Direction::SENDRECV,
            muted,
        };
        let leg = self.add_leg(now, cfg)?;
        if let Some(l) = self.legs.get_mut(&leg) {
            l.webrtc = Some(Box::new(webrtc));
            Self::drain_webrtc(
                now,
                leg,
                l,
                &mut self.mixer,
                &mut self.out,
                &mut self.events,
            );
        }
        Ok(WebRtcAnswer { leg, sdp, ufrag })
    }

    /// Moves what a WebRTC leg produced: datagrams to the transmit queue, audio to the
    /// mixer, state changes to events.
    fn drain_webrtc(
        now: Instant,
        id: LegId,
        l: &mut Leg,
        mixer: &mut Mixer,
        out: &mut VecDeque<Transmit>,
        events: &mut VecDeque<EngineEvent>,
    ) {
        let Some(w) = l.webrtc.as_mut() else {
            return;
        };
        while let Some((dest, bytes)) = w.poll_transmit() {
            l.stats.bytes_out += bytes.len() as u64;
            if out.len() < MAX_OUT {
                out.push_back(Transmit {
                    leg: id,
                    dest,
                    rtcp: false,
                    bytes,
                });
            }
        }
        while let Some(a) = w.poll_audio() {
            l.stats.packets_in += 1;
            if l.cfg.direction.recv {
                // The SSRC is the leg's: one browser sends one audio stream.
                if mixer
                    .push_rtp(now, l.participant, a.seq, a.timestamp, 0, &a.payload)
                    .is_err()
                {
                    l.stats.invalid += 1;
                }
            }
        }
        while let Some(ev) = w.poll_event() {
            let ev = match ev {
                WebRtcEvent::Connected => EngineEvent::WebRtcConnected { leg: id },
                WebRtcEvent::Disconnected => {
                    l.inactive_reported = true;
                    EngineEvent::Inactive { leg: id }
                }
            };
            if events.len() < MAX_EVENTS {
                events.push_back(ev);
            }
        }
    }

    /// Removes a leg and returns its final counters.
    pub fn remove_leg(&mut self, leg: LegId) -> Option<LegStats> {
        let mut l = self.legs.remove(&leg)?;
        if let Some(w) = l.webrtc.as_mut() {
            w.close();
            while let Some((dest, bytes)) = w.poll_transmit() {
                if self.out.len() < MAX_OUT {
                    self.out.push_back(Transmit {
                        leg,
                        dest,
                        rtcp: false,
                        bytes,
                    });
                }
            }
        }
        self.by_participant.remove(&l.participant);
        let _ = self.mixer.remove_participant(l.participant);
        Some(Self::finish_stats(&l))
    }

    fn finish_stats(l: &Leg) -> LegStats {
        let mut s = l.stats;
        if let Some(r) = &l.reception {
            s.lost = r.cumulative_lost();
            let rate = l.cfg.codec.rtp_clock_rate().max(1);
            s.jitter_ms = (u64::from(r.jitter()) * 1000 / u64::from(rate)) as u32;
        }
        s
    }

    pub fn leg_stats(&self, leg: LegId) -> Option<LegStats> {
        self.legs.get(&leg).map(Self::finish_stats)
    }

    /// Applies a new negotiation to a leg (re-INVITE or UPDATE, RFC 3264 §8): codec and
    /// payload types, SRTP keys, addresses and direction. The leg keeps its SSRC and sequence;
    /// a codec change restarts its decoding and its RTP timeline (the mixer sets the marker).
    pub fn update_leg(
        &mut self,
        now: Instant,
        leg: LegId,
        cfg: LegConfig,
    ) -> Result<(), EngineError> {
        let l = self
            .legs
            .get_mut(&leg)
            .ok_or(EngineError::UnknownLeg(leg))?;
        if cfg.codec != l.cfg.codec {
            let mut pc = ParticipantConfig::rtp(cfg.codec);
            pc.muted = self.mixer.is_muted(l.participant)?;
            pc.jitter = Some(jitter_config(&self.cfg, cfg.codec));
            self.mixer.reconfigure(l.participant, pc)?;
            l.sender = SenderStats::new(l.ssrc, cfg.codec.rtp_clock_rate());
            l.reception = None;
            l.ts_base = self.rng.random();
        }
        let same_keys = |a: &Option<SrtpKeys>, b: &Option<SrtpKeys>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.suite == b.suite
                    && a.remote_key == b.remote_key
                    && a.remote_salt == b.remote_salt
                    && a.local_key == b.local_key
                    && a.local_salt == b.local_salt
            }
            _ => false,
        };
        if !same_keys(&l.cfg.srtp, &cfg.srtp) {
            let (rx, tx) = match &cfg.srtp {
                Some(k) => (
                    Some(SrtpContext::new(k.suite, &k.remote_key, &k.remote_salt)?),
                    Some(SrtpContext::new(k.suite, &k.local_key, &k.local_salt)?),
                ),
                None => (None, None),
            };
            l.rx_previous = std::mem::replace(&mut l.rx, rx).map(|old| (old, now + REKEY_GRACE));
            l.tx = tx;
        }
        // A renegotiation may start a new stream (SSRC); a newly signalled address replaces
        // whatever was latched (a hold to 0.0.0.0 keeps it).
        l.latched_ssrc = None;
        if cfg.remote_rtp.is_some()
            && (cfg.remote_rtp != l.cfg.remote_rtp
                || cfg.remote_rtcp != l.cfg.remote_rtcp
                || cfg.rtcp_mux != l.cfg.rtcp_mux)
        {
            l.latched = None;
            l.latched_rtcp = None;
        }
        l.cfg = cfg;
        Ok(())
    }

    /// Hold and resume (RFC 3264 §8.4): changes what flows, keeps the leg.
    pub fn set_direction(&mut self, leg: LegId, d: Direction) -> Result<(), EngineError> {
        let l = self
            .legs
            .get_mut(&leg)
            .ok_or(EngineError::UnknownLeg(leg))?;
        l.cfg.direction = d;
        Ok(())
    }

    pub fn set_muted(&mut self, leg: LegId, muted: bool) -> Result<(), EngineError> {
        let l = self.legs.get(&leg).ok_or(EngineError::UnknownLeg(leg))?;
        self.mixer.set_muted(l.participant, muted)?;
        Ok(())
    }

    /// A datagram that arrived on `leg`'s RTP (or RTCP) port from `from`.
    pub fn handle_packet(&mut self, now: Instant, leg: LegId, from: SocketAddr, data: &[u8]) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.webrtc.is_some() {
            if let Some(w) = l.webrtc.as_mut() {
                w.handle_receive(now, from, data);
            }
            l.last_rx = now;
            l.inactive_reported = false;
            Self::drain_webrtc(
                now,
                leg,
                l,
                &mut self.mixer,
                &mut self.out,
                &mut self.events,
            );
            return;
        }
        // Where it came from decides first: nothing from a foreign source is read further.
        let latch = self.cfg.media_latch;
        let rtcp = is_rtcp(data);
        let source_ok = if rtcp {
            l.rtcp_source_ok(latch, from)
        } else {
            l.rtp_source_ok(latch, from)
        };
        if !source_ok {
            l.stats.foreign_source += 1;
            return;
        }
        if data.len() < 12 {
            l.stats.invalid += 1;
            return;
        }
        if rtcp {
            let plain: &[u8] = match &mut l.rx {
                Some(ctx) => {
                    let ok = ctx.unprotect_rtcp(data, &mut self.scratch).is_ok()
                        || l.rx_previous
                            .as_mut()
                            .filter(|(_, until)| now < *until)
                            .is_some_and(|(old, _)| {
                                old.unprotect_rtcp(data, &mut self.scratch).is_ok()
                            });
                    if !ok {
                        l.stats.srtp_failures += 1;
                        return;
                    }
                    &self.scratch
                }
                None => data,
            };
            l.stats.rtcp_in += 1;
            l.last_rx = now;
            l.inactive_reported = false;
            if latch && !l.cfg.rtcp_mux && l.latched_rtcp.is_none() {
                l.latched_rtcp = Some(from);
            }
            for item in parse_compound(plain) {
                let Ok((pkt, _)) = item else { break };
                let blocks = match pkt {
                    RtcpPacket::SenderReport(sr) => {
                        if let Some(r) = &mut l.reception {
                            r.on_sender_report(now, sr.info.ntp_timestamp);
                        }
                        Some(sr.report_blocks())
                    }
                    RtcpPacket::ReceiverReport(rr) => Some(rr.report_blocks()),
                    _ => None,
                };
                for b in blocks.into_iter().flatten() {
                    if b.ssrc == l.ssrc
                        && let Some(rtt) = round_trip_time(&b, &self.ntp, now)
                    {
                        l.stats.rtt_ms = Some(rtt.as_millis().min(u128::from(u32::MAX)) as u32);
                    }
                }
            }
            return;
        }
        let plain: &[u8] = match &mut l.rx {
            Some(ctx) => {
                let ok = ctx.unprotect_rtp(data, &mut self.scratch).is_ok()
                    || l.rx_previous
                        .as_mut()
                        .filter(|(_, until)| now < *until)
                        .is_some_and(|(old, _)| old.unprotect_rtp(data, &mut self.scratch).is_ok());
                if !ok {
                    l.stats.srtp_failures += 1;
                    return;
                }
                &self.scratch
            }
            None => data,
        };
        let Ok(pkt) = RtpPacket::parse(plain) else {
            l.stats.invalid += 1;
            return;
        };
        // Once latched, only the stream that latched is taken from that source, until a
        // renegotiation unpins it.
        let from_latched = latch && l.latched == Some(from);
        if from_latched && l.latched_ssrc.is_some_and(|s| s != pkt.ssrc()) {
            l.stats.foreign_source += 1;
            return;
        }
        let established = !latch || from_latched;
        let pt = pkt.payload_type();
        if pt != l.cfg.payload_type && Some(pt) != l.cfg.dtmf_payload_type {
            l.stats.invalid += 1;
            if established {
                // The peer's own (comfort noise, say): it is alive, and it latches nothing.
                l.last_rx = now;
                l.inactive_reported = false;
                l.stats.packets_in += 1;
                l.stats.bytes_in += data.len() as u64;
            }
            return;
        }
        // Symmetric RTP (RFC 4961), when allowed: answer to where valid media comes from.
        if latch && (!from_latched || l.latched_ssrc.is_none()) {
            if l.latched.is_some_and(|a| a != from) {
                // Taken back by the signalled address: the earlier source's stream and
                // RTCP port are not this peer's.
                l.latched_rtcp = None;
                l.reception = None;
            }
            l.latched = Some(from);
            l.latched_ssrc = Some(pkt.ssrc());
        }
        l.last_rx = now;
        l.inactive_reported = false;
        l.stats.packets_in += 1;
        l.stats.bytes_in += data.len() as u64;
        if Some(pt) == l.cfg.dtmf_payload_type {
            if l.dtmf.handle_packet(pkt.timestamp(), pkt.payload()).is_ok() {
                while let Some(ev) = l.dtmf.poll_event() {
                    if let DtmfEvent::End {
                        event, duration, ..
                    } = ev
                        && let Some(digit) = event_char(event)
                    {
                        let rate = l.cfg.codec.rtp_clock_rate().max(1);
                        let duration_ms = (u64::from(duration) * 1000 / u64::from(rate)) as u32;
                        if self.events.len() < MAX_EVENTS {
                            self.events.push_back(EngineEvent::Dtmf {
                                leg,
                                digit,
                                duration_ms,
                            });
                        }
                    }
                }
            }
            return;
        }
        match &mut l.reception {
            Some(r) => {
                r.on_rtp(now, pkt.sequence_number(), pkt.timestamp());
            }
            None => {
                l.reception = Some(ReceptionStats::new(
                    pkt.ssrc(),
                    l.cfg.codec.rtp_clock_rate(),
                    pkt.sequence_number(),
                    now,
                ));
            }
        }
        if !l.cfg.direction.recv {
            return;
        }
        let _ = self.mixer.push_rtp(
            now,
            l.participant,
            pkt.sequence_number(),
            pkt.timestamp(),
            pkt.ssrc(),
            pkt.payload(),
        );
    }

    /// The next instant [`MeetingMedia::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.mixer.poll_timeout().min(self.next_inactivity_check);
        for l in self.legs.values() {
            if let Some(due) = l.webrtc.as_ref().and_then(|w| w.poll_timeout()) {
                t = t.min(due);
            }
        }
        t
    }

    /// Runs due mixer ticks and checks for inactive legs. Early calls do nothing harmful.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (id, l) in &mut self.legs {
            if let Some(w) = l.webrtc.as_mut()
                && w.poll_timeout().is_some_and(|due| due <= now)
            {
                w.handle_timeout(now);
                Self::drain_webrtc(
                    now,
                    *id,
                    l,
                    &mut self.mixer,
                    &mut self.out,
                    &mut self.events,
                );
            }
        }
        self.mixer.handle_timeout(now);
        while let Some(frame) = self.mixer.poll_output() {
            let Some(leg_id) = self.by_participant.get(&frame.participant).copied() else {
                continue;
            };
            let Some(l) = self.legs.get_mut(&leg_id) else {
                continue;
            };
            let Media::Encoded { payload, .. } = &frame.media else {
                continue;
            };
            if !l.cfg.direction.send {
                continue;
            }
            if l.webrtc.is_some() {
                if let Some(w) = l.webrtc.as_mut()
                    && w.write_audio(now, frame.timestamp, payload)
                {
                    l.stats.packets_out += 1;
                }
                Self::drain_webrtc(
                    now,
                    leg_id,
                    l,
                    &mut self.mixer,
                    &mut self.out,
                    &mut self.events,
                );
                continue;
            }
            let Some(dest) = l.latched.or(l.cfg.remote_rtp) else {
                continue;
            };
            let writer = RtpWriter {
                marker: frame.marker,
                payload_type: l.cfg.payload_type,
                sequence_number: l.seq,
                timestamp: l.ts_base.wrapping_add(frame.timestamp),
                ssrc: l.ssrc,
                csrcs: &[],
                extension: None,
                padding: 0,
            };
            l.seq = l.seq.wrapping_add(1);
            if writer.write(payload, &mut self.rtp_buf).is_err() {
                continue;
            }
            let bytes = match &mut l.tx {
                Some(ctx) => {
                    let mut protected = Vec::with_capacity(self.rtp_buf.len() + 16);
                    if ctx.protect_rtp(&self.rtp_buf, &mut protected).is_err() {
                        continue;
                    }
                    protected
                }
                None => self.rtp_buf.clone(),
            };
            l.sender.on_rtp_sent(now, writer.timestamp, payload.len());
            l.stats.packets_out += 1;
            l.stats.bytes_out += bytes.len() as u64;
            if self.out.len() < MAX_OUT {
                self.out.push_back(Transmit {
                    leg: leg_id,
                    dest,
                    rtcp: false,
                    bytes,
                });
            }
        }
        while let Some(ev) = self.mixer.poll_event() {
            let ev = match ev {
                MixerEvent::ActiveSpeakersChanged(ps) => EngineEvent::ActiveSpeakers(
                    ps.iter()
                        .filter_map(|p| self.by_participant.get(p).copied())
                        .collect(),
                ),
                MixerEvent::Levels(levels) => EngineEvent::Levels(
                    levels
                        .iter()
                        .filter_map(|l| {
                            self.by_participant
                                .get(&l.participant)
                                .map(|id| (*id, l.volume, l.muted))
                        })
                        .collect(),
                ),
                _ => continue,
            };
            if self.events.len() < MAX_EVENTS {
                self.events.push_back(ev);
            }
        }
        if now >= self.next_inactivity_check {
            self.next_inactivity_check = now + Duration::from_secs(1);
            for (id, l) in &mut self.legs {
                // str0m sends a WebRTC leg's RTCP itself.
                if l.webrtc.is_none() && now >= l.next_rtcp {
                    l.next_rtcp = now + rtcp_interval(&mut self.rng);
                    if let Some(t) = Self::rtcp_report(*id, l, &self.ntp, &self.cname, now)
                        && self.out.len() < MAX_OUT
                    {
                        l.stats.rtcp_out += 1;
                        self.out.push_back(t);
                    }
                }
                if !l.inactive_reported
                    && now.saturating_duration_since(l.last_rx) >= self.cfg.inactivity
                {
                    l.inactive_reported = true;
                    if self.events.len() < MAX_EVENTS {
                        self.events.push_back(EngineEvent::Inactive { leg: *id });
                    }
                }
            }
        }
    }

    /// A compound SR or RR with SDES CNAME (RFC 3550 §6.1), SRTCP-protected for SRTP legs.
    fn rtcp_report(
        id: LegId,
        l: &mut Leg,
        ntp: &NtpClock,
        cname: &[u8],
        now: Instant,
    ) -> Option<Transmit> {
        let dest = if l.cfg.rtcp_mux {
            l.latched.or(l.cfg.remote_rtp)?
        } else {
            let plus_one = |a: SocketAddr| SocketAddr::new(a.ip(), a.port().wrapping_add(1));
            // Latched elsewhere than the SDP said (NAT): the signalled RTCP address is as
            // unreachable as the signalled RTP one.
            let nat = l.latched.filter(|a| Some(*a) != l.cfg.remote_rtp);
            l.latched_rtcp
                .or(nat.map(plus_one))
                .or(l.cfg.remote_rtcp)
                .or(l.cfg.remote_rtp.map(plus_one))?
        };
        let mut plain = Vec::with_capacity(128);
        let report = if l.stats.packets_out > 0 {
            write_sender_report(&mut plain, &l.sender, ntp, l.reception.as_mut(), now)
        } else {
            write_receiver_report(&mut plain, l.ssrc, l.reception.as_mut(), now)
        };
        report.ok()?;
        let mut sdes = Vec::with_capacity(64);
        write_sdes(&mut sdes, &[(l.ssrc, &[(sdes_item::CNAME, cname)])]).ok()?;
        plain.extend_from_slice(&sdes);
        let bytes = match &mut l.tx {
            Some(ctx) => {
                let mut out = Vec::with_capacity(plain.len() + 32);
                ctx.protect_rtcp(&plain, &mut out).ok()?;
                out
            }
            None => plain,
        };
        Some(Transmit {
            leg: id,
            dest,
            rtcp: !l.cfg.rtcp_mux,
            bytes,
        })
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }
}
