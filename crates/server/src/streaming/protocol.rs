//! What travels on a call's stream socket, without any I/O: the JSON start and stop
//! messages, the binary audio frames, what the consumer may send back, and the
//! EventBridge-shaped status events.
//!
//! Audio frames are binary messages: one byte naming the track ([`Track`]), then 20 ms of
//! 16-bit linear PCM in network byte order (`audio/L16`, RFC 3551 §4.5.11) at the start
//! message's `sampleRate`. A bidirectional consumer sends back binary messages of the same
//! shape (the track byte is ignored), any length, played to the caller in order; the text
//! message `{"event":"clear"}` drops what is queued and stops what is playing.

use serde_json::{Value, json};

/// Which side of the call a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// What the caller (the PBX or carrier that sent the INVITE) says.
    Caller = 0,
    /// What the caller hears: the other party of a PSTN call, or the meeting's mix.
    Callee = 1,
}

/// The facts of one call the start message and the status events carry.
#[derive(Debug, Clone)]
pub struct CallFacts {
    pub call_id: String,
    pub transaction_id: String,
    pub voice_connector_id: String,
    /// `Outbound` (a PBX's call into the service) or `Inbound` (a carrier's call to a PBX).
    pub direction: String,
    pub from_number: String,
    pub to_number: String,
    /// When the call started, ISO 8601.
    pub start_time: String,
    /// What the other track is: `callee` or `meeting`.
    pub other_track: &'static str,
    /// The INVITE's headers, credentials and join tokens left out.
    pub headers: Vec<(String, String)>,
}

/// The first message on the socket.
pub fn start_message(f: &CallFacts, sample_rate: u32, bidirectional: bool) -> String {
    let headers: Vec<Value> = f
        .headers
        .iter()
        .map(|(n, v)| json!({ "name": n, "value": v }))
        .collect();
    let mut m = call_fields(f);
    m["event"] = json!("start");
    m["sampleRate"] = json!(sample_rate);
    m["frameMs"] = json!(20);
    m["tracks"] = json!([
        { "id": Track::Caller as u8, "name": "caller" },
        { "id": Track::Callee as u8, "name": f.other_track },
    ]);
    m["bidirectional"] = json!(bidirectional);
    m["sipHeaders"] = json!(headers);
    m.to_string()
}

/// The fields of the call that the start message and the status events share.
fn call_fields(f: &CallFacts) -> Value {
    json!({
        "callId": f.call_id,
        "transactionId": f.transaction_id,
        "voiceConnectorId": f.voice_connector_id,
        "direction": f.direction,
        "fromNumber": f.from_number,
        "toNumber": f.to_number,
        "startTime": f.start_time,
        "mediaType": "audio/L16",
    })
}

/// What a stream's end reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounts {
    pub frames_sent: u64,
    pub frames_dropped: u64,
    pub frames_played: u64,
}

/// The last message on the socket.
pub fn stop_message(f: &CallFacts, end_time: &str, counts: StreamCounts) -> String {
    json!({
        "event": "stop",
        "callId": f.call_id,
        "transactionId": f.transaction_id,
        "endTime": end_time,
        "framesSent": counts.frames_sent,
        "framesDropped": counts.frames_dropped,
        "framesPlayed": counts.frames_played,
    })
    .to_string()
}

/// One binary audio frame.
pub fn audio_frame(track: Track, samples: &[i16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + samples.len() * 2);
    out.push(track as u8);
    for s in samples {
        out.extend_from_slice(&s.to_be_bytes());
    }
    out
}

/// Most samples one message from the consumer may carry (10 s at 48 kHz).
pub const MAX_RETURNED_SAMPLES: usize = 480_000;

/// What the consumer sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Audio to play to the caller.
    Audio(Vec<i16>),
    /// Drop queued audio (barge-in).
    Clear,
    /// Something we do not act on (an unknown event, a marker), or bad input, with why.
    Ignored(String),
}

/// Reads a binary message from the consumer: the track byte, then L16 samples.
pub fn parse_binary(bytes: &[u8]) -> Inbound {
    let Some(body) = bytes.get(1..) else {
        return Inbound::Ignored("empty binary message".into());
    };
    if body.len() % 2 != 0 {
        return Inbound::Ignored(format!(
            "binary message of {} bytes: a track byte then 16-bit samples expected",
            bytes.len()
        ));
    }
    if body.len() / 2 > MAX_RETURNED_SAMPLES {
        return Inbound::Ignored(format!(
            "binary message of {} samples: at most {MAX_RETURNED_SAMPLES}",
            body.len() / 2
        ));
    }
    Inbound::Audio(
        body.chunks_exact(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect(),
    )
}

/// Reads a text message from the consumer.
pub fn parse_text(text: &str) -> Inbound {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Inbound::Ignored("text message is not JSON".into());
    };
    match v.get("event").and_then(Value::as_str) {
        Some("clear") => Inbound::Clear,
        Some(other) => Inbound::Ignored(format!("event {other:?} is not one we act on")),
        None => Inbound::Ignored("text message without an \"event\"".into()),
    }
}

/// A stream's status, as AWS's events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Started,
    /// Connected again after the socket broke (a new start message went out).
    Updated,
    Ended,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Started => "STARTED",
            Status::Updated => "UPDATED",
            Status::Ended => "ENDED",
            Status::Failed => "FAILED",
        }
    }
}

/// An EventBridge event (detail-type "Chime VoiceConnector Streaming Status").
pub fn status_event(
    f: &CallFacts,
    status: Status,
    id: &str,
    time: &str,
    failure: Option<&str>,
) -> String {
    let mut detail = call_fields(f);
    detail["streamingStatus"] = json!(status.as_str());
    detail["version"] = json!("0");
    if let Some(reason) = failure {
        detail["failureReason"] = json!(reason);
    }
    json!({
        "version": "0",
        "id": id,
        "detail-type": "Chime VoiceConnector Streaming Status",
        "source": "aws.chime",
        "account": "",
        "time": time,
        "region": "",
        "resources": [],
        "detail": detail,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> CallFacts {
        CallFacts {
            call_id: "c1".into(),
            transaction_id: "t1".into(),
            voice_connector_id: "vc1".into(),
            direction: "Outbound".into(),
            from_number: "+12065550100".into(),
            to_number: "+17035550122".into(),
            start_time: "2026-01-01T00:00:00Z".into(),
            other_track: "meeting",
            headers: vec![("X-Custom".into(), "1".into())],
        }
    }

    #[test]
    fn frames_round_trip_in_network_byte_order() {
        let frame = audio_frame(Track::Callee, &[1, -2, i16::MAX]);
        assert_eq!(frame, vec![1, 0, 1, 0xff, 0xfe, 0x7f, 0xff]);
        assert_eq!(parse_binary(&frame), Inbound::Audio(vec![1, -2, i16::MAX]));
        assert!(matches!(parse_binary(&[]), Inbound::Ignored(_)));
        assert!(matches!(parse_binary(&[0, 1]), Inbound::Ignored(_)));
    }

    #[test]
    fn consumer_text_messages() {
        assert_eq!(parse_text(r#"{"event":"clear"}"#), Inbound::Clear);
        assert!(
            matches!(parse_text(r#"{"event":"mark"}"#), Inbound::Ignored(m) if m.contains("mark"))
        );
        assert!(matches!(parse_text("nope"), Inbound::Ignored(_)));
    }

    #[test]
    fn start_stop_and_status_carry_the_call() {
        let f = facts();
        let start: Value = serde_json::from_str(&start_message(&f, 16000, true)).unwrap();
        assert_eq!(start["event"], "start");
        assert_eq!(start["sampleRate"], 16000);
        assert_eq!(start["tracks"][1]["name"], "meeting");
        assert_eq!(start["sipHeaders"][0]["name"], "X-Custom");
        let counts = StreamCounts {
            frames_sent: 5,
            frames_dropped: 2,
            frames_played: 0,
        };
        let stop: Value = serde_json::from_str(&stop_message(&f, "t", counts)).unwrap();
        assert_eq!(
            (stop["event"].as_str(), stop["framesDropped"].as_u64()),
            (Some("stop"), Some(2))
        );
        let ev: Value = serde_json::from_str(&status_event(
            &f,
            Status::Failed,
            "id",
            "t",
            Some("refused"),
        ))
        .unwrap();
        assert_eq!(ev["detail-type"], "Chime VoiceConnector Streaming Status");
        assert_eq!(ev["detail"]["streamingStatus"], "FAILED");
        assert_eq!(ev["detail"]["failureReason"], "refused");
    }
}
