//! A browser attendee without a browser, for tests and the WebRTC bench: the Chime SDK's
//! signaling frames over a real WebSocket (tokio-tungstenite) and a real WebRTC client
//! (str0m: full ICE agent, DTLS client, SRTP) over UDP on loopback; and the server's
//! browser side (store, media, shared WebRTC port, signaling routes) on 127.0.0.1 port 0.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chime_signal::proto::{SdkAudioControlFrame, SdkJoinFrame, SdkLeaveFrame, SdkSubscribeFrame};
use chime_signal::{FrameType, SdkSignalFrame, decode_frame, encode_frame};
use codec::Channels;
use codec::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use domain::meeting::{
    AttendeeCapabilities, AttendeeRecord, MediaPlacement, Meeting, MeetingRecord,
};
use domain::token::TokenKey;
use futures_util::{SinkExt, StreamExt};
use store::Repository;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use voice_connector::config::Config;
use voice_connector::serve::Server;
use voice_connector::webrtc_port::WebRtcPort;

/// The server's browser side on loopback.
pub struct TestServer {
    pub http: SocketAddr,
    pub repo: Arc<dyn Repository>,
    pub server: Server,
    pub key: TokenKey,
    pub webrtc: Arc<WebRtcPort>,
    _dir: TempDir,
}

pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = std::env::temp_dir().join(format!(
            "vc-webrtc-test-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let cfg = Config {
            data_dir: dir.clone(),
            http: any,
            sip: any,
            sip_tls: any,
            rtp_ports: (41000, 41100),
            media_ip: None,
            media_latch: false,
            webrtc_udp: any,
            sip_domain: "voiceconnector.localhost".into(),
            database_url: format!("sqlite://{}", dir.join("vc.db").display()),
            api_rate_limit: 1000,
            meeting_idle_timeout: 300,
            media_metrics_interval: 60,
            sip_max_transactions_per_source: 1000,
            sip_drop_unallowed_sources: false,
            call_record_retention_days: 90,
            stream_retention_sweep_secs: 300,
            drain_timeout: 1,
            carrier_answer_timeout: 30,
            carrier_options_interval: 0,
            tls_cert: None,
            tls_key: None,
            http_options: Default::default(),
            s3: None,
            sma_ca_file: None,
            tts_command: None,
            turn: None,
            cluster: Default::default(),
        };
        let server = Server::start(cfg).await.expect("server");
        let (http, repo, webrtc) = (server.http, server.repo.clone(), server.webrtc.clone());
        TestServer {
            http,
            repo,
            server,
            key: TokenKey::generate(),
            webrtc,
            _dir: TempDir(dir),
        }
    }

    pub async fn create_meeting(&self) -> String {
        let id = domain::ids::new_uuid();
        let now = domain::timestamp::now_millis();
        let rec = MeetingRecord {
            meeting: Meeting {
                meeting_id: id.clone(),
                meeting_host_id: None,
                external_meeting_id: format!("ext-{id}"),
                media_region: "us-east-1".into(),
                media_placement: MediaPlacement::for_host(&self.http.to_string(), &id),
                meeting_features: None,
                primary_meeting_id: None,
                tenant_ids: None,
                meeting_arn: domain::meeting::meeting_arn("us-east-1", &id),
            },
            client_request_token: domain::ids::new_uuid(),
            created_ms: now,
            last_audio_ms: now,
        };
        self.repo.insert_meeting(&rec).await.expect("meeting");
        id
    }

    /// An attendee with a real token; returns its id and token.
    pub async fn add_attendee(&self, meeting_id: &str, external: &str) -> (String, String) {
        let id = domain::ids::new_uuid();
        let (nonce, token) = self.key.mint(&id);
        let rec = AttendeeRecord {
            meeting_id: meeting_id.to_string(),
            attendee_id: id.clone(),
            external_user_id: external.to_string(),
            capabilities: AttendeeCapabilities::default(),
            token_nonce: nonce,
            token_hash: domain::token::token_hash(&token),
            created_ms: domain::timestamp::now_millis(),
        };
        self.repo
            .insert_attendee(&rec, 250)
            .await
            .expect("attendee");
        (id, token)
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The SDK's signaling connection.
pub struct SignalClient {
    pub ws: Ws,
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
}

/// What came back instead of a session.
#[derive(Debug)]
pub enum Refused {
    Http(u16),
    Other(String),
}

pub fn frame(kind: FrameType) -> SdkSignalFrame {
    let ms = u64::try_from(domain::timestamp::now_millis()).unwrap_or(0);
    SdkSignalFrame::new(ms, kind)
}

impl SignalClient {
    pub async fn connect(
        http: SocketAddr,
        meeting_id: &str,
        token: &str,
    ) -> Result<SignalClient, Refused> {
        let url = format!(
            "ws://{http}/control/{meeting_id}?X-Chime-Control-Protocol-Version=3&X-Chime-Message-Compression=false"
        );
        let mut req = url
            .into_client_request()
            .map_err(|e| Refused::Other(e.to_string()))?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(&format!("_aws_wt_session, {token}"))
                .map_err(|e| Refused::Other(e.to_string()))?,
        );
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, resp)) => Ok(SignalClient {
                ws,
                protocol: resp
                    .headers()
                    .get("sec-websocket-protocol")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                Err(Refused::Http(resp.status().as_u16()))
            }
            Err(e) => Err(Refused::Other(e.to_string())),
        }
    }

    pub async fn send(&mut self, f: &SdkSignalFrame) {
        self.ws
            .send(Message::Binary(encode_frame(f).into()))
            .await
            .expect("send");
    }

    /// The next frame, or the close code when the server closes; `None` on timeout.
    pub async fn next(&mut self, wait: Duration) -> Option<Result<SdkSignalFrame, Option<u16>>> {
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next()).await.ok()?;
            match msg {
                Some(Ok(Message::Binary(b))) => {
                    return Some(Ok(decode_frame(&b).expect("server frames decode")));
                }
                Some(Ok(Message::Close(c))) => {
                    return Some(Err(c.map(|c| u16::from(c.code))));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(Err(None)),
            }
        }
    }

    /// Frames until one of `kind` (which is returned with those skipped).
    pub async fn until(
        &mut self,
        kind: FrameType,
        wait: Duration,
    ) -> (Option<SdkSignalFrame>, Vec<SdkSignalFrame>) {
        let end = Instant::now() + wait;
        let mut skipped = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.next(left).await {
                Some(Ok(f)) if f.frame_type() == Some(kind) => return (Some(f), skipped),
                Some(Ok(f)) => skipped.push(f),
                _ => break,
            }
        }
        (None, skipped)
    }

    pub async fn join(&mut self) {
        let mut f = frame(FrameType::Join);
        f.join = Some(SdkJoinFrame {
            protocol_version: Some(2),
            max_num_of_videos: Some(0),
            flags: Some(0),
            client_details: None,
            audio_session_id: Some(7),
        });
        self.send(&f).await;
    }

    pub async fn subscribe(&mut self, sdp_offer: String) {
        let mut f = frame(FrameType::Subscribe);
        f.sub = Some(SdkSubscribeFrame {
            duplex: Some(3),
            sdp_offer: Some(sdp_offer),
            audio_host: Some("ignored".into()),
            audio_checkin: Some(false),
            audio_muted: Some(false),
            ..SdkSubscribeFrame::default()
        });
        self.send(&f).await;
    }

    pub async fn mute(&mut self, muted: bool) {
        let mut f = frame(FrameType::AudioControl);
        f.audio_control = Some(SdkAudioControlFrame { muted: Some(muted) });
        self.send(&f).await;
    }

    pub async fn leave(&mut self) {
        let mut f = frame(FrameType::Leave);
        f.leave = Some(SdkLeaveFrame {});
        self.send(&f).await;
    }

    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

/// Energy of `freq` in `pcm` (Goertzel), normalised by length.
pub fn goertzel(pcm: &[i16], rate: f64, freq: f64) -> f64 {
    codec::tone::goertzel_energy(pcm, rate, freq)
}

/// What a browser's media task reports.
#[derive(Default)]
pub struct Heard {
    pub pcm: Vec<i16>,
    pub packets: u64,
    pub connected: bool,
    pub sent: u64,
}

/// A browser's PeerConnection: offers audio sendrecv and video inactive like the SDK,
/// then (after [`BrowserMedia::start`]) plays a tone and decodes what it hears.
pub struct BrowserMedia {
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    mid: Mid,
    socket: UdpSocket,
    pub heard: Arc<Mutex<Heard>>,
    /// Whether received audio is decoded (the bench only counts packets).
    pub decode: bool,
    /// Pre-encoded Opus frames sent in turn instead of encoding a tone (the bench).
    pub canned: Option<Arc<[Vec<u8>]>>,
}

impl BrowserMedia {
    pub async fn offer() -> (BrowserMedia, String) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
        let addr = socket.local_addr().expect("addr");
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        api.add_media(MediaKind::Video, Direction::Inactive, None, None, None);
        let (offer, pending) = api.apply().expect("offer");
        (
            BrowserMedia {
                rtc,
                pending: Some(pending),
                mid,
                socket,
                heard: Arc::new(Mutex::new(Heard::default())),
                decode: true,
                canned: None,
            },
            offer.to_sdp_string(),
        )
    }

    /// Applies the answer and runs the PeerConnection until `stop` is set, playing a tone
    /// of `freq` Hz (0 for silence-free idle: no audio sent).
    pub fn start(
        mut self,
        answer: &str,
        freq: f64,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let answer = SdpAnswer::from_sdp_string(answer).expect("answer parses");
        let pending = self.pending.take().expect("offer pending");
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
        tokio::spawn(async move { self.run(freq, stop).await })
    }

    async fn run(mut self, freq: f64, stop: Arc<std::sync::atomic::AtomicBool>) {
        let local = self.socket.local_addr().expect("addr");
        let mut enc = OpusEncoder::new(&OpusConfig::voip(Channels::Mono)).expect("encoder");
        let mut dec = OpusDecoder::new(Channels::Mono).expect("decoder");
        let mut pt = None;
        let mut phase = 0.0f64;
        let mut frames: u64 = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut buf = vec![0u8; 2048];
        let mut pcm_out = Vec::new();
        loop {
            // Drain str0m to its next timeout.
            let timeout = loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Ok(Output::Event(Event::Connected)) => {
                        pt = self.rtc.writer(self.mid).and_then(|w| {
                            w.payload_params()
                                .find(|p| p.spec().codec == str0m::format::Codec::Opus)
                                .map(|p| p.pt())
                        });
                        self.heard.lock().expect("lock").connected = true;
                    }
                    Ok(Output::Event(Event::MediaData(d))) => {
                        let mut h = self.heard.lock().expect("lock");
                        h.packets += 1;
                        if self.decode {
                            pcm_out.clear();
                            if dec.decode(Some(&d.data), &mut pcm_out).is_ok() {
                                h.pcm.extend_from_slice(&pcm_out);
                            }
                        }
                    }
                    Ok(Output::Event(_)) => {}
                    Err(_) => return,
                }
            };
            if stop.load(Ordering::Relaxed) {
                self.rtc.disconnect();
                return;
            }
            let wait = timeout
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { return };
                    let Some(data) = buf.get(..n) else { continue };
                    if let Ok(rx) = Receive::new(Protocol::Udp, from, local, data) {
                        let _ = self.rtc.handle_input(Input::Receive(Instant::now(), rx));
                    }
                }
                _ = tick.tick() => {
                    if let (Some(pt), true) = (pt, freq > 0.0 || self.canned.is_some()) {
                        let mut payload = Vec::new();
                        let encoded = match &self.canned {
                            Some(c) if !c.is_empty() => {
                                payload.extend_from_slice(&c[(frames % c.len() as u64) as usize]);
                                true
                            }
                            _ => {
                                let mut pcm = vec![0i16; 960];
                                for s in &mut pcm {
                                    *s = (phase.sin() * 10_000.0) as i16;
                                    phase += 2.0 * std::f64::consts::PI * freq / 48_000.0;
                                }
                                enc.encode(&pcm, &mut payload).is_ok()
                            }
                        };
                        if encoded
                            && let Some(w) = self.rtc.writer(self.mid)
                        {
                            let time = MediaTime::new(frames * 960, Frequency::FORTY_EIGHT_KHZ);
                            frames += 1;
                            if w.write(pt, Instant::now(), time, payload).is_ok() {
                                self.heard.lock().expect("lock").sent += 1;
                            }
                        }
                    } else {
                        let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
        }
    }
}

/// A browser joined end to end: signaling (JOIN … SUBSCRIBE_ACK) and media running.
pub struct Joined {
    pub signal: SignalClient,
    pub heard: Arc<Mutex<Heard>>,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    pub task: tokio::task::JoinHandle<()>,
    /// Frames received up to SUBSCRIBE_ACK, in order.
    pub early: Vec<SdkSignalFrame>,
}

/// A browser that sends the canned Opus frames in turn and only counts what it receives.
pub async fn join_browser_canned(
    http: SocketAddr,
    meeting_id: &str,
    token: &str,
    canned: Arc<[Vec<u8>]>,
) -> Joined {
    join_browser_with(http, meeting_id, token, 0.0, false, Some(canned)).await
}

pub async fn join_browser(
    http: SocketAddr,
    meeting_id: &str,
    token: &str,
    freq: f64,
    decode: bool,
) -> Joined {
    join_browser_with(http, meeting_id, token, freq, decode, None).await
}

async fn join_browser_with(
    http: SocketAddr,
    meeting_id: &str,
    token: &str,
    freq: f64,
    decode: bool,
    canned: Option<Arc<[Vec<u8>]>>,
) -> Joined {
    let mut signal = SignalClient::connect(http, meeting_id, token)
        .await
        .expect("upgrade");
    signal.join().await;
    let (index, mut early) = signal
        .until(FrameType::Index, Duration::from_secs(10))
        .await;
    let index = index.expect("INDEX after JOIN");
    early.push(index);
    let (mut media, offer) = BrowserMedia::offer().await;
    media.decode = decode;
    media.canned = canned;
    let heard = media.heard.clone();
    signal.subscribe(offer).await;
    let (ack, skipped) = signal
        .until(FrameType::SubscribeAck, Duration::from_secs(10))
        .await;
    early.extend(skipped);
    let ack = ack.expect("SUBSCRIBE_ACK");
    let answer = ack
        .suback
        .as_ref()
        .and_then(|s| s.sdp_answer.clone())
        .expect("SDP answer");
    early.push(ack);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let task = media.start(&answer, freq, stop.clone());
    Joined {
        signal,
        heard,
        stop,
        task,
        early,
    }
}
