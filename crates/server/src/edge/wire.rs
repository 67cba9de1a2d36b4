//! The one place where the call layer's typed answers become SIP: a refusal's status,
//! `Warning` (RFC 3261 §20.43) and `Retry-After`; a hang-up cause's `Reason` (RFC 3326);
//! and a browser session's closing status.

use calls::{HangupCause, Refusal};
use chime_signal::AudioStatus;
use sip::{HeaderName, Response};

use crate::meeting::SessionMsg;

/// The host the Warning header names (RFC 3261 §20.43 warn-agent).
const WARN_AGENT: &str = "voice-connector";

/// Text for a quoted-string that naive parsers read right too: PBX logs and SIPp's
/// regular expressions stop at the first `"`, escaped or not, so quotes become apostrophes
/// and backslashes slashes (`sip::Warning` and `sip::Reason` still escape what is left).
fn plain(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c => c,
        })
        .collect()
}

/// `399 voice-connector "…"`, written by `sip::Warning`.
pub fn warning_value(text: &str) -> String {
    sip::Warning::misc(WARN_AGENT, plain(text)).to_string()
}

/// The RFC 3326 `Reason` of a BYE for `cause`.
pub fn reason(cause: &HangupCause) -> sip::Reason {
    let (code, text) = cause.sip_reason();
    sip::Reason::sip(code, plain(&text))
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
            reason(&HangupCause::MeetingEnded).to_string(),
            "SIP;cause=410;text=\"meeting ended\""
        );
        let odd = HangupCause::UnusableAnswer {
            status: 488,
            text: "no \"PCMU\"\n".into(),
        };
        assert_eq!(reason(&odd).to_string(), "SIP;cause=488;text=\"no 'PCMU'\"");
    }
}
