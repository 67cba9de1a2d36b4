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

use domain::sma::action::RecordAudio;

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
}
