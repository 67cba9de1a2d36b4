//! The call table's vocabulary: legs, their far ends and attachments, states, answers and
//! commands.

use std::fmt;
use std::time::Instant;

use sip::{Body, CallKey};

use crate::cause::{CallEnd, HangupCause, Refusal};

/// Names a leg for its whole life (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub(crate) u64);

impl LegId {
    /// The number inside, for logs and maps keyed by integers.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "leg-{}", self.0)
    }
}

/// Names a call: one leg for a meeting join, two for a bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub(crate) u64);

/// What is at the far end of a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// An INVITE we answer.
    SipUas(CallKey),
    /// An INVITE we sent.
    SipUac(CallKey),
    /// A browser attendee's signaling session.
    WebRtc(u64),
}

impl Endpoint {
    /// The SIP call of a SIP leg.
    pub fn sip(self) -> Option<CallKey> {
        match self {
            Endpoint::SipUas(k) | Endpoint::SipUac(k) => Some(k),
            Endpoint::WebRtc(_) => None,
        }
    }
}

/// An attendee of a meeting.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// The meeting.
    pub meeting_id: String,
    /// The attendee.
    pub attendee_id: String,
}

/// An application's media endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppEndpoint {
    /// Plays prompts to the leg.
    PromptPlayer,
    /// Collects the leg's DTMF digits.
    DigitCollector,
}

/// What a leg's media is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attachment {
    /// A meeting's mixer, as this attendee.
    Meeting(Member),
    /// Another leg: each hears the other.
    Bridge(LegId),
    /// An application endpoint.
    App(AppEndpoint),
}

/// Where a leg is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegState {
    /// SIP UAS: the INVITE is being routed and its media prepared.
    Setup,
    /// SIP UAS: our 200 carried an offer (delayed offer); the ACK brings the answer.
    AwaitingAnswer,
    /// SIP UAS: the ACK's answer is being applied.
    ApplyingAnswer,
    /// SIP UAC: our INVITE has no final answer yet.
    Ringing,
    /// Media flows.
    Active,
    /// The peer holds the call (it sends no media, RFC 3264 §8.4).
    Held,
    /// SIP UAS: the leg ended while its join was being prepared; the join is undone when
    /// it arrives.
    EndedInSetup,
}

/// One leg.
#[derive(Clone, Debug)]
pub struct Leg {
    /// Its id.
    pub id: LegId,
    /// The call it belongs to.
    pub call: CallId,
    /// Its far end.
    pub endpoint: Endpoint,
    /// Its state.
    pub state: LegState,
    /// What its media is attached to, once attached.
    pub attachment: Option<Attachment>,
    /// The meeting attendee it joins as, if any.
    pub member: Option<Member>,
    /// The end remembered for a leg that ended in set-up.
    pub(crate) ended: Option<CallEnd>,
    pub(crate) deadline: Option<Instant>,
}

/// How to answer an INVITE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 with this SDP (an answer, or our offer for a delayed offer).
    Accept(Body),
    /// A final refusal.
    Refuse(Refusal),
    /// 407: credentials are needed (RFC 3261 §22.3), with these `Proxy-Authenticate`
    /// values and a `Warning` that says why.
    Challenge {
        /// One challenge per digest algorithm offered.
        challenges: Vec<String>,
        /// Why credentials are needed (missing, stale, wrong).
        warning: String,
    },
    /// No answer at all: the operator drops calls from unallowed sources.
    Silence,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Send the final answer to a SIP UAS leg's INVITE.
    Answer {
        /// The leg.
        leg: LegId,
        /// Its SIP call.
        sip: CallKey,
        /// The answer.
        answer: Answer,
    },
    /// End a leg: BYE (or CANCEL) with this cause as its Reason, or close a browser's
    /// session with the matching status. The leg's end comes back as an input
    /// ([`CallTable::sip_ended`], [`CallTable::webrtc_closed`]).
    HangUp {
        /// The leg.
        leg: LegId,
        /// Its far end.
        endpoint: Endpoint,
        /// Why.
        cause: HangupCause,
    },
    /// Apply the ACK's SDP answer to our delayed offer, then report
    /// [`CallTable::answer_applied`].
    ApplyAnswer {
        /// The leg.
        leg: LegId,
        /// The ACK's body.
        sdp: Vec<u8>,
    },
    /// Attach the leg's media.
    Attach {
        /// The leg.
        leg: LegId,
        /// To what.
        to: Attachment,
    },
    /// Take the leg's media off what it is attached to; the leg lives on.
    Detach {
        /// The leg.
        leg: LegId,
        /// What it was attached to.
        from: Attachment,
    },
    /// The leg is over: free its media (ports, its place in a mixer) and store its record.
    Release {
        /// The leg.
        leg: LegId,
        /// Its far end.
        endpoint: Endpoint,
        /// The meeting attendee it was, if any.
        member: Option<Member>,
        /// How it ended.
        end: CallEnd,
    },
}

/// Why two legs could not be bridged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    /// One of the legs does not exist (any more).
    #[error("no such leg")]
    UnknownLeg,
    /// A leg cannot be bridged to itself.
    #[error("a leg cannot be bridged to itself")]
    SameLeg,
}
