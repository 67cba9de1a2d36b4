//! The call table, sans-IO: every call's legs, what each leg's media is attached to, and the
//! rules of a call's life, in one place.
//!
//! A leg is a SIP UAS leg (an INVITE we answer), a SIP UAC leg (an INVITE we send) or a
//! WebRTC leg (a browser attendee). Its media is attached to a meeting's mixer, to another
//! leg (a bridge) or to an application endpoint (a prompt player or a digit collector).
//!
//! The driver (the server's SIP edge task) feeds [`CallTable`] what happened, each with
//! `now`: an INVITE admitted to routing, its join ready or failed, the ACK, BYE or CANCEL
//! (the UA's `Terminated`), an in-dialog offer, a browser session opening or closing, media
//! inactivity, DeleteAttendee and DeleteMeeting. It then drains [`CallTable::poll_command`]
//! (answer, hang up with a typed cause, apply a delayed offer's answer, attach, detach,
//! release) and calls [`CallTable::handle_timeout`] at [`CallTable::poll_timeout`].
//!
//! The rules that live here and nowhere else:
//! - **CANCEL racing the answer.** A SIP leg ends while its join is being prepared (the
//!   database lookups, ports, the meeting's media): the table remembers the end, answers
//!   nothing more, and when the join arrives it is undone ([`Command::Release`] with the
//!   remembered end). A CANCEL after the 200 went out ends the leg as any BYE.
//! - **Re-join.** An attendee joining again (by SIP or browser) ends its older leg with
//!   [`HangupCause::JoinedFromAnotherDevice`].
//! - **Delayed offer** (RFC 3261 §13.2.1). An INVITE without SDP gets our offer in the 200;
//!   the ACK's answer is applied ([`Command::ApplyAnswer`]) before the leg is attached. A
//!   re-offer meanwhile gets 491.
//! - **Hold and resume.** A held leg sends no media, so inactivity does not end it.
//! - **Bridges.** When one leg of a bridge ends, the other is hung up.
//! - **Set-up time.** A join that is not ready within [`TableConfig::setup_timeout`] gets
//!   503 with Retry-After.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cause;
mod leg;
mod table;

pub use cause::{CallEnd, EndStatus, HangupCause, JoinError, Refusal, ReofferError};
pub use leg::{
    Answer, AppEndpoint, Attachment, BridgeError, CallId, Command, Endpoint, Leg, LegId, LegState,
    Member,
};
pub use table::{CallTable, TableConfig};
