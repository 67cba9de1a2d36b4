//! IVR mode (`--ivr SERVER`, issue 13): calls to a SIP media application, with the
//! application's function in this process.
//!
//! The generator is the phone network's side: from `--caller` (an address the server knows
//! as a carrier's source) it INVITEs `sip:<--number>@SERVER`, a number whose SIP rule
//! targets an application whose function is the webhook this process serves on
//! `--webhook` ([`hook`]). Each call: the function answers NEW_INBOUND_CALL with
//! PlayAudioAndGetDigits, the server answers the call and plays the prompt; the caller
//! hears it (loud frames counted, [`prompt`]), and when it ends keys four RFC 4733 digits
//! (the call's own, so a mix-up shows); the digits' ACTION_SUCCESSFUL is answered with
//! PlayAudio (the goodbye) and Hangup; the caller hears the goodbye and gets the server's
//! BYE. Meanwhile it sends its own audio at 50 packets/s and accounts the server's
//! packets for loss and lateness like the other modes ([`crate::stats`]).
//!
//! `--legs N` calls are held at once: a call that ends is replaced by a new one (at most
//! `--cps` new calls a second) until the measurement ends. Calls placed while measuring
//! are the measured ones; their event round trips give the latency figures ([`latency`]).
//! Bounded: every call has a deadline, the run stops placing after the measurement and
//! hangs up what is left within 30 s.

mod hook;
mod latency;
mod prompt;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::{Duration, Instant};

use clap::Args;
use codec::Codec;
use sdp::negotiate::{MediaConfig, MediaSession};
use sip::{Body, CallKey, HeaderName, OutgoingCall, Peer, TerminationReason, UaEvent, UserAgent};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::media::{self, Payloads, RxResult, RxSettings, SendLeg, SenderMsg};
use crate::pstn::{bind_rtp, local_transport, plain_config};
use crate::run::RunError;
use crate::uac::{ByeState, caller_event, transmit};
use hook::{FunctionConfig, Note, NoteKind};
use latency::Timeline;
use prompt::{Ended, PromptListener};

/// The bucket the prompts are in (a folder of the server's `<data-dir>/audio`).
pub const BUCKET: &str = "vc-loadgen-ivr";
/// Digits keyed per call.
const DIGITS: u32 = 4;
/// How long each digit is held, and the pause between digits.
const DIGIT: Duration = Duration::from_millis(100);
const DIGIT_GAP: Duration = Duration::from_millis(60);
/// A call not over this long after the prompts' length is hung up and counted.
const CALL_SLACK: Duration = Duration::from_secs(20);
/// Digits are keyed anyway when the prompt's end was not heard this long after it should.
const PROMPT_SLACK: Duration = Duration::from_secs(3);
/// Most calls one run places.
const MAX_CALLS: u64 = 200_000;
/// A prompt counts as heard in full with at most this many frames fewer than its length.
const SHORT_FRAMES: u32 = 2;

/// The IVR mode's own flags (the others are shared with the other modes).
#[derive(Args, Debug)]
pub struct IvrArgs {
    /// IVR mode: call a SIP media application through this server (SIP/UDP, 127.0.0.0/8)
    /// and be its function's webhook.
    #[arg(long, requires_all = ["caller", "number", "webhook", "audio_root", "legs"])]
    pub ivr: Option<SocketAddr>,
    /// IVR mode: our SIP and RTP address, a carrier's source (127.0.0.x:port).
    #[arg(long, requires = "ivr")]
    pub caller: Option<SocketAddr>,
    /// IVR mode: the number dialled; its SIP rule targets the application.
    #[arg(long, requires = "ivr")]
    pub number: Option<String>,
    /// IVR mode: where the function listens (127.0.0.1:port, as registered with
    /// `voice-connector admin functions add`).
    #[arg(long, requires = "ivr")]
    pub webhook: Option<SocketAddr>,
    /// IVR mode: the server's `<data-dir>/audio`; the prompts are written to its
    /// `vc-loadgen-ivr` folder.
    #[arg(long, requires = "ivr")]
    pub audio_root: Option<PathBuf>,
    /// IVR mode: length of the prompt, ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(100..=30_000))]
    pub prompt_ms: u32,
    /// IVR mode: length of the goodbye, ms.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(100..=30_000))]
    pub goodbye_ms: u32,
}

/// Settings of an IVR run.
#[derive(Clone, Debug)]
pub struct IvrOptions {
    /// The server's SIP address.
    pub server: SocketAddr,
    /// Our SIP and RTP address: a carrier's source.
    pub caller: SocketAddr,
    /// The dialled number (its SIP rule targets the application).
    pub number: String,
    /// Where the function listens (the registry's URL names it).
    pub webhook: SocketAddr,
    /// `<data-dir>/audio` of the server: the prompts are written to its [`BUCKET`] folder.
    pub audio_root: PathBuf,
    /// Length of the prompt and of the goodbye.
    pub prompt_ms: u32,
    pub goodbye_ms: u32,
    /// Calls held at once, new calls a second at most, the measured window.
    pub load: crate::plan::Load,
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    /// The server's BYE after the goodbye.
    Bye,
    /// Our INVITE failed with this status.
    Failed(u16),
    /// We hung up: the call passed its deadline.
    TimedOut,
    /// We hung up: at the end of the run, or after an answer without usable media.
    Stopped,
    /// Anything else.
    Other(String),
}

type Listening = (oneshot::Sender<()>, JoinHandle<(RxResult, PromptListener)>);

struct IvrCall {
    id: u64,
    from: String,
    digits: String,
    session: MediaSession,
    sock: Arc<UdpSocket>,
    invited: Instant,
    measured: bool,
    answered: Option<Instant>,
    media: Option<Listening>,
    timeline: Timeline,
    received_digits: Option<String>,
    digits_keyed: bool,
    /// The telephone-event payload type we send and its clock rate.
    events: Option<(u8, u32)>,
    bye: ByeState,
}

/// A call that ended, its media's result still to be collected.
struct Done {
    measured: bool,
    end: End,
    digits_ok: bool,
    timeline: Timeline,
    media: Option<JoinHandle<(RxResult, PromptListener)>>,
}

#[derive(Default)]
struct Counters {
    attempted: u64,
    answered: u64,
    hook_events: BTreeMap<String, u64>,
    hook_unmatched: u64,
    digits_failed: BTreeMap<String, u64>,
    prompt_end_unseen: u64,
    no_kernel_timestamps: u64,
    active: Vec<usize>,
}

struct Runner {
    opts: IvrOptions,
    ua: UserAgent,
    sip: UdpSocket,
    peer: Peer,
    calls: HashMap<CallKey, IvrCall>,
    by_id: HashMap<u64, CallKey>,
    by_from: HashMap<String, u64>,
    done: Vec<Done>,
    c: Counters,
    next_id: u64,
    phase: Arc<AtomicU8>,
    sender: mpsc::UnboundedSender<SenderMsg>,
    payloads: Arc<Payloads>,
    ended_tx: mpsc::UnboundedSender<Ended>,
    keyed_tx: mpsc::UnboundedSender<(u64, Instant)>,
    origin: Instant,
    origin_wall: Option<Duration>,
}

/// The caller's number of call `i`: +1 206 5xx xxxx, one per call of a run.
fn caller_number(i: u64) -> String {
    format!("+12065{:06}", i % 1_000_000)
}

/// The digits call `i` keys (its own, so a digit of another call shows).
fn call_digits(i: u64) -> String {
    format!("{:04}", (i * 7919) % 10_000)
}

impl Runner {
    fn place(&mut self, now: Instant, measuring: bool) -> Result<(), RunError> {
        let i = self.c.attempted;
        let sock = bind_rtp(self.opts.caller.ip())?;
        let config = MediaConfig {
            telephone_event: true,
            ..plain_config(Codec::Pcmu)
        };
        let mut session = MediaSession::new(config, local_transport(&sock)?, rand::random());
        let offer = session.create_offer().to_bytes();
        let from = caller_number(i);
        let (number, server) = (&self.opts.number, self.opts.server);
        let target = sip::Uri::parse(&format!("sip:{number}@{server}"))
            .map_err(|e| std::io::Error::other(format!("--number: {e}")))?;
        let call = OutgoingCall {
            target,
            from: format!("<sip:{from}@{}>", self.opts.caller.ip()),
            to: format!("<sip:{number}@{server}>"),
            body: Some(Body::sdp(offer)),
            headers: vec![],
            credentials: None,
        };
        self.c.attempted += 1;
        let Ok(key) = self.ua.invite(now, self.peer, call) else {
            self.done.push(Done {
                measured: measuring,
                end: End::Other("invite refused by UA".into()),
                digits_ok: false,
                timeline: Timeline::default(),
                media: None,
            });
            return Ok(());
        };
        self.next_id += 1;
        let id = self.next_id;
        self.by_id.insert(id, key);
        self.by_from.insert(from.clone(), id);
        self.calls.insert(
            key,
            IvrCall {
                id,
                from,
                digits: call_digits(i),
                session,
                sock,
                invited: now,
                measured: measuring,
                answered: None,
                media: None,
                timeline: Timeline::default(),
                received_digits: None,
                digits_keyed: false,
                events: None,
                bye: ByeState::default(),
            },
        );
        Ok(())
    }

    fn answered(&mut self, now: Instant, key: CallKey, response: &sip::Response) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.answered = Some(now);
        call.bye.call_id = response.headers.get(HeaderName::CallId).map(str::to_string);
        self.c.answered += 1;
        let audio = match call.session.accept_answer_body(&response.body) {
            Ok(a) => a,
            Err(_) => return self.hang_up(now, key),
        };
        let (Some(remote), Some(te)) = (audio.remote_rtp.socket_addr(), audio.telephone_event)
        else {
            return self.hang_up(now, key);
        };
        if !media::enable_rx_timestamps(&call.sock) {
            self.c.no_kernel_timestamps += 1;
        }
        let settings = RxSettings {
            clock_rate: audio.clock_rate,
            late_after: self.opts.load.late_after,
            drop_every: 0,
            origin: self.origin,
            origin_wall: self.origin_wall,
        };
        let listener = PromptListener::new(
            call.id,
            audio.recv_payload_type,
            Some(self.ended_tx.clone()),
        );
        let (stop_tx, stop_rx) = oneshot::channel();
        let handle = tokio::spawn(media::run_observed(
            call.sock.clone(),
            None,
            settings,
            self.phase.clone(),
            stop_rx,
            listener,
        ));
        call.media = Some((stop_tx, handle));
        call.events = Some((te.payload_type, te.clock_rate));
        let _ = self.sender.send(SenderMsg::Add(Box::new(SendLeg {
            id: call.id,
            sock: call.sock.clone(),
            remote,
            srtp: None,
            payloads: self.payloads.clone(),
            payload_type: audio.payload_type,
            ssrc: rand::random(),
            ts_step: audio.clock_rate * codec::FRAME_MS / 1000,
            tone: 2,
            seq: rand::random(),
            ts: rand::random(),
            frames: 0,
        })));
    }

    /// Keys the call's digits (once), after its prompt or when it was not heard in time.
    fn key_digits(&mut self, id: u64) {
        let Some(call) = self.by_id.get(&id).and_then(|k| self.calls.get_mut(k)) else {
            return;
        };
        if call.digits_keyed || call.media.is_none() {
            return;
        }
        call.digits_keyed = true;
        let Some((pt, rate)) = call.events else {
            return;
        };
        let slots = prompt::digit_slots(&call.digits, pt, rate, DIGIT, DIGIT_GAP);
        let (tx, rx) = oneshot::channel();
        let keyed = self.keyed_tx.clone();
        tokio::spawn(async move {
            if let Ok(at) = rx.await {
                let _ = keyed.send((id, at));
            }
        });
        let _ = self.sender.send(SenderMsg::Override {
            id,
            slots,
            done: Some(tx),
        });
    }

    fn note(&mut self, n: Note) {
        let label = match &n.kind {
            NoteKind::NewCall => "NEW_INBOUND_CALL".to_string(),
            NoteKind::Digits(_) => "ACTION_SUCCESSFUL PlayAudioAndGetDigits".to_string(),
            NoteKind::DigitsFailed(_) => "ACTION_FAILED PlayAudioAndGetDigits".to_string(),
            NoteKind::Hangup => "HANGUP".to_string(),
            NoteKind::Other(k) => k.clone(),
        };
        *self.c.hook_events.entry(label).or_default() += 1;
        let call = n
            .caller
            .as_ref()
            .and_then(|f| self.by_from.get(f))
            .and_then(|id| self.by_id.get(id))
            .and_then(|k| self.calls.get_mut(k));
        let Some(call) = call else {
            self.c.hook_unmatched += u64::from(n.kind != NoteKind::Hangup);
            return;
        };
        match n.kind {
            NoteKind::NewCall => call.timeline.new_call_answered = Some(n.answered),
            NoteKind::Digits(d) => {
                call.timeline.digits_event = Some(n.received);
                call.timeline.digits_answered = Some(n.answered);
                call.received_digits = Some(d);
            }
            NoteKind::DigitsFailed(why) => *self.c.digits_failed.entry(why).or_default() += 1,
            NoteKind::Hangup | NoteKind::Other(_) => {}
        }
    }

    fn hang_up(&mut self, now: Instant, key: CallKey) {
        if let Some(call) = self.calls.get_mut(&key) {
            call.bye.sent = true;
            if self.ua.hangup(now, key).is_err() {
                self.terminated(key, End::Other("hang-up refused by UA".into()));
            }
        }
    }

    fn terminated(&mut self, key: CallKey, end: End) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        self.by_id.remove(&call.id);
        self.by_from.remove(&call.from);
        let _ = self.sender.send(SenderMsg::Remove(call.id));
        let media = call.media.map(|(stop, handle)| {
            let _ = stop.send(());
            handle
        });
        let digits_ok = call.received_digits.as_deref() == Some(call.digits.as_str());
        self.done.push(Done {
            measured: call.measured,
            end,
            digits_ok,
            timeline: call.timeline,
            media,
        });
    }

    /// Calls past their deadline, and digits not keyed because the prompt's end was not
    /// heard.
    fn sweep(&mut self, now: Instant) {
        let prompt = Duration::from_millis(u64::from(self.opts.prompt_ms));
        let all = prompt + Duration::from_millis(u64::from(self.opts.goodbye_ms));
        let mut late = Vec::new();
        let mut unkeyed = Vec::new();
        for (k, c) in &self.calls {
            if now.saturating_duration_since(c.invited) > all + CALL_SLACK && !c.bye.sent {
                late.push(*k);
            } else if !c.digits_keyed
                && c.answered
                    .is_some_and(|a| now.saturating_duration_since(a) > prompt + PROMPT_SLACK)
            {
                unkeyed.push(c.id);
            }
        }
        for id in unkeyed {
            self.c.prompt_end_unseen += 1;
            self.key_digits(id);
        }
        for k in late {
            self.hang_up(now, k);
            self.terminated(k, End::TimedOut);
        }
    }

    async fn flush(&mut self, now: Instant) {
        for _ in 0..2 {
            transmit(&mut self.ua, &self.sip).await;
            while let Some(ev) = self.ua.poll_event() {
                match caller_event(&mut self.ua, now, ev) {
                    Some(UaEvent::Answered { call, response }) => {
                        self.answered(now, call, &response)
                    }
                    Some(UaEvent::Terminated { call, reason }) => {
                        let end = match reason {
                            TerminationReason::RemoteBye => End::Bye,
                            TerminationReason::Failed(s) => End::Failed(s),
                            TerminationReason::LocalBye => End::Stopped,
                            other => End::Other(format!("{other:?}")),
                        };
                        self.terminated(call, end);
                    }
                    _ => {}
                }
            }
        }
    }
}

mod run;
pub use run::run;
