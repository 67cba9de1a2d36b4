//! How the rest of the server reaches the edge task: [`Input`] messages, sent through the
//! [`Controller`] handle.

use std::time::Duration;

use calls::{LegId, Member};
use tokio::sync::{mpsc, oneshot};

use super::join::JoinOutcome;
use crate::meeting::MeetingMsg;

/// What reaches the edge task besides SIP.
pub enum Input {
    /// An INVITE's admission and join finished.
    Joined {
        leg: LegId,
        outcome: JoinOutcome,
    },
    /// A delayed offer's leg went into its mixer (or could not).
    Attached {
        leg: LegId,
        meeting: Option<mpsc::Sender<MeetingMsg>>,
    },
    /// Answer a request outside the INVITE dialogs (OPTIONS).
    Respond {
        txn: sip::TransactionKey,
        response: sip::Response,
    },
    /// A browser attendee's session joined the meeting's audio.
    BrowserOpen {
        session: u64,
        member: Member,
        reply: oneshot::Sender<LegId>,
    },
    /// A browser attendee's session closed.
    BrowserClosed {
        leg: LegId,
        dropped: bool,
    },
    DeleteAttendee(String),
    DeleteMeeting(String),
    /// Meetings with legs here (for the auto-end sweep).
    Meetings(oneshot::Sender<Vec<String>>),
    /// The attendees with legs here (for reconciling with the store).
    Members(oneshot::Sender<Vec<Member>>),
    /// The SIP legs whose connectors log media metrics.
    MetricsTargets(oneshot::Sender<Vec<MetricsTarget>>),
    /// A carrier attempt of a PSTN call is ready to dial.
    PstnDial {
        a: LegId,
        dial: Box<super::pstn::Dial>,
    },
    /// A carrier attempt could not be prepared.
    PstnDialFailed {
        a: LegId,
        carrier: String,
        why: String,
    },
    /// A SIP media application's JoinChimeMeeting moved the leg's media (or failed to).
    SmaMoved {
        leg: LegId,
        member: Member,
        result: Result<mpsc::Sender<MeetingMsg>, String>,
    },
    /// CreateSipMediaApplicationCall and UpdateSipMediaApplicationCall requests taken from
    /// the store's queue (`crate::sma::requests`).
    SmaRequests(Vec<store::SmaCallRequest>),
    /// An application's outbound call is ready to dial (`edge::sma_dial`).
    SmaDial(Box<super::sma_dial::Prepared>),
    /// A CallAndBridge's LEG-B (`call_id`) for LEG-A `a` is ready to dial, or why not
    /// (`edge::sma_bridge`).
    SmaBridge {
        a: LegId,
        call_id: String,
        dial: Result<Box<super::sma_bridge::BridgeDial>, super::sma_bridge::NotDialled>,
    },
    /// Offer a bridged leg its direction again after a glare (RFC 3261 §14.1).
    Reoffer {
        leg: LegId,
    },
    /// Send an OPTIONS keep-alive to a carrier.
    Probe(super::Probe),
    /// The carriers to register with (`edge::register`).
    Register(super::register::Tick),
    /// The web console's live calls (`edge::live`).
    Live(super::live::Query),
    /// A SIP message to this peer could not be sent (stream transports): its transactions
    /// end as transport failures.
    TransportError(sip::Peer),
    /// Stop taking calls (503 with Retry-After); hang up what is left after `grace`;
    /// `done` answers once every leg is released.
    Drain {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
}

/// A leg due a media-metrics record.
pub struct MetricsTarget {
    pub leg: LegId,
    pub meeting: mpsc::Sender<MeetingMsg>,
    pub meeting_id: String,
    pub cdr: crate::records::CdrSeed,
}

/// How the rest of the server reaches the call controller.
#[derive(Clone)]
pub struct Controller {
    pub(super) tx: mpsc::Sender<Input>,
}

impl Controller {
    pub(super) async fn send(&self, input: Input) {
        if self.tx.send(input).await.is_err() {
            tracing::debug!("the SIP edge has stopped");
        }
    }

    /// A browser attendee joins; an older leg of the same attendee is ended.
    pub async fn browser_open(&self, session: u64, member: Member) -> Option<LegId> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::BrowserOpen {
            session,
            member,
            reply,
        })
        .await;
        rx.await.ok()
    }

    pub async fn browser_closed(&self, leg: LegId, dropped: bool) {
        self.send(Input::BrowserClosed { leg, dropped }).await;
    }

    pub async fn delete_attendee(&self, attendee_id: &str) {
        self.send(Input::DeleteAttendee(attendee_id.to_string()))
            .await;
    }

    pub async fn delete_meeting(&self, meeting_id: &str) {
        self.send(Input::DeleteMeeting(meeting_id.to_string()))
            .await;
    }

    /// Meetings with at least one leg on this node.
    pub async fn meetings(&self) -> Vec<String> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::Meetings(reply)).await;
        rx.await.unwrap_or_default()
    }

    /// Sends an OPTIONS keep-alive to a carrier (its outcome is stored as the carrier's
    /// status).
    pub async fn probe(&self, p: super::Probe) {
        self.send(Input::Probe(p)).await;
    }

    /// Hands the edge the carriers to register with; false once the edge has stopped.
    pub async fn register(&self, tick: super::register::Tick) -> bool {
        self.tx.send(Input::Register(tick)).await.is_ok()
    }

    /// Hands the edge queued SIP media application call requests: creates dial out, updates
    /// reach their call's flow when it runs on this node.
    pub async fn sma_requests(&self, requests: Vec<store::SmaCallRequest>) {
        self.send(Input::SmaRequests(requests)).await;
    }

    /// The attendees with a leg on this node.
    pub async fn members(&self) -> Vec<Member> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::Members(reply)).await;
        rx.await.unwrap_or_default()
    }

    pub async fn metrics_targets(&self) -> Vec<MetricsTarget> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::MetricsTargets(reply)).await;
        rx.await.unwrap_or_default()
    }

    /// Drains the edge for a shutdown: new INVITEs get 503 with Retry-After, calls still
    /// up after `grace` get BYE with `Reason: SIP;cause=503;text="server shutting down"`.
    /// Returns once every leg is released (their records queued), or after `grace` plus
    /// a few seconds.
    pub async fn drain(&self, grace: Duration) {
        let (done, rx) = oneshot::channel();
        self.send(Input::Drain { grace, done }).await;
        let _ = tokio::time::timeout(grace + Duration::from_secs(5), rx).await;
    }
}
