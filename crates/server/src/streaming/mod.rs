//! Live call audio to the operator's WebSocket (issue 19): the self-hosted counterpart of
//! a voice connector's streaming configuration, which on AWS sends each call to Kinesis
//! Video Streams.
//!
//! A call streams when its connector has a streaming configuration that is not Disabled
//! (PutVoiceConnectorStreamingConfiguration) and a target, its own or the default (`admin
//! streaming set`, [`admin`]). The edge calls [`start`] once the caller's leg is in its
//! mixer (a meeting join, or the PBX side of a PSTN bridge); a task then connects, taps
//! the leg (what the caller says and what the caller hears, [`session`]), and ends when
//! the leg leaves its meeting. [`protocol`] says what goes over the socket, [`playback`]
//! paces a bidirectional consumer's audio back to the caller, [`notify`] POSTs the
//! EventBridge-shaped status events.

use std::sync::Arc;

use serde_json::Value;
use sip::Request;
use store::{Repository, SettingKind, StreamTarget};
use tokio::sync::mpsc;

use crate::meeting::MeetingMsg;
use crate::records::CdrSeed;

pub mod admin;
mod notify;
mod playback;
pub mod protocol;
pub mod retention;
mod session;
pub mod siprec;

/// At most this many INVITE headers go into the start message, each at most
/// [`MAX_HEADER_VALUE`] bytes.
const MAX_HEADERS: usize = 64;
const MAX_HEADER_VALUE: usize = 1024;

/// What the caller hears besides the caller, as the start message names the track.
#[derive(Debug, Clone, Copy)]
pub enum OtherSide {
    /// The meeting's mix.
    Meeting,
    /// The other party of a PSTN call.
    Callee,
}

/// Streams the call of `leg` (in the meeting task `meeting`) when its connector says so.
/// Returns at once; the lookups and the stream run in a task of their own.
pub fn start(
    repo: Arc<dyn Repository>,
    metrics: Arc<api::metrics::Metrics>,
    meeting: Option<mpsc::Sender<MeetingMsg>>,
    leg: calls::LegId,
    cdr: &CdrSeed,
    invite: &Request,
    other: OtherSide,
) {
    if let Some(meeting) = meeting {
        later(repo, metrics, leg, cdr, invite, other).begin(meeting);
    }
}

/// A call's stream to begin once its leg is in a mixer: a delayed offer's leg enters it
/// when the ACK's answer comes, after the INVITE is gone. Holds what the start message
/// needs from the INVITE.
pub struct Deferred {
    repo: Arc<dyn Repository>,
    metrics: Arc<api::metrics::Metrics>,
    leg: calls::LegId,
    facts: protocol::CallFacts,
}

/// The stream of a call whose leg is not in its mixer yet ([`Deferred::begin`] when it is).
pub fn later(
    repo: Arc<dyn Repository>,
    metrics: Arc<api::metrics::Metrics>,
    leg: calls::LegId,
    cdr: &CdrSeed,
    invite: &Request,
    other: OtherSide,
) -> Deferred {
    let facts = protocol::CallFacts {
        call_id: cdr.call_id.clone(),
        transaction_id: cdr.transaction_id.clone(),
        voice_connector_id: cdr.voice_connector_id.clone(),
        direction: cdr.direction.to_string(),
        from_number: cdr.source_phone_number.clone(),
        to_number: cdr.destination_phone_number.clone(),
        start_time: domain::timestamp::iso8601(cdr.start_ms),
        other_track: match other {
            OtherSide::Meeting => "meeting",
            OtherSide::Callee => "callee",
        },
        headers: invite_headers(invite),
    };
    Deferred {
        repo,
        metrics,
        leg,
        facts,
    }
}

impl Deferred {
    /// Streams the call, its leg now in the meeting task `meeting`, when its connector says
    /// so (a call of no connector is never streamed).
    pub fn begin(self, meeting: mpsc::Sender<MeetingMsg>) {
        let Deferred {
            repo,
            metrics,
            leg,
            facts,
        } = self;
        if facts.voice_connector_id.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let (target, retain_hours) = match target_for(repo.as_ref(), &facts.voice_connector_id)
                .await
            {
                Ok(Some(t)) => t,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(call = %leg, error = %e, "streaming configuration not read; the call is not streamed");
                    return;
                }
            };
            let notify = target
                .notify_url
                .as_deref()
                .and_then(|u| notify::HttpUrl::parse(u).ok());
            let spec = session::StreamSpec {
                url: target.url,
                bidirectional: target.bidirectional,
                notify,
                meeting,
                leg,
                metrics,
                retain_hours,
            };
            session::run(spec, facts).await;
        });
    }
}

/// The target of a connector whose streaming configuration is on, if it has one, and the
/// configuration's DataRetentionInHours.
async fn target_for(
    repo: &dyn Repository,
    vc_id: &str,
) -> Result<Option<(StreamTarget, u32)>, store::StoreError> {
    let Some(config) = repo.get_setting(vc_id, SettingKind::Streaming).await? else {
        return Ok(None);
    };
    if config.get("Disabled").and_then(Value::as_bool) != Some(false) {
        return Ok(None);
    }
    let hours = config
        .get("DataRetentionInHours")
        .and_then(Value::as_u64)
        .map_or(0, |h| u32::try_from(h).unwrap_or(u32::MAX));
    Ok(repo.stream_target_for(vc_id).await?.map(|t| (t, hours)))
}

/// The INVITE's headers for the start message: credentials left out, join tokens
/// redacted, bounded in count and length.
fn invite_headers(invite: &Request) -> Vec<(String, String)> {
    invite
        .headers
        .iter()
        .filter(|(_, name, _)| !name.is_sensitive())
        .take(MAX_HEADERS)
        .map(|(raw, _, value)| {
            let mut v = sip::log::redact_join_tokens(value);
            if v.len() > MAX_HEADER_VALUE {
                let mut cut = MAX_HEADER_VALUE;
                while !v.is_char_boundary(cut) {
                    cut -= 1;
                }
                v.truncate(cut);
            }
            (raw.to_string(), v)
        })
        .collect()
}
