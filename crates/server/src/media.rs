//! The media driver: RTP ports, one task per meeting around [`engine::MeetingMedia`], and the
//! [`CallApp`] the SIP edge calls for admitted joins.
//!
//! Each leg has its own UDP port pair from `--rtp-ports` (RTP on the even port, RTCP on the
//! next). A reader task per socket forwards datagrams into the meeting's task, which owns the
//! sans-IO engine: it runs the 20 ms mixer ticks and sends what the engine yields.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chime_signal::{AttendeeInfo, AttendeeVolume, AudioStatus};
use engine::{EngineConfig, EngineEvent, LegConfig, LegId, LegStats, MeetingMedia, WebRtcAnswer};
use sip::{Body, CallKey, Peer, Request};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::router::Decision;
use crate::sip_edge::{CallApp, Command};

/// Hands out RTP/RTCP port pairs from the configured range, first in first out: a released
/// pair goes to the back, so a port is reused as late as possible (stale packets of an old
/// call rarely reach a new one), and a pair another program holds is retried later instead
/// of being lost.
pub struct PortPool {
    free: Mutex<std::collections::VecDeque<u16>>,
}

impl PortPool {
    pub fn new(lo: u16, hi: u16) -> Self {
        let start = lo + (lo % 2);
        let free = (start..hi).step_by(2).collect();
        PortPool {
            free: Mutex::new(free),
        }
    }

    fn take(&self) -> Option<u16> {
        let mut f = self.free.lock().unwrap_or_else(|p| p.into_inner());
        f.pop_front()
    }

    fn give_back(&self, port: u16) {
        let mut f = self.free.lock().unwrap_or_else(|p| p.into_inner());
        f.push_back(port);
    }

    pub fn available(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }
}

/// Binds an RTP/RTCP pair, trying further pairs when one is held by another program (those
/// go back to the pool, to be tried again later).
async fn bind_pair(pool: &PortPool) -> Option<(u16, UdpSocket, UdpSocket)> {
    let mut busy = Vec::new();
    let mut found = None;
    for _ in 0..16 {
        let Some(port) = pool.take() else { break };
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        match (
            UdpSocket::bind((any, port)).await,
            UdpSocket::bind((any, port + 1)).await,
        ) {
            (Ok(a), Ok(b)) => {
                found = Some((port, a, b));
                break;
            }
            _ => {
                tracing::debug!(
                    port,
                    "RTP port pair is held by another program; trying the next"
                );
                busy.push(port);
            }
        }
    }
    for port in busy {
        pool.give_back(port);
    }
    if found.is_none() {
        tracing::warn!("no RTP port pair could be bound");
    }
    found
}

pub(crate) enum MeetingMsg {
    Packet {
        leg: LegId,
        from: SocketAddr,
        data: Vec<u8>,
    },
    AddLeg {
        cfg: LegConfig,
        rtp: Arc<UdpSocket>,
        rtcp: Arc<UdpSocket>,
        reply: oneshot::Sender<Result<LegId, String>>,
    },
    RemoveLeg {
        leg: LegId,
        reply: oneshot::Sender<Option<LegStats>>,
    },
    Stats {
        leg: LegId,
        reply: oneshot::Sender<Option<LegStats>>,
    },
    Update {
        leg: LegId,
        cfg: LegConfig,
    },
    /// A browser's SDP offer: answer it with a WebRTC leg on the shared socket.
    AddWebRtc {
        offer: String,
        candidate: SocketAddr,
        muted: bool,
        socket: Arc<UdpSocket>,
        reply: oneshot::Sender<Result<WebRtcAnswer, engine::EngineError>>,
    },
    SetMuted {
        leg: LegId,
        muted: bool,
    },
}

/// What the media side tells a browser's signaling session.
#[derive(Debug, Clone)]
pub enum SessionMsg {
    /// An attendee joined the meeting's audio (or re-announces itself).
    Joined(AttendeeInfo),
    /// An attendee left; `dropped` when its connection was lost rather than closed.
    Left { stream: u32, dropped: bool },
    /// An attendee muted or unmuted.
    Muted { stream: u32, muted: bool },
    /// Current levels, 5 times a second.
    Levels(Vec<AttendeeVolume>),
    /// The session ends with this status (410, 411, 301).
    End(AudioStatus),
    /// The browser's media leg died (ICE consent lapsed): close the session so the client
    /// reconnects.
    MediaLost,
}

/// One attendee in a meeting's audio, as browsers are told (`AUDIO_STREAM_ID_INFO`).
#[derive(Debug, Clone)]
struct RosterEntry {
    attendee_id: String,
    external_user_id: String,
    muted: bool,
    leg: Option<LegId>,
}

/// A meeting's audio roster: SIP callers and browsers, by stream id.
#[derive(Debug, Default)]
struct Roster {
    next_stream: u32,
    entries: BTreeMap<u32, RosterEntry>,
}

/// One browser's signaling session.
struct BrowserInfo {
    meeting_id: String,
    attendee_id: String,
    stream: u32,
    leg: Option<LegId>,
    route: Option<u64>,
    tx: mpsc::Sender<SessionMsg>,
}

/// What [`Media::browser_open`] gives the signaling session.
pub struct BrowserSession {
    pub id: u64,
    pub stream: u32,
    pub rx: mpsc::Receiver<SessionMsg>,
    /// The roster at join, the joiner included.
    pub roster: Vec<AttendeeInfo>,
}

/// Why a browser's SDP offer got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("the WebRTC port is not open")]
    NoWebRtcPort,
    #[error("the session has ended")]
    SessionGone,
    #[error("the meeting's media is gone")]
    MeetingGone,
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
}

struct MeetingHandle {
    tx: mpsc::Sender<MeetingMsg>,
}

/// One admitted call.
struct CallInfo {
    meeting_id: String,
    attendee_id: String,
    leg: Option<LegId>,
    port: u16,
    readers: Vec<tokio::task::JoinHandle<()>>,
    /// The caller's audio stream id in the meeting roster.
    stream: u32,
    /// Negotiated media; `None` while our delayed offer awaits the ACK's answer.
    negotiated: Option<crate::offer::Negotiated>,
    /// Our delayed offer and the sockets waiting for its answer.
    pending: Option<(sdp::negotiate::MediaSession, Arc<UdpSocket>, Arc<UdpSocket>)>,
    started: Instant,
    /// What the call record needs from the INVITE.
    cdr: CdrSeed,
    /// The connector has EnableMediaMetricLogs: a record per interval.
    media_metrics: bool,
    /// Counters at the previous media-metrics record.
    last_metrics: LegStats,
}

/// The parts of a call record known when the call is admitted.
#[derive(Clone)]
pub struct CdrSeed {
    pub transaction_id: String,
    pub call_id: String,
    pub voice_connector_id: String,
    pub source_phone_number: String,
    pub destination_phone_number: String,
    pub source_address: String,
    pub transport: String,
    pub start_ms: i64,
}

impl CdrSeed {
    pub fn from_invite(vc_id: &str, invite: &Request, peer: &Peer) -> Self {
        let user = |na: Option<sip::NameAddr<'_>>| {
            na.and_then(|n| n.uri.user_decoded().map(|u| u.into_owned()))
                .unwrap_or_default()
        };
        CdrSeed {
            transaction_id: uuid::Uuid::new_v4().to_string(),
            call_id: invite
                .headers
                .get(sip::HeaderName::CallId)
                .unwrap_or_default()
                .to_string(),
            voice_connector_id: vc_id.to_string(),
            source_phone_number: user(invite.headers.from()),
            destination_phone_number: invite
                .uri
                .user()
                .map(|u| String::from_utf8_lossy(&sip::percent_decode(u)).into_owned())
                .unwrap_or_default(),
            source_address: peer.remote.to_string(),
            transport: format!("{:?}", peer.transport).to_ascii_uppercase(),
            start_ms: domain::timestamp::now_millis(),
        }
    }

    /// The finished record.
    pub fn finish(
        &self,
        status: &str,
        status_code: u16,
        reason: Option<String>,
    ) -> domain::call_record::CallRecord {
        let end = domain::timestamp::now_millis();
        domain::call_record::CallRecord {
            transaction_id: self.transaction_id.clone(),
            call_id: self.call_id.clone(),
            voice_connector_id: self.voice_connector_id.clone(),
            status: status.to_string(),
            status_code,
            reason,
            source_phone_number: self.source_phone_number.clone(),
            destination_phone_number: self.destination_phone_number.clone(),
            direction: "Outbound".to_string(),
            source_address: self.source_address.clone(),
            transport: self.transport.clone(),
            start_time: domain::timestamp::iso8601(self.start_ms),
            end_time: domain::timestamp::iso8601(end),
            duration_seconds: ((end - self.start_ms).max(0) / 1000) as u64,
            meeting_id: None,
            attendee_id: None,
            codec: None,
            srtp_suite: None,
            media: None,
        }
    }
}

/// Writes a call record, retrying a few times: a record is never dropped silently.
pub async fn store_call_record(
    repo: &Arc<dyn store::Repository>,
    rec: domain::call_record::CallRecord,
    start_ms: i64,
) {
    let Ok(doc) = serde_json::to_value(&rec) else {
        return;
    };
    for attempt in 0..5u32 {
        match repo
            .insert_call_record(&rec.transaction_id, &rec.voice_connector_id, start_ms, &doc)
            .await
        {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(transaction = %rec.transaction_id, attempt, error = %e, "storing the call record failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    tracing::error!(record = %doc, "call record could not be stored; it is in this log line instead");
}

#[derive(Default)]
struct Registry {
    calls: HashMap<CallKey, CallInfo>,
    /// Calls the UA ended before their join was accepted (a CANCEL racing the database
    /// lookups), with when: `accept_join` undoes such a join. Entries expire after a minute.
    ended_early: HashMap<CallKey, (Instant, sip::TerminationReason)>,
    by_attendee: HashMap<String, CallKey>,
    by_leg: HashMap<(String, LegId), CallKey>,
    meetings: HashMap<String, MeetingHandle>,
    /// Browser signaling sessions by id.
    browsers: HashMap<u64, BrowserInfo>,
    next_browser: u64,
    /// Audio rosters by meeting id.
    rosters: HashMap<String, Roster>,
}

impl Registry {
    fn meeting_in_use(&self, meeting_id: &str) -> bool {
        self.calls.values().any(|c| c.meeting_id == meeting_id)
            || self.browsers.values().any(|b| b.meeting_id == meeting_id)
    }

    fn broadcast(&self, meeting_id: &str, msg: &SessionMsg) {
        for b in self
            .browsers
            .values()
            .filter(|b| b.meeting_id == meeting_id)
        {
            // A session that cannot keep up misses presence; it is closed by its own
            // socket's backpressure long before this matters.
            let _ = b.tx.try_send(msg.clone());
        }
    }

    /// Adds an attendee to a meeting's roster and tells the browsers; returns its stream
    /// id, larger than any before in this meeting (the client keeps the larger on rejoin).
    fn roster_join(
        &mut self,
        meeting_id: &str,
        attendee_id: &str,
        external_user_id: &str,
        muted: bool,
        leg: Option<LegId>,
    ) -> u32 {
        let roster = self.rosters.entry(meeting_id.to_string()).or_default();
        roster.next_stream = roster.next_stream.saturating_add(1);
        let stream = roster.next_stream;
        roster.entries.insert(
            stream,
            RosterEntry {
                attendee_id: attendee_id.to_string(),
                external_user_id: external_user_id.to_string(),
                muted,
                leg,
            },
        );
        let info = AttendeeInfo {
            audio_stream_id: stream,
            attendee_id: attendee_id.to_string(),
            external_user_id: external_user_id.to_string(),
            muted,
        };
        self.broadcast(meeting_id, &SessionMsg::Joined(info));
        stream
    }

    fn roster_leave(&mut self, meeting_id: &str, stream: u32, dropped: bool) {
        let removed = self
            .rosters
            .get_mut(meeting_id)
            .and_then(|r| r.entries.remove(&stream));
        if removed.is_some() {
            self.broadcast(meeting_id, &SessionMsg::Left { stream, dropped });
        }
        if !self.meeting_in_use(meeting_id) {
            self.rosters.remove(meeting_id);
        }
    }

    fn roster_set_leg(&mut self, meeting_id: &str, stream: u32, leg: Option<LegId>) {
        if let Some(e) = self
            .rosters
            .get_mut(meeting_id)
            .and_then(|r| r.entries.get_mut(&stream))
        {
            e.leg = leg;
        }
    }

    fn roster_snapshot(&self, meeting_id: &str) -> Vec<AttendeeInfo> {
        self.rosters
            .get(meeting_id)
            .map(|r| {
                r.entries
                    .iter()
                    .map(|(s, e)| AttendeeInfo {
                        audio_stream_id: *s,
                        attendee_id: e.attendee_id.clone(),
                        external_user_id: e.external_user_id.clone(),
                        muted: e.muted,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The media engine as the SIP edge sees it.
pub struct Media {
    pool: PortPool,
    media_ip: Option<IpAddr>,
    reg: Mutex<Registry>,
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    engine: EngineConfig,
    pub metrics: Arc<api::metrics::Metrics>,
    repo: Arc<dyn store::Repository>,
    /// The shared WebRTC socket, once bound.
    webrtc: Mutex<Option<Arc<crate::webrtc::WebRtcPort>>>,
}

impl Media {
    pub fn new(
        rtp_ports: (u16, u16),
        media_ip: Option<IpAddr>,
        metrics: Arc<api::metrics::Metrics>,
        repo: Arc<dyn store::Repository>,
    ) -> Arc<Self> {
        Arc::new(Media {
            pool: PortPool::new(rtp_ports.0, rtp_ports.1),
            media_ip,
            reg: Mutex::new(Registry::default()),
            commands: Mutex::new(None),
            engine: EngineConfig::default(),
            metrics,
            repo,
            webrtc: Mutex::new(None),
        })
    }

    /// Connects the shared WebRTC socket (browser attendees).
    pub fn set_webrtc(&self, port: Arc<crate::webrtc::WebRtcPort>) {
        *self.webrtc.lock().unwrap_or_else(|p| p.into_inner()) = Some(port);
    }

    fn webrtc_port(&self) -> Option<Arc<crate::webrtc::WebRtcPort>> {
        self.webrtc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Browser sessions open now.
    pub fn active_browsers(&self) -> usize {
        self.reg.lock().map(|r| r.browsers.len()).unwrap_or(0)
    }

    /// A browser attendee's signaling session opens: it joins the meeting's roster
    /// (everyone is told) and gets the whole roster. An older session or SIP call of the
    /// same attendee ends (301 "joined from another device").
    pub fn browser_open(
        &self,
        meeting_id: &str,
        attendee_id: &str,
        external_user_id: &str,
    ) -> BrowserSession {
        let (tx, rx) = mpsc::channel(256);
        let (older, older_call, id, stream, roster) = {
            let mut r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
            let older: Vec<u64> = r
                .browsers
                .iter()
                .filter(|(_, b)| b.attendee_id == attendee_id)
                .map(|(id, _)| *id)
                .collect();
            let older_call = r.by_attendee.get(attendee_id).copied();
            r.next_browser += 1;
            let id = r.next_browser;
            let stream = r.roster_join(meeting_id, attendee_id, external_user_id, false, None);
            r.browsers.insert(
                id,
                BrowserInfo {
                    meeting_id: meeting_id.to_string(),
                    attendee_id: attendee_id.to_string(),
                    stream,
                    leg: None,
                    route: None,
                    tx,
                },
            );
            let roster = r.roster_snapshot(meeting_id);
            (older, older_call, id, stream, roster)
        };
        for old in older {
            tracing::info!(attendee = %attendee_id, "attendee joined from another device; ending the older browser session");
            self.browser_end(old, AudioStatus::JoinedFromAnotherDevice);
        }
        if let Some(call) = older_call {
            tracing::info!(attendee = %attendee_id, "attendee joined from a browser; ending the older SIP call");
            self.hang_up(call, "SIP;cause=200;text=\"joined from another device\"");
        }
        self.metrics
            .gauge_set("vc_browser_sessions", "", self.active_browsers() as i64);
        BrowserSession {
            id,
            stream,
            rx,
            roster,
        }
    }

    /// Tells a browser session to end with `status`; its driver then closes it.
    fn browser_end(&self, id: u64, status: AudioStatus) {
        let tx = self
            .reg
            .lock()
            .ok()
            .and_then(|r| r.browsers.get(&id).map(|b| b.tx.clone()));
        if let Some(tx) = tx {
            let _ = tx.try_send(SessionMsg::End(status));
        }
    }

    /// Answers a browser's SDP offer (SUBSCRIBE) with a WebRTC leg in its meeting. A
    /// renegotiation replaces the session's previous leg.
    pub async fn browser_subscribe(
        self: &Arc<Self>,
        id: u64,
        offer: String,
        muted: bool,
        browser_ip: Option<IpAddr>,
    ) -> Result<String, SubscribeError> {
        let port = self.webrtc_port().ok_or(SubscribeError::NoWebRtcPort)?;
        let (meeting_id, old) = {
            let mut r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
            let b = r.browsers.get_mut(&id).ok_or(SubscribeError::SessionGone)?;
            (b.meeting_id.clone(), (b.leg.take(), b.route.take()))
        };
        self.drop_browser_leg(&meeting_id, old.0, old.1).await;
        let tx = self.meeting_sender(&meeting_id);
        let candidate = port.candidate_for(browser_ip).await;
        let (reply, rx) = oneshot::channel();
        tx.send(MeetingMsg::AddWebRtc {
            offer,
            candidate,
            muted,
            socket: port.socket(),
            reply,
        })
        .await
        .map_err(|_| SubscribeError::MeetingGone)?;
        let answer = rx.await.map_err(|_| SubscribeError::MeetingGone)??;
        let route = port.add(&answer.ufrag, tx.clone(), answer.leg);
        let stale = {
            let mut r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
            match r.browsers.get_mut(&id) {
                Some(b) => {
                    b.leg = Some(answer.leg);
                    b.route = Some(route);
                    let stream = b.stream;
                    r.roster_set_leg(&meeting_id, stream, Some(answer.leg));
                    if let Some(e) = r
                        .rosters
                        .get_mut(&meeting_id)
                        .and_then(|x| x.entries.get_mut(&stream))
                    {
                        e.muted = muted;
                    }
                    false
                }
                None => true,
            }
        };
        if stale {
            self.drop_browser_leg(&meeting_id, Some(answer.leg), Some(route))
                .await;
            return Err(SubscribeError::SessionGone);
        }
        tracing::info!(meeting = %meeting_id, leg = %answer.leg, %candidate, "browser media leg added");
        Ok(answer.sdp)
    }

    async fn drop_browser_leg(&self, meeting_id: &str, leg: Option<LegId>, route: Option<u64>) {
        if let (Some(key), Some(port)) = (route, self.webrtc_port()) {
            port.remove(key);
        }
        let Some(leg) = leg else { return };
        let tx = self
            .reg
            .lock()
            .ok()
            .and_then(|r| r.meetings.get(meeting_id).map(|h| h.tx.clone()));
        if let Some(tx) = tx {
            let (reply, rx) = oneshot::channel();
            if tx.send(MeetingMsg::RemoveLeg { leg, reply }).await.is_ok() {
                let _ = rx.await;
            }
        }
    }

    /// The browser muted or unmuted itself: its audio leaves or rejoins the mix and
    /// every browser in the meeting is told.
    pub fn browser_mute(&self, id: u64, muted: bool) {
        let (meeting_id, leg, stream) = {
            let mut r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
            let Some(b) = r.browsers.get(&id) else { return };
            let (meeting_id, leg, stream) = (b.meeting_id.clone(), b.leg, b.stream);
            if let Some(e) = r
                .rosters
                .get_mut(&meeting_id)
                .and_then(|x| x.entries.get_mut(&stream))
            {
                e.muted = muted;
            }
            r.broadcast(&meeting_id, &SessionMsg::Muted { stream, muted });
            (meeting_id, leg, stream)
        };
        tracing::debug!(meeting = %meeting_id, stream, muted, "browser mute");
        if let Some(leg) = leg {
            let tx = self
                .reg
                .lock()
                .ok()
                .and_then(|r| r.meetings.get(&meeting_id).map(|h| h.tx.clone()));
            if let Some(tx) = tx {
                let _ = tx.try_send(MeetingMsg::SetMuted { leg, muted });
            }
        }
    }

    /// The browser's session ended (LEAVE, socket closed, or status sent): its leg goes
    /// and the others are told. `dropped` when the connection was lost rather than left.
    pub async fn browser_close(&self, id: u64, dropped: bool) {
        let gone = {
            let mut r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
            let Some(b) = r.browsers.remove(&id) else {
                return;
            };
            r.roster_leave(&b.meeting_id, b.stream, dropped);
            b
        };
        self.drop_browser_leg(&gone.meeting_id, gone.leg, gone.route)
            .await;
        self.metrics
            .gauge_set("vc_browser_sessions", "", self.active_browsers() as i64);
    }

    /// Connects the media side to the edge's command channel (for BYEs it starts).
    pub fn set_commands(&self, tx: mpsc::Sender<Command>) {
        *self.commands.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    fn hang_up(&self, call: CallKey, reason: &str) {
        let tx = self
            .commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(tx) = tx {
            let _ = tx.try_send(Command::Hangup {
                call,
                reason: Some(reason.to_string()),
            });
        }
    }

    /// Active legs (for metrics and tests).
    pub fn active_calls(&self) -> usize {
        self.reg.lock().map(|r| r.calls.len()).unwrap_or(0)
    }

    /// Meetings that have at least one call on this node.
    pub fn active_meetings(&self) -> Vec<String> {
        let r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<String> = r
            .calls
            .values()
            .map(|c| c.meeting_id.clone())
            .chain(r.browsers.values().map(|b| b.meeting_id.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    pub fn free_ports(&self) -> usize {
        self.pool.available()
    }

    /// Ends every call in a meeting (DeleteMeeting, auto-end).
    pub fn end_meeting(&self, meeting_id: &str) {
        let calls: Vec<CallKey> = {
            let r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
            r.calls
                .iter()
                .filter(|(_, c)| c.meeting_id == meeting_id)
                .map(|(k, _)| *k)
                .collect()
        };
        for c in calls {
            self.hang_up(c, "SIP;cause=410;text=\"meeting ended\"");
        }
        let browsers: Vec<u64> = {
            let r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
            r.browsers
                .iter()
                .filter(|(_, b)| b.meeting_id == meeting_id)
                .map(|(id, _)| *id)
                .collect()
        };
        for b in browsers {
            self.browser_end(b, AudioStatus::MeetingEnded);
        }
    }

    /// Ends an attendee's call (DeleteAttendee).
    pub fn end_attendee(&self, attendee_id: &str) {
        let call = self
            .reg
            .lock()
            .ok()
            .and_then(|r| r.by_attendee.get(attendee_id).copied());
        if let Some(c) = call {
            self.hang_up(
                c,
                "SIP;cause=410;text=\"attendee removed from the meeting\"",
            );
        }
        let browsers: Vec<u64> = {
            let r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
            r.browsers
                .iter()
                .filter(|(_, b)| b.attendee_id == attendee_id)
                .map(|(id, _)| *id)
                .collect()
        };
        for b in browsers {
            self.browser_end(b, AudioStatus::AttendeeRemoved);
        }
    }

    fn meeting_sender(self: &Arc<Self>, meeting_id: &str) -> mpsc::Sender<MeetingMsg> {
        let mut r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = r.meetings.get(meeting_id)
            && !h.tx.is_closed()
        {
            return h.tx.clone();
        }
        let (tx, rx) = mpsc::channel(8192);
        let wallclock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let media = MeetingMedia::new(Instant::now(), wallclock, self.engine);
        tokio::spawn(run_meeting(self.clone(), meeting_id.to_string(), media, rx));
        r.meetings
            .insert(meeting_id.to_string(), MeetingHandle { tx: tx.clone() });
        tx
    }

    async fn media_metrics_enabled(&self, vc_id: &str) -> bool {
        let doc = self
            .repo
            .get_setting(vc_id, store::SettingKind::Logging)
            .await
            .ok()
            .flatten();
        doc.and_then(|d| {
            serde_json::from_value::<domain::voice_connector::LoggingConfiguration>(d).ok()
        })
        .and_then(|l| l.enable_media_metric_logs)
        .unwrap_or(false)
    }

    /// Every `interval`, one media-metrics record per call whose connector has
    /// EnableMediaMetricLogs: packets, loss, jitter, RTT and a MOS estimate for the interval,
    /// as JSON lines in `<dir>/<voice-connector-id>/media-metrics.jsonl`.
    pub async fn run_media_metrics(
        self: Arc<Self>,
        dir: std::path::PathBuf,
        interval: std::time::Duration,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let due: Vec<(CallKey, LegId, mpsc::Sender<MeetingMsg>)> = {
                let r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
                r.calls
                    .iter()
                    .filter(|(_, c)| c.media_metrics)
                    .filter_map(|(k, c)| {
                        Some((*k, c.leg?, r.meetings.get(&c.meeting_id)?.tx.clone()))
                    })
                    .collect()
            };
            for (call, leg, tx) in due {
                let (reply, rx) = oneshot::channel();
                if tx.send(MeetingMsg::Stats { leg, reply }).await.is_err() {
                    continue;
                }
                let Ok(Some(now)) = rx.await else { continue };
                let line = {
                    let mut r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
                    let Some(c) = r.calls.get_mut(&call) else {
                        continue;
                    };
                    let prev = std::mem::replace(&mut c.last_metrics, now);
                    let received = now.packets_in.saturating_sub(prev.packets_in);
                    let lost = (now.lost - prev.lost).max(0) as u64;
                    let expected = received + lost;
                    let loss_pct = if expected == 0 {
                        0.0
                    } else {
                        lost as f64 * 100.0 / expected as f64
                    };
                    let rtt = now.rtt_ms.map(f64::from).unwrap_or(0.0);
                    let mos = domain::quality::mos_estimate(
                        rtt,
                        f64::from(now.jitter_ms),
                        loss_pct,
                        25.1,
                    );
                    (
                        c.cdr.voice_connector_id.clone(),
                        serde_json::json!({
                            "Timestamp": domain::timestamp::iso8601(domain::timestamp::now_millis()),
                            "VoiceConnectorId": c.cdr.voice_connector_id,
                            "TransactionId": c.cdr.transaction_id,
                            "CallId": c.cdr.call_id,
                            "MeetingId": c.meeting_id,
                            "IntervalSeconds": interval.as_secs(),
                            "PacketsReceived": received,
                            "PacketsSent": now.packets_out.saturating_sub(prev.packets_out),
                            "PacketsLost": lost,
                            "LossPercent": loss_pct,
                            "JitterMs": now.jitter_ms,
                            "RoundTripTimeMs": now.rtt_ms,
                            "MosEstimate": (mos * 100.0).round() / 100.0,
                        })
                        .to_string(),
                    )
                };
                crate::siplog::append_line(&dir.join(&line.0), "media-metrics.jsonl", line.1).await;
            }
        }
    }

    /// Adds a negotiated leg to its meeting's media and starts reading its sockets.
    async fn attach(
        self: &Arc<Self>,
        meeting_id: &str,
        negotiated: &crate::offer::Negotiated,
        rtp: Arc<UdpSocket>,
        rtcp: Arc<UdpSocket>,
    ) -> Option<(LegId, Vec<tokio::task::JoinHandle<()>>)> {
        let tx = self.meeting_sender(meeting_id);
        let (reply, rx) = oneshot::channel();
        let add = MeetingMsg::AddLeg {
            cfg: negotiated.leg.clone(),
            rtp: rtp.clone(),
            rtcp: rtcp.clone(),
            reply,
        };
        tx.send(add).await.ok()?;
        let leg = rx.await.ok()?.ok()?;
        let readers = vec![
            spawn_reader(rtp, leg, tx.clone()),
            spawn_reader(rtcp, leg, tx),
        ];
        Some((leg, readers))
    }

    fn on_engine_event(&self, meeting_id: &str, ev: EngineEvent) {
        match ev {
            EngineEvent::Inactive { leg } => {
                let call = self
                    .reg
                    .lock()
                    .ok()
                    .and_then(|r| r.by_leg.get(&(meeting_id.to_string(), leg)).copied());
                if let Some(call) = call {
                    tracing::info!(meeting = %meeting_id, %leg, "no RTP for the inactivity timeout; hanging up");
                    self.hang_up(call, "SIP;cause=408;text=\"no RTP received\"");
                    return;
                }
                let browser = self.reg.lock().ok().and_then(|r| {
                    r.browsers
                        .values()
                        .find(|b| b.meeting_id == meeting_id && b.leg == Some(leg))
                        .map(|b| b.tx.clone())
                });
                if let Some(tx) = browser {
                    tracing::info!(meeting = %meeting_id, %leg, "browser media lost (ICE consent or silence); closing its session");
                    let _ = tx.try_send(SessionMsg::MediaLost);
                }
            }
            EngineEvent::Levels(levels) => {
                let r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
                let Some(roster) = r.rosters.get(meeting_id) else {
                    return;
                };
                if !r.browsers.values().any(|b| b.meeting_id == meeting_id) {
                    return;
                }
                let by_leg: HashMap<LegId, u32> = roster
                    .entries
                    .iter()
                    .filter_map(|(s, e)| Some((e.leg?, *s)))
                    .collect();
                let volumes: Vec<AttendeeVolume> = levels
                    .iter()
                    .filter_map(|(leg, volume, muted)| {
                        Some(AttendeeVolume {
                            audio_stream_id: *by_leg.get(leg)?,
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
                    r.broadcast(meeting_id, &SessionMsg::Levels(volumes));
                }
            }
            EngineEvent::Dtmf {
                leg,
                digit,
                duration_ms,
            } => {
                tracing::info!(meeting = %meeting_id, %leg, %digit, duration_ms, "DTMF");
                self.metrics.counter_add("vc_dtmf_events_total", "", 1);
            }
            EngineEvent::WebRtcConnected { leg } => {
                tracing::info!(meeting = %meeting_id, %leg, "browser media connected (ICE, DTLS-SRTP)");
                self.metrics.counter_add("vc_webrtc_connected_total", "", 1);
            }
            EngineEvent::ActiveSpeakers(_) => {}
        }
    }

    async fn release(
        &self,
        call: CallKey,
        ended: Option<sip::TerminationReason>,
    ) -> Option<(CallInfo, Option<LegStats>)> {
        let (info, tx) = {
            let mut r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
            let Some(info) = r.calls.remove(&call) else {
                // Not admitted (yet): remember, in case the join is being accepted right now.
                if let Some(reason) =
                    ended.filter(|r| !matches!(r, sip::TerminationReason::Rejected(_)))
                {
                    let now = Instant::now();
                    r.ended_early
                        .retain(|_, (at, _)| now.saturating_duration_since(*at).as_secs() < 60);
                    r.ended_early.insert(call, (now, reason));
                }
                return None;
            };
            if r.by_attendee.get(&info.attendee_id) == Some(&call) {
                r.by_attendee.remove(&info.attendee_id);
            }
            if let Some(leg) = info.leg {
                r.by_leg.remove(&(info.meeting_id.clone(), leg));
            }
            r.roster_leave(&info.meeting_id, info.stream, false);
            let tx = r.meetings.get(&info.meeting_id).map(|h| h.tx.clone());
            (info, tx)
        };
        for h in &info.readers {
            h.abort();
        }
        let mut stats = None;
        if let (Some(leg), Some(tx)) = (info.leg, tx) {
            let (reply, rx) = oneshot::channel();
            if tx.send(MeetingMsg::RemoveLeg { leg, reply }).await.is_ok() {
                stats = rx.await.ok().flatten();
            }
        }
        self.pool.give_back(info.port);
        self.metrics
            .gauge_set("vc_active_legs", "", self.active_calls() as i64);
        Some((info, stats))
    }
}

async fn run_meeting(
    media_ref: Arc<Media>,
    meeting_id: String,
    mut media: MeetingMedia,
    mut rx: mpsc::Receiver<MeetingMsg>,
) {
    let mut sockets: HashMap<LegId, (Arc<UdpSocket>, Arc<UdpSocket>)> = HashMap::new();
    loop {
        let deadline = media.poll_timeout();
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                let now = Instant::now();
                match msg {
                    MeetingMsg::Packet { leg, from, data } => media.handle_packet(now, leg, from, &data),
                    MeetingMsg::AddLeg { cfg, rtp, rtcp, reply } => {
                        let r = media.add_leg(now, cfg).map_err(|e| e.to_string());
                        if let Ok(leg) = r {
                            sockets.insert(leg, (rtp, rtcp));
                        }
                        let _ = reply.send(r);
                    }
                    MeetingMsg::RemoveLeg { leg, reply } => {
                        let socks = sockets.remove(&leg);
                        let _ = reply.send(media.remove_leg(leg));
                        // A WebRTC leg's last datagrams (DTLS close_notify) still go out.
                        while let Some(t) = media.poll_transmit() {
                            let sock = if t.leg == leg {
                                socks.as_ref().map(|s| &s.0)
                            } else {
                                sockets.get(&t.leg).map(|s| if t.rtcp { &s.1 } else { &s.0 })
                            };
                            if let Some(sock) = sock {
                                let _ = sock.try_send_to(&t.bytes, t.dest);
                            }
                        }
                        if media.leg_count() == 0 {
                            let mut r = media_ref.reg.lock().unwrap_or_else(|p| p.into_inner());
                            let still_empty = !r.meeting_in_use(&meeting_id);
                            if still_empty {
                                r.meetings.remove(&meeting_id);
                                break;
                            }
                        }
                    }
                    MeetingMsg::Stats { leg, reply } => {
                        let _ = reply.send(media.leg_stats(leg));
                    }
                    MeetingMsg::Update { leg, cfg } => {
                        if let Err(e) = media.update_leg(now, leg, cfg) {
                            tracing::warn!(%leg, error = %e, "re-negotiated media could not be applied");
                        }
                    }
                    MeetingMsg::AddWebRtc { offer, candidate, muted, socket, reply } => {
                        let r = media.add_webrtc_leg(now, &offer, candidate, muted);
                        if let Ok(a) = &r {
                            sockets.insert(a.leg, (socket.clone(), socket));
                        }
                        let _ = reply.send(r);
                    }
                    MeetingMsg::SetMuted { leg, muted } => {
                        let _ = media.set_muted(leg, muted);
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => media.handle_timeout(Instant::now()),
        }
        while let Some(t) = media.poll_transmit() {
            if let Some((rtp, rtcp)) = sockets.get(&t.leg) {
                let sock = if t.rtcp { rtcp } else { rtp };
                // Non-blocking: a full socket buffer drops this packet rather than stall the mix.
                let _ = sock.try_send_to(&t.bytes, t.dest);
            }
        }
        while let Some(ev) = media.poll_event() {
            media_ref.on_engine_event(&meeting_id, ev);
        }
    }
}

fn spawn_reader(
    sock: Arc<UdpSocket>,
    leg: LegId,
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

/// The address to write into SDP: `--media-ip`, else the address the SIP request arrived
/// on, else the local address that routes to the caller.
async fn media_address(configured: Option<IpAddr>, peer: &Peer) -> IpAddr {
    if let Some(ip) = configured {
        return ip;
    }
    if !peer.local.ip().is_unspecified() {
        return peer.local.ip();
    }
    if let Ok(s) = UdpSocket::bind((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)).await
        && s.connect(peer.remote).await.is_ok()
        && let Ok(a) = s.local_addr()
    {
        return a.ip();
    }
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

impl CallApp for Arc<Media> {
    async fn accept_join(
        &self,
        call: CallKey,
        invite: &Request,
        peer: &Peer,
        join: &Decision,
    ) -> Result<Body, (u16, String)> {
        let Decision::Join {
            connector,
            meeting,
            attendee,
        } = join
        else {
            return Err((500, "internal error".into()));
        };
        let ip = media_address(self.media_ip, peer).await;
        let Some((port, rtp, rtcp)) = bind_pair(&self.pool).await else {
            return Err((503, "no free RTP ports; try again later".into()));
        };
        let (rtp, rtcp) = (Arc::new(rtp), Arc::new(rtcp));
        let meeting_id = meeting.meeting.meeting_id.clone();
        let mut info = CallInfo {
            meeting_id: meeting_id.clone(),
            attendee_id: attendee.attendee_id.clone(),
            leg: None,
            port,
            readers: Vec::new(),
            stream: 0,
            negotiated: None,
            pending: None,
            started: Instant::now(),
            cdr: CdrSeed::from_invite(&connector.voice_connector_id, invite, peer),
            media_metrics: self
                .media_metrics_enabled(&connector.voice_connector_id)
                .await,
            last_metrics: LegStats::default(),
        };
        let body = if invite.body.is_empty() {
            let over_tls = peer.transport == sip::TransportKind::Tls;
            let (session, offer) =
                crate::offer::offer(connector.require_encryption, over_tls, ip, port);
            info.pending = Some((session, rtp, rtcp));
            Body::sdp(offer)
        } else {
            let negotiated =
                match crate::offer::answer(&invite.body, connector.require_encryption, ip, port) {
                    Ok(n) => n,
                    Err(e) => {
                        self.pool.give_back(port);
                        return Err(e);
                    }
                };
            let body = Body::sdp(negotiated.answer.clone());
            match self.attach(&meeting_id, &negotiated, rtp, rtcp).await {
                Some((leg, readers)) => {
                    info.leg = Some(leg);
                    info.readers = readers;
                    info.negotiated = Some(negotiated);
                }
                None => {
                    self.pool.give_back(port);
                    return Err((
                        500,
                        "internal error: the meeting's media could not take the leg".into(),
                    ));
                }
            }
            body
        };
        let leg = info.leg;
        let previous = {
            let mut r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
            let prev = r.by_attendee.insert(attendee.attendee_id.clone(), call);
            if let Some(leg) = leg {
                r.by_leg.insert((meeting_id.clone(), leg), call);
            }
            // Browsers list a SIP caller by its number (the From user), as Chime does.
            let number = info.cdr.source_phone_number.clone();
            info.stream = r.roster_join(&meeting_id, &attendee.attendee_id, &number, false, leg);
            r.calls.insert(call, info);
            prev
        };
        // A CANCEL (or any end) that overtook this join: undo it now.
        let ended = self
            .reg
            .lock()
            .ok()
            .and_then(|mut r| r.ended_early.remove(&call));
        if let Some((_, reason)) = ended {
            tracing::info!(
                ?call,
                ?reason,
                "the call ended while its join was being accepted; releasing it"
            );
            self.finish_call(call, reason).await;
            return Err((487, "the request was cancelled".into()));
        }
        // The same attendee joining again: the older leg goes, as Chime does.
        if let Some(old) = previous.filter(|c| *c != call) {
            tracing::info!(attendee = %attendee.attendee_id, "attendee joined from another device; ending the older call");
            self.hang_up(old, "SIP;cause=200;text=\"joined from another device\"");
        }
        self.metrics
            .gauge_set("vc_active_legs", "", self.active_calls() as i64);
        let (codec, suite) = {
            let r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
            r.calls
                .get(&call)
                .and_then(|c| c.negotiated.as_ref())
                .map(|n| {
                    (
                        n.codec.clone(),
                        n.srtp_suite.clone().unwrap_or_else(|| "none".into()),
                    )
                })
                .unwrap_or_else(|| ("pending".into(), "pending".into()))
        };
        tracing::info!(?call, meeting = %meeting_id, attendee = %attendee.attendee_id, port, delayed_offer = leg.is_none(), %codec, srtp = %suite, "joined meeting");
        Ok(body)
    }

    fn confirmed(&self, call: CallKey, ack_body: &[u8]) {
        self.metrics.counter_add("vc_calls_answered_total", "", 1);
        let pending = {
            let mut r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
            r.calls
                .get_mut(&call)
                .and_then(|c| c.pending.take().map(|p| (p, c.meeting_id.clone())))
        };
        let Some(((session, rtp, rtcp), meeting_id)) = pending else {
            return;
        };
        let this = self.clone();
        let answer = ack_body.to_vec();
        tokio::spawn(async move {
            let negotiated = match crate::offer::accept(session, &answer) {
                Ok(n) => n,
                Err((status, why)) => {
                    tracing::info!(?call, status, reason = %why, "the ACK's answer to our offer is unusable; hanging up");
                    this.hang_up(
                        call,
                        &format!("SIP;cause={status};text=\"{}\"", why.replace('"', "'")),
                    );
                    return;
                }
            };
            let Some((leg, readers)) = this.attach(&meeting_id, &negotiated, rtp, rtcp).await
            else {
                this.hang_up(call, "SIP;cause=500;text=\"media could not start\"");
                return;
            };
            let mut r = this.reg.lock().unwrap_or_else(|p| p.into_inner());
            match r.calls.get_mut(&call) {
                Some(c) => {
                    c.leg = Some(leg);
                    c.readers = readers;
                    c.negotiated = Some(negotiated);
                    let stream = c.stream;
                    r.by_leg.insert((meeting_id.clone(), leg), call);
                    r.roster_set_leg(&meeting_id, stream, Some(leg));
                }
                None => {
                    // The call ended meanwhile: undo.
                    for h in readers {
                        h.abort();
                    }
                    if let Some(h) = r.meetings.get(&meeting_id) {
                        let (reply, _) = oneshot::channel();
                        let _ = h.tx.try_send(MeetingMsg::RemoveLeg { leg, reply });
                    }
                }
            }
        });
    }

    fn note_attempt(&self) {
        self.metrics.counter_add("vc_calls_attempted_total", "", 1);
    }

    fn note_refusal(&self, status: u16) {
        self.metrics
            .counter_add("vc_calls_failed_total", &format!("status=\"{status}\""), 1);
    }

    fn terminated(&self, call: CallKey, reason: sip::TerminationReason) {
        let this = self.clone();
        tokio::spawn(async move {
            this.finish_call(call, reason).await;
        });
    }

    fn reoffer(&self, call: CallKey, offer: &[u8]) -> Result<Body, (u16, String)> {
        let mut r = self.reg.lock().unwrap_or_else(|p| p.into_inner());
        let Some(info) = r.calls.get_mut(&call) else {
            return Err((481, "call does not exist".into()));
        };
        let Some(negotiated) = info.negotiated.as_mut() else {
            return Err((491, "an offer is already pending on this call".into()));
        };
        let (answer, _) = crate::offer::reanswer(negotiated, offer)?;
        let cfg = negotiated.leg.clone();
        let (leg, meeting_id) = (info.leg, info.meeting_id.clone());
        if let (Some(leg), Some(h)) = (leg, r.meetings.get(&meeting_id)) {
            // Codec, keys, addresses and direction as renegotiated (hold/resume included).
            if h.tx.try_send(MeetingMsg::Update { leg, cfg }).is_err() {
                return Err((500, "the meeting's media is overloaded; try again".into()));
            }
        }
        Ok(Body::sdp(answer))
    }
}

impl Media {
    /// Releases a call's media and stores its call record.
    async fn finish_call(self: &Arc<Self>, call: CallKey, reason: sip::TerminationReason) {
        let this = self;
        if let Some((info, stats)) = this.release(call, Some(reason)).await {
            tracing::info!(?call, meeting = %info.meeting_id, ?reason, secs = info.started.elapsed().as_secs(), stats = ?stats, "call ended");
            let (status, code) = match reason {
                sip::TerminationReason::RemoteBye
                | sip::TerminationReason::LocalBye
                | sip::TerminationReason::SessionExpired => ("Completed", 200),
                sip::TerminationReason::Cancelled => ("Cancelled", 487),
                // No answer went out (the operator's silence for unallowed sources).
                sip::TerminationReason::Discarded => ("Refused", 0),
                sip::TerminationReason::Rejected(c)
                | sip::TerminationReason::Failed(c)
                | sip::TerminationReason::DialogGone(c) => ("Failed", c),
                sip::TerminationReason::AckTimeout | sip::TerminationReason::PrackTimeout => {
                    ("Failed", 408)
                }
            };
            this.metrics
                .counter_add("vc_calls_ended_total", &format!("status=\"{status}\""), 1);
            let mut rec = info.cdr.finish(status, code, Some(format!("{reason:?}")));
            rec.meeting_id = Some(info.meeting_id.clone());
            rec.attendee_id = Some(info.attendee_id.clone());
            if let Some(n) = &info.negotiated {
                rec.codec = Some(n.codec.clone());
                rec.srtp_suite = n.srtp_suite.clone();
            }
            if let Some(st) = &stats {
                let m = &this.metrics;
                m.counter_add("vc_rtp_packets_total", "direction=\"in\"", st.packets_in);
                m.counter_add("vc_rtp_packets_total", "direction=\"out\"", st.packets_out);
                m.counter_add("vc_rtp_packets_lost_total", "", st.lost.max(0) as u64);
                m.counter_add("vc_srtp_failures_total", "", st.srtp_failures);
                m.observe(
                    "vc_call_jitter_ms",
                    &[5.0, 10.0, 20.0, 40.0, 80.0, 160.0],
                    f64::from(st.jitter_ms),
                );
            }
            rec.media = stats.map(|s| domain::call_record::MediaStatistics {
                packets_received: s.packets_in,
                packets_sent: s.packets_out,
                packets_lost: s.lost,
                jitter_ms: s.jitter_ms,
                round_trip_time_ms: s.rtt_ms,
                srtp_failures: s.srtp_failures,
            });
            store_call_record(&this.repo, rec, info.cdr.start_ms).await;
        }
    }
}
