//! Media of the legs: pre-encoded tone payloads, one paced sender for every leg (which
//! sends other packets, RFC 4733 events say, in place of a leg's audio when told), and one
//! receiver task per leg that unprotects (SRTP, RFC 3711; or takes plain RTP as it comes)
//! and accounts what the server sends back, showing each packet to an observer if asked.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use codec::Codec;
use rtp::{RtpPacket, RtpWriter, SrtpContext};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::pacing::Pacer;
use crate::stats::{Histogram, RxStats};

/// Distinct tones: a leg plays the tone of its position in its meeting, modulo this.
pub const TONES: usize = 5;
/// Frames in one pre-encoded loop of a tone (one second).
pub const LOOP_FRAMES: usize = 50;
/// The frame period (RFC 3551 §4.2 ptime 20).
pub const FRAME: Duration = Duration::from_millis(codec::FRAME_MS as u64);

/// Measurement phases shared by the sender and the receivers.
pub const PHASE_WARMUP: u8 = 0;
/// Counting.
pub const PHASE_MEASURE: u8 = 1;
/// Counting stopped (calls are being ended).
pub const PHASE_DONE: u8 = 2;

/// The tone of meeting position `position`, in Hz: 350, 450, ... (multiples of 50 Hz, so
/// every 20 ms frame holds whole periods).
pub fn tone_hz(position: usize) -> u32 {
    350 + 100 * (position % TONES) as u32
}

/// Why media could not be set up (our fault or the codec library's).
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The codec library refused to build an encoder.
    #[error("codec: {0}")]
    Codec(#[from] codec::CodecError),
    /// Encoding a frame failed.
    #[error("encode: {0}")]
    Encode(#[from] codec::EncodeError),
}

/// One second of each tone, encoded once with a continuous encoder and looped: Opus
/// encoding 50 frames/s for thousands of legs would make the generator the bottleneck,
/// while the server still decodes real, distinct audio for every participant of a meeting.
pub struct Payloads {
    tones: Vec<Vec<Vec<u8>>>,
}

impl Payloads {
    /// Encodes [`TONES`] tones of [`LOOP_FRAMES`] frames in `codec` at about -16 dBFS.
    pub fn new(codec: Codec) -> Result<Payloads, MediaError> {
        let rate = f64::from(codec.sample_rate());
        let n = codec.samples_per_frame() * codec.channels().count();
        let mut tones = Vec::with_capacity(TONES);
        for t in 0..TONES {
            let hz = f64::from(tone_hz(t));
            let mut enc = codec.encoder()?;
            let mut frames = Vec::with_capacity(LOOP_FRAMES);
            for f in 0..LOOP_FRAMES {
                let pcm: Vec<i16> = (0..n)
                    .map(|i| {
                        let s = (f * n + i) as f64;
                        (5000.0 * (2.0 * std::f64::consts::PI * hz * s / rate).sin()) as i16
                    })
                    .collect();
                let mut out = Vec::new();
                enc.encode(&pcm, &mut out)?;
                frames.push(out);
            }
            tones.push(frames);
        }
        Ok(Payloads { tones })
    }

    /// Payload of frame `n` of tone `tone`.
    pub fn frame(&self, tone: usize, n: u64) -> &[u8] {
        self.tones
            .get(tone % TONES)
            .and_then(|f| f.get((n % LOOP_FRAMES as u64) as usize))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// One leg's sending state, owned by the sender.
pub struct SendLeg {
    /// Leg id (its slot is `id % slots`).
    pub id: u64,
    /// The leg's socket (shared with its receiver).
    pub sock: Arc<UdpSocket>,
    /// The server's RTP address from the answer.
    pub remote: SocketAddr,
    /// Our SRTP context (our key); `None` sends plain RTP.
    pub srtp: Option<SrtpContext>,
    /// The encoded tones of the leg's codec.
    pub payloads: Arc<Payloads>,
    /// Payload type from the answer.
    pub payload_type: u8,
    /// Our SSRC.
    pub ssrc: u32,
    /// RTP timestamp step per frame.
    pub ts_step: u32,
    /// Tone index.
    pub tone: usize,
    /// Next sequence number, timestamp and frame.
    pub seq: u16,
    /// Next RTP timestamp.
    pub ts: u32,
    /// Frames sent or skipped so far.
    pub frames: u64,
}

impl SendLeg {
    fn writer(&self, payload_type: u8, marker: bool, timestamp: u32) -> RtpWriter<'static> {
        RtpWriter {
            marker,
            payload_type,
            sequence_number: self.seq,
            timestamp,
            ssrc: self.ssrc,
            ..RtpWriter::default()
        }
    }

    fn skip(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.ts_step);
        self.frames += 1;
    }
}

/// One packet a leg sends in place of its audio ([`SenderMsg::Override`]): an RFC 4733
/// event packet, say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// Payload type.
    pub payload_type: u8,
    /// RTP marker bit.
    pub marker: bool,
    /// The packet's timestamp is this many RTP ticks before the frame's own (an event's
    /// packets all carry the timestamp of its first frame).
    pub ts_back: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

/// What a leg sends in one 20 ms slot of an override: its audio frame as usual, or these
/// packets instead (none: the slot stays silent).
pub type OverrideSlot = Option<Vec<Inserted>>;

/// Messages to the sender.
pub enum SenderMsg {
    /// Start sending for a leg.
    Add(Box<SendLeg>),
    /// Stop sending for a leg.
    Remove(u64),
    /// The leg's next slots, one entry each; `done` gets the instant the last slot's
    /// packets were handed to the kernel.
    Override {
        /// Leg id.
        id: u64,
        /// The slots, in order.
        slots: Vec<OverrideSlot>,
        /// Told when the last slot went out.
        done: Option<oneshot::Sender<Instant>>,
    },
}

/// A leg's override in progress.
type Pending = (VecDeque<OverrideSlot>, Option<oneshot::Sender<Instant>>);

/// What the sender did.
#[derive(Debug, Default)]
pub struct TxTotals {
    /// Packets handed to the kernel.
    pub sent: u64,
    /// Packets the kernel refused (socket buffer full) or protect failures.
    pub send_errors: u64,
    /// Frames not sent because the generator fell more than the catch-up limit behind.
    pub skipped: u64,
    /// How late each sender wake-up ran behind its deadline (while measuring).
    pub behind: Histogram,
    /// Packets sent while measuring.
    pub sent_measured: u64,
}

impl TxTotals {
    fn count(&mut self, ok: bool, measuring: bool) {
        if ok {
            self.sent += 1;
            if measuring {
                self.sent_measured += 1;
            }
        } else {
            self.send_errors += 1;
        }
    }
}

/// Writes one packet of `leg`, protects it when the leg is SRTP, and hands it to the kernel.
fn send_one(leg: &mut SendLeg, w: RtpWriter<'_>, payload: &[u8], buf: &mut Vec<u8>) -> bool {
    w.write(payload, buf).is_ok()
        && leg
            .srtp
            .as_mut()
            .is_none_or(|s| s.protect_rtp_in_place(buf).is_ok())
        && leg.sock.try_send_to(buf, leg.remote).is_ok()
}

/// Sends every leg's frame on its sub-tick until `stop` fires. `slots` sub-ticks per 20 ms.
pub async fn run_sender(
    slots: u64,
    mut rx: mpsc::UnboundedReceiver<SenderMsg>,
    mut stop: oneshot::Receiver<()>,
    phase: Arc<AtomicU8>,
) -> TxTotals {
    let mut pacer = Pacer::new(FRAME, slots, FRAME * 5);
    let mut legs: Vec<Vec<SendLeg>> = (0..pacer.slots()).map(|_| Vec::new()).collect();
    let mut totals = TxTotals::default();
    let mut buf = Vec::with_capacity(1500);
    let start = Instant::now();
    let mut overrides: HashMap<u64, Pending> = HashMap::new();
    let apply = |legs: &mut Vec<Vec<SendLeg>>,
                 overrides: &mut HashMap<u64, Pending>,
                 msg: SenderMsg,
                 slots: u64| match msg {
        SenderMsg::Add(leg) => {
            if let Some(v) = legs.get_mut((leg.id % slots) as usize) {
                v.push(*leg);
            }
        }
        SenderMsg::Remove(id) => {
            overrides.remove(&id);
            if let Some(v) = legs.get_mut((id % slots) as usize) {
                v.retain(|l| l.id != id);
            }
        }
        SenderMsg::Override { id, slots, done } => {
            overrides.insert(id, (slots.into(), done));
        }
    };
    loop {
        let deadline = start + pacer.next_deadline();
        tokio::select! {
            biased;
            _ = &mut stop => break,
            msg = rx.recv() => match msg {
                Some(m) => { apply(&mut legs, &mut overrides, m, slots); continue; }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
        while let Ok(m) = rx.try_recv() {
            apply(&mut legs, &mut overrides, m, slots);
        }
        let due = pacer.poll(start.elapsed());
        let measuring = phase.load(Ordering::Relaxed) == PHASE_MEASURE;
        if measuring && !due.send.is_empty() {
            totals.behind.record(due.behind);
        }
        for k in due.skip.clone() {
            let (slot, _) = pacer.slot_and_frame(k);
            if let Some(v) = legs.get_mut(slot as usize) {
                for leg in v.iter_mut() {
                    leg.skip();
                    totals.skipped += 1;
                }
            }
        }
        for k in due.send.clone() {
            let (slot, _) = pacer.slot_and_frame(k);
            let Some(v) = legs.get_mut(slot as usize) else {
                continue;
            };
            for leg in v.iter_mut() {
                let instead = match overrides.get_mut(&leg.id) {
                    Some((queue, done)) => {
                        let slot = queue.pop_front().flatten();
                        if queue.is_empty() {
                            if let Some(tx) = done.take() {
                                let _ = tx.send(Instant::now());
                            }
                            overrides.remove(&leg.id);
                        }
                        slot
                    }
                    None => None,
                };
                let Some(packets) = instead else {
                    let w = leg.writer(leg.payload_type, leg.frames == 0, leg.ts);
                    let payloads = leg.payloads.clone();
                    let ok = send_one(leg, w, payloads.frame(leg.tone, leg.frames), &mut buf);
                    totals.count(ok, measuring);
                    leg.skip();
                    continue;
                };
                for p in packets {
                    let w = leg.writer(p.payload_type, p.marker, leg.ts.wrapping_sub(p.ts_back));
                    let ok = send_one(leg, w, &p.payload, &mut buf);
                    totals.count(ok, measuring);
                    leg.seq = leg.seq.wrapping_add(1);
                }
                leg.ts = leg.ts.wrapping_add(leg.ts_step);
                leg.frames += 1;
            }
        }
    }
    totals
}

/// A running sender ([`run_sender`]): where legs are added, the stop signal, and its
/// totals at the end.
pub type Sender = (
    mpsc::UnboundedSender<SenderMsg>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<TxTotals>,
);

/// Spawns [`run_sender`] with `slots` sub-ticks.
pub fn spawn_sender(slots: u64, phase: Arc<AtomicU8>) -> Sender {
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(run_sender(slots, rx, stop_rx, phase));
    (tx, stop_tx, task)
}

/// What one leg's receiver saw.
#[derive(Debug, Default)]
pub struct RxResult {
    /// Sequence, loss and lateness accounting of authenticated RTP while measuring.
    pub stats: RxStats,
    /// Packets whose SRTP authentication (or decryption) failed, while measuring.
    pub srtp_failures: u64,
    /// RTCP packets (rtcp-mux) seen.
    pub rtcp: u64,
    /// Packets dropped on purpose before accounting (`--rx-drop-every`, a test hook).
    pub dropped_by_test: u64,
    /// Authenticated RTP packets over the whole call, warm-up included.
    pub authenticated_total: u64,
}

/// Settings of a receiver.
#[derive(Clone, Debug)]
pub struct RxSettings {
    /// RTP clock rate of the negotiated codec.
    pub clock_rate: u32,
    /// Lateness threshold.
    pub late_after: Duration,
    /// Drop every n-th authenticated packet before accounting (0: never).
    pub drop_every: u64,
    /// Arrival times are measured from this instant (the same for every leg).
    pub origin: Instant,
    /// The same origin on the wall clock (since the Unix epoch), for kernel timestamps.
    pub origin_wall: Option<Duration>,
}

/// Turns on kernel receive timestamps (SO_TIMESTAMPNS, socket(7)) so arrival times are when
/// the kernel queued the datagram, not when this process got round to reading it: a stall of
/// the generator then does not count as lateness of the server.
pub fn enable_rx_timestamps(sock: &UdpSocket) -> bool {
    nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::ReceiveTimestampns, &true).is_ok()
}

/// One datagram and its kernel receive time (wall clock, since the Unix epoch) if the kernel
/// gave one.
fn recv_timestamped(
    sock: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> std::io::Result<(usize, Option<Duration>)> {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    sock.try_io(tokio::io::Interest::READABLE, || {
        let mut iov = [std::io::IoSliceMut::new(buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            fd,
            &mut iov,
            Some(&mut *cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )
        .map_err(std::io::Error::from)?;
        let ts = msg.cmsgs().ok().and_then(|mut it| {
            it.find_map(|c| match c {
                nix::sys::socket::ControlMessageOwned::ScmTimestampns(t) => Some(Duration::from(t)),
                _ => None,
            })
        });
        Ok((msg.bytes, ts))
    })
}

/// Sees every authenticated RTP packet of a leg, whatever the phase (the IVR mode listens
/// for its prompts with one).
pub trait RtpObserver: Send + 'static {
    /// One packet and its arrival time (on the receivers' shared origin).
    fn on_rtp(&mut self, arrival: Duration, pkt: &RtpPacket<'_>);
}

impl RtpObserver for () {
    fn on_rtp(&mut self, _: Duration, _: &RtpPacket<'_>) {}
}

/// Receives and accounts the server's packets for one leg until `stop` fires; with `srtp`
/// `None` the leg is plain RTP and every RTP packet counts as authenticated.
pub async fn run_receiver(
    sock: Arc<UdpSocket>,
    srtp: Option<SrtpContext>,
    settings: RxSettings,
    phase: Arc<AtomicU8>,
    stop: oneshot::Receiver<()>,
) -> RxResult {
    run_observed(sock, srtp, settings, phase, stop, ()).await.0
}

/// [`run_receiver`] that also shows every authenticated packet to `observer`, handed back
/// at the end.
pub async fn run_observed<O: RtpObserver>(
    sock: Arc<UdpSocket>,
    mut srtp: Option<SrtpContext>,
    settings: RxSettings,
    phase: Arc<AtomicU8>,
    mut stop: oneshot::Receiver<()>,
    mut observer: O,
) -> (RxResult, O) {
    let mut r = RxResult::default();
    let mut buf = vec![0u8; 2048];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let origin = settings.origin;
    loop {
        buf.resize(2048, 0);
        let got = tokio::select! {
            biased;
            _ = &mut stop => break,
            res = sock.readable() => match res {
                Ok(()) => recv_timestamped(&sock, &mut buf, &mut cmsg),
                Err(_) => continue,
            },
        };
        let (n, kernel_ts) = match got {
            Ok(x) => x,
            Err(_) => continue, // WouldBlock (spurious readiness) or a transient error
        };
        // Kernel time relative to the shared origin, else the time we read it.
        let arrival = match (kernel_ts, settings.origin_wall) {
            (Some(k), Some(o)) => k.saturating_sub(o),
            _ => origin.elapsed(),
        };
        buf.truncate(n);
        if rtp::is_rtcp(&buf) {
            r.rtcp += 1;
            continue;
        }
        let ph = phase.load(Ordering::Relaxed);
        if let Some(s) = srtp.as_mut()
            && s.unprotect_rtp_in_place(&mut buf).is_err()
        {
            if ph == PHASE_MEASURE {
                r.srtp_failures += 1;
            }
            continue;
        }
        let Ok(pkt) = RtpPacket::parse(&buf) else {
            continue;
        };
        r.authenticated_total += 1;
        observer.on_rtp(arrival, &pkt);
        if ph != PHASE_MEASURE {
            continue;
        }
        if settings.drop_every > 0 && r.authenticated_total % settings.drop_every == 0 {
            r.dropped_by_test += 1;
            continue;
        }
        r.stats.on_packet(
            pkt.sequence_number(),
            pkt.timestamp(),
            settings.clock_rate,
            arrival,
            settings.late_after,
        );
    }
    (r, observer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_loops_are_encoded_for_both_codecs() {
        let pcmu = Payloads::new(Codec::Pcmu).unwrap();
        assert_eq!(pcmu.frame(0, 0).len(), 160);
        assert_eq!(pcmu.frame(7, 51), pcmu.frame(2, 1));
        let opus = Payloads::new(Codec::Opus(codec::Channels::Mono)).unwrap();
        assert!(!opus.frame(1, 3).is_empty());
        // A real decoder takes the frames and hears a tone (not silence).
        let mut dec = Codec::Opus(codec::Channels::Mono).decoder().unwrap();
        let mut pcm = Vec::new();
        for f in 0..10 {
            pcm.clear();
            dec.decode(Some(opus.frame(1, f)), &mut pcm).unwrap();
        }
        let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak > 1000, "decoded peak {peak}");
    }

    /// An override replaces the leg's next frames with its packets (sequence numbers going
    /// on, timestamps taken back), an empty slot sends nothing, audio resumes after, and
    /// `done` is told.
    #[tokio::test]
    async fn overrides_take_the_place_of_audio_frames() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx_sock.set_nonblocking(true).unwrap();
        let sock = Arc::new(UdpSocket::from_std(tx_sock).unwrap());
        let phase = Arc::new(AtomicU8::new(PHASE_WARMUP));
        let (msgs, stop, task) = spawn_sender(1, phase);
        let ev = |marker, ts_back| Inserted {
            payload_type: 101,
            marker,
            ts_back,
            payload: vec![1, 0x0a, 0, 160],
        };
        let (done_tx, done_rx) = oneshot::channel();
        // Queued before the leg: its first frames are the override's.
        let _ = msgs.send(SenderMsg::Add(Box::new(SendLeg {
            id: 1,
            sock,
            remote: rx.local_addr().unwrap(),
            srtp: None,
            payloads: Arc::new(Payloads::new(Codec::Pcmu).unwrap()),
            payload_type: 0,
            ssrc: 7,
            ts_step: 160,
            tone: 0,
            seq: 100,
            ts: 1000,
            frames: 0,
        })));
        let slots = vec![
            Some(vec![ev(true, 0)]),
            Some(vec![]),
            None,
            Some(vec![ev(false, 480), ev(false, 480)]),
        ];
        let _ = msgs.send(SenderMsg::Override {
            id: 1,
            slots,
            done: Some(done_tx),
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 1500];
        for _ in 0..6 {
            let recv = tokio::time::timeout(Duration::from_secs(2), rx.recv(&mut buf));
            let n = recv.await.unwrap().unwrap();
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            got.push((
                p.sequence_number(),
                p.timestamp(),
                p.payload_type(),
                p.marker(),
            ));
        }
        let _ = stop.send(());
        let _ = task.await;
        assert!(done_rx.await.is_ok());
        assert_eq!(
            got,
            vec![
                (100, 1000, 101, true),
                // slot 2 sent nothing; slot 3 is audio (the leg's first audio frame, marked)
                (101, 1320, 0, false),
                (102, 1480 - 480, 101, false),
                (103, 1480 - 480, 101, false),
                (104, 1640, 0, false),
                (105, 1800, 0, false),
            ]
        );
    }

    #[test]
    fn tones_are_distinct_per_position() {
        let hz: Vec<u32> = (0..TONES).map(tone_hz).collect();
        assert_eq!(hz, vec![350, 450, 550, 650, 750]);
        assert_eq!(tone_hz(TONES), 350);
    }
}

#[cfg(test)]
mod srtp_wrap_tests {
    use rtp::{RtpWriter, SrtpContext, SrtpSuite};

    /// Our protect and unprotect contexts stay in step across a sequence-number wrap
    /// (RFC 3711 §3.3.1 rollover counter).
    #[test]
    fn protect_unprotect_across_sequence_wrap() {
        let key = [7u8; 16];
        let salt = [9u8; 14];
        let suite = SrtpSuite::AesCm128HmacSha1_80;
        let mut tx = SrtpContext::new(suite, &key, &salt).unwrap();
        let mut rx = SrtpContext::new(suite, &key, &salt).unwrap();
        let mut buf = Vec::new();
        let mut seq: u16 = 65500;
        for i in 0..200u32 {
            let w = RtpWriter {
                payload_type: 0,
                sequence_number: seq,
                timestamp: i * 160,
                ssrc: 0x1234,
                ..RtpWriter::default()
            };
            w.write(&[0u8; 160], &mut buf).unwrap();
            tx.protect_rtp_in_place(&mut buf).unwrap();
            rx.unprotect_rtp_in_place(&mut buf)
                .unwrap_or_else(|e| panic!("seq {seq}: {e}"));
            seq = seq.wrapping_add(1);
        }
    }
}
