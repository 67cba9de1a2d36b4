//! One participant: the input side (jitter buffer, decoder, PCM queue, level meter) and the
//! output side state (private encoder, limiter, RTP timestamp).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use codec::resample::Resampler;
use codec::{Channels, Codec, Decoder, EncodeError, Encoder};
use rtp::jitter::{JitterBuffer, JitterConfig, JitterStats, Pop};

use crate::level::{LevelMeter, frame_peak, frame_power};
use crate::limiter::Limiter;
use crate::{FRAME, FRAME_SAMPLES, MixerError, SAMPLE_RATE};

/// Received payload buffers kept for reuse per participant.
const POOL: usize = 8;

/// Counters of one participant, from [`crate::Mixer::participant_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParticipantStats {
    /// Jitter buffer counters (RTP input only).
    pub jitter: Option<JitterStats>,
    /// Frames decoded from a received payload.
    pub decoded: u64,
    /// Frames concealed (lost, late, or inserted by the jitter buffer), FEC included.
    pub concealed: u64,
    /// Of those, frames recovered from the next packet's in-band FEC (RFC 6716 §2.1.7).
    pub fec: u64,
    /// Payloads the decoder rejected (the sender's fault); concealed instead.
    pub decode_errors: u64,
    /// Decoded frames that were not 20 ms long (padded with silence or truncated).
    pub odd_frames: u64,
    /// Ticks with no input at all (buffering, stream idle, PCM queue empty).
    pub silent_ticks: u64,
    /// PCM samples dropped because the input queue was full.
    pub pcm_dropped: u64,
    /// Ticks where the PCM queue held less than a frame (padded with silence).
    pub pcm_underruns: u64,
    /// Frames produced for this listener.
    pub frames_out: u64,
    /// Frames this listener got from its own (private, N−1) encode.
    pub private_frames: u64,
    /// Frames that could not be encoded (internal fault) and were not sent.
    pub encode_errors: u64,
}

/// How a participant's audio reaches the mixer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputFormat {
    /// RTP payloads of this codec through [`crate::Mixer::push_rtp`]: jitter buffered and
    /// decoded here. Opus is decoded to mono whatever the sender's channel count
    /// (RFC 7587 §3.4 lets the receiver choose).
    Rtp(Codec),
    /// 48 kHz mono PCM through [`crate::Mixer::push_pcm`], for legs that decode elsewhere
    /// (WebRTC) and for tests.
    Pcm,
}

/// What the mixer produces for a participant every tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputFormat {
    /// RTP payloads of this codec ([`crate::Media::Encoded`]).
    Encoded(Codec),
    /// 48 kHz mono PCM ([`crate::Media::Pcm`]).
    Pcm,
}

/// Settings of one participant, for [`crate::Mixer::add_participant`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParticipantConfig {
    /// Input side.
    pub input: InputFormat,
    /// Output side.
    pub output: OutputFormat,
    /// Joins muted (server-side mute: their audio reaches nobody).
    pub muted: bool,
    /// Jitter buffer settings for RTP input; `None` for [`JitterConfig::new`] defaults.
    /// The clock rate is always taken from the codec.
    pub jitter: Option<JitterConfig>,
    /// The listener's offer allows Opus DTX (`usedtx=1`, RFC 7587 §6.1): its mixes are
    /// encoded with DTX, so silence costs the encoder (and the network) almost nothing.
    /// Listeners with and without DTX do not share an encode. Ignored for other codecs.
    pub dtx: bool,
}

impl ParticipantConfig {
    /// An RTP leg that sends and receives `codec` (the usual SIP leg).
    pub fn rtp(codec: Codec) -> Self {
        ParticipantConfig {
            input: InputFormat::Rtp(codec),
            output: OutputFormat::Encoded(codec),
            muted: false,
            jitter: None,
            dtx: false,
        }
    }

    /// A leg that pushes and receives 48 kHz mono PCM.
    pub fn pcm() -> Self {
        ParticipantConfig {
            input: InputFormat::Pcm,
            output: OutputFormat::Pcm,
            muted: false,
            jitter: None,
            dtx: false,
        }
    }
}

/// RTP input: jitter buffer and decoder.
struct RtpInput {
    /// The format decoded (Opus always as mono).
    codec: Codec,
    /// Made when the first packet comes out of the jitter buffer: a participant who never
    /// sends (a listener) holds no decoder state (an Opus decoder is ~18 KiB).
    decoder: Option<Box<dyn Decoder>>,
    jitter: JitterBuffer<Vec<u8>>,
    /// Spent payload buffers, reused by the next pushes.
    pool: Vec<Vec<u8>>,
    decoded: Vec<i16>,
}

enum Input {
    Rtp(Box<RtpInput>),
    Pcm { queue: VecDeque<i16>, max: usize },
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Rtp(r) => f
                .debug_struct("Rtp")
                .field("codec", &r.codec)
                .finish_non_exhaustive(),
            Input::Pcm { queue, .. } => {
                f.debug_struct("Pcm").field("queued", &queue.len()).finish()
            }
        }
    }
}

/// An encoder for one codec, fed mixes at the codec's own rate: used both by a
/// participant's private (N−1) output and by the shared encoders.
pub(crate) struct EncodeChain {
    pub(crate) codec: Codec,
    /// Opus DTX on.
    pub(crate) dtx: bool,
    encoder: Box<dyn Encoder>,
    interleaved: Vec<i16>,
}

impl std::fmt::Debug for EncodeChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodeChain")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl EncodeChain {
    /// An encoder for mixes: Opus with the server-mix settings
    /// ([`codec::opus::OpusConfig::server_mix`]: lower complexity, DTX if `dtx`).
    pub(crate) fn new(codec: Codec, dtx: bool) -> Result<Self, MixerError> {
        let encoder: Box<dyn Encoder> = match codec {
            Codec::Opus(c) => Box::new(codec::opus::OpusEncoder::new(
                &codec::opus::OpusConfig::server_mix(c, dtx),
            )?),
            _ => codec.encoder()?,
        };
        Ok(EncodeChain {
            codec,
            dtx: dtx && matches!(codec, Codec::Opus(_)),
            encoder,
            interleaved: Vec::new(),
        })
    }

    /// Encodes one 20 ms mono frame at [`Codec::sample_rate`] (stereo codecs get the same
    /// signal on both channels).
    pub(crate) fn encode(&mut self, pcm: &[i16]) -> Result<Bytes, EncodeError> {
        let pcm: &[i16] = if self.codec.channels() == Channels::Stereo {
            self.interleaved.clear();
            self.interleaved.extend(pcm.iter().flat_map(|&s| [s, s]));
            &self.interleaved
        } else {
            pcm
        };
        let mut out = Vec::with_capacity(payload_capacity(self.codec));
        self.encoder.encode(pcm, &mut out)?;
        Ok(Bytes::from(out))
    }
}

/// Bytes one 20 ms frame usually needs.
fn payload_capacity(codec: Codec) -> usize {
    match codec {
        Codec::Pcmu | Codec::Pcma | Codec::G722 => 160,
        _ => 256,
    }
}

/// One participant's input converted to another mixing rate (at the input's own rate the
/// input frame is used as it is).
#[derive(Debug)]
struct Feed {
    rate: u32,
    /// From the input rate.
    resampler: Resampler,
    /// Tick whose frame `pcm` holds.
    last_tick: Option<u64>,
    pcm: Vec<i16>,
}

/// Samples in a 20 ms frame at `rate`.
pub(crate) fn frame_len(rate: u32) -> usize {
    (rate as usize * FRAME.as_millis() as usize) / 1000
}

/// Output side of a participant.
#[derive(Debug)]
pub(crate) struct Output {
    /// Index of the mixing bus (rate) this listener hears.
    pub(crate) bus: usize,
    pub(crate) kind: OutputKind,
}

#[derive(Debug)]
pub(crate) enum OutputKind {
    Pcm,
    Encoded {
        /// Index of the shared encoder for this codec in the mixer.
        group: usize,
        /// The codec.
        codec: Codec,
        /// With DTX (Opus).
        dtx: bool,
        /// Private encoder for when this participant hears an N−1 mix of its own: made
        /// when it first does, dropped after [`PRIVATE_KEEP_TICKS`] on the shared mix, so
        /// only talkers hold encoder state (an Opus encoder is ~30 KiB).
        chain: Option<Box<EncodeChain>>,
        /// Ticks since the private encoder was last used.
        idle: u32,
    },
}

/// How long a private encoder outlives its last private mix: 2 s, longer than the pauses
/// within a talk spurt, so a talker keeps one encoder while it talks.
pub(crate) const PRIVATE_KEEP_TICKS: u32 = 100;

impl OutputKind {
    /// The private encoder, made on first use (`None` if the codec library fails).
    pub(crate) fn private_chain(&mut self) -> Option<&mut EncodeChain> {
        match self {
            OutputKind::Pcm => None,
            OutputKind::Encoded {
                codec,
                dtx,
                chain,
                idle,
                ..
            } => {
                *idle = 0;
                if chain.is_none() {
                    *chain = EncodeChain::new(*codec, *dtx).ok().map(Box::new);
                }
                chain.as_deref_mut()
            }
        }
    }

    /// A tick on the shared mix: the private encoder goes after a while.
    pub(crate) fn shared_tick(&mut self) {
        if let OutputKind::Encoded { chain, idle, .. } = self
            && chain.is_some()
        {
            *idle += 1;
            if *idle >= PRIVATE_KEEP_TICKS {
                *chain = None;
            }
        }
    }
}

/// One participant of a meeting.
#[derive(Debug)]
pub(crate) struct Participant {
    input: Input,
    pub(crate) output: Output,
    pub(crate) output_format: OutputFormat,
    pub(crate) muted: bool,
    /// The participant's audio may reach the others (its attendee's capability).
    pub(crate) may_send: bool,
    /// The others' audio may reach the participant; if not, it gets silence.
    pub(crate) may_receive: bool,
    pub(crate) meter: LevelMeter,
    /// This tick's input frame at the input's rate (mono).
    native: Vec<i16>,
    /// The previous tick's, to prime the upsampler when the participant enters the mix.
    prev_native: Vec<i16>,
    /// This tick's input is digital silence.
    pub(crate) silent: bool,
    /// The largest magnitude of this tick's input frame (at `native_rate`).
    peak: u32,
    /// Rate of `native`.
    native_rate: u32,
    /// This tick's input converted to each mixing rate in use (valid while `contributes`).
    feeds: Vec<Feed>,
    /// Among the mixed speakers (top K) as of the last tick.
    pub(crate) selected: bool,
    /// Selected and not silent this tick: their audio is in the sum, so they need a
    /// private N−1 mix.
    pub(crate) contributes: bool,
    /// Limiter of the private mix.
    pub(crate) limiter: Limiter,
    /// Heard a private mix on the previous tick.
    pub(crate) private_last: bool,
    /// At least one frame has been produced for this listener.
    pub(crate) started: bool,
    /// RTP timestamp of the last frame produced, relative to the listener's first frame.
    pub(crate) timestamp: u32,
    pub(crate) stats: ParticipantStats,
    /// A prompt playing to this listener only ([`crate::Mixer::play`]).
    pub(crate) overlay: Option<Box<crate::overlay::Overlay>>,
    /// Its audio is delivered as [`crate::TapFrame`]s ([`crate::Mixer::set_tap`]).
    pub(crate) tapped: bool,
    /// This tick's private mix, kept for the tap.
    pub(crate) tap_out: Vec<i16>,
}

impl Participant {
    pub(crate) fn new(
        config: &ParticipantConfig,
        output: Output,
        max_pcm: usize,
    ) -> Result<Self, MixerError> {
        let (input, rate) = match config.input {
            InputFormat::Rtp(codec) => {
                // Decode Opus to mono whatever the sender sends: the mix is mono.
                let decode_as = match codec {
                    Codec::Opus(_) => Codec::Opus(Channels::Mono),
                    c => c,
                };
                let mut jc = config
                    .jitter
                    .unwrap_or_else(|| JitterConfig::new(codec.rtp_clock_rate()));
                jc.clock_rate = codec.rtp_clock_rate();
                jc.frame = FRAME;
                // Setup errors surface here (on join), although the decoder the mixer uses
                // is only made when the participant first sends.
                drop(decode_as.decoder()?);
                let input = RtpInput {
                    codec: decode_as,
                    decoder: None,
                    jitter: JitterBuffer::new(jc),
                    pool: Vec::new(),
                    decoded: Vec::with_capacity(FRAME_SAMPLES),
                };
                (Input::Rtp(Box::new(input)), decode_as.sample_rate())
            }
            InputFormat::Pcm => (
                Input::Pcm {
                    queue: VecDeque::new(),
                    max: max_pcm.max(FRAME_SAMPLES),
                },
                SAMPLE_RATE,
            ),
        };
        let native_len = frame_len(rate);
        Ok(Participant {
            input,
            output,
            output_format: config.output,
            muted: config.muted,
            may_send: true,
            may_receive: true,
            meter: LevelMeter::default(),
            native: vec![0; native_len],
            prev_native: vec![0; native_len],
            silent: true,
            peak: 0,
            native_rate: rate,
            feeds: Vec::new(),
            selected: false,
            contributes: false,
            limiter: Limiter::default(),
            private_last: false,
            started: false,
            timestamp: 0,
            stats: ParticipantStats::default(),
            overlay: None,
            tapped: false,
            tap_out: Vec::new(),
        })
    }

    /// Queues a received RTP payload.
    pub(crate) fn push_rtp(
        &mut self,
        now: Instant,
        seq: u16,
        timestamp: u32,
        ssrc: u32,
        payload: &[u8],
    ) -> Result<(), MixerError> {
        let Input::Rtp(rtp) = &mut self.input else {
            return Err(MixerError::NotRtpInput);
        };
        let mut buf = rtp.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(payload);
        rtp.jitter.push(now, ssrc, seq, timestamp, buf);
        Ok(())
    }

    /// Queues 48 kHz PCM; the oldest samples go when the queue is full.
    pub(crate) fn push_pcm(&mut self, pcm: &[i16]) -> Result<(), MixerError> {
        let Input::Pcm { queue, max } = &mut self.input else {
            return Err(MixerError::NotPcmInput);
        };
        // From a slice: one or two `memcpy`s into the ring, not a sample at a time.
        queue.extend(pcm);
        if queue.len() > *max {
            let excess = queue.len() - *max;
            queue.drain(..excess);
            self.stats.pcm_dropped += excess as u64;
        }
        Ok(())
    }

    /// Produces this tick's input frame (decoding, concealing) and measures its level.
    pub(crate) fn pull_input(&mut self, at: Instant) {
        std::mem::swap(&mut self.native, &mut self.prev_native);
        let len = self.native.len();
        let mut have_audio = true;
        match &mut self.input {
            Input::Rtp(rtp) => {
                let RtpInput {
                    codec,
                    decoder,
                    jitter,
                    pool,
                    decoded,
                } = &mut **rtp;
                decoded.clear();
                let popped = jitter.pop(at);
                if !matches!(popped, Pop::Empty) && decoder.is_none() {
                    *decoder = codec.decoder().ok();
                }
                let result = match (popped, decoder.as_mut()) {
                    (Pop::Empty, _) => {
                        have_audio = false;
                        Ok(0)
                    }
                    (_, None) => {
                        // The codec library could not make a decoder: silence, counted.
                        self.stats.decode_errors += 1;
                        have_audio = false;
                        Ok(0)
                    }
                    (Pop::Frame(payload), Some(decoder)) => {
                        let r = decoder.decode(Some(&payload), decoded);
                        if pool.len() < POOL {
                            pool.push(payload);
                        }
                        if r.is_ok() {
                            self.stats.decoded += 1;
                        }
                        r
                    }
                    (Pop::Lost, Some(decoder)) => {
                        self.stats.concealed += 1;
                        match jitter.peek_next() {
                            Some(next) => {
                                self.stats.fec +=
                                    u64::from(matches!(decoder.codec(), Codec::Opus(_)));
                                decoder.decode_fec(next, decoded)
                            }
                            None => decoder.decode(None, decoded),
                        }
                    }
                };
                if result.is_err() {
                    self.stats.decode_errors += 1;
                    decoded.clear();
                    if let Some(decoder) = decoder.as_mut()
                        && decoder.decode(None, decoded).is_err()
                    {
                        decoded.clear();
                    }
                }
                if have_audio && decoded.len() != len {
                    self.stats.odd_frames += 1;
                }
                self.native.clear();
                if have_audio {
                    self.native
                        .extend_from_slice(&decoded[..len.min(decoded.len())]);
                }
                self.native.resize(len, 0);
            }
            Input::Pcm { queue, .. } => {
                if queue.is_empty() {
                    have_audio = false;
                } else if queue.len() < len {
                    self.stats.pcm_underruns += 1;
                }
                self.native.clear();
                let n = len.min(queue.len());
                let (a, b) = queue.as_slices();
                let from_a = n.min(a.len());
                self.native.extend_from_slice(&a[..from_a]);
                self.native.extend_from_slice(&b[..n - from_a]);
                queue.drain(..n);
                self.native.resize(len, 0);
            }
        }
        if !have_audio {
            self.stats.silent_ticks += 1;
        }
        // A frame without audio is all zeros: its power is known.
        let power = if have_audio {
            frame_power(&self.native)
        } else {
            0.0
        };
        self.silent = power == 0.0;
        self.peak = if self.silent {
            0
        } else {
            frame_peak(&self.native)
        };
        self.meter.update(power);
    }

    /// This tick's input at `rate`, converting (and caching) it on first use in the tick.
    /// A resampler that did not run on the previous tick is first primed with the previous
    /// frame, so that its history is the real signal and there is no seam when a talker
    /// enters the mix. `None` only if the codec library cannot convert between the rates.
    /// At the input's own rate this is the input frame itself (no copy).
    pub(crate) fn feed(&mut self, rate: u32, tick: u64) -> Option<&[i16]> {
        if rate == self.native_rate {
            return Some(&self.native);
        }
        let idx = match self.feeds.iter().position(|f| f.rate == rate) {
            Some(i) => i,
            None => {
                let resampler = Resampler::new(self.native_rate, rate).ok()?;
                self.feeds.push(Feed {
                    rate,
                    resampler,
                    last_tick: None,
                    pcm: Vec::with_capacity(frame_len(rate)),
                });
                self.feeds.len() - 1
            }
        };
        let f = self.feeds.get_mut(idx)?;
        if f.last_tick != Some(tick) {
            f.pcm.clear();
            let r = &mut f.resampler;
            if f.last_tick.is_none_or(|t| t.wrapping_add(1) != tick) {
                r.reset();
                r.process(&self.prev_native, &mut f.pcm);
                f.pcm.clear();
            }
            r.process(&self.native, &mut f.pcm);
            f.pcm.resize(frame_len(rate), 0);
            f.last_tick = Some(tick);
        }
        Some(&f.pcm)
    }

    /// The largest magnitude of this tick's input at `rate`; `None` if resampled (a
    /// resampler may overshoot its input).
    pub(crate) fn peak_at(&self, rate: u32) -> Option<u32> {
        (rate == self.native_rate).then_some(self.peak)
    }

    /// Writes this listener's private mix, `limit(acc − own input)`, at `rate` into `out`.
    /// False if its input is not available at that rate. `acc_bound`: the sum of the
    /// peaks of the talkers in `acc` (this one's included), `u32::MAX` if unknown.
    pub(crate) fn private_mix(
        &mut self,
        acc: &[i32],
        acc_bound: u32,
        rate: u32,
        tick: u64,
        out: &mut [i16],
    ) -> bool {
        if self.feed(rate, tick).is_none() {
            return false;
        }
        let own = if rate == self.native_rate {
            &self.native[..]
        } else {
            match self.feeds.iter().find(|f| f.rate == rate) {
                Some(f) => &f.pcm[..],
                None => return false,
            }
        };
        // The others' sum is bounded by the sum of their peaks.
        let bound = match self.peak_at(rate) {
            Some(peak) if acc_bound != u32::MAX => acc_bound.saturating_sub(peak),
            _ => u32::MAX,
        };
        self.limiter.process(acc, Some(own), out, bound);
        true
    }

    /// The jitter buffer counters merged into the participant's.
    pub(crate) fn stats(&self) -> ParticipantStats {
        let mut s = self.stats;
        if let Input::Rtp(rtp) = &self.input {
            s.jitter = Some(rtp.jitter.stats());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pcmu_leg() -> Participant {
        let cfg = ParticipantConfig::rtp(Codec::Pcmu);
        let output = Output {
            bus: 0,
            kind: OutputKind::Pcm,
        };
        Participant::new(&cfg, output, 9600).unwrap()
    }

    /// A resampler that skipped ticks is primed with the previous frame, so its output on
    /// entry equals that of one that ran all along: no seam when a talker enters the mix.
    #[test]
    fn primed_feed_equals_continuous_feed() {
        let t0 = Instant::now();
        let mut always = pcmu_leg();
        let mut late = pcmu_leg();
        let mut compared = 0;
        for tick in 1..=40u64 {
            let now = t0 + Duration::from_millis(20 * tick);
            let pcm: Vec<i16> = (0..160)
                .map(|i| {
                    let n = (tick * 160 + i) as f64;
                    (9000.0 * (n * 0.37).sin() + 3000.0 * (n * 0.05).cos()) as i16
                })
                .collect();
            let mut payload = Vec::new();
            codec::g711::ulaw_encode(&pcm, &mut payload);
            let seq = tick as u16;
            for p in [&mut always, &mut late] {
                p.push_rtp(now, seq, u32::from(seq) * 160, 9, &payload)
                    .unwrap();
                p.pull_input(now);
            }
            for rate in [48_000, 16_000] {
                let a = always.feed(rate, tick).unwrap().to_vec();
                assert_eq!(a.len(), frame_len(rate));
                // `late` converts only on ticks 12 and 25..=27.
                if tick == 12 || (25..=27).contains(&tick) {
                    let b = late.feed(rate, tick).unwrap().to_vec();
                    assert!(a.iter().any(|&s| s.abs() > 1000), "audio flows");
                    assert_eq!(a, b, "rate {rate}, tick {tick}");
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 8);
    }

    #[test]
    fn participants_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<Participant>();
        send::<crate::Mixer>();
    }
}
