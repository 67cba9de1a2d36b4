//! Two browsers (str0m clients, not ICE-lite, DTLS active) join one meeting on virtual
//! time: ICE, DTLS and SRTP run in memory; each sends an Opus tone and hears the other's
//! tone, not its own, in one continuous 50 packets/s stream.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use codec::Channels;
use codec::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use engine::{EngineConfig, EngineEvent, LegId, MeetingMedia};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

const SERVER: &str = "10.0.0.1:3478";

use codec::tone::goertzel_energy as goertzel;

/// A browser: a full (controlling) ICE agent that offers audio sendrecv and video
/// inactive, as the Chime SDK does, and plays a tone.
struct Browser {
    addr: SocketAddr,
    rtc: Rtc,
    mid: Mid,
    pt: Option<Pt>,
    leg: LegId,
    freq: f64,
    phase: f64,
    enc: OpusEncoder,
    dec: OpusDecoder,
    heard: Vec<i16>,
    packets: usize,
    connected: bool,
    next_timeout: Instant,
    sent_frames: u64,
    /// The browser's network is gone: nothing it sends arrives, nothing reaches it.
    offline: bool,
}

impl Browser {
    fn join(now: Instant, media: &mut MeetingMedia, addr: &str, freq: f64) -> (Browser, String) {
        let addr: SocketAddr = addr.parse().expect("addr");
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        api.add_media(MediaKind::Video, Direction::Inactive, None, None, None);
        let (offer, pending) = api.apply().expect("offer");
        let answer = media
            .add_webrtc_leg(
                now,
                &offer.to_sdp_string(),
                SERVER.parse().expect("addr"),
                false,
            )
            .expect("answer");
        rtc.sdp_api()
            .accept_answer(
                pending,
                SdpAnswer::from_sdp_string(&answer.sdp).expect("answer parses"),
            )
            .expect("answer accepted");
        let mut b = Browser {
            addr,
            rtc,
            mid,
            pt: None,
            leg: answer.leg,
            freq,
            phase: 0.0,
            enc: OpusEncoder::new(&OpusConfig::voip(Channels::Mono)).expect("encoder"),
            dec: OpusDecoder::new(Channels::Mono).expect("decoder"),
            heard: Vec::new(),
            packets: 0,
            connected: false,
            next_timeout: now,
            sent_frames: 0,
            offline: false,
        };
        let mut out = Vec::new();
        b.drain(&mut out);
        assert!(out.is_empty() || out.iter().all(|(d, _)| d.to_string() == SERVER));
        (b, answer.sdp)
    }

    /// Drains str0m; datagrams for the server go to `out`.
    fn drain(&mut self, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        loop {
            match self.rtc.poll_output().expect("client output") {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    break;
                }
                Output::Transmit(t) => out.push((t.destination, t.contents.to_vec())),
                Output::Event(Event::Connected) => {
                    self.connected = true;
                    self.pt = self.rtc.writer(self.mid).and_then(|w| {
                        w.payload_params()
                            .find(|p| p.spec().codec == str0m::format::Codec::Opus)
                            .map(|p| p.pt())
                    });
                }
                Output::Event(Event::MediaData(d)) => {
                    self.packets += 1;
                    self.dec
                        .decode(Some(&d.data), &mut self.heard)
                        .expect("decode");
                }
                Output::Event(_) => {}
            }
        }
    }

    fn receive(&mut self, now: Instant, data: &[u8], out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        let r = Receive::new(
            Protocol::Udp,
            SERVER.parse().expect("addr"),
            self.addr,
            data,
        )
        .expect("datagram");
        self.rtc
            .handle_input(Input::Receive(now, r))
            .expect("input");
        self.drain(out);
    }

    fn timeout(&mut self, now: Instant, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        self.rtc.handle_input(Input::Timeout(now)).expect("timeout");
        self.drain(out);
    }

    /// One 20 ms frame of the tone.
    fn speak(&mut self, now: Instant, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        let (true, Some(pt)) = (self.connected, self.pt) else {
            return;
        };
        let mut pcm = vec![0i16; 960];
        for s in &mut pcm {
            *s = (self.phase.sin() * 10_000.0) as i16;
            self.phase += 2.0 * std::f64::consts::PI * self.freq / 48_000.0;
        }
        let mut payload = Vec::new();
        self.enc.encode(&pcm, &mut payload).expect("encode");
        let time = MediaTime::new(self.sent_frames * 960, Frequency::FORTY_EIGHT_KHZ);
        self.sent_frames += 1;
        if let Some(w) = self.rtc.writer(self.mid) {
            w.write(pt, now, time, payload).expect("write");
        }
        self.drain(out);
    }
}

/// Runs the meeting and browsers on virtual time for `dur`, 1 ms steps.
fn run(now: &mut Instant, media: &mut MeetingMedia, browsers: &mut [Browser], dur: Duration) {
    let end = *now + dur;
    let mut next_frame = *now;
    let mut to_server: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
    while *now < end {
        let mut out = Vec::new();
        for b in browsers.iter_mut() {
            if b.next_timeout <= *now {
                b.timeout(*now, &mut out);
            }
            if *now >= next_frame {
                b.speak(*now, &mut out);
            }
            if b.offline {
                out.clear();
            }
            to_server.extend(out.drain(..).map(|(d, p)| (b.addr, d, p)));
        }
        if *now >= next_frame {
            next_frame += Duration::from_millis(20);
        }
        for (from, dest, data) in to_server.drain(..) {
            assert_eq!(
                dest.to_string(),
                SERVER,
                "the browser talks to our candidate"
            );
            let leg = browsers
                .iter()
                .find(|b| b.addr == from)
                .map(|b| b.leg)
                .expect("leg");
            media.handle_packet(*now, leg, from, &data);
        }
        if media.poll_timeout() <= *now {
            media.handle_timeout(*now);
        }
        while let Some(t) = media.poll_transmit() {
            let b = browsers
                .iter_mut()
                .find(|b| b.addr == t.dest)
                .expect("transmit to a browser");
            assert_eq!(b.leg, t.leg);
            if b.offline {
                continue;
            }
            let mut out = Vec::new();
            b.receive(*now, &t.bytes, &mut out);
            to_server.extend(out.into_iter().map(|(d, p)| (b.addr, d, p)));
        }
        for (from, _, data) in to_server.drain(..) {
            let leg = browsers
                .iter()
                .find(|b| b.addr == from)
                .map(|b| b.leg)
                .expect("leg");
            media.handle_packet(*now, leg, from, &data);
        }
        *now += Duration::from_millis(1);
    }
}

#[test]
fn two_browsers_hear_each_other_not_themselves() {
    let mut now = Instant::now();
    let mut media = MeetingMedia::new(
        now,
        Duration::from_secs(1_800_000_000),
        EngineConfig::default(),
        1,
    );
    let (a, answer) = Browser::join(now, &mut media, "10.0.0.2:50000", 440.0);
    let (b, answer_b) = Browser::join(now, &mut media, "10.0.0.3:50002", 1000.0);
    let fingerprint = |sdp: &str| {
        sdp.lines()
            .find(|l| l.starts_with("a=fingerprint:"))
            .map(str::to_string)
    };
    assert!(fingerprint(&answer).is_some());
    assert_eq!(
        fingerprint(&answer),
        fingerprint(&answer_b),
        "a meeting's legs share one DTLS certificate"
    );
    for line in [
        "a=ice-lite",
        "a=setup:passive",
        "a=group:BUNDLE",
        "a=rtcp-mux",
        "opus/48000/2",
        "a=fmtp:",
        "typ host",
    ] {
        assert!(answer.contains(line), "answer lacks {line}:\n{answer}");
    }
    let video = answer
        .split("m=video")
        .nth(1)
        .expect("the video section is answered");
    assert!(video.contains("a=inactive"), "video inactive:\n{answer}");
    let mut browsers = [a, b];
    run(&mut now, &mut media, &mut browsers, Duration::from_secs(3));
    let mut connected = Vec::new();
    while let Some(ev) = media.poll_event() {
        if let EngineEvent::WebRtcConnected { leg } = ev {
            connected.push(leg);
        }
    }
    assert_eq!(connected.len(), 2, "both PeerConnections came up");
    for b in &mut browsers {
        assert!(b.connected);
        b.heard.clear();
        b.packets = 0;
    }
    run(&mut now, &mut media, &mut browsers, Duration::from_secs(2));
    let [a, b] = &browsers;
    // 2 s of a continuous 50 packet/s stream.
    for x in [a, b] {
        assert!(
            (95..=105).contains(&x.packets),
            "{} packets in 2 s",
            x.packets
        );
    }
    let a440 = goertzel(&a.heard, 48_000.0, 440.0);
    let a1000 = goertzel(&a.heard, 48_000.0, 1000.0);
    let b440 = goertzel(&b.heard, 48_000.0, 440.0);
    let b1000 = goertzel(&b.heard, 48_000.0, 1000.0);
    assert!(
        a1000 > 100.0 * a440,
        "A hears B's 1 kHz, not its own 440 Hz: {a1000} vs {a440}"
    );
    assert!(
        b440 > 100.0 * b1000,
        "B hears A's 440 Hz, not its own 1 kHz: {b440} vs {b1000}"
    );
    let stats = media.leg_stats(a.leg).expect("stats");
    assert!(
        stats.packets_in >= 100 && stats.packets_out >= 100,
        "{stats:?}"
    );
}

#[test]
fn a_browser_alone_still_gets_a_continuous_stream_and_removal_closes_it() {
    let mut now = Instant::now();
    let mut media = MeetingMedia::new(
        now,
        Duration::from_secs(1_800_000_000),
        EngineConfig::default(),
        2,
    );
    let (a, _) = Browser::join(now, &mut media, "10.0.0.2:50000", 440.0);
    let mut browsers = [a];
    run(&mut now, &mut media, &mut browsers, Duration::from_secs(2));
    browsers[0].packets = 0;
    run(&mut now, &mut media, &mut browsers, Duration::from_secs(1));
    assert!(
        (48..=52).contains(&browsers[0].packets),
        "{}",
        browsers[0].packets
    );
    let leg = browsers[0].leg;
    assert!(media.remove_leg(leg).is_some());
    assert_eq!(media.leg_count(), 0);
}

#[test]
fn offers_that_cannot_be_answered_are_refused_by_blame() {
    let now = Instant::now();
    let mut media = MeetingMedia::new(
        now,
        Duration::from_secs(1_800_000_000),
        EngineConfig::default(),
        3,
    );
    let server: SocketAddr = SERVER.parse().expect("addr");
    let err = media
        .add_webrtc_leg(now, "this is not SDP", server, false)
        .expect_err("junk");
    assert!(matches!(
        err,
        engine::EngineError::WebRtc(engine::webrtc::WebRtcError::OfferSyntax(_))
    ));
    // A video-only offer has no audio to mix.
    let mut rtc = RtcConfig::new().build(now);
    rtc.add_local_candidate(
        Candidate::host("10.0.0.2:5000".parse().expect("a"), "udp").expect("c"),
    );
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::SendRecv, None, None, None);
    let (offer, _) = api.apply().expect("offer");
    let err = media
        .add_webrtc_leg(now, &offer.to_sdp_string(), server, false)
        .expect_err("video only");
    assert!(matches!(
        err,
        engine::EngineError::WebRtc(engine::webrtc::WebRtcError::OfferRefused(_))
    ));
    assert_eq!(media.leg_count(), 0);
}

#[test]
fn a_browser_whose_network_is_gone_is_reported_inactive() {
    let mut now = Instant::now();
    let mut media = MeetingMedia::new(
        now,
        Duration::from_secs(1_800_000_000),
        EngineConfig::default(),
        4,
    );
    let (a, _) = Browser::join(now, &mut media, "10.0.0.2:50000", 440.0);
    let (b, _) = Browser::join(now, &mut media, "10.0.0.3:50002", 1000.0);
    let mut browsers = [a, b];
    run(&mut now, &mut media, &mut browsers, Duration::from_secs(2));
    while media.poll_event().is_some() {}
    browsers[0].offline = true;
    run(&mut now, &mut media, &mut browsers, Duration::from_secs(35));
    let mut inactive = Vec::new();
    while let Some(ev) = media.poll_event() {
        if let EngineEvent::Inactive { leg } = ev {
            inactive.push(leg);
        }
    }
    assert_eq!(
        inactive,
        [browsers[0].leg],
        "only the silent browser is reported"
    );
    // The other browser still hears a continuous stream (of silence now).
    browsers[1].packets = 0;
    run(&mut now, &mut media, &mut browsers, Duration::from_secs(1));
    assert!(
        (48..=52).contains(&browsers[1].packets),
        "{}",
        browsers[1].packets
    );
}

impl Browser {
    /// Offers a change of this PeerConnection (`change` edits the transceivers) and applies
    /// the server's answer to it, as the Chime SDK does when a camera goes on or off.
    fn renegotiate(
        &mut self,
        now: Instant,
        media: &mut MeetingMedia,
        change: impl FnOnce(&mut str0m::change::SdpApi),
    ) -> String {
        let mut api = self.rtc.sdp_api();
        change(&mut api);
        let (offer, pending) = api.apply().expect("a change to offer");
        let answer = media
            .renegotiate_webrtc(now, self.leg, &offer.to_sdp_string())
            .expect("the later offer is answered");
        assert_eq!(answer.leg, self.leg, "the same leg answers");
        self.rtc
            .sdp_api()
            .accept_answer(
                pending,
                SdpAnswer::from_sdp_string(&answer.sdp).expect("answer parses"),
            )
            .expect("answer accepted");
        answer.sdp
    }
}

/// Runs `windows` windows of 100 ms and returns, per browser, the packets it received in
/// each window.
fn packets_per_window(
    now: &mut Instant,
    media: &mut MeetingMedia,
    browsers: &mut [Browser],
    windows: usize,
) -> Vec<Vec<usize>> {
    let mut counts = vec![Vec::new(); browsers.len()];
    for _ in 0..windows {
        let before: Vec<usize> = browsers.iter().map(|b| b.packets).collect();
        run(now, media, browsers, Duration::from_millis(100));
        for (i, b) in browsers.iter().enumerate() {
            counts[i].push(b.packets - before[i]);
        }
    }
    counts
}

fn sdp_line<'a>(sdp: &'a str, prefix: &str) -> Option<&'a str> {
    sdp.lines().find(|l| l.starts_with(prefix))
}

/// Each browser hears the other's tone, not its own, in what it received since `clear`.
fn assert_hear_each_other(a: &Browser, b: &Browser, when: &str) {
    let (a440, a1000) = (
        goertzel(&a.heard, 48_000.0, 440.0),
        goertzel(&a.heard, 48_000.0, 1000.0),
    );
    let (b440, b1000) = (
        goertzel(&b.heard, 48_000.0, 440.0),
        goertzel(&b.heard, 48_000.0, 1000.0),
    );
    assert!(a1000 > 100.0 * a440, "{when}: A hears B: {a1000} vs {a440}");
    assert!(b440 > 100.0 * b1000, "{when}: B hears A: {b440} vs {b1000}");
}

/// A meeting of two connected browsers (A 440 Hz, B 1 kHz), its events drained, and A's
/// first SDP answer.
fn two_connected_browsers(seed: u64) -> (Instant, MeetingMedia, [Browser; 2], String) {
    let mut now = Instant::now();
    let mut media = MeetingMedia::new(
        now,
        Duration::from_secs(1_800_000_000),
        EngineConfig::default(),
        seed,
    );
    let (a, first) = Browser::join(now, &mut media, "10.0.0.2:50000", 440.0);
    let (b, _) = Browser::join(now, &mut media, "10.0.0.3:50002", 1000.0);
    let mut browsers = [a, b];
    run(&mut now, &mut media, &mut browsers, Duration::from_secs(2));
    assert!(browsers.iter().all(|b| b.connected));
    while media.poll_event().is_some() {}
    (now, media, browsers, first)
}

/// Runs `windows` windows of 100 ms: neither browser's received audio pauses (at least 3
/// of the 5 packets of a window, the jitter buffer moving one), and each hears the
/// other's tone, not its own.
fn assert_audio_goes_on(
    now: &mut Instant,
    media: &mut MeetingMedia,
    browsers: &mut [Browser; 2],
    windows: usize,
    when: &str,
) {
    for b in browsers.iter_mut() {
        b.heard.clear();
    }
    let counts = packets_per_window(now, media, browsers, windows);
    for (who, c) in ["A", "B"].iter().zip(&counts) {
        assert!(
            c.iter().all(|&n| n >= 3),
            "{when}: {who}'s audio paused: {c:?}"
        );
    }
    assert_hear_each_other(&browsers[0], &browsers[1], when);
}

#[test]
fn a_camera_turned_on_and_off_renegotiates_without_pausing_audio() {
    let (mut now, mut media, mut browsers, first) = two_connected_browsers(5);

    // The camera goes on: the video transceiver (inactive) becomes sendrecv, and the SDK
    // adds another for a remote video; both in one later offer on the same PeerConnection.
    let video_mid = first
        .split("m=video")
        .nth(1)
        .and_then(|v| sdp_line(v, "a=mid:"))
        .map(|l| Mid::from(l.trim_start_matches("a=mid:").trim()))
        .expect("the video transceiver's mid");
    let on = browsers[0].renegotiate(now, &mut media, |api| {
        api.set_direction(video_mid, Direction::SendRecv);
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    });
    for prefix in ["a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:"] {
        assert_eq!(
            sdp_line(&on, prefix),
            sdp_line(&first, prefix),
            "the renegotiated answer keeps {prefix}\n{on}"
        );
    }
    assert_eq!(
        on.matches("m=video").count(),
        2,
        "both video sections answered:\n{on}"
    );
    assert_audio_goes_on(&mut now, &mut media, &mut browsers, 20, "camera on");

    // The camera goes off and on again: nothing changes for audio.
    for dir in [Direction::Inactive, Direction::SendRecv] {
        let answer = browsers[0].renegotiate(now, &mut media, |api| {
            api.set_direction(video_mid, dir);
        });
        assert_eq!(
            sdp_line(&answer, "a=ice-ufrag:"),
            sdp_line(&first, "a=ice-ufrag:")
        );
        let when = format!("camera {dir:?}");
        assert_audio_goes_on(&mut now, &mut media, &mut browsers, 10, &when);
    }
    let events: Vec<EngineEvent> = std::iter::from_fn(|| media.poll_event()).collect();
    assert!(
        !events.iter().any(|e| matches!(
            e,
            EngineEvent::Inactive { .. } | EngineEvent::WebRtcConnected { .. }
        )),
        "no leg went or came again: {events:?}"
    );
    assert_eq!(media.leg_count(), 2);
}

#[test]
fn an_ice_restart_gets_new_credentials_and_keeps_dtls_and_audio() {
    let (mut now, mut media, mut browsers, first) = two_connected_browsers(6);
    let restarted = browsers[0].renegotiate(now, &mut media, |api| {
        api.ice_restart(true);
    });
    let ufrag = sdp_line(&restarted, "a=ice-ufrag:").expect("ufrag");
    assert_ne!(
        Some(ufrag),
        sdp_line(&first, "a=ice-ufrag:"),
        "new ICE credentials"
    );
    assert_ne!(
        sdp_line(&restarted, "a=ice-pwd:"),
        sdp_line(&first, "a=ice-pwd:")
    );
    assert_eq!(
        sdp_line(&restarted, "a=fingerprint:"),
        sdp_line(&first, "a=fingerprint:"),
        "the same DTLS session"
    );
    // Long enough for checks on the new credentials to replace the old pair.
    assert_audio_goes_on(&mut now, &mut media, &mut browsers, 60, "ICE restart");
    let events: Vec<EngineEvent> = std::iter::from_fn(|| media.poll_event()).collect();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, EngineEvent::Inactive { .. })),
        "{events:?}"
    );
}

#[test]
fn a_later_offer_that_is_junk_or_for_a_gone_leg_is_refused() {
    let (mut now, mut media, mut browsers, _) = two_connected_browsers(7);
    let leg = browsers[0].leg;
    let err = media
        .renegotiate_webrtc(now, leg, "v=0 junk")
        .expect_err("junk");
    assert!(matches!(
        err,
        engine::EngineError::WebRtc(engine::webrtc::WebRtcError::OfferSyntax(_))
    ));
    // The junk changed nothing: audio still flows.
    assert_audio_goes_on(&mut now, &mut media, &mut browsers, 5, "junk refused");
    assert!(media.remove_leg(leg).is_some());
    assert!(matches!(
        media.renegotiate_webrtc(now, leg, "v=0"),
        Err(engine::EngineError::UnknownLeg(_))
    ));
}
