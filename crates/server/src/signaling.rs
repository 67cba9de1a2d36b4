//! Browser attendees' signaling: the Amazon Chime SDK's WebSocket (`GET /control/<MeetingId>`,
//! the meeting's `MediaPlacement.SignalingUrl`) and its event ingestion endpoint
//! (`POST /client-events`, `MediaPlacement.EventIngestionUrl`), on the API's HTTP listener.
//!
//! The protocol itself is `chime_signal::Session` (sans-IO); this module is its driver:
//! the upgrade (the client offers the subprotocols `_aws_wt_session` and its JoinToken; we
//! select `_aws_wt_session`, RFC 6455 §4.2.2, and never echo the token), frames in and out,
//! timers, and the link to the media side (`crate::browser::Browsers`): presence, levels, mute,
//! the WebRTC leg for the SDP offer, and the statuses that end a session.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chime_signal::{CloseReason, Output, Session, SessionConfig};
use futures_util::{SinkExt, StreamExt};
use store::Repository;

use crate::browser::Browsers;
use crate::meeting::SessionMsg;

/// Largest signaling message accepted from a client.
const MAX_WS_MESSAGE: usize = chime_signal::DEFAULT_MAX_FRAME_LEN;
/// Largest client-event batch accepted.
pub const MAX_EVENTS_BODY: usize = 256 * 1024;
/// A WebSocket Close frame (RFC 6455 §5.5.1) with `code` and a reason for people.
fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// How long a closing session waits for the client's Close frame.
const CLOSE_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(2);

/// WebSocket close code for a server-side failure (the SDK reads 4500–4599 as a server
/// error and may reconnect).
const CLOSE_SERVER_ERROR: u16 = 4500;

/// What the signaling routes need.
pub struct SignalingState {
    pub repo: Arc<dyn Repository>,
    pub browsers: Browsers,
    pub metrics: Arc<api::metrics::Metrics>,
    /// Bounds the store lookups of requests not yet authenticated (token, meeting).
    pub lookups: crate::http::LookupGate,
}

/// `GET /control/{meeting_id}` and `POST /client-events` (with CORS preflight). Serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn routes(state: Arc<SignalingState>) -> Router {
    Router::new()
        .route("/control/{meeting_id}", get(control))
        .route("/client-events", post(client_events).options(preflight))
        .with_state(state)
}

/// Why a browser's join is refused or cut short.
#[derive(Debug, thiserror::Error)]
enum JoinRefusal {
    #[error("the client did not offer the _aws_wt_session subprotocol")]
    NoSessionProtocol,
    #[error("no valid join token for this meeting")]
    BadToken,
    #[error("the attendee's Content capability does not allow sending content")]
    NoContent,
    #[error("store unavailable")]
    Store(#[from] store::StoreError),
}

impl JoinRefusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::NoSessionProtocol => StatusCode::BAD_REQUEST,
            Self::BadToken | Self::NoContent => StatusCode::FORBIDDEN,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The subprotocols the client offered (`Sec-WebSocket-Protocol`, RFC 6455 §11.3.4: a
/// comma-separated list, possibly over several header lines).
fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The suffix of a content share's join token and attendee id (the SDK's
/// `ContentShareConstants.Modality`).
pub const CONTENT_MODALITY: &str = "#content";

/// The attendee whose join token the client offered, if it belongs to `meeting_id`.
/// Looked up by hash, then compared in constant time; the token is never logged.
///
/// A token with the `#content` suffix is an attendee's content share (the SDK's second
/// session, `startContentShare`): it is answered as the attendee `<AttendeeId>#content`
/// with the attendee's ExternalUserId, as Amazon Chime lists it, unless the attendee's
/// Content capability forbids sending.
async fn attendee_for(
    repo: &Arc<dyn Repository>,
    meeting_id: &str,
    protocols: &[String],
) -> Result<domain::meeting::AttendeeRecord, JoinRefusal> {
    if !protocols.iter().any(|p| p == chime_signal::SUBPROTOCOL) {
        return Err(JoinRefusal::NoSessionProtocol);
    }
    let (token, content) = offered_token(protocols).ok_or(JoinRefusal::BadToken)?;
    let mut attendee = attendee_by_token(repo, meeting_id, token).await?;
    if content {
        if !attendee.capabilities.content.sends() {
            return Err(JoinRefusal::NoContent);
        }
        attendee.attendee_id.push_str(CONTENT_MODALITY);
    }
    Ok(attendee)
}

/// The join token among the offered subprotocols, and whether it is a content share's
/// (`<JoinToken>#content`, the suffix taken off).
fn offered_token(protocols: &[String]) -> Option<(&str, bool)> {
    protocols.iter().find_map(|p| {
        let (token, content) = match p.strip_suffix(CONTENT_MODALITY) {
            Some(t) => (t, true),
            None => (p.as_str(), false),
        };
        domain::token::well_formed(token).then_some((token, content))
    })
}

async fn attendee_by_token(
    repo: &Arc<dyn Repository>,
    meeting_id: &str,
    token: &str,
) -> Result<domain::meeting::AttendeeRecord, JoinRefusal> {
    let hash = domain::token::token_hash(token);
    let attendee = repo
        .find_attendee_by_token_hash(&hash)
        .await?
        .ok_or(JoinRefusal::BadToken)?;
    if !domain::token::hashes_equal(&attendee.token_hash, &hash)
        || attendee.meeting_id != meeting_id
    {
        return Err(JoinRefusal::BadToken);
    }
    Ok(attendee)
}

async fn control(
    State(st): State<Arc<SignalingState>>,
    Path(meeting_id): Path<String>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let protocols = offered_protocols(&headers);
    let ws = ws
        .protocols([chime_signal::SUBPROTOCOL])
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE);
    // Nothing here is authenticated yet: its store lookups take a bounded share of the pool.
    let gate = match st.lookups.enter().await {
        Ok(g) => g,
        Err(busy) => return busy,
    };
    let meeting = match st.repo.get_meeting(&meeting_id).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(meeting = %meeting_id, error = %e, "signaling: store unavailable");
            return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response();
        }
    };
    let live = meeting.is_some_and(|m| !m.expired(domain::timestamp::now_millis(), None));
    if !live {
        if !protocols.iter().any(|p| p == chime_signal::SUBPROTOCOL) {
            return (StatusCode::BAD_REQUEST, "not a Chime signaling client\n").into_response();
        }
        // The client reads close code 4410 as "meeting ended", before or after JOIN.
        return ws.on_upgrade(|mut socket| async move {
            let _ = socket
                .send(close_frame(
                    chime_signal::CLOSE_MEETING_ENDED,
                    "meeting ended",
                ))
                .await;
        });
    }
    let attendee = attendee_for(&st.repo, &meeting_id, &protocols).await;
    drop(gate);
    let attendee = match attendee {
        Ok(a) => a,
        Err(e) => {
            st.metrics.counter_add("vc_signaling_refused_total", "", 1);
            tracing::info!(meeting = %meeting_id, peer = %remote, reason = %e, "signaling upgrade refused");
            return (e.status(), format!("{e}\n")).into_response();
        }
    };
    ws.on_upgrade(move |socket| run_session(socket, st, meeting_id, attendee, remote.ip()))
}

/// Drives one signaling session until it ends; then the attendee's media goes.
async fn run_session(
    socket: WebSocket,
    st: Arc<SignalingState>,
    meeting_id: String,
    attendee: domain::meeting::AttendeeRecord,
    browser_ip: IpAddr,
) {
    let now = Instant::now();
    let unix_ms = u64::try_from(domain::timestamp::now_millis()).unwrap_or(0);
    let config = SessionConfig {
        turn: st.browsers.turn.clone(),
        ..SessionConfig::default()
    };
    let mut session = Session::new(now, unix_ms, config);
    session.set_identity(&attendee.attendee_id, &attendee.external_user_id);
    let mut bs = match st
        .browsers
        .open(
            &meeting_id,
            &attendee.attendee_id,
            &attendee.external_user_id,
            // A content share's audio follows the attendee's Content capability.
            if attendee.attendee_id.ends_with(CONTENT_MODALITY) {
                attendee.capabilities.content
            } else {
                attendee.capabilities.audio
            },
        )
        .await
    {
        Ok(bs) => bs,
        Err(e) => {
            tracing::warn!(meeting = %meeting_id, error = %e, "browser session not opened");
            let (mut sink, _) = socket.split();
            let _ = sink
                .send(close_frame(CLOSE_SERVER_ERROR, "media unavailable"))
                .await;
            return;
        }
    };
    for info in bs.roster.drain(..) {
        if let Err(e) = session.attendee_joined(now, info) {
            tracing::warn!(meeting = %meeting_id, error = %e, "roster entry not announced");
        }
    }
    tracing::info!(meeting = %meeting_id, attendee = %attendee.attendee_id, leg = %bs.leg, stream = bs.stream, "browser signaling session open");
    let (mut sink, mut stream) = socket.split();
    // Whether the client said LEAVE (else a closed socket is a dropped connection).
    let mut left = false;
    // Whether we sent a Close frame: then the client's Close is awaited before the TCP
    // connection goes (RFC 6455 §7.1.1), or frames it sent meanwhile (its LEAVE after an
    // AUDIO_STATUS) would make our kernel reset the connection, and the client would see
    // 1006 instead of our close code.
    let mut close_sent = false;
    'session: loop {
        while let Some(out) = session.poll_output() {
            match out {
                Output::Send(bytes) => {
                    if sink.send(Message::Binary(bytes.into())).await.is_err() {
                        break 'session;
                    }
                }
                Output::Joined {
                    protocol_version, ..
                } => {
                    tracing::debug!(meeting = %meeting_id, protocol_version, "browser JOIN");
                }
                Output::Subscribe {
                    sdp_offer,
                    audio_muted,
                    video,
                } => {
                    let muted = audio_muted.unwrap_or(false);
                    match st
                        .browsers
                        .subscribe(&mut bs, sdp_offer, muted, video, Some(browser_ip))
                        .await
                    {
                        Ok((answer, video)) => {
                            if let Err(e) =
                                session.answer_subscribe_video(Instant::now(), answer, &video)
                            {
                                tracing::warn!(meeting = %meeting_id, error = %e, "SDP answer not sent");
                            }
                            if muted {
                                st.browsers.mute(&bs, true);
                            }
                        }
                        Err(e) => {
                            tracing::info!(meeting = %meeting_id, error = %e, "browser SDP offer not answered; closing");
                            close_sent = sink
                                .send(close_frame(CLOSE_SERVER_ERROR, "media unavailable"))
                                .await
                                .is_ok();
                            break 'session;
                        }
                    }
                }
                Output::MuteChanged { muted } => st.browsers.mute(&bs, muted),
                Output::DataMessage(m) => st.browsers.relay_data(&bs, m),
                Output::DataRefused { topic, reason } => {
                    st.metrics
                        .counter_add("vc_data_messages_refused_total", "", 1);
                    tracing::info!(meeting = %meeting_id, attendee = %attendee.attendee_id, %topic, %reason, "data message refused");
                }
                Output::Leave => left = true,
                Output::Close { reason } => {
                    if let CloseReason::ProtocolError | CloseReason::Idle = reason {
                        tracing::info!(meeting = %meeting_id, ?reason, "closing browser signaling session");
                    }
                    close_sent = sink
                        .send(close_frame(reason.close_code(), ""))
                        .await
                        .is_ok();
                    break 'session;
                }
            }
        }
        let deadline = session
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600));
        tokio::select! {
            msg = stream.next() => {
                let now = Instant::now();
                match msg {
                    Some(Ok(Message::Binary(b))) => {
                        if let Err(e) = session.handle_frame(now, &b) {
                            tracing::info!(meeting = %meeting_id, error = %e, len = b.len(), "signaling frame refused");
                        }
                    }
                    Some(Ok(Message::Text(_))) => {
                        tracing::debug!(meeting = %meeting_id, "text message on the signaling socket; closing");
                        close_sent = sink.send(close_frame(CloseReason::ProtocolError.close_code(), "binary frames only")).await.is_ok();
                        break 'session;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break 'session,
                }
            }
            m = bs.rx.recv() => {
                let now = Instant::now();
                let Some(m) = m else { break 'session };
                let r = match m {
                    SessionMsg::Joined(info) => session.attendee_joined(now, info),
                    SessionMsg::Left { stream, dropped } => {
                        session.attendee_left(now, stream, dropped)
                    }
                    SessionMsg::Muted { stream, muted } => {
                        session.attendee_muted(now, stream, muted)
                    }
                    SessionMsg::Levels(v) => {
                        session.audio_metadata(now, &v);
                        Ok(())
                    }
                    SessionMsg::End(status) => {
                        tracing::info!(meeting = %meeting_id, attendee = %attendee.attendee_id, code = status.code(), "ending browser session");
                        session.audio_status(now, status);
                        Ok(())
                    }
                    SessionMsg::VideoIndex(sources) => {
                        session.video_index(now, &sources);
                        Ok(())
                    }
                    SessionMsg::MediaLost => {
                        close_sent = sink.send(close_frame(CLOSE_SERVER_ERROR, "media connection lost")).await.is_ok();
                        break 'session;
                    }
                };
                if let Err(e) = r {
                    tracing::debug!(meeting = %meeting_id, error = %e, "presence update not applied");
                }
            }
            Some(m) = bs.data_rx.recv() => {
                session.data_messages(Instant::now(), std::slice::from_ref(&*m));
            }
            _ = tokio::time::sleep_until(deadline.into()) => session.handle_timeout(Instant::now()),
        }
    }
    if close_sent {
        let drain = async {
            while let Some(Ok(m)) = stream.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, drain).await;
    }
    let _ = sink.close().await;
    st.browsers.close(bs, !left).await;
    tracing::info!(meeting = %meeting_id, attendee = %attendee.attendee_id, left, "browser signaling session closed");
}

/// CORS for pages on other origins, and `Cross-Origin-Resource-Policy: cross-origin` so a
/// page served with `Cross-Origin-Embedder-Policy: require-corp` (as the SDK's demos are)
/// may send beacons here.
fn cors(headers: &mut HeaderMap) {
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

/// CORS preflight for `POST /client-events` (the page usually comes from another origin).
async fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    cors(r.headers_mut());
    r
}

/// `POST /client-events`: the SDK's event batches. The token is the attendee's join token,
/// in `Authorization: Bearer <JoinToken>` or, for the SDK's `navigator.sendBeacon` form
/// (`?beacon=1`, which cannot set headers), in the body's `authorization` field. Accepted
/// (200 with `{}`: the SDK parses the body of every OK answer as JSON) when the token is an
/// attendee's and the body is JSON of at most [`MAX_EVENTS_BODY`] bytes; counted, not stored.
async fn client_events(
    State(st): State<Arc<SignalingState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let status = async {
        let bytes = axum::body::to_bytes(body, MAX_EVENTS_BODY)
            .await
            .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?;
        let doc: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        let header_token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let body_token = doc
            .as_ref()
            .and_then(|d| d.get("authorization"))
            .and_then(|a| a.as_str());
        // A content share's session sends its own token, `<JoinToken>#content`.
        let token = header_token
            .or(body_token)
            .map(str::trim)
            .map(|t| t.strip_suffix(CONTENT_MODALITY).unwrap_or(t))
            .filter(|t| domain::token::well_formed(t))
            .ok_or(StatusCode::UNAUTHORIZED)?;
        let hash = domain::token::token_hash(token);
        let gate = st.lookups.enter().await.map_err(|busy| busy.status())?;
        let attendee = st
            .repo
            .find_attendee_by_token_hash(&hash)
            .await
            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
            .filter(|a| domain::token::hashes_equal(&a.token_hash, &hash))
            .ok_or(StatusCode::UNAUTHORIZED)?;
        drop(gate);
        let doc = doc.ok_or(StatusCode::BAD_REQUEST)?;
        let n = doc
            .get("Events")
            .or_else(|| doc.get("events"))
            .and_then(|e| e.as_array())
            .map_or(1, Vec::len);
        st.metrics
            .counter_add("vc_client_events_total", "", n as u64);
        if header_token.is_none() {
            // The sendBeacon form (a page's last events as it goes).
            st.metrics.counter_add("vc_client_event_beacons_total", "", 1);
        }
        tracing::debug!(meeting = %attendee.meeting_id, attendee = %attendee.attendee_id, events = n, "client events");
        Ok::<_, StatusCode>(StatusCode::OK)
    }
    .await
    .unwrap_or_else(|s| s);
    let mut r = if status == StatusCode::OK {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response()
    } else {
        status.into_response()
    };
    cors(r.headers_mut());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocols_are_split_and_trimmed() {
        let mut h = HeaderMap::new();
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("_aws_wt_session, abc"),
        );
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(" def "),
        );
        assert_eq!(offered_protocols(&h), ["_aws_wt_session", "abc", "def"]);
    }

    #[test]
    fn a_content_share_token_is_the_attendees_with_a_suffix() {
        let token = "a".repeat(domain::token::TOKEN_LEN);
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let plain = p(&["_aws_wt_session", &token]);
        assert_eq!(offered_token(&plain), Some((token.as_str(), false)));
        let content = p(&["_aws_wt_session", &format!("{token}#content")]);
        assert_eq!(offered_token(&content), Some((token.as_str(), true)));
        for bad in [
            format!("{token}#video"),
            format!("{token}#content#content"),
            "short#content".into(),
        ] {
            assert_eq!(offered_token(&p(&["_aws_wt_session", &bad])), None, "{bad}");
        }
    }
}
