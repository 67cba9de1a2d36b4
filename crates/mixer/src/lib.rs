//! Per-meeting N−1 audio mixer on 20 ms ticks (sans-IO).
//!
//! One [`Mixer`] serves one meeting. Every participant sends audio in (RTP payloads that
//! are jitter-buffered and decoded here, or 48 kHz PCM from a leg that decodes elsewhere)
//! and every 20 ms gets one frame out: the sum of everyone else's audio ("N−1": nobody
//! hears themselves), encoded for its codec. The mixer never touches a socket, a thread
//! or the clock: the caller feeds packets with [`Mixer::push_rtp`] / [`Mixer::push_pcm`],
//! calls [`Mixer::handle_timeout`] when [`Mixer::poll_timeout`] says, and drains
//! [`Mixer::poll_output`] and [`Mixer::poll_event`].
//!
//! # Driving it
//!
//! ```
//! # use std::time::{Duration, Instant};
//! use codec::Codec;
//! use mixer::{Mixer, MixerConfig, ParticipantConfig, Media};
//!
//! let t0 = Instant::now();
//! let mut mixer = Mixer::new(MixerConfig::default(), t0);
//! let alice = mixer.add_participant(ParticipantConfig::rtp(Codec::Pcmu)).unwrap();
//! let bob = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
//!
//! // A packet from Alice (seq, RTP timestamp, SSRC, payload):
//! mixer.push_rtp(t0, alice, 1, 160, 0x1234, &[0xff; 160]).unwrap();
//! // Bob's leg decoded elsewhere and hands over 20 ms of 48 kHz PCM:
//! mixer.push_pcm(bob, &[0i16; 960]).unwrap();
//!
//! let tick = mixer.poll_timeout();
//! mixer.handle_timeout(tick);
//! while let Some(frame) = mixer.poll_output() {
//!     match frame.media {
//!         Media::Encoded { codec, payload } => { /* packetise: RTP timestamp
//!             base + frame.timestamp, marker frame.marker, then SRTP and send */ }
//!         Media::Pcm(pcm) => { /* 960 samples of 48 kHz for a WebRTC leg */ }
//!         _ => {}
//!     }
//! }
//! while let Some(event) = mixer.poll_event() { /* active speakers, levels */ }
//! ```
//!
//! # API at a glance
//!
//! | call | what |
//! | --- | --- |
//! | [`Mixer::new`]`(config, now)` | empty meeting; ticks every 20 ms from `now` |
//! | [`Mixer::add_participant`]`(ParticipantConfig) -> ParticipantId` | join; codec setup errors surface here; [`MixerError::TooManyParticipants`] at the limit |
//! | [`Mixer::remove_participant`], [`Mixer::reconfigure`] | leave; change codecs in place (re-INVITE) |
//! | [`Mixer::push_rtp`]`(now, id, seq, ts, ssrc, payload)` | a received audio payload (after SRTP, without RFC 4733 events) |
//! | [`Mixer::push_pcm`]`(id, &[i16])` | 48 kHz mono PCM from a leg that decodes elsewhere |
//! | [`Mixer::poll_timeout`] / [`Mixer::handle_timeout`]`(now)` | the 20 ms tick |
//! | [`Mixer::poll_output`]` -> OutputFrame` | one frame per listener per tick: [`Media`], relative RTP timestamp, marker |
//! | [`Mixer::poll_event`]` -> MixerEvent` | [`MixerEvent::ActiveSpeakersChanged`], [`MixerEvent::Levels`] |
//! | [`Mixer::play`]`(id, samples, rate, repeat)`, [`Mixer::stop_play`], [`Mixer::poll_played`] | a prompt added to one listener's mix; which prompts ended |
//! | [`Mixer::set_tap`], [`Mixer::poll_tap`]` -> TapFrame` | a participant's audio both ways, 20 ms a tick |
//! | [`Mixer::set_muted`], [`Mixer::is_muted`], [`Mixer::contains`], [`Mixer::participants`] | server-side mute, presence |
//! | [`Mixer::set_flow`], [`Mixer::flow`] | an attendee's audio capability: may send, may receive |
//! | [`Mixer::level`], [`Mixer::active_speakers`], [`Mixer::stats`], [`Mixer::participant_stats`] | queries and counters |
//!
//! [`ParticipantConfig::rtp`]`(codec)` is the usual SIP leg (same codec both ways);
//! [`ParticipantConfig::pcm`] a PCM leg. Any combination of [`InputFormat`] and
//! [`OutputFormat`] is allowed. Handles are generation-checked slab indices: a removed
//! participant's handle never addresses a later one. The caller keeps its own map from
//! attendee to [`ParticipantId`].
//!
//! Limits ([`MixerConfig`]): participants per meeting, RTP payload size, PCM queued per
//! leg, undrained output frames per listener, catch-up ticks; events are capped at 64
//! queued. Nothing on the input path panics: malformed payloads are counted and concealed.
//!
//! # What happens on a tick
//!
//! 1. **Input.** Each participant yields one 20 ms frame: an RTP leg pops its jitter buffer
//!    ([`rtp::jitter`]) and decodes; a missing packet is concealed — from the next packet's
//!    in-band FEC when it is already here and the codec is Opus (RFC 6716 §2.1.7, via
//!    [`rtp::jitter::JitterBuffer::peek_next`]), otherwise by the decoder's own loss
//!    concealment. A PCM leg takes 960 samples from its queue. An idle stream (nothing
//!    received lately) is digital silence, not concealment. The frame's power updates the
//!    participant's smoothed level (see [`level`]).
//! 2. **Speaker selection.** Only the K loudest participants ([`MixerConfig::max_speakers`],
//!    default 3) whose smoothed level is above [`MixerConfig::speech_threshold_dbov`] and
//!    who are not muted are mixed; the rest are treated as silent. This is standard
//!    conference practice: it bounds the noise floor (fifty open lines of room noise add up)
//!    and makes the work O(N) instead of O(N²). A current speaker keeps a bonus of
//!    [`MixerConfig::speaker_hysteresis_db`] so that two similar talkers do not swap places
//!    every frame. The smoothed level's slow release is the hang-over that keeps a speaker
//!    mixed through the pauses between words.
//! 3. **Sum once per rate.** Mixing happens on one bus per output sampling rate in use
//!    (8 kHz for G.711, 16 kHz for G.722, 48 kHz for Opus and PCM legs). Each selected
//!    frame is converted to each bus rate ([`codec::resample`]; nothing to do when the rates
//!    match) and summed in `i32`. A meeting of G.711 phones never resamples at all, and
//!    levels are measured at the codec's own rate, so the N−K silent participants cost a
//!    jitter-buffer pop, a decode and a power sum each. A resampler that skipped ticks is
//!    primed with the previous frame before use, so a talker enters the mix without a seam.
//! 4. **Private mixes.** Each selected speaker whose frame is not silent hears its bus's
//!    sum minus its own frame, through its own limiter and encoder.
//! 5. **Shared mixes.** Everyone else hears exactly the full sum of their bus, so it is
//!    limited once per bus and encoded **once** per codec; all those listeners get the same
//!    payload (a reference-counted [`bytes::Bytes`]). A 1000-leg meeting with three talkers
//!    costs three private encodes plus one per codec in use, not 1000 encodes.
//! 6. **Output.** Every listener gets a frame every tick, even when nobody speaks (encoded
//!    digital silence): the browser client and many SIP endpoints want a continuous
//!    50 packets per second.
//!
//! Mixes go through a peak limiter (gain computed per frame, ramped over 48 samples, then a
//! soft-clipping stage), so loud simultaneous talkers are turned down rather than wrapped
//! or hard-clipped.
//!
//! # Codec state when a listener changes mix
//!
//! A listener moves between its private N−1 stream and the shared stream as it starts and
//! stops being a selected talker. For a stateless codec (G.711) the switch is seamless (the
//! limiter gain carries over). Stateful encoders (G.722's ADPCM predictor, Opus) cannot be
//! copied through the codec interface, so the listener's decoder then sees a stream from a
//! different encoder instance: a brief, small artefact while its state re-converges. This
//! is the price of shared encodes, the same trade-off other conference bridges make; the
//! speaker hysteresis and hang-over keep switches rare (a few per talk spurt, not per
//! frame).
//!
//! # Time
//!
//! Ticks are on a fixed 20 ms grid starting one frame after [`Mixer::new`]'s `now`.
//! [`Mixer::handle_timeout`] tolerates being called early (nothing happens) or late (the
//! missed ticks run back to back, at most [`MixerConfig::max_catch_up_ticks`] of them; if
//! it is later still, the remaining ticks are skipped, the grid moves forward, and the next
//! frame of every listener carries the marker bit and a timestamp that jumps by the skipped
//! time, as RFC 3550 §5.1 wants for a gap in sampling).
//!
//! # Levels and active speakers
//!
//! Every [`MixerConfig::levels_interval`] (default 200 ms, 5 Hz) the mixer queues
//! [`MixerEvent::Levels`] with each participant's smoothed level in dBov and as the
//! attenuation "volume" 0 (loud) ..= 127 (silent) of RFC 6464 §3, which is also the scale
//! of Chime's audio metadata (the client shows `clamp((42 − volume) / 28, 0, 1)`). When the
//! set of mixed speakers changes it queues [`MixerEvent::ActiveSpeakersChanged`], loudest
//! first.
//!
//! Mute is server-side: a muted participant's audio reaches nobody, although its level is
//! still measured and reported with the `muted` flag (clients show "you are talking while
//! muted" from it). DTMF is not the mixer's business: the engine handles RFC 4733 events
//! before audio gets here.
//!
//! Written here rather than taken from a crate: no maintained Rust crate does conference
//! mixing (the audio crates mix for playback, without N−1, shared encodes or jitter
//! buffering).
#![forbid(unsafe_code)]

mod flow;
pub mod level;
mod limiter;
mod overlay;
mod participant;
mod slab;
mod tick;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use codec::resample::ResampleError;
use codec::{Codec, CodecError};
use thiserror::Error;

use limiter::Limiter;
use participant::{EncodeChain, Output, OutputKind, Participant};

pub use overlay::{PROMPT_RATES, TapFrame};
pub use participant::{InputFormat, OutputFormat, ParticipantConfig, ParticipantStats};
pub use slab::ParticipantId;

/// The mixing interval and frame duration (RFC 3551 §4.2 default packetisation).
pub const FRAME: Duration = Duration::from_millis(codec::FRAME_MS as u64);
/// Internal sampling rate of every mix.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one internal frame.
pub const FRAME_SAMPLES: usize = (SAMPLE_RATE / 1000 * codec::FRAME_MS) as usize;

/// Meeting-wide settings and limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixerConfig {
    /// Most participants in the meeting; [`Mixer::add_participant`] refuses more.
    /// Default 250 (the attendee limit of a Chime SDK meeting).
    pub max_participants: usize,
    /// How many of the loudest talkers are mixed (K). Default 3; at least 1.
    pub max_speakers: usize,
    /// Smoothed level a participant must exceed to be mixed. Default −45 dBov, a little
    /// below where the client's meter starts moving (−42 dBov) and above a typical
    /// telephone line's idle noise.
    pub speech_threshold_dbov: f32,
    /// Bonus a currently mixed talker has over a newcomer, in dB. Default 6.
    pub speaker_hysteresis_db: f32,
    /// Interval of [`MixerEvent::Levels`]. Default 200 ms.
    pub levels_interval: Duration,
    /// Most missed ticks run back to back by one late [`Mixer::handle_timeout`]. Default 3.
    pub max_catch_up_ticks: u32,
    /// Largest RTP payload accepted, in bytes. Default 1500.
    pub max_payload: usize,
    /// Most PCM buffered per PCM input before the oldest is dropped. Default 200 ms.
    pub max_pcm_buffer: Duration,
    /// Most undrained output frames kept per participant before the oldest are dropped.
    /// Default 4.
    pub max_queued_frames: usize,
}

impl Default for MixerConfig {
    fn default() -> Self {
        MixerConfig {
            max_participants: 250,
            max_speakers: 3,
            speech_threshold_dbov: -45.0,
            speaker_hysteresis_db: 6.0,
            levels_interval: Duration::from_millis(200),
            max_catch_up_ticks: 3,
            max_payload: 1500,
            max_pcm_buffer: Duration::from_millis(200),
            max_queued_frames: 4,
        }
    }
}

/// Errors of the mixer's API, by blame.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MixerError {
    /// The handle does not name a current participant (the caller's fault, or a race with
    /// removal).
    #[error("unknown participant {0}")]
    UnknownParticipant(ParticipantId),
    /// The meeting is full (policy: [`MixerConfig::max_participants`]).
    #[error("meeting is full ({limit} participants)")]
    TooManyParticipants {
        /// The limit.
        limit: usize,
    },
    /// An RTP payload larger than [`MixerConfig::max_payload`] (the sender's fault).
    #[error("RTP payload of {len} bytes exceeds the limit of {limit}")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// [`Mixer::push_rtp`] for a participant configured with PCM input (the caller's fault).
    #[error("participant does not take RTP input")]
    NotRtpInput,
    /// [`Mixer::push_pcm`] for a participant configured with RTP input (the caller's fault).
    #[error("participant does not take PCM input")]
    NotPcmInput,
    /// A codec could not be set up (internal fault).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A codec rate the resampler does not support (internal fault).
    #[error(transparent)]
    Resample(#[from] ResampleError),
}

/// Audio of one output frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Media {
    /// An RTP payload. Listeners that hear the shared mix share one buffer.
    Encoded {
        /// The payload format.
        codec: Codec,
        /// The payload.
        payload: Bytes,
    },
    /// 960 samples of 48 kHz mono PCM.
    Pcm(Arc<[i16]>),
}

/// One 20 ms frame for one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFrame {
    /// The listener.
    pub participant: ParticipantId,
    /// The audio.
    pub media: Media,
    /// RTP timestamp relative to this listener's first frame (which is 0), in the codec's
    /// RTP clock (48 kHz for PCM). Add the stream's random initial timestamp (RFC 3550
    /// §5.1) with wrapping arithmetic.
    pub timestamp: u32,
    /// RTP timestamp units one frame covers (160 for G.711 and G.722, 960 for Opus).
    pub samples: u32,
    /// Set on the first frame of the stream and on the first after skipped ticks (RFC 3551
    /// §4.1: the marker flags the start of a talkspurt after a gap).
    pub marker: bool,
}

/// Level of one participant, part of [`MixerEvent::Levels`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParticipantLevel {
    /// The participant.
    pub participant: ParticipantId,
    /// Smoothed level, −127 ..= 0 dBov (RFC 6464 §3).
    pub level_dbov: f32,
    /// The same as attenuation: 0 (loud) ..= 127 (silent), Chime's audio metadata "volume".
    pub volume: u8,
    /// Muted (server-side): their audio is in nobody's mix.
    pub muted: bool,
    /// Currently mixed as one of the active speakers.
    pub speaking: bool,
}

/// Something the application may want to tell the participants.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MixerEvent {
    /// The set of mixed talkers changed. Loudest first; empty when nobody speaks.
    ActiveSpeakersChanged(Vec<ParticipantId>),
    /// Periodic levels of every participant ([`MixerConfig::levels_interval`]).
    Levels(Vec<ParticipantLevel>),
}

/// Meeting-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixerStats {
    /// Ticks run.
    pub ticks: u64,
    /// Ticks skipped because [`Mixer::handle_timeout`] came too late.
    pub ticks_skipped: u64,
    /// Encoder calls (private and shared).
    pub encodes: u64,
    /// Of those, shared encodes.
    pub shared_encodes: u64,
    /// Output frames produced.
    pub frames_out: u64,
    /// Output frames dropped because the caller did not drain [`Mixer::poll_output`].
    pub frames_dropped: u64,
    /// Events dropped because the caller did not drain [`Mixer::poll_event`].
    pub events_dropped: u64,
}

/// The shared encoder for one codec.
#[derive(Debug)]
struct Shared {
    chain: EncodeChain,
    /// Index of the bus it encodes.
    bus: usize,
    /// Someone hears the shared mix in this codec this tick.
    needed: bool,
    /// This tick's payload.
    payload: Option<Bytes>,
}

/// The mix at one sampling rate. There is one bus per rate that some listener needs
/// (8 kHz for G.711, 16 kHz for G.722, 48 kHz for Opus and PCM); each talker's frame is
/// converted to each bus rate in use (not at all when the rates match), so a meeting of
/// G.711 phones never resamples.
#[derive(Debug)]
struct Bus {
    rate: u32,
    /// Sum of the contributing talkers this tick.
    acc: Vec<i32>,
    /// At least one talker was added to `acc` this tick.
    mixed: bool,
    /// Listeners on this bus this tick.
    listeners: usize,
    /// Someone on this bus hears the shared (full) mix this tick.
    shared_needed: bool,
    /// The limited full mix.
    shared: Vec<i16>,
    limiter: Limiter,
    /// No `|acc[i]|` exceeds it: the talkers' peaks summed (`u32::MAX`: unknown).
    peak_bound: u32,
    /// `shared` as PCM output, made at most once per tick.
    shared_pcm: Option<Arc<[i16]>>,
}

impl Bus {
    fn new(rate: u32) -> Self {
        let n = participant::frame_len(rate);
        Bus {
            rate,
            acc: vec![0; n],
            mixed: false,
            listeners: 0,
            shared_needed: false,
            shared: vec![0; n],
            limiter: Limiter::default(),
            peak_bound: 0,
            shared_pcm: None,
        }
    }
}

/// Most events queued before the oldest are dropped.
const MAX_EVENTS: usize = 64;

/// The mixer of one meeting. See the crate documentation.
#[derive(Debug)]
pub struct Mixer {
    config: MixerConfig,
    participants: slab::Slab<Participant>,
    buses: Vec<Bus>,
    shared: Vec<Shared>,
    next_tick: Instant,
    /// Ticks skipped since the last one run (added to the next frame's timestamp).
    skipped: u32,
    ticks_until_levels: u32,
    /// Selected speakers, loudest first.
    speakers: Vec<ParticipantId>,
    candidates: Vec<(f32, usize)>,
    outputs: VecDeque<OutputFrame>,
    events: VecDeque<MixerEvent>,
    stats: MixerStats,
    /// Listeners whose prompt played to its end, in order.
    played: VecDeque<ParticipantId>,
    /// Tapped listeners' audio, oldest first.
    taps: VecDeque<TapFrame>,
    /// A tick's private mix and its private frames: reused, not allocated per tick.
    scratch: Vec<i16>,
    private_out: Vec<(usize, Option<Media>)>,
}

impl Mixer {
    /// An empty meeting whose first tick is due one frame after `now`.
    pub fn new(config: MixerConfig, now: Instant) -> Self {
        Mixer {
            config,
            participants: slab::Slab::new(),
            buses: Vec::new(),
            shared: Vec::new(),
            next_tick: now + FRAME,
            skipped: 0,
            ticks_until_levels: levels_ticks(&config),
            speakers: Vec::new(),
            candidates: Vec::new(),
            outputs: VecDeque::new(),
            events: VecDeque::new(),
            stats: MixerStats::default(),
            played: VecDeque::new(),
            taps: VecDeque::new(),
            scratch: Vec::new(),
            private_out: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &MixerConfig {
        &self.config
    }

    /// Adds a participant. Codec setup failures surface here, not on a tick.
    pub fn add_participant(
        &mut self,
        config: ParticipantConfig,
    ) -> Result<ParticipantId, MixerError> {
        if self.participants.len() >= self.config.max_participants {
            return Err(MixerError::TooManyParticipants {
                limit: self.config.max_participants,
            });
        }
        let p = self.build(&config)?;
        Ok(self.participants.insert(p))
    }

    /// Changes a participant's codecs or PCM/RTP mode (e.g. after a re-INVITE, RFC 3264
    /// §8), keeping its handle and mute state. Its input and output start afresh: the
    /// jitter buffer refills, and the next output frame has the marker bit and timestamp 0
    /// of a new RTP timeline in the new codec's clock.
    pub fn reconfigure(
        &mut self,
        id: ParticipantId,
        config: ParticipantConfig,
    ) -> Result<(), MixerError> {
        let muted = self.is_muted(id)?;
        let mut p = self.build(&config)?;
        p.muted = muted;
        if let Some(slot) = self.participants.get_mut(id) {
            (p.may_send, p.may_receive) = (slot.may_send, slot.may_receive);
            // A prompt and a tap go on at the new rate.
            p.overlay = slot.overlay.take();
            p.tapped = slot.tapped;
            *slot = p;
        }
        self.outputs.retain(|f| f.participant != id);
        Ok(())
    }

    fn build(&mut self, config: &ParticipantConfig) -> Result<Participant, MixerError> {
        let rate = match config.output {
            OutputFormat::Pcm => SAMPLE_RATE,
            OutputFormat::Encoded(codec) => codec.sample_rate(),
        };
        let bus = match self.buses.iter().position(|b| b.rate == rate) {
            Some(b) => b,
            None => {
                self.buses.push(Bus::new(rate));
                self.buses.len() - 1
            }
        };
        let kind = match config.output {
            OutputFormat::Pcm => OutputKind::Pcm,
            OutputFormat::Encoded(codec) => {
                let dtx = config.dtx && matches!(codec, Codec::Opus(_));
                let group = match self
                    .shared
                    .iter()
                    .position(|s| s.chain.codec == codec && s.chain.dtx == dtx)
                {
                    Some(g) => g,
                    None => {
                        self.shared.push(Shared {
                            chain: EncodeChain::new(codec, dtx)?,
                            bus,
                            needed: false,
                            payload: None,
                        });
                        self.shared.len() - 1
                    }
                };
                OutputKind::Encoded {
                    group,
                    codec,
                    dtx,
                    chain: None,
                    idle: 0,
                }
            }
        };
        let output = Output { bus, kind };
        let max_pcm = (self.config.max_pcm_buffer.as_millis() as usize)
            .saturating_mul(SAMPLE_RATE as usize / 1000);
        Participant::new(config, output, max_pcm)
    }

    /// Removes a participant; its queued output frames are discarded.
    pub fn remove_participant(&mut self, id: ParticipantId) -> Result<(), MixerError> {
        self.participants
            .remove(id)
            .ok_or(MixerError::UnknownParticipant(id))?;
        self.outputs.retain(|f| f.participant != id);
        self.forget_playback(id);
        if let Some(pos) = self.speakers.iter().position(|&s| s == id) {
            self.speakers.remove(pos);
            self.push_event(MixerEvent::ActiveSpeakersChanged(self.speakers.clone()));
        }
        Ok(())
    }

    /// Whether `id` is a current participant.
    pub fn contains(&self, id: ParticipantId) -> bool {
        self.participants.get(id).is_some()
    }

    /// Number of participants.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// Whether the meeting has no participants.
    pub fn is_empty(&self) -> bool {
        self.participants.len() == 0
    }

    /// Handles of all participants.
    pub fn participants(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.participants.iter().map(|(id, _)| id)
    }

    /// Server-side mute: while muted, the participant's audio is in nobody's mix.
    pub fn set_muted(&mut self, id: ParticipantId, muted: bool) -> Result<(), MixerError> {
        let p = self
            .participants
            .get_mut(id)
            .ok_or(MixerError::UnknownParticipant(id))?;
        p.muted = muted;
        Ok(())
    }

    /// Whether the participant is muted.
    pub fn is_muted(&self, id: ParticipantId) -> Result<bool, MixerError> {
        self.participants
            .get(id)
            .map(|p| p.muted)
            .ok_or(MixerError::UnknownParticipant(id))
    }

    /// The participant's current level.
    pub fn level(&self, id: ParticipantId) -> Result<ParticipantLevel, MixerError> {
        self.participants
            .get(id)
            .map(|p| participant_level(id, p))
            .ok_or(MixerError::UnknownParticipant(id))
    }

    /// The mixed talkers, loudest first.
    pub fn active_speakers(&self) -> &[ParticipantId] {
        &self.speakers
    }

    /// The participant's counters.
    pub fn participant_stats(&self, id: ParticipantId) -> Result<ParticipantStats, MixerError> {
        self.participants
            .get(id)
            .map(Participant::stats)
            .ok_or(MixerError::UnknownParticipant(id))
    }

    /// Meeting-wide counters.
    pub fn stats(&self) -> MixerStats {
        self.stats
    }

    /// Hands over a received RTP packet's payload (after SRTP and RFC 4733 filtering) with
    /// its header fields (RFC 3550 §5.1), received at `now`.
    pub fn push_rtp(
        &mut self,
        now: Instant,
        id: ParticipantId,
        seq: u16,
        timestamp: u32,
        ssrc: u32,
        payload: &[u8],
    ) -> Result<(), MixerError> {
        if payload.len() > self.config.max_payload {
            return Err(MixerError::PayloadTooLarge {
                len: payload.len(),
                limit: self.config.max_payload,
            });
        }
        self.participants
            .get_mut(id)
            .ok_or(MixerError::UnknownParticipant(id))?
            .push_rtp(now, seq, timestamp, ssrc, payload)
    }

    /// Hands over 48 kHz mono PCM from a participant with [`InputFormat::Pcm`]. Any length;
    /// each tick takes 960 samples. More than [`MixerConfig::max_pcm_buffer`] queued drops
    /// the oldest.
    pub fn push_pcm(&mut self, id: ParticipantId, pcm: &[i16]) -> Result<(), MixerError> {
        self.participants
            .get_mut(id)
            .ok_or(MixerError::UnknownParticipant(id))?
            .push_pcm(pcm)
    }

    /// When the next tick is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// Runs the ticks due at `now` (none if called early). See the crate docs on lateness.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut ran = 0;
        while now >= self.next_tick {
            if ran >= self.config.max_catch_up_ticks.max(1) {
                // Too far behind: skip to the grid point after `now`.
                let behind = now.saturating_duration_since(self.next_tick);
                let skip = behind.as_nanos() / FRAME.as_nanos() + 1;
                let skip32 = u32::try_from(skip).unwrap_or(u32::MAX);
                self.next_tick += FRAME.saturating_mul(skip32);
                self.skipped = self.skipped.saturating_add(skip32);
                self.stats.ticks_skipped += u64::from(skip32);
                break;
            }
            let at = self.next_tick;
            self.run_tick(at);
            self.next_tick += FRAME;
            ran += 1;
        }
    }

    /// The next output frame, if any.
    pub fn poll_output(&mut self) -> Option<OutputFrame> {
        self.outputs.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<MixerEvent> {
        self.events.pop_front()
    }

    fn push_event(&mut self, e: MixerEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(e);
    }
}

fn levels_ticks(config: &MixerConfig) -> u32 {
    let n = config.levels_interval.as_nanos() / FRAME.as_nanos();
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

fn participant_level(id: ParticipantId, p: &Participant) -> ParticipantLevel {
    let db = p.meter.dbov();
    ParticipantLevel {
        participant: id,
        level_dbov: db,
        volume: level::dbov_to_volume(db),
        muted: p.muted,
        speaking: p.selected,
    }
}
