//! One meeting's media: legs around a mixer.

mod bridge;
mod player;
mod renegotiate;
mod tap;
mod video;

pub use player::Prompt;
pub use tap::{MAX_AUDIO, TapTrack};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::leg::{Direction, Leg, LegConfig, LegId, LegStats, Transmit, rtcp_interval};
use crate::webrtc::{WebRtcEvent, WebRtcLeg};
use codec::Codec;
use codec::telephone_event::{DtmfEvent, event_char};
use mixer::{Media, Mixer, MixerConfig, MixerEvent, ParticipantConfig, ParticipantId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtp::jitter::JitterConfig;
use rtp::srtp::SrtpError;
use rtp::stats::{NtpClock, SenderStats};

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
    #[error("leg {0} is not a WebRTC leg")]
    NotWebRtc(LegId),
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
    /// A digit for this leg of a bridge was dropped: it negotiated no telephone-event.
    /// Reported once per leg.
    DtmfNotSupported { leg: LegId },
    /// The prompt playing to `leg` ended: played to its end, or `interrupted` (replaced,
    /// stopped). See [`MeetingMedia::play`].
    PlayDone { leg: LegId, interrupted: bool },
    /// 20 ms of a tapped leg's audio at `rate` Hz: `incoming` what it sent us (decoded),
    /// `outgoing` what we sent it (before encoding); a track not tapped is empty. These
    /// come after the other events queued. See [`MeetingMedia::set_tap`].
    Audio {
        leg: LegId,
        rate: u32,
        incoming: Vec<i16>,
        outgoing: Vec<i16>,
    },
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
    /// Set for a two-party bridge ([`MeetingMedia::set_bridge`]).
    bridge: Option<Box<bridge::Bridge>>,
    /// Legs a prompt is playing to ([`MeetingMedia::play`]).
    prompts: BTreeSet<LegId>,
    taps: tap::Taps,
    /// Video between browsers ([`MeetingMedia::set_video_routes`]).
    video: video::VideoRoutes,
}

fn jitter_config(cfg: &EngineConfig, codec: Codec) -> JitterConfig {
    let mut j = JitterConfig::new(codec.rtp_clock_rate());
    j.min_delay = cfg.jitter_min;
    j.initial_delay = cfg.jitter_initial.max(cfg.jitter_min);
    j.max_delay = cfg.jitter_max.max(j.initial_delay);
    j
}
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
            bridge: None,
            prompts: BTreeSet::new(),
            taps: tap::Taps::default(),
            video: video::VideoRoutes::default(),
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
        let contexts = Leg::srtp_contexts(&cfg.srtp)?;
        let mut pc = ParticipantConfig::rtp(cfg.codec);
        pc.muted = cfg.muted;
        pc.dtx = cfg.dtx;
        pc.jitter = Some(self.jitter_config(cfg.codec));
        let participant = self.mixer.add_participant(pc)?;
        let id = LegId(self.next_id);
        self.next_id += 1;
        self.by_participant.insert(participant, id);
        let leg = Leg::new(now, cfg, participant, contexts, &mut self.rng);
        self.legs.insert(id, leg);
        self.refresh_mode();
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
            dtmf_out: None,
            remote_ptime: None,
            srtp: None,
            remote_rtp: None,
            remote_rtcp: None,
            rtcp_mux: true,
            direction: Direction::SENDRECV,
            muted,
            dtx: crate::webrtc::offer_asks_opus_dtx(sdp_offer),
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
        self.refresh_mode();
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
        let stats = self.take_leg(leg)?;
        self.prompts.remove(&leg);
        self.taps.forget(leg);
        self.video.leg_removed(leg);
        self.bridge_leg_removed(leg);
        Some(stats)
    }

    fn take_leg(&mut self, leg: LegId) -> Option<LegStats> {
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
        Some(l.final_stats())
    }

    pub fn leg_stats(&self, leg: LegId) -> Option<LegStats> {
        self.legs.get(&leg).map(Leg::final_stats)
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
        if cfg.codec != l.cfg.codec || cfg.dtx != l.cfg.dtx {
            let mut pc = ParticipantConfig::rtp(cfg.codec);
            pc.muted = self.mixer.is_muted(l.participant)?;
            pc.dtx = cfg.dtx;
            pc.jitter = Some(jitter_config(&self.cfg, cfg.codec));
            self.mixer.reconfigure(l.participant, pc)?;
        }
        if cfg.codec != l.cfg.codec {
            l.sender = SenderStats::new(l.ssrc, cfg.codec.rtp_clock_rate());
            l.reception = None;
            l.ts_base = self.rng.random();
        }
        l.renegotiate(now, cfg)?;
        self.refresh_mode();
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

    /// The leg's audio capability: whether its audio may reach the others (`send`) and
    /// theirs may reach it (`receive`). A leg that may not receive still gets a frame of
    /// silence every tick. Effective at the next mixer tick.
    pub fn set_audio_flow(
        &mut self,
        leg: LegId,
        send: bool,
        receive: bool,
    ) -> Result<(), EngineError> {
        let l = self.legs.get(&leg).ok_or(EngineError::UnknownLeg(leg))?;
        self.mixer.set_flow(l.participant, send, receive)?;
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
            self.forward_video(now, leg);
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        self.handle_rtp(now, leg, from, data, &mut scratch);
        self.scratch = scratch;
    }

    /// A datagram of a SIP leg: RTCP read, telephone-events reported, audio to the mixer
    /// (or, in a bridge, relayed or passed on to the other leg).
    fn handle_rtp(
        &mut self,
        now: Instant,
        leg: LegId,
        from: SocketAddr,
        data: &[u8],
        scratch: &mut Vec<u8>,
    ) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let Some(pkt) = l.receive(now, from, data, self.cfg.media_latch, scratch, &self.ntp) else {
            return;
        };
        let mut events = None;
        if Some(pkt.payload_type()) == l.cfg.dtmf_payload_type {
            if l.dtmf
                .handle_packet(pkt.timestamp(), pkt.payload())
                .is_err()
            {
                return;
            }
            // The events' own clock (telephone-event/8000 may go beside Opus at 48 kHz).
            let rate = l
                .cfg
                .dtmf_out
                .map_or(l.cfg.codec.rtp_clock_rate(), |f| f.clock_rate)
                .max(1);
            let mut got = Vec::new();
            while let Some(ev) = l.dtmf.poll_event() {
                got.push(ev);
                if let DtmfEvent::End {
                    event, duration, ..
                } = ev
                    && let Some(digit) = event_char(event)
                    && self.events.len() < MAX_EVENTS
                {
                    let duration_ms = (u64::from(duration) * 1000 / u64::from(rate)) as u32;
                    self.events.push_back(EngineEvent::Dtmf {
                        leg,
                        digit,
                        duration_ms,
                    });
                }
            }
            events = Some(got);
        } else {
            l.note_reception(now, &pkt);
        }
        if !l.cfg.direction.recv {
            return;
        }
        let participant = l.participant;
        if self.bridge.is_some() && self.bridge_packet(now, leg, &pkt, events.as_deref()) {
            return;
        }
        if events.is_some() {
            return;
        }
        let _ = self.mixer.push_rtp(
            now,
            participant,
            pkt.sequence_number(),
            pkt.timestamp(),
            pkt.ssrc(),
            pkt.payload(),
        );
    }

    /// The next instant [`MeetingMedia::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.next_inactivity_check;
        // A relaying bridge has no mix to make.
        if !self.is_relaying() {
            t = t.min(self.mixer.poll_timeout());
        }
        if let Some(due) = self.events_due() {
            t = t.min(due);
        }
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
        self.pump_events(now);
        if !self.is_relaying() {
            self.wake_mixer(now);
            self.mixer.handle_timeout(now);
        }
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
            let Some((dest, bytes)) = l.write_frame(
                now,
                frame.marker,
                frame.timestamp,
                payload,
                &mut self.rtp_buf,
            ) else {
                continue;
            };
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
        self.collect_played();
        self.collect_taps();
        if now >= self.next_inactivity_check {
            self.next_inactivity_check = now + Duration::from_secs(1);
            for (id, l) in &mut self.legs {
                // str0m sends a WebRTC leg's RTCP itself.
                if l.webrtc.is_none() && now >= l.next_rtcp {
                    l.next_rtcp = now + rtcp_interval(&mut self.rng);
                    if let Some(t) = l.rtcp_report(*id, &self.ntp, &self.cname, now)
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

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front().or_else(|| self.taps.pop())
    }
}
