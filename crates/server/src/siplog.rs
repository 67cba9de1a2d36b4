//! SIP message logs for voice connectors with `EnableSIPLogs`: every message of their calls,
//! in and out, redacted (join tokens in every accepted form and anything shaped like one,
//! digest responses and SDES keys removed by [`sip::log::LoggedMessage`]), as JSON lines in
//! `<data-dir>/logs/<voice-connector-id>/sip-messages.jsonl` (folders 0700, files 0600).
//!
//! The user-agent task hands messages over a bounded channel to a writer task, so a slow disk
//! never stalls signalling; if the channel is full the loss is counted and logged, never silent.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sip::log::{Direction, LoggedMessage};
use tokio::sync::mpsc;

struct Line {
    vc_id: String,
    json: String,
}

/// How long a call's messages are still logged after it ended: the UA answers a BYE (and
/// its retransmissions, RFC 3261 Timer J = 64*T1) after the call is over, and the peer's
/// 200 to our BYE comes after we ended it.
pub const LINGER: Duration = Duration::from_secs(32);

/// The calls being logged: Call-ID → (connector, when logging stops once it ended).
#[derive(Default)]
struct Calls(HashMap<String, (String, Option<Instant>)>);

impl Calls {
    /// Logs `call_id` for `vc_id`; calls whose linger is over are forgotten.
    fn enable(&mut self, call_id: &str, vc_id: &str, now: Instant) {
        self.0.retain(|_, (_, until)| until.is_none_or(|t| t > now));
        self.0
            .insert(call_id.to_string(), (vc_id.to_string(), None));
    }

    /// The call ended: its messages are logged for [`LINGER`] more.
    fn ended(&mut self, call_id: &str, now: Instant) {
        if let Some((_, until)) = self.0.get_mut(call_id) {
            until.get_or_insert(now + LINGER);
        }
    }

    /// The connector of a message of `call_id`, if it is logged at `now`.
    fn connector(&self, call_id: &str, now: Instant) -> Option<&str> {
        let (vc, until) = self.0.get(call_id)?;
        until.is_none_or(|t| t > now).then_some(vc.as_str())
    }
}

pub struct SipLogger {
    calls: Mutex<Calls>,
    tx: mpsc::Sender<Line>,
    metrics: Arc<api::metrics::Metrics>,
}

/// The Call-ID of a message, from its header section (`Call-ID:` or compact `i:`).
pub fn call_id(bytes: &[u8]) -> Option<&str> {
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
            .then(|| value.trim())
    })
}

impl SipLogger {
    pub fn new(dir: PathBuf, metrics: Arc<api::metrics::Metrics>) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(write_lines(dir, rx));
        Arc::new(SipLogger {
            calls: Mutex::new(Calls::default()),
            tx,
            metrics,
        })
    }

    /// Starts logging the call with this Call-ID for a connector.
    pub fn enable(&self, call_id: &str, vc_id: &str) {
        let mut c = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        c.enable(call_id, vc_id, Instant::now());
    }

    /// The call ended: its last messages (the 200 to a BYE, retransmissions) are still
    /// logged for [`LINGER`].
    pub fn disable(&self, call_id: &str) {
        let mut c = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        c.ended(call_id, Instant::now());
    }

    /// Logs `msg` if its call is being logged. Cheap when no call is.
    pub fn log(&self, msg: &LoggedMessage<'_>) {
        let vc_id = {
            let c = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            if c.0.is_empty() {
                return;
            }
            match call_id(msg.bytes).and_then(|id| c.connector(id, Instant::now())) {
                Some(vc) => vc.to_string(),
                None => return,
            }
        };
        let json = serde_json::json!({
            "Timestamp": domain::timestamp::iso8601(domain::timestamp::now_millis()),
            "VoiceConnectorId": vc_id,
            "CallId": call_id(msg.bytes).map(sip::log::redact_join_tokens),
            "Direction": match msg.direction { Direction::Inbound => "Inbound", Direction::Outbound => "Outbound" },
            "Transport": msg.transport.via_token(),
            "Local": msg.local.to_string(),
            "Remote": msg.remote.to_string(),
            "Message": msg.redacted_text(),
        })
        .to_string();
        if self.tx.try_send(Line { vc_id, json }).is_err() {
            self.metrics
                .counter_add("vc_sip_log_lines_dropped_total", "", 1);
            tracing::warn!("SIP message log is behind; a line was dropped");
        }
    }
}

/// Opens `<dir>/<file>` for appending, creating the folder (0700) and the file (0600): logs
/// are for the operator only.
fn open_private(dir: &std::path::Path, file: &str) -> std::io::Result<std::fs::File> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        builder.mode(0o700);
        opts.mode(0o600);
    }
    builder.create(dir)?;
    opts.open(dir.join(file))
}

async fn write_lines(dir: PathBuf, mut rx: mpsc::Receiver<Line>) {
    while let Some(line) = rx.recv().await {
        let dir = dir.join(&line.vc_id);
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut f = open_private(&dir, "sip-messages.jsonl")?;
            writeln!(f, "{}", line.json)
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "writing the SIP message log failed"),
            Err(e) => tracing::warn!(error = %e, "SIP message log writer failed"),
        }
    }
}

/// Appends one line to `<dir>/<file>`, creating the folder; failures are logged.
pub async fn append_line(dir: &std::path::Path, file: &str, line: String) {
    let dir = dir.to_path_buf();
    let name = file.to_string();
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut f = open_private(&dir, &name)?;
        writeln!(f, "{line}")
    })
    .await;
    if !matches!(result, Ok(Ok(()))) {
        tracing::warn!(file, "appending a log line failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_call_is_logged_for_the_linger_then_forgotten() {
        let t0 = Instant::now();
        let mut c = Calls::default();
        c.enable("a@h", "vc1", t0);
        assert_eq!(c.connector("a@h", t0), Some("vc1"));
        assert_eq!(c.connector("b@h", t0), None);
        // The BYE ended the call; the UA's 200 to it goes out after that.
        c.ended("a@h", t0);
        let just_after = t0 + Duration::from_millis(1);
        assert_eq!(c.connector("a@h", just_after), Some("vc1"));
        // A retransmitted BYE's 200 within Timer J is still logged; a second end does not
        // push the linger out.
        c.ended("a@h", t0 + LINGER / 2);
        assert_eq!(
            c.connector("a@h", t0 + LINGER - Duration::from_millis(1)),
            Some("vc1")
        );
        assert_eq!(c.connector("a@h", t0 + LINGER), None);
        // The next call's start forgets it.
        c.enable("b@h", "vc1", t0 + LINGER);
        assert_eq!(c.0.len(), 1);
    }

    #[test]
    fn finds_the_call_id_in_long_and_compact_form() {
        assert_eq!(
            super::call_id(b"INVITE sip:a SIP/2.0\r\nCall-ID: abc@h\r\n\r\nbody"),
            Some("abc@h")
        );
        assert_eq!(
            super::call_id(b"SIP/2.0 200 OK\r\ni:  x1 \r\n\r\n"),
            Some("x1")
        );
        assert_eq!(
            super::call_id(b"SIP/2.0 200 OK\r\nTo: <sip:a>\r\n\r\nCall-ID: no"),
            None
        );
    }
}
