//! A browser attendee's leg as its signaling session drives it: it joins the call table
//! (which ends an older leg of the same attendee) and its meeting's roster, answers SDP
//! offers with a WebRTC leg on the shared port, mutes, relays its data messages to the
//! meeting's other browsers ([`data`]), and leaves.

pub mod data;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use calls::{LegId, Member};
use chime_signal::AttendeeInfo;
use tokio::sync::{mpsc, oneshot};

use crate::directory::Meetings;
use crate::edge::Controller;
use crate::meeting::{MeetingMsg, SessionMsg, SubscribeError};
use crate::webrtc_port::WebRtcPort;

/// Session ids: unique per process.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// What browser sessions share.
pub struct Browsers {
    pub controller: Controller,
    pub meetings: Arc<Meetings>,
    pub port: Arc<WebRtcPort>,
    /// The meetings' data-message rooms.
    pub data: data::DataRooms,
    /// The TURN server browsers are told to relay through (JOIN_ACK).
    pub turn: Option<chime_signal::TurnConfig>,
}

/// The TURN server of `--turn-uris` and `--turn-secret-file`: both or neither. The
/// secret is the file's content less a trailing line end, at least 16 bytes.
pub fn turn_config(
    uris: &[String],
    secret_file: Option<&std::path::Path>,
) -> anyhow::Result<Option<chime_signal::TurnConfig>> {
    use anyhow::Context as _;
    let uris: Vec<String> = uris
        .iter()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    let Some(path) = secret_file else {
        anyhow::ensure!(uris.is_empty(), "--turn-uris needs --turn-secret-file");
        return Ok(None);
    };
    anyhow::ensure!(!uris.is_empty(), "--turn-secret-file needs --turn-uris");
    for u in &uris {
        anyhow::ensure!(
            u.starts_with("turn:") || u.starts_with("turns:"),
            "--turn-uris: {u:?} is not a turn: or turns: URI (RFC 7065)"
        );
    }
    let mut secret = std::fs::read(path)
        .with_context(|| format!("reading --turn-secret-file {}", path.display()))?;
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    anyhow::ensure!(
        secret.len() >= 16,
        "--turn-secret-file {}: the secret must be at least 16 bytes",
        path.display()
    );
    Ok(Some(chime_signal::TurnConfig {
        uris,
        secret,
        ttl_s: chime_signal::DEFAULT_TURN_TTL_S,
    }))
}

/// One browser's leg.
pub struct BrowserLeg {
    pub leg: LegId,
    pub stream: u32,
    pub rx: mpsc::Receiver<SessionMsg>,
    /// The roster at join, the joiner included.
    pub roster: Vec<AttendeeInfo>,
    /// The meeting's other browsers' data messages.
    pub data_rx: mpsc::Receiver<data::Relayed>,
    meeting_id: String,
    session: u64,
    meeting: mpsc::Sender<MeetingMsg>,
    route: Option<u64>,
}

/// Why a browser could not join the meeting's audio.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the call controller has stopped")]
    ControllerGone,
    #[error("the meeting's media is gone")]
    MeetingGone,
}

impl Browsers {
    /// The session joins: the call table first (an older leg of the attendee ends), then
    /// the meeting's roster (everyone is told). Its media legs get `audio`, the attendee's
    /// audio capability.
    pub async fn open(
        &self,
        meeting_id: &str,
        attendee_id: &str,
        external_user_id: &str,
        audio: domain::meeting::Capability,
    ) -> Result<BrowserLeg, OpenError> {
        let session = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        let member = Member {
            meeting_id: meeting_id.to_string(),
            attendee_id: attendee_id.to_string(),
        };
        let leg = self
            .controller
            .browser_open(session, member)
            .await
            .ok_or(OpenError::ControllerGone)?;
        let (tx, rx) = mpsc::channel(256);
        for _ in 0..2 {
            let meeting = self.meetings.get_or_start(meeting_id);
            let (reply, answer) = oneshot::channel();
            let msg = MeetingMsg::BrowserOpen {
                leg,
                attendee_id: attendee_id.to_string(),
                external_user_id: external_user_id.to_string(),
                audio,
                session: tx.clone(),
                reply,
            };
            if meeting.send(msg).await.is_err() {
                continue;
            }
            if let Ok((stream, roster)) = answer.await {
                return Ok(BrowserLeg {
                    leg,
                    stream,
                    rx,
                    roster,
                    data_rx: self.data.join(meeting_id, session, Instant::now()),
                    meeting_id: meeting_id.to_string(),
                    session,
                    meeting,
                    route: None,
                });
            }
        }
        self.controller.browser_closed(leg, true).await;
        Err(OpenError::MeetingGone)
    }

    /// Answers the browser's SDP offer (SUBSCRIBE): the first with a WebRTC leg, later ones
    /// (a camera turned on or off, an ICE restart) on that same leg, which keeps its ICE,
    /// DTLS and SRTP; after an ICE restart the leg's new ufrag routes to it. The answer's
    /// video part names the stream id of the browser's camera and the streams its receive
    /// sections carry.
    pub async fn subscribe(
        &self,
        b: &mut BrowserLeg,
        offer: String,
        muted: bool,
        video: chime_signal::SubscribeVideo,
        browser_ip: Option<IpAddr>,
    ) -> Result<(String, chime_signal::VideoAnswer), SubscribeError> {
        let candidate = self.port.candidate_for(browser_ip).await;
        let (reply, rx) = oneshot::channel();
        b.meeting
            .send(MeetingMsg::Subscribe {
                leg: b.leg,
                offer,
                candidate,
                muted,
                socket: self.port.socket(),
                video,
                reply,
            })
            .await
            .map_err(|_| SubscribeError::MeetingGone)?;
        let crate::meeting::SubscribeAnswer {
            webrtc: answer,
            video,
        } = rx.await.map_err(|_| SubscribeError::MeetingGone)??;
        match b.route {
            Some(route) => {
                self.port.set_ufrag(route, &answer.ufrag);
                tracing::info!(leg = %b.leg, engine_leg = %answer.leg, "browser media renegotiated");
            }
            None => {
                b.route = Some(self.port.add(&answer.ufrag, b.meeting.clone(), answer.leg));
                tracing::info!(leg = %b.leg, engine_leg = %answer.leg, %candidate, "browser media leg added");
            }
        }
        Ok((answer.sdp, video))
    }

    /// The browser muted or unmuted itself.
    pub fn mute(&self, b: &BrowserLeg, muted: bool) {
        let _ = b.meeting.try_send(MeetingMsg::Mute { leg: b.leg, muted });
    }

    /// The browser's data message (within Amazon Chime's limits, checked by its session)
    /// to the meeting's other browsers.
    pub fn relay_data(&self, b: &BrowserLeg, message: chime_signal::DataMessage) {
        let lost = self
            .data
            .relay(&b.meeting_id, b.session, message, Instant::now());
        if lost > 0 {
            tracing::info!(meeting = %b.meeting_id, lost, "a data message did not reach browsers that fell behind");
        }
    }

    /// The session ended (LEAVE, socket closed, or a status sent): its leg goes and the
    /// others are told. `dropped` when the connection was lost rather than left.
    pub async fn close(&self, b: BrowserLeg, dropped: bool) {
        self.data.leave(&b.meeting_id, b.session);
        if let Some(route) = b.route {
            self.port.remove(route);
        }
        let _ = b
            .meeting
            .send(MeetingMsg::Remove {
                leg: b.leg,
                dropped,
                reply: None,
            })
            .await;
        self.controller.browser_closed(b.leg, dropped).await;
    }
}
