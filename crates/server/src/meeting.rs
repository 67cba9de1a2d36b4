//! One task per meeting: it owns the meeting's [`engine::MeetingMedia`], the sockets of its
//! legs, its audio roster and its browsers' session channels. Nothing else holds any of
//! them, so there is no lock over calls: every change is a [`MeetingMsg`].
//!
//! Legs are named by the call table's [`calls::LegId`]; the engine's own leg ids stay in
//! here. What the engine reports about a leg (inactivity) goes out as [`MeetingEvent`]s to
//! the call controller, which decides.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use calls::LegId;
use chime_signal::{AttendeeInfo, AttendeeVolume};
use domain::meeting::Capability;
use engine::{EngineEvent, LegStats, MeetingMedia, WebRtcAnswer};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

mod msg;
pub mod taps;
mod video;
pub use msg::{MeetingEvent, MeetingMsg, SessionMsg, SubscribeError};
use taps::LegTaps;
pub use taps::{TapFrame, TapKey, TapSink};
pub use video::SubscribeAnswer;

/// What the task must tell the world, counted for `/metrics`.
pub trait MeetingObserver: Send + Sync + 'static {
    fn dtmf(&self);
    fn webrtc_connected(&self);
}

/// One leg of the meeting, as its task knows it.
struct Slot {
    attendee_id: String,
    external_user_id: String,
    stream: u32,
    muted: bool,
    engine: Option<engine::LegId>,
    sockets: Option<(Arc<UdpSocket>, Arc<UdpSocket>)>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    browser: Option<mpsc::Sender<SessionMsg>>,
    /// The last level the mixer gave (Chime-style attenuation, 0 loudest), for the console.
    level: Option<u8>,
}

impl Slot {
    fn info(&self) -> AttendeeInfo {
        AttendeeInfo {
            audio_stream_id: self.stream,
            attendee_id: self.attendee_id.clone(),
            external_user_id: self.external_user_id.clone(),
            muted: self.muted,
        }
    }
}

/// An engine leg: whose it is and the sockets its packets leave from (looked up for every
/// packet sent).
struct EngineLeg {
    leg: LegId,
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
}

/// The task's state.
pub struct Meeting {
    id: String,
    media: MeetingMedia,
    slots: BTreeMap<LegId, Slot>,
    by_engine: HashMap<engine::LegId, EngineLeg>,
    next_stream: u32,
    tx: mpsc::Sender<MeetingMsg>,
    events: mpsc::Sender<MeetingEvent>,
    observer: Arc<dyn MeetingObserver>,
    /// Where tapped legs' audio goes.
    taps: LegTaps,
    video: video::VideoIndex,
    /// Attendees' audio capabilities other than `SendReceive` (at most
    /// [`domain::meeting::MAX_ATTENDEES`] of them, the meeting's attendees).
    audio: HashMap<String, Capability>,
}

impl Meeting {
    pub fn new(
        id: String,
        mut media: MeetingMedia,
        tx: mpsc::Sender<MeetingMsg>,
        events: mpsc::Sender<MeetingEvent>,
        observer: Arc<dyn MeetingObserver>,
    ) -> Self {
        // `edge::pstn::BRIDGE_PREFIX`: the two legs of a B2BUA call (this module imports
        // no other driver).
        if id.starts_with("bridge-") {
            media.set_bridge();
        }
        Meeting {
            id,
            media,
            slots: BTreeMap::new(),
            by_engine: HashMap::new(),
            next_stream: 0,
            tx,
            events,
            observer,
            taps: LegTaps::default(),
            video: video::VideoIndex::default(),
            audio: HashMap::new(),
        }
    }

    /// Runs until the meeting has no legs left and `retire` agrees (no newer message came
    /// through the directory meanwhile).
    pub async fn run(mut self, mut rx: mpsc::Receiver<MeetingMsg>, retire: impl Fn() -> bool) {
        loop {
            let deadline = self.media.poll_timeout();
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    self.handle(Instant::now(), msg);
                    self.flush();
                    // Only a message can empty the meeting (its first one is always a
                    // leg joining, or one that failed to).
                    if self.slots.is_empty() && rx.is_empty() && retire() {
                        break;
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.media.handle_timeout(Instant::now());
                    self.flush();
                }
            }
        }
        // Whatever raced the retirement is refused (its reply channel dropped): the
        // sender starts a new task through the directory.
        rx.close();
        while let Some(msg) = rx.recv().await {
            match msg {
                MeetingMsg::AddSip { .. }
                | MeetingMsg::BrowserOpen { .. }
                | MeetingMsg::Subscribe { .. } => {}
                other => {
                    self.handle(Instant::now(), other);
                    self.flush();
                }
            }
        }
        for slot in self.slots.values() {
            for r in &slot.readers {
                r.abort();
            }
        }
    }

    /// Remembers an attendee's audio capability for its legs in this meeting.
    fn note_audio(&mut self, attendee_id: &str, audio: Capability) {
        if audio == Capability::SendReceive {
            self.audio.remove(attendee_id);
        } else if self.audio.len() < domain::meeting::MAX_ATTENDEES as usize
            || self.audio.contains_key(attendee_id)
        {
            self.audio.insert(attendee_id.to_string(), audio);
        }
    }

    /// Sets an engine leg's flow from its attendee's audio capability.
    fn apply_audio(&mut self, leg: engine::LegId, attendee_id: &str) {
        let audio = self
            .audio
            .get(attendee_id)
            .copied()
            .unwrap_or(Capability::SendReceive);
        let _ = self
            .media
            .set_audio_flow(leg, audio.sends(), audio.receives());
    }

    fn flush(&mut self) {
        while let Some(t) = self.media.poll_transmit() {
            let sock = self
                .by_engine
                .get(&t.leg)
                .map(|e| if t.rtcp { &e.rtcp } else { &e.rtp });
            if let Some(sock) = sock {
                // Non-blocking: a full socket buffer drops this packet rather than stall
                // the mix.
                let _ = sock.try_send_to(&t.bytes, t.dest);
            }
        }
        while let Some(ev) = self.media.poll_event() {
            self.on_engine_event(ev);
        }
    }

    fn broadcast(&self, msg: &SessionMsg) {
        for b in self.slots.values().filter_map(|s| s.browser.as_ref()) {
            // A session that cannot keep up misses presence; its own socket's
            // backpressure closes it long before this matters.
            let _ = b.try_send(msg.clone());
        }
    }

    /// A new roster entry: its stream id is larger than any before in this meeting (the
    /// client keeps the larger one on rejoin).
    fn join_roster(&mut self, leg: LegId, mut slot: Slot) -> u32 {
        self.next_stream = self.next_stream.saturating_add(1);
        slot.stream = self.next_stream;
        self.broadcast(&SessionMsg::Joined(slot.info()));
        self.slots.insert(leg, slot);
        self.next_stream
    }

    fn handle(&mut self, now: Instant, msg: MeetingMsg) {
        match msg {
            MeetingMsg::Packet { leg, from, data } => {
                self.media.handle_packet(now, leg, from, &data)
            }
            MeetingMsg::AddSip {
                leg,
                attendee_id,
                external_user_id,
                cfg,
                audio,
                rtp,
                rtcp,
                reply,
            } => {
                self.note_audio(&attendee_id, audio);
                let added = self.media.add_leg(now, cfg);
                if let Ok(e) = added {
                    self.apply_audio(e, &attendee_id);
                    let route = EngineLeg {
                        leg,
                        rtp: rtp.clone(),
                        rtcp: rtcp.clone(),
                    };
                    self.by_engine.insert(e, route);
                    let readers = vec![
                        spawn_reader(rtp.clone(), e, self.tx.clone()),
                        spawn_reader(rtcp.clone(), e, self.tx.clone()),
                    ];
                    let slot = Slot {
                        attendee_id,
                        external_user_id,
                        stream: 0,
                        muted: false,
                        engine: Some(e),
                        sockets: Some((rtp, rtcp)),
                        readers,
                        browser: None,
                        level: None,
                    };
                    self.join_roster(leg, slot);
                }
                let _ = reply.send(added.map(|_| ()));
            }
            MeetingMsg::Capabilities { attendee_id, audio } => {
                self.note_audio(&attendee_id, audio);
                let legs: Vec<engine::LegId> = self
                    .slots
                    .values()
                    .filter(|s| s.attendee_id == attendee_id)
                    .filter_map(|s| s.engine)
                    .collect();
                for e in legs {
                    self.apply_audio(e, &attendee_id);
                }
                tracing::info!(meeting = %self.id, attendee = %attendee_id, ?audio, "audio capability applied");
            }
            MeetingMsg::Update { leg, cfg } => {
                if let Some(e) = self.slots.get(&leg).and_then(|s| s.engine)
                    && let Err(err) = self.media.update_leg(now, e, cfg)
                {
                    tracing::warn!(meeting = %self.id, %leg, error = %err, "re-negotiated media could not be applied");
                }
            }
            MeetingMsg::Remove {
                leg,
                dropped,
                reply,
            } => {
                let stats = self.remove(leg, dropped);
                if let Some(r) = reply {
                    let _ = r.send(stats);
                }
            }
            MeetingMsg::Stats { leg, reply } => {
                let stats = self
                    .slots
                    .get(&leg)
                    .and_then(|s| s.engine)
                    .and_then(|e| self.media.leg_stats(e));
                let _ = reply.send(stats);
            }
            MeetingMsg::Live { leg, reply } => {
                let slot = self.slots.get(&leg);
                let stats = slot.and_then(|s| self.media.leg_stats(s.engine?));
                let _ = reply.send(stats.map(|st| (st, slot.and_then(|s| s.level))));
            }
            MeetingMsg::BrowserOpen {
                leg,
                attendee_id,
                external_user_id,
                audio,
                session,
                reply,
            } => {
                self.note_audio(&attendee_id, audio);
                let slot = Slot {
                    attendee_id,
                    external_user_id,
                    stream: 0,
                    muted: false,
                    engine: None,
                    sockets: None,
                    readers: Vec::new(),
                    browser: Some(session),
                    level: None,
                };
                let stream = self.join_roster(leg, slot);
                let roster = self.slots.values().map(Slot::info).collect();
                let _ = reply.send((stream, roster));
                self.video_index_for(leg);
            }
            MeetingMsg::Subscribe {
                leg,
                offer,
                candidate,
                muted,
                socket,
                video,
                reply,
            } => {
                let r = self
                    .subscribe(now, leg, &offer, candidate, muted, socket)
                    .map(|webrtc| SubscribeAnswer {
                        video: self.subscribe_video(now, leg, webrtc.leg, &video),
                        webrtc,
                    });
                let _ = reply.send(r);
            }
            MeetingMsg::Mute { leg, muted } => {
                let Some(slot) = self.slots.get_mut(&leg) else {
                    return;
                };
                slot.muted = muted;
                let (stream, engine) = (slot.stream, slot.engine);
                if let Some(e) = engine {
                    let _ = self.media.set_muted(e, muted);
                }
                tracing::debug!(meeting = %self.id, stream, muted, "attendee mute");
                self.broadcast(&SessionMsg::Muted { stream, muted });
            }
            MeetingMsg::EndBrowser { leg, end } => {
                if let Some(b) = self.slots.get(&leg).and_then(|s| s.browser.as_ref()) {
                    let _ = b.try_send(end);
                }
            }
            MeetingMsg::Dtmf { leg, event, length } => {
                let sent = self
                    .slots
                    .get(&leg)
                    .and_then(|s| s.engine)
                    .map(|e| self.media.send_dtmf(now, e, event, length));
                if !matches!(sent, Some(Ok(()))) {
                    tracing::info!(meeting = %self.id, %leg, "an out-of-band digit had no media leg to go to");
                }
            }
            MeetingMsg::Play {
                leg,
                prompt,
                repeat,
            } => {
                let played = self
                    .slots
                    .get(&leg)
                    .and_then(|s| s.engine)
                    .map(|e| self.media.play(now, e, prompt, repeat));
                if !matches!(played, Some(Ok(()))) {
                    // The leg is gone or its media refused: the flow must not wait.
                    let done = MeetingEvent::PlayDone {
                        leg,
                        interrupted: true,
                    };
                    let _ = self.events.try_send(done);
                }
            }
            MeetingMsg::StopPlay { leg } => {
                if let Some(e) = self.slots.get(&leg).and_then(|s| s.engine) {
                    self.media.stop_play(e);
                }
            }
            MeetingMsg::Tap { leg, key, sink } => {
                if let Some(e) = self.slots.get(&leg).and_then(|s| s.engine) {
                    let track = self.taps.set(e, key, sink);
                    let _ = self.media.set_tap(e, track);
                }
            }
        }
    }

    /// A browser's offer: the first is answered with a new WebRTC leg, a later one
    /// (renegotiation, ICE restart) on that same leg, so its audio never pauses.
    fn subscribe(
        &mut self,
        now: Instant,
        leg: LegId,
        offer: &str,
        candidate: SocketAddr,
        muted: bool,
        socket: Arc<UdpSocket>,
    ) -> Result<WebRtcAnswer, SubscribeError> {
        let Some(slot) = self.slots.get_mut(&leg) else {
            return Err(SubscribeError::SessionGone);
        };
        if let Some(e) = slot.engine {
            return Ok(self.media.renegotiate_webrtc(now, e, offer)?);
        }
        let answer = self.media.add_webrtc_leg(now, offer, candidate, muted)?;
        if let Some(slot) = self.slots.get_mut(&leg) {
            slot.engine = Some(answer.leg);
            slot.sockets = Some((socket.clone(), socket.clone()));
            slot.muted = muted;
            let attendee_id = slot.attendee_id.clone();
            self.apply_audio(answer.leg, &attendee_id);
        }
        let route = EngineLeg {
            leg,
            rtp: socket.clone(),
            rtcp: socket,
        };
        self.by_engine.insert(answer.leg, route);
        Ok(answer)
    }

    fn remove(&mut self, leg: LegId, dropped: bool) -> Option<LegStats> {
        let slot = self.slots.remove(&leg)?;
        self.video_left(leg);
        for r in &slot.readers {
            r.abort();
        }
        let stats = slot.engine.and_then(|e| {
            self.by_engine.remove(&e);
            self.taps.forget(e);
            let stats = self.media.remove_leg(e);
            // A WebRTC leg's last datagrams (DTLS close_notify) still go out.
            while let Some(t) = self.media.poll_transmit() {
                let sock = if t.leg == e {
                    slot.sockets.as_ref().map(|s| &s.0)
                } else {
                    self.by_engine
                        .get(&t.leg)
                        .map(|e| if t.rtcp { &e.rtcp } else { &e.rtp })
                };
                if let Some(sock) = sock {
                    let _ = sock.try_send_to(&t.bytes, t.dest);
                }
            }
            stats
        });
        self.broadcast(&SessionMsg::Left {
            stream: slot.stream,
            dropped,
        });
        stats
    }

    fn on_engine_event(&mut self, ev: EngineEvent) {
        match ev {
            EngineEvent::Inactive { leg } => {
                if let Some(l) = self.by_engine.get(&leg).map(|e| e.leg) {
                    tracing::info!(meeting = %self.id, leg = %l, "no media for the inactivity timeout");
                    let _ = self.events.try_send(MeetingEvent::Inactive(l));
                }
            }
            EngineEvent::Levels(levels) => {
                for (leg, volume, _) in &levels {
                    let l = self.by_engine.get(leg).map(|e| e.leg);
                    if let Some(slot) = l.and_then(|l| self.slots.get_mut(&l)) {
                        slot.level = Some(*volume);
                    }
                }
                if !self.slots.values().any(|s| s.browser.is_some()) {
                    return;
                }
                let volumes: Vec<AttendeeVolume> = levels
                    .iter()
                    .filter_map(|(leg, volume, muted)| {
                        let slot = self.slots.get(&self.by_engine.get(leg)?.leg)?;
                        Some(AttendeeVolume {
                            audio_stream_id: slot.stream,
                            // A muted attendee is silent to the indicator.
                            attenuation_db: Some(if *muted {
                                AttendeeVolume::MAX_ATTENUATION_DB
                            } else {
                                u32::from(*volume)
                            }),
                            signal_strength: Some(2),
                        })
                    })
                    .collect();
                if !volumes.is_empty() {
                    self.broadcast(&SessionMsg::Levels(volumes));
                }
            }
            EngineEvent::Dtmf {
                leg,
                digit,
                duration_ms,
            } => {
                let l = self.by_engine.get(&leg).map(|e| e.leg);
                // That a digit came, never which: digits are PINs and account numbers.
                tracing::info!(meeting = %self.id, leg = ?l, duration_ms, "DTMF digit received");
                self.observer.dtmf();
                if let Some(l) = l {
                    let _ = self.events.try_send(MeetingEvent::Dtmf(l, digit));
                }
            }
            EngineEvent::PlayDone { leg, interrupted } => {
                if let Some(l) = self.by_engine.get(&leg).map(|e| e.leg) {
                    let _ = self.events.try_send(MeetingEvent::PlayDone {
                        leg: l,
                        interrupted,
                    });
                }
            }
            EngineEvent::WebRtcConnected { leg } => {
                let l = self.by_engine.get(&leg).map(|e| e.leg);
                tracing::info!(meeting = %self.id, leg = ?l, "browser media connected (ICE, DTLS-SRTP)");
                self.observer.webrtc_connected();
            }
            EngineEvent::DtmfNotSupported { leg } => {
                let l = self.by_engine.get(&leg).map(|e| e.leg);
                tracing::info!(meeting = %self.id, leg = ?l, "DTMF for a leg that negotiated no telephone-event is dropped");
            }
            EngineEvent::Audio {
                leg,
                rate,
                incoming,
                outgoing,
            } => {
                if let Some(l) = self.by_engine.get(&leg) {
                    self.taps.deliver(leg, l.leg, rate, incoming, outgoing);
                }
            }
            EngineEvent::ActiveSpeakers(_) => {}
        }
    }
}

/// Reads a leg's socket into its meeting's task until the socket or the task goes.
fn spawn_reader(
    sock: Arc<UdpSocket>,
    leg: engine::LegId,
    tx: mpsc::Sender<MeetingMsg>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                break;
            };
            let data = buf[..n].to_vec();
            match tx.try_send(MeetingMsg::Packet { leg, from, data }) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
    })
}
