//! One call's stream: the WebSocket to the consumer, the leg's tap, and (bidirectional)
//! the consumer's audio back to the caller.
//!
//! The tap's frames go into a bounded queue that a writer task empties onto the socket,
//! so a consumer that reads slowly or not at all only loses frames (counted, and reported
//! in the stop message); the meeting's mixer never waits for it. The connection is tried
//! [`CONNECT_ATTEMPTS`] times with backoff; when it cannot be made, or breaks during the
//! call, the stream is FAILED and the call goes on without it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::notify::{self, HttpUrl};
use super::playback::Playback;
use super::protocol::{self, CallFacts, Inbound, Status, StreamCounts, Track};
use super::retention::Recorder;
use crate::meeting::{MeetingMsg, TapFrame, taps};

/// Connection attempts before the stream is FAILED, and the first backoff (doubled each
/// time).
pub const CONNECT_ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(250);
/// How long one connection attempt (TCP and the WebSocket handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one message may take to be written before the socket counts as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Tap frames waiting for the stream task (1 s).
const TAP_QUEUE: usize = 50;
/// Messages waiting for the socket (2 s of both tracks).
const WRITE_QUEUE: usize = 200;
/// The stream socket's send buffer (about 0.5 s of two 16 kHz tracks).
const SEND_BUFFER: u32 = 32 * 1024;
/// The largest message the consumer may send (a track byte and 10 s at 48 kHz).
const MAX_INBOUND_BYTES: usize = 1 + protocol::MAX_RETURNED_SAMPLES * 2;

/// What a stream needs beyond the call's facts.
pub struct StreamSpec {
    pub url: String,
    pub bidirectional: bool,
    pub notify: Option<HttpUrl>,
    pub meeting: mpsc::Sender<MeetingMsg>,
    pub leg: calls::LegId,
    pub metrics: Arc<api::metrics::Metrics>,
    /// DataRetentionInHours: above zero, the call's audio is also retained.
    pub retain_hours: u32,
}

type Socket = tokio_tungstenite::WebSocketStream<crate::sma::tls::Stream>;

async fn connect(url: &str) -> Result<Socket, String> {
    let mut last = String::new();
    for attempt in 0..CONNECT_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, connect_once(url)).await {
            Ok(Ok(socket)) => return Ok(socket),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
        }
    }
    Err(format!(
        "{CONNECT_ATTEMPTS} attempts to connect to the stream's WebSocket failed: {last}"
    ))
}

/// One attempt, on a TCP socket whose send buffer holds at most [`SEND_BUFFER`] bytes, so
/// that a consumer that stops reading backs up into our counted queue, not the kernel's.
async fn connect_once(url: &str) -> Result<Socket, String> {
    let request = url.into_client_request().map_err(|e| e.to_string())?;
    let uri = request.uri();
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(format!("{url}: only ws:// and wss:// URLs are supported")),
    };
    let host = uri.host().ok_or("the URL has no host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    sock.set_send_buffer_size(SEND_BUFFER)
        .map_err(|e| e.to_string())?;
    let tcp = sock
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_INBOUND_BYTES);
    config.max_frame_size = Some(MAX_INBOUND_BYTES);
    // wss://: the https client's roots (the system's and --sma-ca-file), the certificate
    // checked for the URL's host.
    let stream = match tls {
        true => crate::sma::tls::shared()
            .wrap(tcp, &host)
            .await
            .map_err(|e| e.to_string())?,
        false => crate::sma::tls::Stream::Plain(tcp),
    };
    let (socket, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| e.to_string())?;
    Ok(socket)
}

/// How often a stream whose socket broke mid-call is connected again (each time with
/// [`CONNECT_ATTEMPTS`] attempts) before it is FAILED.
pub const MAX_RECONNECTS: u32 = 3;

/// What outlives one connection of a stream.
struct Stream {
    tap: mpsc::Receiver<TapFrame>,
    counts: StreamCounts,
    /// The stream's sample rate: the first frame's.
    rate: Option<u32>,
    playback: Option<Playback>,
    /// STARTED was reported.
    announced: bool,
    /// The call's audio as retained ([`super::retention`]).
    recorder: Option<Recorder>,
}

/// How one connection ended.
enum Outcome {
    /// The leg left its meeting: the stop message was sent (if a start was).
    LegGone,
    /// The consumer closed the socket.
    Closed,
    /// The socket broke: connect again.
    Broken(String),
}

/// Runs the stream until the leg leaves its meeting (or the socket fails for good).
pub async fn run(spec: StreamSpec, facts: CallFacts) {
    let event = |status: Status, failure: Option<&str>| {
        if let Some(url) = &spec.notify {
            let id = uuid::Uuid::new_v4().to_string();
            let body = protocol::status_event(&facts, status, &id, &now_iso(), failure);
            notify::post(url.clone(), body, spec.metrics.clone());
        }
    };
    let failed = |why: &str| {
        tracing::warn!(call = %spec.leg, error = %why, "call stream failed");
        spec.metrics
            .counter_add("vc_streams_total", "status=\"failed\"", 1);
        event(Status::Failed, Some(why));
    };
    let mut socket = match connect(&spec.url).await {
        Ok(s) => s,
        Err(why) => return failed(&why),
    };
    let (tap_tx, tap_rx) = mpsc::channel::<TapFrame>(TAP_QUEUE);
    let key = taps::next_key();
    let tap = MeetingMsg::Tap {
        leg: spec.leg,
        key,
        sink: Some((engine::TapTrack::Both, tap_tx)),
    };
    if spec.meeting.send(tap).await.is_err() {
        return;
    }
    let mut st = Stream {
        tap: tap_rx,
        counts: StreamCounts::default(),
        rate: None,
        playback: None,
        announced: false,
        recorder: Recorder::new(spec.retain_hours, &facts),
    };
    let mut reconnects = 0;
    let ended = loop {
        let announce = || {
            spec.metrics
                .counter_add("vc_streams_total", "status=\"started\"", 1);
            event(Status::Started, None);
        };
        let outcome = connection(&spec, &facts, &mut st, socket, &announce).await;
        let why = match outcome {
            Outcome::LegGone | Outcome::Closed => break true,
            Outcome::Broken(why) if reconnects < MAX_RECONNECTS => why,
            Outcome::Broken(why) => {
                failed(&why);
                break false;
            }
        };
        reconnects += 1;
        tracing::info!(call = %spec.leg, error = %why, reconnects, "call stream broken; connecting again");
        match reconnect(&spec.url, &mut st).await {
            Some(Ok(s)) => {
                socket = s;
                event(Status::Updated, None);
            }
            Some(Err(e)) => {
                failed(&format!("{why}; then {e}"));
                break false;
            }
            None => break st.announced,
        }
    };
    let off = MeetingMsg::Tap {
        leg: spec.leg,
        key,
        sink: None,
    };
    let _ = spec.meeting.try_send(off);
    if let Some(r) = st.recorder.take() {
        r.save(&facts);
    }
    let counts = st.counts;
    spec.metrics
        .counter_add("vc_stream_frames_sent_total", "", counts.frames_sent);
    spec.metrics
        .counter_add("vc_stream_frames_dropped_total", "", counts.frames_dropped);
    if ended && st.announced {
        tracing::info!(call = %spec.leg, sent = counts.frames_sent, dropped = counts.frames_dropped, "call stream ended");
        spec.metrics
            .counter_add("vc_streams_total", "status=\"ended\"", 1);
        event(Status::Ended, None);
    }
}

fn now_iso() -> String {
    domain::timestamp::iso8601(domain::timestamp::now_millis())
}

/// Connects again while the tap's frames are dropped (and counted); None when the leg
/// left meanwhile.
async fn reconnect(url: &str, st: &mut Stream) -> Option<Result<Socket, String>> {
    let attempt = connect(url);
    tokio::pin!(attempt);
    loop {
        tokio::select! {
            r = &mut attempt => return Some(r),
            f = st.tap.recv() => match f {
                Some(f) => {
                    st.counts.frames_dropped += 2;
                    if let Some(r) = st.recorder.as_mut() {
                        r.push(&f);
                    }
                }
                None => return None,
            },
        }
    }
}

/// One socket's life: the start message, the frames, the consumer's messages, and the
/// stop message when the leg leaves.
async fn connection(
    spec: &StreamSpec,
    facts: &CallFacts,
    st: &mut Stream,
    socket: Socket,
    announce: &(dyn Fn() + Sync),
) -> Outcome {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(WRITE_QUEUE);
    let mut writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            match tokio::time::timeout(WRITE_TIMEOUT, sink.send(m)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("writing to the stream's WebSocket: {e}")),
                Err(_) => {
                    return Err(format!(
                        "the stream's WebSocket took no data for {} s",
                        WRITE_TIMEOUT.as_secs()
                    ));
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
        Ok(())
    });
    let mut started = false;
    let outcome = loop {
        let due = st.playback.as_ref().and_then(Playback::deadline);
        tokio::select! {
            frame = st.tap.recv() => {
                let Some(f) = frame else { break Outcome::LegGone };
                if let Some(r) = st.recorder.as_mut() {
                    r.push(&f);
                }
                let r = *st.rate.get_or_insert(f.rate);
                if !started {
                    let start = protocol::start_message(facts, r, spec.bidirectional);
                    if out_tx.send(Message::text(start)).await.is_err() {
                        continue;
                    }
                    started = true;
                    if !st.announced {
                        st.announced = true;
                        announce();
                    }
                    if spec.bidirectional && st.playback.is_none() {
                        st.playback = Some(Playback::new(r));
                    }
                }
                for (track, samples) in [(Track::Caller, &f.incoming), (Track::Callee, &f.outgoing)] {
                    // A codec change mid-call that changes the rate: its frames are dropped.
                    let frame = (f.rate == r).then(|| protocol::audio_frame(track, samples));
                    match frame.map(|b| out_tx.try_send(Message::binary(b))) {
                        Some(Ok(())) => st.counts.frames_sent += 1,
                        _ => st.counts.frames_dropped += 1,
                    }
                }
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => inbound(spec, &mut st.playback, protocol::parse_binary(&b)),
                Some(Ok(Message::Text(t))) => inbound(spec, &mut st.playback, protocol::parse_text(&t)),
                Some(Ok(Message::Close(_))) => break Outcome::Closed,
                Some(Ok(_)) => {}
                Some(Err(e)) => break Outcome::Broken(format!("reading the stream's WebSocket: {e}")),
                None => break Outcome::Broken("the stream's WebSocket was cut".into()),
            },
            () = sleep_until(due) => {
                let now = Instant::now().into_std();
                if let Some(chunk) = st.playback.as_mut().and_then(|p| p.poll(now)) {
                    let prompt = engine::Prompt { rate: st.rate.unwrap_or(8000), samples: chunk.into() };
                    let _ = spec.meeting.try_send(MeetingMsg::Play { leg: spec.leg, prompt, repeat: 1 });
                }
            }
            done = &mut writer => {
                break Outcome::Broken(match done {
                    Ok(Err(e)) => e,
                    _ => "the stream's writer stopped".into(),
                });
            }
        }
    };
    if !matches!(outcome, Outcome::LegGone) {
        writer.abort();
        return outcome;
    }
    st.counts.frames_played = st.playback.as_ref().map_or(0, |p| p.frames_played);
    if started {
        let stop = protocol::stop_message(facts, &now_iso(), st.counts);
        let _ =
            tokio::time::timeout(Duration::from_secs(2), out_tx.send(Message::text(stop))).await;
    }
    drop(out_tx);
    // The writer sends what is queued and closes, within its write deadline.
    let _ = tokio::time::timeout(WRITE_TIMEOUT, &mut writer).await;
    writer.abort();
    outcome
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// Acts on one message from the consumer.
fn inbound(spec: &StreamSpec, playback: &mut Option<Playback>, msg: Inbound) {
    let now = Instant::now().into_std();
    match (msg, playback.as_mut()) {
        (Inbound::Audio(samples), Some(p)) => p.push(now, &samples),
        (Inbound::Clear, Some(p)) => {
            if p.clear(now) {
                let _ = spec
                    .meeting
                    .try_send(MeetingMsg::StopPlay { leg: spec.leg });
            }
        }
        (Inbound::Ignored(why), _) => {
            tracing::debug!(call = %spec.leg, %why, "stream message ignored");
        }
        (_, None) => {}
    }
}
