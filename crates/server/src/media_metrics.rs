//! The media-metrics writer: every interval, one record per SIP leg whose connector has
//! EnableMediaMetricLogs (packets, loss, jitter, RTT and a MOS estimate for the interval),
//! as JSON lines in `<dir>/<voice-connector-id>/media-metrics.jsonl`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use calls::LegId;
use engine::LegStats;
use tokio::sync::oneshot;

use crate::edge::Controller;
use crate::meeting::MeetingMsg;

/// One interval's record of a leg, from its counters now and at the previous record.
fn record(
    target: &crate::edge::MetricsTarget,
    now: &LegStats,
    prev: &LegStats,
    interval: Duration,
) -> serde_json::Value {
    let received = now.packets_in.saturating_sub(prev.packets_in);
    let lost = (now.lost - prev.lost).max(0) as u64;
    let expected = received + lost;
    let loss_pct = if expected == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / expected as f64
    };
    let rtt = now.rtt_ms.map(f64::from).unwrap_or(0.0);
    let mos = domain::quality::mos_estimate(rtt, f64::from(now.jitter_ms), loss_pct, 25.1);
    serde_json::json!({
        "Timestamp": domain::timestamp::iso8601(domain::timestamp::now_millis()),
        "VoiceConnectorId": target.cdr.voice_connector_id,
        "TransactionId": target.cdr.transaction_id,
        "CallId": target.cdr.call_id,
        "MeetingId": target.meeting_id,
        "IntervalSeconds": interval.as_secs(),
        "PacketsReceived": received,
        "PacketsSent": now.packets_out.saturating_sub(prev.packets_out),
        "PacketsLost": lost,
        "LossPercent": loss_pct,
        "JitterMs": now.jitter_ms,
        "RoundTripTimeMs": now.rtt_ms,
        "MosEstimate": (mos * 100.0).round() / 100.0,
    })
}

/// Runs the writer until the controller goes.
pub async fn run(controller: Controller, dir: PathBuf, interval: Duration) {
    let mut last: HashMap<LegId, LegStats> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        let targets = controller.metrics_targets().await;
        last.retain(|leg, _| targets.iter().any(|t| t.leg == *leg));
        for t in targets {
            let (reply, rx) = oneshot::channel();
            let msg = MeetingMsg::Stats { leg: t.leg, reply };
            if t.meeting.send(msg).await.is_err() {
                continue;
            }
            let Ok(Some(now)) = rx.await else { continue };
            let prev = last.insert(t.leg, now).unwrap_or_default();
            let line = record(&t, &now, &prev, interval).to_string();
            crate::siplog::append_line(
                &dir.join(&t.cdr.voice_connector_id),
                "media-metrics.jsonl",
                line,
            )
            .await;
        }
    }
}
