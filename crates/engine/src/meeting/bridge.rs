//! Two-party bridges: the two legs of a B2BUA call ([`MeetingMedia::set_bridge`]).
//!
//! When the two legs negotiated the same codec (and packetisation, and telephone-event
//! clock), packets go from one to the other without decoding: unprotected, the RTP header
//! rewritten for the outgoing leg (its SSRC, its payload type numbers, its sequence and
//! timestamp continued from what it sent before, RFC 3550 §5.1; gaps and reordering of the
//! incoming stream kept), protected again with the outgoing leg's SRTP. The mixer does not
//! run meanwhile. Otherwise (different codecs, a third leg, a browser) the mixer transcodes,
//! as in any meeting. The mode is decided again whenever a leg joins, leaves or is
//! renegotiated; each leg's timeline continues across a change, the first packet after it
//! with the marker bit.
//!
//! RFC 4733 telephone-events reach the other leg with its own payload type: relayed with
//! the header rewritten like audio in relay mode, generated from the received events in
//! mixer mode (start, an update every 50 ms, three end packets, §2.5.1), and generated for
//! digits signalled out of band (SIP INFO, [`MeetingMedia::send_dtmf`]) in both modes. A
//! leg that negotiated no telephone-event gets none: [`EngineEvent::DtmfNotSupported`] says
//! so once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use codec::telephone_event::{DtmfEvent, EventSender};
use mixer::ParticipantConfig;
use rtp::packet::RtpPacket;

use super::{EngineError, EngineEvent, MAX_EVENTS, MAX_OUT, MeetingMedia, jitter_config};
use crate::leg::{Leg, LegId, RtpOut, Transmit};

/// Where the relayed stream of one leg lands in the other's.
#[derive(Debug, Clone, Copy)]
struct RelayMap {
    /// The incoming stream (a new SSRC starts a new mapping).
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
}

/// A bridge's state beside its legs.
#[derive(Default)]
pub(super) struct Bridge {
    /// The two legs, while packets are relayed between them.
    relay: Option<(LegId, LegId)>,
    /// By receiving leg: how the relayed stream maps into its own.
    maps: HashMap<LegId, RelayMap>,
    /// By receiving leg: the telephone-event being generated for it.
    senders: BTreeMap<LegId, EventSender>,
    /// Legs already reported as taking no telephone-event.
    no_dtmf: HashSet<LegId>,
    /// The mixer's ticks stopped while relaying: the ticks missed are skipped, not run.
    mixer_asleep: bool,
}

/// Volume of the events generated for out-of-band digits, in -dBm0 (RFC 4733 §2.3.4).
const INFO_VOLUME: u8 = 10;

/// How far (in packets) a relayed sequence number may jump ahead, or fall behind, before
/// the stream is taken as a new one.
const SEQ_AHEAD: u16 = 3000;
const SEQ_BEHIND: u16 = 300;

impl MeetingMedia {
    /// Makes this meeting a two-party bridge (see the module docs): relay without decoding
    /// when its two legs allow it, and telephone-events passed between its legs.
    pub fn set_bridge(&mut self) {
        if self.bridge.is_none() {
            self.bridge = Some(Box::default());
            self.refresh_mode();
        }
    }

    /// Whether the bridge relays packets without decoding right now.
    pub fn is_relaying(&self) -> bool {
        self.bridge.as_ref().is_some_and(|b| b.relay.is_some())
    }

    /// A digit signalled out of band on `from` (SIP INFO, RFC 6086): reported as any digit
    /// and, in a bridge, sent to the other leg as an RFC 4733 event lasting `length`.
    pub fn send_dtmf(
        &mut self,
        now: Instant,
        from: LegId,
        event: u8,
        length: Duration,
    ) -> Result<(), EngineError> {
        if !self.legs.contains_key(&from) {
            return Err(EngineError::UnknownLeg(from));
        }
        if let Some(digit) = codec::telephone_event::event_char(event) {
            self.push_event(EngineEvent::Dtmf {
                leg: from,
                digit,
                duration_ms: length.as_millis().min(u128::from(u32::MAX)) as u32,
            });
        }
        if self.bridge.is_none() {
            return Ok(());
        }
        for to in self.others(from) {
            self.start_event(now, to, event, INFO_VOLUME, Some(length));
        }
        self.pump_events(now);
        Ok(())
    }

    pub(super) fn push_event(&mut self, ev: EngineEvent) {
        if self.events.len() < MAX_EVENTS {
            self.events.push_back(ev);
        }
    }

    fn others(&self, from: LegId) -> Vec<LegId> {
        self.legs.keys().filter(|k| **k != from).copied().collect()
    }

    /// Decides relay or mixer again (a leg came, went or was renegotiated).
    pub(super) fn refresh_mode(&mut self) {
        let pair = self.relay_pair();
        let Some(bridge) = self.bridge.as_mut() else {
            return;
        };
        // A renegotiated leg may have a new stream or payload types: map afresh.
        bridge.maps.clear();
        if pair == bridge.relay {
            return;
        }
        let was_relaying = bridge.relay.is_some();
        bridge.relay = pair;
        for l in self.legs.values_mut() {
            l.resync = true;
        }
        if was_relaying && pair.is_none() {
            // The mixer slept while packets were relayed: its jitter buffers start empty.
            bridge.mixer_asleep = true;
            for l in self.legs.values() {
                let mut pc = ParticipantConfig::rtp(l.cfg.codec);
                pc.muted = self.mixer.is_muted(l.participant).unwrap_or(false);
                pc.dtx = l.cfg.dtx;
                pc.jitter = Some(jitter_config(&self.cfg, l.cfg.codec));
                let _ = self.mixer.reconfigure(l.participant, pc);
            }
        }
    }

    /// The two legs packets can be relayed between, if they can be.
    fn relay_pair(&self) -> Option<(LegId, LegId)> {
        self.bridge.as_ref()?;
        let mut legs = self.legs.iter();
        let ((ia, a), (ib, b)) = (legs.next()?, legs.next()?);
        if legs.next().is_some() {
            return None;
        }
        // A prompt or a tap needs the leg's audio decoded and mixed.
        let plain = |id: &LegId, l: &Leg| {
            l.webrtc.is_none()
                && !self.mixer.is_muted(l.participant).unwrap_or(true)
                && !self.prompts.contains(id)
                && !self.taps.is_tapped(*id)
        };
        let (ca, cb) = (&a.cfg, &b.cfg);
        let ptime = |p: Option<u32>| p.unwrap_or(codec::FRAME_MS);
        let events_clock = match (ca.dtmf_out, cb.dtmf_out) {
            (Some(x), Some(y)) => x.clock_rate == y.clock_rate,
            _ => true,
        };
        (plain(ia, a)
            && plain(ib, b)
            && ca.codec == cb.codec
            && ptime(ca.remote_ptime) == ptime(cb.remote_ptime)
            && events_clock)
            .then_some((*ia, *ib))
    }

    /// The other leg of a relaying bridge.
    pub(super) fn relay_peer(&self, leg: LegId) -> Option<LegId> {
        match self.bridge.as_ref()?.relay? {
            (a, b) if a == leg => Some(b),
            (a, b) if b == leg => Some(a),
            _ => None,
        }
    }

    /// A received packet of a bridge's leg, audio or telephone-event (`events` what the
    /// latter told the leg's event receiver). Returns whether the bridge took it (relayed,
    /// or an event passed on); audio the bridge does not take goes to the mixer.
    pub(super) fn bridge_packet(
        &mut self,
        now: Instant,
        from: LegId,
        pkt: &RtpPacket<'_>,
        events: Option<&[DtmfEvent]>,
    ) -> bool {
        if let Some(to) = self.relay_peer(from) {
            self.relay(now, to, pkt, events.is_some());
            return true;
        }
        let Some(events) = events else {
            return false;
        };
        // Mixer mode: the other legs get events of their own.
        let rate = self.legs.get(&from).map_or(8000, |l| {
            l.cfg
                .dtmf_out
                .map_or(l.cfg.codec.rtp_clock_rate(), |f| f.clock_rate)
        });
        for ev in events {
            for to in self.others(from) {
                match *ev {
                    DtmfEvent::Start { event, volume, .. } => {
                        self.start_event(now, to, event, volume, None)
                    }
                    DtmfEvent::End { duration, .. } => {
                        let length = Duration::from_micros(
                            u64::from(duration) * 1_000_000 / u64::from(rate.max(1)),
                        );
                        if let Some(s) = self.bridge.as_mut().and_then(|b| b.senders.get_mut(&to)) {
                            s.finish(now, length);
                        }
                    }
                }
            }
        }
        self.pump_events(now);
        true
    }

    /// One packet from the other leg into `to`'s stream, payload untouched.
    fn relay(&mut self, now: Instant, to: LegId, pkt: &RtpPacket<'_>, event: bool) {
        let Some(l) = self.legs.get_mut(&to) else {
            return;
        };
        if !l.cfg.direction.send {
            return;
        }
        let pt = if event {
            match l.cfg.dtmf_out {
                Some(f) => f.payload_type,
                None => return self.no_dtmf(to),
            }
        } else {
            l.cfg.payload_type
        };
        let Some(bridge) = self.bridge.as_mut() else {
            return;
        };
        let (seq, ts) = (pkt.sequence_number(), pkt.timestamp());
        let current = bridge.maps.get(&to).copied().filter(|m| {
            let ahead = seq.wrapping_add(m.seq_offset).wrapping_sub(l.seq);
            m.ssrc == pkt.ssrc() && !(SEQ_AHEAD..=u16::MAX - SEQ_BEHIND).contains(&ahead)
        });
        let fresh = current.is_none();
        let map = current.unwrap_or_else(|| RelayMap {
            ssrc: pkt.ssrc(),
            seq_offset: l.seq.wrapping_sub(seq),
            ts_offset: l.timeline_at(now).wrapping_sub(ts),
        });
        bridge.maps.insert(to, map);
        let out = RtpOut {
            marker: pkt.marker() || fresh,
            payload_type: pt,
            seq: seq.wrapping_add(map.seq_offset),
            timestamp: ts.wrapping_add(map.ts_offset),
        };
        if let Some((dest, bytes)) = l.write_rtp(now, out, pkt.payload(), &mut self.rtp_buf) {
            if !event {
                l.stats.relayed += 1;
            }
            self.queue(to, dest, bytes);
        }
    }

    fn queue(&mut self, leg: LegId, dest: std::net::SocketAddr, bytes: Vec<u8>) {
        if self.out.len() < MAX_OUT {
            self.out.push_back(Transmit {
                leg,
                dest,
                rtcp: false,
                bytes,
            });
        }
    }

    fn no_dtmf(&mut self, leg: LegId) {
        if self.bridge.as_mut().is_some_and(|b| b.no_dtmf.insert(leg)) {
            self.push_event(EngineEvent::DtmfNotSupported { leg });
        }
    }

    /// Starts generating `event` for `to`: lasting `length`, or until its end is known.
    /// An event still going on for `to` ends now.
    fn start_event(
        &mut self,
        now: Instant,
        to: LegId,
        event: u8,
        volume: u8,
        length: Option<Duration>,
    ) {
        let Some(l) = self.legs.get(&to) else {
            return;
        };
        let Some(fmt) = l.cfg.dtmf_out else {
            return self.no_dtmf(to);
        };
        let ts = l.timeline_at(now);
        if let Some(old) = self.bridge.as_mut().and_then(|b| b.senders.get_mut(&to)) {
            old.finish(now, Duration::ZERO);
        }
        self.pump_events(now);
        let sender = match length {
            Some(len) => EventSender::new(now, event, volume, len, ts, fmt.clock_rate),
            None => EventSender::open(now, event, volume, ts, fmt.clock_rate),
        };
        if let (Ok(s), Some(b)) = (sender, self.bridge.as_mut()) {
            b.senders.insert(to, s);
        }
    }

    /// Sends the generated telephone-event packets due at `now`.
    pub(super) fn pump_events(&mut self, now: Instant) {
        let Some(bridge) = self.bridge.as_mut() else {
            return;
        };
        let mut sent = Vec::new();
        for (to, s) in &mut bridge.senders {
            let Some(l) = self.legs.get_mut(to) else {
                continue;
            };
            while let Some(p) = s.poll_packet(now) {
                let (Some(fmt), true) = (l.cfg.dtmf_out, l.cfg.direction.send) else {
                    continue;
                };
                let out = RtpOut {
                    marker: p.marker,
                    payload_type: fmt.payload_type,
                    seq: l.seq,
                    timestamp: p.timestamp,
                };
                let bytes = p.payload.to_bytes();
                if let Some(t) = l.write_rtp(now, out, &bytes, &mut self.rtp_buf) {
                    // The relayed stream moves up one to make room for it.
                    if let Some(m) = bridge.maps.get_mut(to) {
                        m.seq_offset = m.seq_offset.wrapping_add(1);
                    }
                    sent.push((*to, t));
                }
            }
        }
        bridge.senders.retain(|_, s| !s.is_finished());
        for (to, (dest, bytes)) in sent {
            self.queue(to, dest, bytes);
        }
    }

    /// When the next generated telephone-event packet is due.
    pub(super) fn events_due(&self) -> Option<Instant> {
        let b = self.bridge.as_ref()?;
        b.senders
            .values()
            .filter_map(EventSender::poll_timeout)
            .min()
    }

    /// A leg left the bridge.
    pub(super) fn bridge_leg_removed(&mut self, leg: LegId) {
        if let Some(b) = self.bridge.as_mut() {
            b.maps.remove(&leg);
            b.senders.remove(&leg);
            b.no_dtmf.remove(&leg);
        }
        self.refresh_mode();
    }

    /// Before the mixer's first tick after relaying: the ticks it missed are not run.
    pub(super) fn wake_mixer(&mut self, now: Instant) {
        if let Some(b) = self.bridge.as_mut()
            && std::mem::take(&mut b.mixer_asleep)
        {
            self.mixer.handle_timeout(now);
            while self.mixer.poll_output().is_some() {}
            while self.mixer.poll_tap().is_some() {}
        }
    }
}
