//! Browser attendees end to end over loopback: the Chime SDK's signaling WebSocket and a
//! real WebRTC client (str0m: ICE, DTLS, SRTP) against the server's signaling route and
//! shared WebRTC port. Two browsers in one meeting hear each other's tone; the roster,
//! mute, levels and the statuses that end a session (411, 410, 301) reach them.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chime_signal::{FrameType, SdkSignalFrame};
use common::{Refused, SignalClient, TestServer, goertzel, join_browser};

const WAIT: Duration = Duration::from_secs(10);

/// Roster as the client would build it from `AUDIO_STREAM_ID_INFO` frames:
/// stream → (attendee id, external user id, muted); entries with only a stream id remove.
fn apply_roster(roster: &mut HashMap<u32, (String, String, bool)>, frames: &[SdkSignalFrame]) {
    for f in frames {
        let Some(info) = &f.audio_stream_id_info else {
            continue;
        };
        for s in &info.streams {
            let Some(id) = s.audio_stream_id else {
                continue;
            };
            match (&s.attendee_id, s.muted) {
                (Some(a), _) => {
                    roster.insert(
                        id,
                        (
                            a.clone(),
                            s.external_user_id.clone().unwrap_or_default(),
                            s.muted.unwrap_or(false),
                        ),
                    );
                }
                (None, Some(m)) => {
                    if let Some(e) = roster.get_mut(&id) {
                        e.2 = m;
                    }
                }
                (None, None) => {
                    roster.remove(&id);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_echoes_the_session_subprotocol_and_refuses_bad_tokens() {
    let srv = TestServer::start().await;
    let meeting = srv.create_meeting().await;
    let other = srv.create_meeting().await;
    let (_, token) = srv.add_attendee(&meeting, "alice").await;
    let (_, other_token) = srv.add_attendee(&other, "bob").await;

    let c = SignalClient::connect(srv.http, &meeting, &token)
        .await
        .expect("a valid token upgrades");
    assert_eq!(
        c.protocol.as_deref(),
        Some("_aws_wt_session"),
        "only _aws_wt_session is echoed, never the token"
    );
    c.close().await;

    // The last character changed (to another one: 'A' when it was not, else 'B').
    let last = if token.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &token[..42]);
    for bad in [forged.as_str(), "short", other_token.as_str()] {
        match SignalClient::connect(srv.http, &meeting, bad).await {
            Err(Refused::Http(403)) => {}
            Err(e) => panic!("expected 403, got {e:?}"),
            Ok(_) => panic!("a bad token was accepted"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_meeting_closes_with_4410() {
    let srv = TestServer::start().await;
    let meeting = srv.create_meeting().await;
    let (_, token) = srv.add_attendee(&meeting, "alice").await;
    srv.repo.delete_meeting(&meeting).await.expect("delete");
    let mut c = SignalClient::connect(srv.http, &meeting, &token)
        .await
        .expect("the upgrade succeeds so the close code reaches the client");
    assert_eq!(c.protocol.as_deref(), Some("_aws_wt_session"));
    match c.next(WAIT).await {
        Some(Err(Some(code))) => assert_eq!(code, 4410),
        other => panic!("expected close 4410, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_hear_each_other_and_see_roster_mute_levels_and_statuses() {
    let srv = TestServer::start().await;
    let meeting = srv.create_meeting().await;
    let (alice_id, alice_token) = srv.add_attendee(&meeting, "alice").await;
    let (bob_id, bob_token) = srv.add_attendee(&meeting, "bob").await;

    let mut a = join_browser(srv.http, &meeting, &alice_token, 440.0, true).await;
    let mut b = join_browser(srv.http, &meeting, &bob_token, 1000.0, true).await;
    let ack = a
        .early
        .iter()
        .find(|f| f.frame_type() == Some(FrameType::SubscribeAck));
    let answer = ack
        .and_then(|f| f.suback.as_ref())
        .and_then(|s| s.sdp_answer.clone())
        .expect("answer");
    for line in [
        "a=ice-lite",
        "a=setup:passive",
        "a=group:BUNDLE",
        "a=rtcp-mux",
        "a=fmtp:",
        "typ host",
    ] {
        assert!(answer.contains(line), "answer lacks {line}");
    }

    // Media: let both connect and talk for a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for x in [&a, &b] {
        let mut h = x.heard.lock().expect("lock");
        assert!(h.connected, "ICE and DTLS came up");
        h.pcm.clear();
        h.packets = 0;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    {
        let ha = a.heard.lock().expect("lock");
        let hb = b.heard.lock().expect("lock");
        // The mix flows (its 50/s pacing is asserted on virtual time in the engine tests;
        // a loaded machine may delay here, so only a floor).
        assert!(
            ha.packets >= 25 && hb.packets >= 25,
            "{} / {}",
            ha.packets,
            hb.packets
        );
        let (a440, a1k) = (
            goertzel(&ha.pcm, 48e3, 440.0),
            goertzel(&ha.pcm, 48e3, 1000.0),
        );
        let (b440, b1k) = (
            goertzel(&hb.pcm, 48e3, 440.0),
            goertzel(&hb.pcm, 48e3, 1000.0),
        );
        assert!(
            a1k > 100.0 * a440,
            "alice hears bob's 1 kHz, not herself: {a1k} vs {a440}"
        );
        assert!(
            b440 > 100.0 * b1k,
            "bob hears alice's 440 Hz, not himself: {b440} vs {b1k}"
        );
    }

    // Roster: each sees both attendees with their ExternalUserIds; levels arrive.
    let mut frames_b = b.early.clone();
    let (meta, skipped) = b.signal.until(FrameType::AudioMetadata, WAIT).await;
    frames_b.extend(skipped);
    let meta = meta.expect("AUDIO_METADATA while talking");
    let volumes = &meta
        .audio_metadata
        .as_ref()
        .expect("metadata")
        .attendee_states;
    assert!(
        volumes.iter().any(|v| v.volume.is_some_and(|db| db < 42)),
        "a talker is above the SDK's silence threshold: {volumes:?}"
    );
    let mut roster_b = HashMap::new();
    apply_roster(&mut roster_b, &frames_b);
    let mut names: Vec<_> = roster_b.values().map(|e| e.1.clone()).collect();
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
    assert!(roster_b.values().any(|e| e.0 == alice_id));

    // Mute from alice reaches bob, and her tone leaves bob's mix.
    a.signal.mute(true).await;
    let mut muted_seen = false;
    for _ in 0..50 {
        match b.signal.next(WAIT).await {
            Some(Ok(f)) => {
                apply_roster(&mut roster_b, std::slice::from_ref(&f));
                if roster_b.values().any(|e| e.0 == alice_id && e.2) {
                    muted_seen = true;
                    break;
                }
            }
            other => panic!("signaling ended: {other:?}"),
        }
    }
    assert!(muted_seen, "bob saw alice muted");
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.heard.lock().expect("lock").pcm.clear();
    tokio::time::sleep(Duration::from_secs(1)).await;
    {
        let hb = b.heard.lock().expect("lock");
        let loud = goertzel(&hb.pcm, 48e3, 440.0);
        assert!(loud < 1000.0, "alice is muted in bob's mix: {loud}");
    }

    // Reconnect from another device: the old session gets 301.
    let mut b2 = join_browser(srv.http, &meeting, &bob_token, 1000.0, true).await;
    let mut status = None;
    for _ in 0..200 {
        match b.signal.next(WAIT).await {
            Some(Ok(f)) => {
                if let Some(s) = f.audio_status.and_then(|s| s.audio_status) {
                    status = Some(s);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    assert_eq!(
        status,
        Some(301),
        "the older session ends as joined from another device"
    );
    b.stop.store(true, Ordering::Relaxed);
    let _ = b.task.await;

    // DeleteAttendee: alice's session ends with 411; bob (new device) sees her leave.
    srv.server.controller.delete_attendee(&alice_id).await;
    assert_eq!(session_end(&mut a.signal).await.0, Some(411));
    a.stop.store(true, Ordering::Relaxed);
    let _ = a.task.await;
    let mut roster_b2 = HashMap::new();
    apply_roster(&mut roster_b2, &b2.early);
    let mut left = false;
    for _ in 0..200 {
        match b2.signal.next(WAIT).await {
            Some(Ok(f)) => {
                apply_roster(&mut roster_b2, std::slice::from_ref(&f));
                if !roster_b2.values().any(|e| e.0 == alice_id) {
                    left = true;
                    break;
                }
            }
            other => panic!("signaling ended: {other:?}"),
        }
    }
    assert!(left, "alice left bob's roster");
    assert!(roster_b2.values().any(|e| e.0 == bob_id));

    // DeleteMeeting: 410.
    srv.server.controller.delete_meeting(&meeting).await;
    assert_eq!(session_end(&mut b2.signal).await, (Some(410), Some(4410)));
    b2.stop.store(true, Ordering::Relaxed);
    let _ = b2.task.await;
    // Everything is released.
    for _ in 0..50 {
        if srv.server.meetings.is_empty() && srv.webrtc.routed_legs() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(srv.server.meetings.is_empty(), "the meeting's task is gone");
    assert_eq!(srv.webrtc.routed_legs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_need_a_token_and_answer_cors() {
    let srv = TestServer::start().await;
    let meeting = srv.create_meeting().await;
    let (_, token) = srv.add_attendee(&meeting, "alice").await;
    let post = |auth: Option<String>, body: String| {
        let http = srv.http;
        async move {
            let mut s = tokio::net::TcpStream::connect(http).await.expect("tcp");
            let auth = auth
                .map(|a| format!("Authorization: Bearer {a}\r\n"))
                .unwrap_or_default();
            let req = format!(
                "POST /client-events HTTP/1.1\r\nHost: x\r\nOrigin: http://app.example\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            s.write_all(req.as_bytes()).await.expect("write");
            let mut resp = String::new();
            let _ = s.read_to_string(&mut resp).await;
            resp
        }
    };
    let ok = post(
        Some(token.clone()),
        r#"{"Events":[{"Name":"meetingStartRequested"}]}"#.into(),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.ends_with("{}"), "{ok}");
    assert!(
        ok.to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{ok}"
    );
    assert!(
        ok.to_ascii_lowercase()
            .contains("cross-origin-resource-policy: cross-origin"),
        "{ok}"
    );
    // The SDK's sendBeacon form: no header, the token in the body.
    let beacon = post(
        None,
        format!(
            r#"{{"metadata":{{}},"events":[{{"name":"meetingEnded"}}],"authorization":"{token}"}}"#
        ),
    )
    .await;
    assert!(beacon.starts_with("HTTP/1.1 200"), "{beacon}");
    let wrong = post(
        None,
        r#"{"events":[],"authorization":"not-a-token"}"#.into(),
    )
    .await;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let none = post(None, "{}".into()).await;
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    let junk = post(Some(token.clone()), "not json".into()).await;
    assert!(junk.starts_with("HTTP/1.1 400"), "{junk}");
    let big = post(Some(token), format!("[\"{}\"]", "x".repeat(300 * 1024))).await;
    assert!(
        big.starts_with("HTTP/1.1 413"),
        "{}",
        &big[..big.len().min(200)]
    );
}

/// The audio status and close code that end a browser's session.
async fn session_end(c: &mut SignalClient) -> (Option<u32>, Option<u16>) {
    let (mut status, mut code) = (None, None);
    for _ in 0..200 {
        match c.next(WAIT).await {
            Some(Ok(f)) => {
                if let Some(s) = f.audio_status.and_then(|s| s.audio_status) {
                    status = Some(s);
                }
            }
            Some(Err(c)) => {
                code = c;
                break;
            }
            None => break,
        }
    }
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_missed_by_this_node_end_calls_when_reconciled_with_the_store() {
    // Another node (or a lost event) deleted the attendee and then the meeting in the
    // shared store: this node's calls end when it reconciles.
    let srv = TestServer::start().await;
    let meeting = srv.create_meeting().await;
    let (alice_id, alice_token) = srv.add_attendee(&meeting, "alice").await;
    let (_, bob_token) = srv.add_attendee(&meeting, "bob").await;
    let mut a = join_browser(srv.http, &meeting, &alice_token, 440.0, true).await;
    let mut b = join_browser(srv.http, &meeting, &bob_token, 1000.0, true).await;
    let controller = &srv.server.controller;
    assert_eq!(controller.members().await.len(), 2);

    // Nothing is gone: reconciling changes nothing.
    voice_connector::sweeps::reconcile(srv.repo.as_ref(), controller).await;
    assert_eq!(controller.members().await.len(), 2);

    assert!(
        srv.repo
            .delete_attendee(&meeting, &alice_id)
            .await
            .expect("delete")
    );
    voice_connector::sweeps::reconcile(srv.repo.as_ref(), controller).await;
    assert_eq!(session_end(&mut a.signal).await.0, Some(411));
    a.stop.store(true, Ordering::Relaxed);
    let _ = a.task.await;

    assert!(srv.repo.delete_meeting(&meeting).await.expect("delete"));
    voice_connector::sweeps::reconcile(srv.repo.as_ref(), controller).await;
    assert_eq!(session_end(&mut b.signal).await, (Some(410), Some(4410)));
    b.stop.store(true, Ordering::Relaxed);
    let _ = b.task.await;
    for _ in 0..50 {
        if controller.members().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(controller.members().await.is_empty());
}
