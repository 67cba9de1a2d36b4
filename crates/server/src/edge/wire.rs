//! The one place where the call layer's typed answers become SIP: a refusal's status,
//! `Warning` (RFC 3261 §20.43) and `Retry-After`; a hang-up cause's `Reason` (RFC 3326);
//! and a browser session's closing status.

use calls::{HangupCause, Refusal};
use chime_signal::AudioStatus;
use sip::{HeaderName, Response};

use crate::meeting::SessionMsg;

/// The host the Warning header names (RFC 3261 §20.43 warn-agent).
const WARN_AGENT: &str = "voice-connector";

/// `399 voice-connector "…"`, quoted-string safe (quotes become apostrophes, control
/// characters go).
pub fn warning_value(text: &str) -> String {
    let escaped: String = text
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect();
    format!("399 {WARN_AGENT} \"{}\"", escaped.replace('\\', "/"))
}

/// `SIP;cause=N;text="…"` for a BYE.
pub fn reason_value(cause: &HangupCause) -> String {
    let (code, text) = cause.sip_reason();
    let text: String = text
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect();
    format!("SIP;cause={code};text=\"{}\"", text.replace('\\', "/"))
}

/// Adds a refusal's Warning and Retry-After to its response.
pub fn decorate(resp: &mut Response, r: &Refusal) {
    resp.headers
        .push(HeaderName::Warning, &warning_value(&r.warning));
    if let Some(secs) = r.retry_after {
        resp.headers.push(HeaderName::RetryAfter, &secs.to_string());
    }
}

/// What a browser's session is told when the call layer hangs it up.
pub fn session_end(cause: &HangupCause) -> SessionMsg {
    match cause {
        HangupCause::JoinedFromAnotherDevice => {
            SessionMsg::End(AudioStatus::JoinedFromAnotherDevice)
        }
        HangupCause::AttendeeRemoved => SessionMsg::End(AudioStatus::AttendeeRemoved),
        HangupCause::MeetingEnded => SessionMsg::End(AudioStatus::MeetingEnded),
        _ => SessionMsg::MediaLost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_and_reason_are_quoted_string_safe() {
        assert_eq!(
            warning_value("a \"b\"\r\n\\c"),
            "399 voice-connector \"a 'b'/c\""
        );
        assert_eq!(
            reason_value(&HangupCause::MeetingEnded),
            "SIP;cause=410;text=\"meeting ended\""
        );
        let odd = HangupCause::UnusableAnswer {
            status: 488,
            text: "no \"PCMU\"\n".into(),
        };
        assert_eq!(reason_value(&odd), "SIP;cause=488;text=\"no 'PCMU'\"");
    }
}
