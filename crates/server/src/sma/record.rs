//! RecordAudio: what a leg says, taken from its media's tap (the decoded incoming audio)
//! until the action's limits end it, then written as a WAV to the destination bucket.
//!
//! AWS's parameters: `DurationInSeconds` (the longest recording; 60 s when not given, at
//! most [`MAX_SECONDS`]), `SilenceDurationInSeconds` (stop after this much silence once
//! something was said; no silence stop when not given), `SilenceThreshold` (1–1000, default
//! 200: here a frame is silent when its RMS level is under `threshold × 4` on the 16-bit
//! scale, so 200 is about −32 dBFS), `RecordingTerminators` (digits that stop the recording,
//! `#` by default). The object's key is `<Prefix><CallId>-<unix ms>.wav` (a `/` is put
//! between a prefix and the name when the prefix has none).

use domain::sma::action::{RecordAudio, RecordingTrack, StartCallRecording};

/// The longest recording taken, whatever the action asks (an hour).
pub const MAX_SECONDS: u64 = 3600;

/// One RecordAudio in progress.
pub struct Recorder {
    pub call_id: String,
    bucket: String,
    key: String,
    rate: u32,
    samples: Vec<i16>,
    max_seconds: u64,
    silence_seconds: Option<u64>,
    threshold: f64,
    /// Samples of silence in a row, and whether anything above the threshold came yet.
    silent_run: usize,
    heard: bool,
    terminators: Vec<char>,
}

impl Recorder {
    pub fn new(call_id: &str, action: &RecordAudio, now_ms: i64) -> Recorder {
        let d = &action.recording_destination;
        let prefix = d.prefix.clone().unwrap_or_default();
        let sep = if prefix.is_empty() || prefix.ends_with('/') {
            ""
        } else {
            "/"
        };
        let terminators = match &action.recording_terminators {
            Some(t) => t.iter().filter_map(|s| s.chars().next()).collect(),
            None => vec!['#'],
        };
        Recorder {
            call_id: call_id.to_string(),
            bucket: d.bucket_name.clone(),
            key: format!("{prefix}{sep}{call_id}-{now_ms}.wav"),
            rate: 8000,
            samples: Vec::new(),
            max_seconds: action
                .duration_in_seconds
                .unwrap_or(60)
                .clamp(1, MAX_SECONDS),
            silence_seconds: action.silence_duration_in_seconds.filter(|s| *s > 0),
            threshold: action.silence_threshold.unwrap_or(200).clamp(1, 1000) as f64 * 4.0,
            silent_run: 0,
            heard: false,
            terminators,
        }
    }

    /// Takes a frame of the leg's audio; true once the recording is complete.
    pub fn push(&mut self, rate: u32, frame: &[i16]) -> bool {
        if self.samples.is_empty() {
            self.rate = rate;
        }
        if rate != self.rate || frame.is_empty() {
            // A codec change mid-recording: keep the first rate's audio only.
            return self.full();
        }
        self.samples.extend_from_slice(frame);
        let energy: f64 = frame.iter().map(|s| f64::from(*s).powi(2)).sum();
        let rms = (energy / frame.len() as f64).sqrt();
        if rms >= self.threshold {
            self.heard = true;
            self.silent_run = 0;
        } else {
            self.silent_run += frame.len();
        }
        let silent_enough = self
            .silence_seconds
            .is_some_and(|s| self.heard && self.silent_run as u64 >= s * u64::from(self.rate));
        silent_enough || self.full()
    }

    fn full(&self) -> bool {
        self.samples.len() as u64 >= self.max_seconds * u64::from(self.rate)
    }

    /// Whether `digit` ends the recording.
    pub fn stops_on(&self, digit: char) -> bool {
        self.terminators.contains(&digit)
    }

    /// The bucket, the key and the WAV file.
    pub fn finish(self) -> (String, String, Vec<u8>) {
        let pcm = codec::wav::Pcm {
            rate: self.rate,
            samples: self.samples,
        };
        (self.bucket, self.key, codec::wav::encode(&pcm))
    }
}

/// The longest call recording kept, per channel, in samples (about 35 minutes at 16 kHz,
/// 70 at 8 kHz: 64 MiB a channel); a recording that reaches it is delivered then.
pub const MAX_CALL_SAMPLES: usize = 32 << 20;

/// A marker tone's length (AWS marks each pause and resumption with a tone).
const MARK_MS: u32 = 200;

/// One StartCallRecording in progress: the leg's tracks, AWS's way. `INCOMING` is what the
/// leg says, `OUTGOING` what it hears, `BOTH` a stereo file with the incoming track on the
/// left. Paused, it records silence; a short tone marks each pause and resumption. Delivered
/// to `<bucket>/<prefix>/YYYY/MM/DD/YYYY-MM-DD-hh-mm-ss-mmm_<TransactionId>_<CallId>.wav`.
pub struct CallRecorder {
    pub call_id: String,
    pub bucket: String,
    pub key: String,
    track: RecordingTrack,
    rate: u32,
    left: Vec<i16>,
    right: Vec<i16>,
    paused: bool,
}

impl CallRecorder {
    /// The recording `action` asks for; Err says what is wrong with its Destination.
    pub fn new(
        transaction_id: &str,
        action: &StartCallRecording,
        now_ms: i64,
    ) -> Result<CallRecorder, String> {
        let location = action.destination.location.trim_matches('/');
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() || bucket.len() > 63 {
            return Err(format!(
                "Destination.Location {:?} does not start with a bucket name",
                action.destination.location
            ));
        }
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
        let name = format!(
            "{y:04}/{mo:02}/{d:02}/{y:04}-{mo:02}-{d:02}-{:02}-{:02}-{:02}-{:03}_{transaction_id}_{}.wav",
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond(),
            action.call_id
        );
        let prefix = prefix.trim_matches('/');
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        Ok(CallRecorder {
            call_id: action.call_id.clone(),
            bucket: bucket.to_string(),
            key,
            track: action.track,
            rate: 0,
            left: Vec::new(),
            right: Vec::new(),
            paused: false,
        })
    }

    /// `bucket/key`, as ACTION_SUCCESSFUL reports it.
    pub fn location(&self) -> String {
        format!("{}/{}", self.bucket, self.key)
    }

    /// The tap the recording needs.
    pub fn tap_track(&self) -> engine::TapTrack {
        match self.track {
            RecordingTrack::Incoming => engine::TapTrack::Incoming,
            RecordingTrack::Outgoing => engine::TapTrack::Outgoing,
            RecordingTrack::Both => engine::TapTrack::Both,
        }
    }

    /// Takes a tick of the leg's audio; true once the recording is as long as it may be.
    pub fn push(&mut self, rate: u32, incoming: &[i16], outgoing: &[i16]) -> bool {
        if self.rate == 0 {
            self.rate = rate;
        }
        let n = incoming.len().max(outgoing.len());
        if rate != self.rate || n == 0 {
            // A codec change: the first rate's audio only, the time kept as silence.
            let n = (n as u64 * u64::from(self.rate) / u64::from(rate.max(1))) as usize;
            self.silence(n);
            return self.full();
        }
        if self.paused {
            self.silence(n);
            return self.full();
        }
        match self.track {
            RecordingTrack::Incoming => self.left.extend_from_slice(incoming),
            RecordingTrack::Outgoing => self.left.extend_from_slice(outgoing),
            RecordingTrack::Both => {
                // Both tracks of a tick have a frame's samples; a missing one is silence.
                let pad = |v: &mut Vec<i16>, f: &[i16]| {
                    v.extend_from_slice(f);
                    v.resize(v.len() + n - f.len(), 0);
                };
                pad(&mut self.left, incoming);
                pad(&mut self.right, outgoing);
            }
        }
        self.full()
    }

    fn silence(&mut self, n: usize) {
        self.left.resize(self.left.len() + n, 0);
        if self.track == RecordingTrack::Both {
            self.right.resize(self.right.len() + n, 0);
        }
    }

    /// Pause (silence from now on) or resume, marked by a tone (1 kHz on a pause, 2 kHz on
    /// a resumption, −20 dBFS).
    pub fn set_paused(&mut self, paused: bool) {
        if paused == self.paused {
            return;
        }
        self.paused = paused;
        let rate = if self.rate == 0 { 8000 } else { self.rate };
        let hz = if paused { 1000.0 } else { 2000.0 };
        let n = (rate * MARK_MS / 1000) as usize;
        let tone = (0..n).map(|i| {
            let phase = std::f64::consts::TAU * hz * i as f64 / f64::from(rate);
            (3277.0 * phase.sin()) as i16
        });
        self.left.extend(tone.clone());
        if self.track == RecordingTrack::Both {
            self.right.extend(tone);
        }
    }

    fn full(&self) -> bool {
        self.left.len() >= MAX_CALL_SAMPLES
    }

    /// The bucket, the key and the WAV file (stereo for BOTH).
    pub fn finish(self) -> (String, String, Vec<u8>) {
        let rate = if self.rate == 0 { 8000 } else { self.rate };
        let wav = match self.track {
            RecordingTrack::Both => codec::wav::encode_stereo(rate, &self.left, &self.right),
            _ => codec::wav::encode(&codec::wav::Pcm {
                rate,
                samples: self.left,
            }),
        };
        (self.bucket, self.key, wav)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(json: serde_json::Value) -> RecordAudio {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn stops_at_the_duration_after_silence_and_on_a_terminator() {
        let a = action(serde_json::json!({
            "DurationInSeconds": 2, "SilenceDurationInSeconds": 1, "RecordingTerminators": ["*"],
            "RecordingDestination": {"Type": "S3", "BucketName": "b", "Prefix": "calls"}}));
        let mut r = Recorder::new("c1", &a, 7);
        assert!(r.stops_on('*') && !r.stops_on('#'));
        let loud = vec![8000i16; 160];
        let quiet = vec![10i16; 160];
        // Silence before anything was said does not stop it.
        for _ in 0..20 {
            assert!(!r.push(8000, &quiet));
        }
        assert!(!r.push(8000, &loud));
        let mut frames = 0;
        while !r.push(8000, &quiet) {
            frames += 1;
            assert!(frames < 100);
        }
        assert_eq!(frames, 49, "one second of silence after speech");
        let (bucket, key, wav) = r.finish();
        assert_eq!((bucket.as_str(), key.as_str()), ("b", "calls/c1-7.wav"));
        let pcm = codec::wav::decode(&wav, 10).unwrap();
        assert_eq!((pcm.rate, pcm.samples.len()), (8000, 71 * 160));

        let a = action(serde_json::json!({"DurationInSeconds": 1,
            "RecordingDestination": {"Type": "S3", "BucketName": "b"}}));
        let mut r = Recorder::new("c2", &a, 1);
        assert!(r.stops_on('#'));
        let frames = (0..100).take_while(|_| !r.push(16000, &[0; 320])).count();
        assert_eq!(frames, 49, "a second at 16 kHz");
        assert_eq!(r.finish().1, "c2-1.wav");
    }

    #[test]
    fn call_recording_is_stereo_for_both_and_pauses_with_silence() {
        let a: StartCallRecording = serde_json::from_value(serde_json::json!({
            "CallId": "c1", "Track": "BOTH",
            "Destination": {"Type": "S3", "Location": "recs/calls/"}}))
        .unwrap();
        // 2026-12-07T18:40:05.007Z
        let mut r = CallRecorder::new("tx", &a, 1_796_668_805_007).unwrap();
        assert_eq!(r.bucket, "recs");
        assert_eq!(r.key, "calls/2026/12/07/2026-12-07-18-40-05-007_tx_c1.wav");
        assert_eq!(r.location(), format!("recs/{}", r.key));
        assert_eq!(r.tap_track(), engine::TapTrack::Both);
        assert!(!r.push(8000, &[100; 160], &[-100; 160]));
        r.set_paused(true);
        assert!(!r.push(8000, &[100; 160], &[]));
        r.set_paused(false);
        let (_, _, wav) = r.finish();
        // 20 ms + 200 ms tone + 20 ms silence + 200 ms tone, two channels of 16 bits.
        let frames = 160 + 1600 + 160 + 1600;
        assert_eq!(wav.len(), 44 + frames * 4);
        assert_eq!(&wav[44..48], &[100, 0, 0x9c, 0xff]);
        let paused_at = 44 + (160 + 1600) * 4;
        assert!(wav[paused_at..paused_at + 640].iter().all(|b| *b == 0));

        let bad: StartCallRecording = serde_json::from_value(serde_json::json!({
            "CallId": "c1", "Track": "INCOMING", "Destination": {"Type": "S3", "Location": "/"}}))
        .unwrap();
        let refused = CallRecorder::new("tx", &bad, 0).err().unwrap_or_default();
        assert!(refused.contains("bucket"), "{refused}");
    }
}
