//! Why a call is refused, ends or is hung up, typed, and the one mapping from each to what
//! goes on the wire: a SIP status with a `Warning` (RFC 3261 §20.43), or a `Reason`
//! (RFC 3326) cause and text on the BYE.

use sip::TerminationReason;

/// A refusal of an INVITE: the final status, the `Warning: 399` text that says why, and a
/// `Retry-After` (RFC 3261 §20.33) when trying again later can succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The final status (4xx, 5xx, 6xx).
    pub status: u16,
    /// What a person reads in the `Warning` header.
    pub warning: String,
    /// Seconds for `Retry-After`, when the refusal is temporary.
    pub retry_after: Option<u32>,
}

impl Refusal {
    /// A refusal with no `Retry-After`.
    pub fn new(status: u16, warning: impl Into<String>) -> Self {
        Refusal {
            status,
            warning: warning.into(),
            retry_after: None,
        }
    }
}

/// Why an admitted join could not be completed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// Every RTP port pair of the range is in use.
    #[error("no free RTP ports; try again later")]
    NoMediaPorts,
    /// The offer could not be answered (the `sdp` crate's status and words).
    #[error("{text}")]
    Sdp {
        /// 400 (malformed), 488 (nothing acceptable), ...
        status: u16,
        /// What was wrong with the offer.
        text: String,
    },
    /// The meeting's media task did not take the leg.
    #[error("internal error: the meeting's media could not take the leg")]
    MeetingUnavailable,
    /// Routing and media set-up did not finish in time (a stalled database).
    #[error("the call could not be set up in time; try again")]
    SetupTimeout,
    /// The server is draining for a shutdown and takes no new calls.
    #[error("server shutting down; try again later or another node")]
    ShuttingDown,
    /// A fault of ours; the server log has the details.
    #[error("internal error; see the server log")]
    Internal,
}

impl JoinError {
    /// The wire answer: status, Warning text and Retry-After.
    pub fn refusal(&self) -> Refusal {
        let (status, retry_after) = match self {
            JoinError::NoMediaPorts => (503, Some(1)),
            JoinError::Sdp { status, .. } => (*status, None),
            JoinError::MeetingUnavailable | JoinError::Internal => (500, None),
            JoinError::SetupTimeout => (503, Some(1)),
            JoinError::ShuttingDown => (503, Some(30)),
        };
        Refusal {
            status,
            warning: self.to_string(),
            retry_after,
        }
    }
}

/// Why an in-dialog offer (re-INVITE or UPDATE) got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReofferError {
    /// No such call here (RFC 3261 §12.2.2).
    #[error("call does not exist")]
    UnknownCall,
    /// Our own offer awaits its answer (RFC 3261 §14.2, RFC 3311 §5.2).
    #[error("an offer is already pending on this call")]
    OfferPending,
    /// The offer could not be answered.
    #[error("{text}")]
    Sdp {
        /// 400, 488, ...
        status: u16,
        /// What was wrong with the offer.
        text: String,
    },
    /// The meeting's media did not take the change.
    #[error("the meeting's media is overloaded; try again")]
    MediaBusy,
}

impl ReofferError {
    /// The wire answer.
    pub fn refusal(&self) -> Refusal {
        let (status, retry_after) = match self {
            ReofferError::UnknownCall => (481, None),
            ReofferError::OfferPending => (491, None),
            ReofferError::Sdp { status, .. } => (*status, None),
            ReofferError::MediaBusy => (500, Some(1)),
        };
        Refusal {
            status,
            warning: self.to_string(),
            retry_after,
        }
    }
}

/// Why we end a leg. A SIP leg's BYE carries it as an RFC 3326 `Reason`; a browser's
/// session ends with the matching audio status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HangupCause {
    /// The same attendee joined again; the newer leg wins, as in Amazon Chime.
    JoinedFromAnotherDevice,
    /// DeleteAttendee.
    AttendeeRemoved,
    /// DeleteMeeting or auto-end.
    MeetingEnded,
    /// No media from the leg for the inactivity timeout.
    NoMedia,
    /// The other leg of a bridge ended.
    PeerHungUp,
    /// The other leg of a bridge ended because its session timer ran out (RFC 4028 §10).
    PeerSessionExpired,
    /// An outgoing leg was not answered in time.
    NoAnswer,
    /// The ACK's answer to our delayed offer was unusable.
    UnusableAnswer {
        /// The status the refusal of that answer would have (400, 488).
        status: u16,
        /// Why.
        text: String,
    },
    /// The leg's media could not be started.
    MediaFailed,
    /// The server is shutting down and its drain time is over.
    ServerShutdown,
    /// A SIP media application's Hangup action (its SipResponseCode; 0 is normal
    /// clearing), or its function could not be reached.
    Application {
        /// The cause the Reason header carries (200 for normal clearing).
        code: u16,
        /// Why, in words.
        text: String,
    },
}

impl HangupCause {
    /// The RFC 3326 `Reason` cause (a SIP status code) and text.
    pub fn sip_reason(&self) -> (u16, String) {
        match self {
            HangupCause::JoinedFromAnotherDevice => (200, "joined from another device".into()),
            HangupCause::AttendeeRemoved => (410, "attendee removed from the meeting".into()),
            HangupCause::MeetingEnded => (410, "meeting ended".into()),
            HangupCause::NoMedia => (408, "no RTP received".into()),
            HangupCause::PeerHungUp => (200, "the other party hung up".into()),
            HangupCause::PeerSessionExpired => {
                (408, "the other party's session timer expired".into())
            }
            HangupCause::NoAnswer => (480, "no answer".into()),
            HangupCause::UnusableAnswer { status, text } => (*status, text.clone()),
            HangupCause::MediaFailed => (500, "media could not start".into()),
            HangupCause::ServerShutdown => (503, "server shutting down".into()),
            HangupCause::Application { code, text } => (*code, text.clone()),
        }
    }
}

/// How a leg's call record ends: AWS's call status words and the SIP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndStatus {
    /// Answered and ended by a BYE (either side) or the session timer.
    Completed,
    /// The caller cancelled before the answer.
    Cancelled,
    /// Ended by an error (timeouts, a failed request, a refusal after routing).
    Failed,
    /// Not answered at all (the operator's silence for unallowed sources).
    Refused,
}

impl EndStatus {
    /// The word the call record uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EndStatus::Completed => "Completed",
            EndStatus::Cancelled => "Cancelled",
            EndStatus::Failed => "Failed",
            EndStatus::Refused => "Refused",
        }
    }
}

/// The end of a leg, as its record tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallEnd {
    /// Completed, Cancelled, Failed or Refused.
    pub status: EndStatus,
    /// The SIP status (200 for a completed call, 0 when nothing was sent).
    pub code: u16,
    /// The reason in words: the SIP layer's (`RemoteBye`, `Cancelled`, ...) or ours.
    pub reason: String,
}

impl CallEnd {
    /// The record of a SIP leg that ended for `reason`.
    pub fn from_sip(reason: TerminationReason) -> Self {
        let (status, code) = match reason {
            TerminationReason::RemoteBye
            | TerminationReason::LocalBye
            | TerminationReason::SessionExpired => (EndStatus::Completed, 200),
            TerminationReason::Cancelled => (EndStatus::Cancelled, 487),
            TerminationReason::Discarded => (EndStatus::Refused, 0),
            TerminationReason::Rejected(c)
            | TerminationReason::Failed(c)
            | TerminationReason::DialogGone(c) => (EndStatus::Failed, c),
            TerminationReason::AckTimeout | TerminationReason::PrackTimeout => {
                (EndStatus::Failed, 408)
            }
        };
        CallEnd {
            status,
            code,
            reason: format!("{reason:?}"),
        }
    }

    /// A browser leg's end (no SIP status: 200 for a session that closed).
    pub fn closed(reason: &str) -> Self {
        CallEnd {
            status: EndStatus::Completed,
            code: 200,
            reason: reason.to_string(),
        }
    }
}
