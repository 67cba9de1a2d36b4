//! One leg of a meeting: what was negotiated, its SRTP contexts, RTP framing and RTCP
//! reports, its counters, and where its media may come from (the source check and
//! symmetric-RTP latching, see [`crate::EngineConfig::media_latch`]). The meeting
//! (`meeting.rs`) owns the legs and moves audio between them and the mixer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use codec::Codec;
use codec::telephone_event::EventReceiver;
use mixer::ParticipantId;
use rand::Rng;
use rand::rngs::StdRng;
use rtp::packet::{RtpPacket, RtpWriter, is_rtcp};
use rtp::rtcp::{RtcpPacket, parse_compound, sdes_item, write_sdes};
use rtp::srtp::{SrtpContext, SrtpError, SrtpSuite};
use rtp::stats::{
    NtpClock, ReceptionStats, SenderStats, round_trip_time, write_receiver_report,
    write_sender_report,
};

use crate::webrtc::WebRtcLeg;

/// Names a leg of this meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub(crate) u64);

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

/// RFC 4733 telephone-event as negotiated for what we send to a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfFormat {
    /// The payload type the peer asked for (may differ from the one it sends with).
    pub payload_type: u8,
    /// Its RTP clock rate (8000, or 48000 beside Opus).
    pub clock_rate: u32,
}

/// One leg, as negotiated.
#[derive(Debug, Clone)]
pub struct LegConfig {
    pub codec: Codec,
    pub payload_type: u8,
    /// The telephone-event payload type the peer sends with.
    pub dtmf_payload_type: Option<u8>,
    /// Telephone-event towards the peer; `None`: it takes no RFC 4733 events.
    pub dtmf_out: Option<DtmfFormat>,
    /// The packetisation the peer asked for (`a=ptime`), if it said.
    pub remote_ptime: Option<u32>,
    pub srtp: Option<SrtpKeys>,
    /// The peer's RTP address as its SDP gives it (`None`: no usable address, e.g. `0.0.0.0`
    /// or a host name). Media is taken only from it and sent only to it, unless
    /// [`crate::EngineConfig::media_latch`] lets the leg latch onto another source (NAT).
    pub remote_rtp: Option<SocketAddr>,
    /// The peer's RTCP address (`a=rtcp`, RFC 3605); `None` means the RTP port plus one,
    /// or the RTP address itself under rtcp-mux.
    pub remote_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    pub direction: Direction,
    pub muted: bool,
    /// The peer's Opus offer allows DTX (`usedtx=1`, RFC 7587 §6.1): its mixes may be
    /// encoded with DTX (see [`mixer::ParticipantConfig::dtx`]). Ignored for other codecs.
    pub dtx: bool,
}

/// Bytes for the driver to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub leg: LegId,
    pub dest: SocketAddr,
    /// Send from the leg's RTCP socket: RTCP on a leg without rtcp-mux. It names the port,
    /// not the packet: under rtcp-mux (RFC 5761) RTCP goes out with `false`, from the RTP
    /// socket to the RTP address, and the peer tells it from RTP by the packet type
    /// (§4, [`rtp::packet::is_rtcp`]).
    pub rtcp: bool,
    pub bytes: Vec<u8>,
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
    /// See [`crate::EngineConfig::media_latch`].
    pub foreign_source: u64,
    /// Of `packets_out`: audio relayed from the other leg of a bridge without decoding.
    pub relayed: u64,
    /// Of `packets_out`: audio decoded, mixed (or transcoded) and encoded for this leg.
    pub mixed: u64,
    /// Of `packets_out`: telephone-event packets (relayed or generated).
    pub dtmf_out: u64,
}

/// The RTP header of a packet we send on a leg (its SSRC is the leg's).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RtpOut {
    pub(crate) marker: bool,
    pub(crate) payload_type: u8,
    pub(crate) seq: u16,
    pub(crate) timestamp: u32,
}

pub(crate) struct Leg {
    pub(crate) cfg: LegConfig,
    pub(crate) participant: ParticipantId,
    pub(crate) rx: Option<SrtpContext>,
    /// The receive context before a re-key, kept for [`REKEY_GRACE`] so packets sent with
    /// the old key and still in flight are not refused (RFC 4568 §7.1.4).
    pub(crate) rx_previous: Option<(SrtpContext, Instant)>,
    pub(crate) tx: Option<SrtpContext>,
    /// Where the peer's RTP comes from, once latched ([`crate::EngineConfig::media_latch`] only).
    pub(crate) latched: Option<SocketAddr>,
    /// The SSRC of the stream that latched: the only one taken from `latched`.
    pub(crate) latched_ssrc: Option<u32>,
    pub(crate) ssrc: u32,
    pub(crate) seq: u16,
    pub(crate) ts_base: u32,
    /// When the last RTP packet went out and its timestamp: where the leg's timeline
    /// continues when what feeds it changes (mixer or relay).
    pub(crate) last_out: Option<(Instant, u32)>,
    /// The next mixed frame continues the timeline from `last_out`, with the marker.
    pub(crate) resync: bool,
    pub(crate) last_rx: Instant,
    pub(crate) inactive_reported: bool,
    pub(crate) reception: Option<ReceptionStats>,
    pub(crate) sender: SenderStats,
    pub(crate) next_rtcp: Instant,
    /// Where the peer's RTCP comes from (symmetric RTCP, RFC 4961), once latched.
    pub(crate) latched_rtcp: Option<SocketAddr>,
    pub(crate) dtmf: EventReceiver,
    pub(crate) stats: LegStats,
    /// A browser's PeerConnection: str0m does ICE, DTLS-SRTP, RTP and RTCP for this leg,
    /// and the fields above about SRTP, RTP framing and RTCP are unused.
    pub(crate) webrtc: Option<Box<WebRtcLeg>>,
}

impl Leg {
    /// Whether an RTP datagram from `from` may be read at all (before SRTP and parsing).
    /// See [`crate::EngineConfig::media_latch`].
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

    /// A new leg: its SSRC, first sequence number, RTP timestamp base and first RTCP
    /// report time drawn from the meeting's `rng` (in that order).
    pub(crate) fn new(
        now: Instant,
        cfg: LegConfig,
        participant: ParticipantId,
        (rx, tx): (Option<SrtpContext>, Option<SrtpContext>),
        rng: &mut StdRng,
    ) -> Leg {
        let ssrc: u32 = rng.random();
        let seq: u16 = rng.random();
        let ts_base: u32 = rng.random();
        let next_rtcp = now + rtcp_interval(rng);
        let clock = cfg.codec.rtp_clock_rate();
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
            last_out: None,
            resync: false,
            last_rx: now,
            inactive_reported: false,
            reception: None,
            dtmf: EventReceiver::new(),
            stats: LegStats::default(),
            cfg,
            webrtc: None,
        }
    }

    /// The receive and send contexts of `keys` (none without SRTP).
    pub(crate) fn srtp_contexts(
        keys: &Option<SrtpKeys>,
    ) -> Result<(Option<SrtpContext>, Option<SrtpContext>), SrtpError> {
        Ok(match keys {
            Some(k) => (
                Some(SrtpContext::new(k.suite, &k.remote_key, &k.remote_salt)?),
                Some(SrtpContext::new(k.suite, &k.local_key, &k.local_salt)?),
            ),
            None => (None, None),
        })
    }

    /// The SRTP and address part of a renegotiation ([`crate::MeetingMedia::update_leg`]):
    /// new keys replace the contexts (the old receive context stays usable for
    /// [`REKEY_GRACE`]), the SSRC is unpinned, and a newly signalled address replaces
    /// whatever was latched. Takes `cfg` as the leg's configuration.
    pub(crate) fn renegotiate(&mut self, now: Instant, cfg: LegConfig) -> Result<(), SrtpError> {
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
        if !same_keys(&self.cfg.srtp, &cfg.srtp) {
            let (rx, tx) = Self::srtp_contexts(&cfg.srtp)?;
            self.rx_previous =
                std::mem::replace(&mut self.rx, rx).map(|old| (old, now + REKEY_GRACE));
            self.tx = tx;
        }
        // A renegotiation may start a new stream (SSRC); a newly signalled address replaces
        // whatever was latched (a hold to 0.0.0.0 keeps it).
        self.latched_ssrc = None;
        if cfg.remote_rtp.is_some()
            && (cfg.remote_rtp != self.cfg.remote_rtp
                || cfg.remote_rtcp != self.cfg.remote_rtcp
                || cfg.rtcp_mux != self.cfg.rtcp_mux)
        {
            self.latched = None;
            self.latched_rtcp = None;
        }
        self.cfg = cfg;
        Ok(())
    }

    /// A datagram from `from` on this (SIP) leg's port: the source check, SRTP, parsing,
    /// the payload type, latching and the counters. RTCP is read here (round-trip time);
    /// an RTP packet with a negotiated payload type comes back for the meeting (DTMF or
    /// audio for the mixer), decrypted into `scratch` on an SRTP leg.
    pub(crate) fn receive<'d>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &'d [u8],
        latch: bool,
        scratch: &'d mut Vec<u8>,
        ntp: &NtpClock,
    ) -> Option<RtpPacket<'d>> {
        // Where it came from decides first: nothing from a foreign source is read further.
        let rtcp = is_rtcp(data);
        let source_ok = if rtcp {
            self.rtcp_source_ok(latch, from)
        } else {
            self.rtp_source_ok(latch, from)
        };
        if !source_ok {
            self.stats.foreign_source += 1;
            return None;
        }
        if data.len() < 12 {
            self.stats.invalid += 1;
            return None;
        }
        if rtcp {
            self.receive_rtcp(now, from, data, latch, scratch, ntp);
            return None;
        }
        let plain: &[u8] = if self.rx.is_some() {
            if !self.unprotect(now, data, false, scratch) {
                return None;
            }
            scratch
        } else {
            data
        };
        let Ok(pkt) = RtpPacket::parse(plain) else {
            self.stats.invalid += 1;
            return None;
        };
        // Once latched, only the stream that latched is taken from that source, until a
        // renegotiation unpins it.
        let from_latched = latch && self.latched == Some(from);
        if from_latched && self.latched_ssrc.is_some_and(|s| s != pkt.ssrc()) {
            self.stats.foreign_source += 1;
            return None;
        }
        let established = !latch || from_latched;
        let pt = pkt.payload_type();
        if pt != self.cfg.payload_type && Some(pt) != self.cfg.dtmf_payload_type {
            self.stats.invalid += 1;
            if established {
                // The peer's own (comfort noise, say): it is alive, and it latches nothing.
                self.last_rx = now;
                self.inactive_reported = false;
                self.stats.packets_in += 1;
                self.stats.bytes_in += data.len() as u64;
            }
            return None;
        }
        // Symmetric RTP (RFC 4961), when allowed: answer to where valid media comes from.
        if latch && (!from_latched || self.latched_ssrc.is_none()) {
            if self.latched.is_some_and(|a| a != from) {
                // Taken back by the signalled address: the earlier source's stream and
                // RTCP port are not this peer's.
                self.latched_rtcp = None;
                self.reception = None;
            }
            self.latched = Some(from);
            self.latched_ssrc = Some(pkt.ssrc());
        }
        self.last_rx = now;
        self.inactive_reported = false;
        self.stats.packets_in += 1;
        self.stats.bytes_in += data.len() as u64;
        Some(pkt)
    }

    /// An RTCP datagram that passed the source check: SRTCP, then the peer's reports about
    /// us give the round-trip time.
    fn receive_rtcp(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        latch: bool,
        scratch: &mut Vec<u8>,
        ntp: &NtpClock,
    ) {
        let plain: &[u8] = if self.rx.is_some() {
            if !self.unprotect(now, data, true, scratch) {
                return;
            }
            scratch
        } else {
            data
        };
        self.stats.rtcp_in += 1;
        self.last_rx = now;
        self.inactive_reported = false;
        if latch && !self.cfg.rtcp_mux && self.latched_rtcp.is_none() {
            self.latched_rtcp = Some(from);
        }
        for item in parse_compound(plain) {
            let Ok((pkt, _)) = item else { break };
            let blocks = match pkt {
                RtcpPacket::SenderReport(sr) => {
                    if let Some(r) = &mut self.reception {
                        r.on_sender_report(now, sr.info.ntp_timestamp);
                    }
                    Some(sr.report_blocks())
                }
                RtcpPacket::ReceiverReport(rr) => Some(rr.report_blocks()),
                _ => None,
            };
            for b in blocks.into_iter().flatten() {
                if b.ssrc == self.ssrc
                    && let Some(rtt) = round_trip_time(&b, ntp, now)
                {
                    self.stats.rtt_ms = Some(rtt.as_millis().min(u128::from(u32::MAX)) as u32);
                }
            }
        }
    }

    /// SRTP (or SRTCP) into `scratch` with the receive key, or with the key before a re-key
    /// while its grace time lasts. A packet neither authenticates is counted and refused.
    fn unprotect(&mut self, now: Instant, data: &[u8], rtcp: bool, scratch: &mut Vec<u8>) -> bool {
        let mut with = |ctx: &mut SrtpContext| {
            if rtcp {
                ctx.unprotect_rtcp(data, scratch).is_ok()
            } else {
                ctx.unprotect_rtp(data, scratch).is_ok()
            }
        };
        let ok = self.rx.as_mut().is_some_and(&mut with)
            || self
                .rx_previous
                .as_mut()
                .filter(|(_, until)| now < *until)
                .is_some_and(|(old, _)| with(old));
        if !ok {
            self.stats.srtp_failures += 1;
        }
        ok
    }

    /// RFC 3550 A.1/A.8: an audio packet of the peer's stream counts for loss and jitter.
    pub(crate) fn note_reception(&mut self, now: Instant, pkt: &RtpPacket<'_>) {
        match &mut self.reception {
            Some(r) => {
                r.on_rtp(now, pkt.sequence_number(), pkt.timestamp());
            }
            None => {
                self.reception = Some(ReceptionStats::new(
                    pkt.ssrc(),
                    self.cfg.codec.rtp_clock_rate(),
                    pkt.sequence_number(),
                    now,
                ));
            }
        }
    }

    /// The RTP timestamp the leg's stream is at now: the last packet's plus the time
    /// since, on the codec's clock (the random base before any packet).
    pub(crate) fn timeline_at(&self, now: Instant) -> u32 {
        let Some((at, ts)) = self.last_out else {
            return self.ts_base;
        };
        let rate = u128::from(self.cfg.codec.rtp_clock_rate());
        let elapsed = now.saturating_duration_since(at).as_micros() * rate / 1_000_000;
        ts.wrapping_add(elapsed as u32)
    }

    /// One mixed frame for this (SIP) leg as an RTP packet with its SSRC, sequence and
    /// timestamp, SRTP-protected on an SRTP leg: where it goes and the bytes. `None` when
    /// the leg has no address yet or the packet cannot be written.
    pub(crate) fn write_frame(
        &mut self,
        now: Instant,
        mut marker: bool,
        timestamp: u32,
        payload: &[u8],
        rtp_buf: &mut Vec<u8>,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        if self.resync {
            // Relayed packets fed the stream until now: the mixer's frames continue it.
            self.resync = false;
            self.ts_base = self.timeline_at(now).wrapping_sub(timestamp);
            marker = true;
        }
        let out = RtpOut {
            marker,
            payload_type: self.cfg.payload_type,
            seq: self.seq,
            timestamp: self.ts_base.wrapping_add(timestamp),
        };
        let sent = self.write_rtp(now, out, payload, rtp_buf);
        if sent.is_some() {
            self.stats.mixed += 1;
        }
        sent
    }

    /// Any RTP packet of this leg's stream (mixed, relayed, telephone-event), protected
    /// on an SRTP leg; the leg's sequence continues after the highest one sent.
    pub(crate) fn write_rtp(
        &mut self,
        now: Instant,
        out: RtpOut,
        payload: &[u8],
        rtp_buf: &mut Vec<u8>,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        let dest = self.latched.or(self.cfg.remote_rtp)?;
        let writer = RtpWriter {
            marker: out.marker,
            payload_type: out.payload_type,
            sequence_number: out.seq,
            timestamp: out.timestamp,
            ssrc: self.ssrc,
            csrcs: &[],
            extension: None,
            padding: 0,
        };
        if out.seq.wrapping_sub(self.seq) < 0x8000 {
            self.seq = out.seq.wrapping_add(1);
        }
        writer.write(payload, rtp_buf).ok()?;
        let bytes = match &mut self.tx {
            Some(ctx) => {
                let mut protected = Vec::with_capacity(rtp_buf.len() + 16);
                ctx.protect_rtp(rtp_buf, &mut protected).ok()?;
                protected
            }
            None => rtp_buf.clone(),
        };
        // An event's packets all carry its start: the audio timeline goes on regardless.
        let audio = out.payload_type == self.cfg.payload_type;
        let ts = if audio {
            out.timestamp
        } else {
            self.timeline_at(now)
        };
        self.sender.on_rtp_sent(now, ts, payload.len());
        if audio {
            self.last_out = Some((now, ts));
        } else {
            self.stats.dtmf_out += 1;
        }
        self.stats.packets_out += 1;
        self.stats.bytes_out += bytes.len() as u64;
        Some((dest, bytes))
    }

    /// A compound SR or RR with SDES CNAME (RFC 3550 §6.1), SRTCP-protected for SRTP legs.
    pub(crate) fn rtcp_report(
        &mut self,
        id: LegId,
        ntp: &NtpClock,
        cname: &[u8],
        now: Instant,
    ) -> Option<Transmit> {
        let dest = if self.cfg.rtcp_mux {
            self.latched.or(self.cfg.remote_rtp)?
        } else {
            let plus_one = |a: SocketAddr| SocketAddr::new(a.ip(), a.port().wrapping_add(1));
            // Latched elsewhere than the SDP said (NAT): the signalled RTCP address is as
            // unreachable as the signalled RTP one.
            let nat = self.latched.filter(|a| Some(*a) != self.cfg.remote_rtp);
            self.latched_rtcp
                .or(nat.map(plus_one))
                .or(self.cfg.remote_rtcp)
                .or(self.cfg.remote_rtp.map(plus_one))?
        };
        let mut plain = Vec::with_capacity(128);
        let report = if self.stats.packets_out > 0 {
            write_sender_report(&mut plain, &self.sender, ntp, self.reception.as_mut(), now)
        } else {
            write_receiver_report(&mut plain, self.ssrc, self.reception.as_mut(), now)
        };
        report.ok()?;
        let mut sdes = Vec::with_capacity(64);
        write_sdes(&mut sdes, &[(self.ssrc, &[(sdes_item::CNAME, cname)])]).ok()?;
        plain.extend_from_slice(&sdes);
        let bytes = match &mut self.tx {
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
            rtcp: !self.cfg.rtcp_mux,
            bytes,
        })
    }

    /// The counters with loss and jitter from the reception statistics.
    pub(crate) fn final_stats(&self) -> LegStats {
        let mut s = self.stats;
        if let Some(r) = &self.reception {
            s.lost = r.cumulative_lost();
            let rate = self.cfg.codec.rtp_clock_rate().max(1);
            s.jitter_ms = (u64::from(r.jitter()) * 1000 / u64::from(rate)) as u32;
        }
        s
    }
}

/// RFC 3550 §6.2: at least 5 s between reports, randomised by 0.5–1.5 (§6.3.1).
pub(crate) fn rtcp_interval(rng: &mut StdRng) -> Duration {
    Duration::from_millis(rng.random_range(2500..7500))
}

/// How long the receive key before a re-key stays usable.
pub(crate) const REKEY_GRACE: Duration = Duration::from_secs(2);
