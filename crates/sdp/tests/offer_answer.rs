//! Offer/answer (RFC 3264) with SDES (RFC 4568) against offers shaped like real PBXs'.

use codec::{Channels, Codec};
use rtp::sdes::CryptoAttribute;
use rtp::srtp::SrtpSuite;
use sdp::{
    AnswerError, AnswerMismatch, CryptoRejectReason, Direction, Host, LocalTransport, MediaConfig,
    MediaSession, SessionDescription, TransportAddress,
};
use std::net::{IpAddr, Ipv4Addr};

const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const US: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn local() -> LocalTransport {
    LocalTransport {
        address: IpAddr::V4(US),
        rtp_port: 20000,
        rtcp_port: None,
    }
}

fn session(config: MediaConfig) -> MediaSession {
    MediaSession::new(config, local(), 4242)
}

/// A fresh `a=crypto` value with a real key of the right length for the suite.
fn crypto(tag: u32, suite: SrtpSuite) -> String {
    CryptoAttribute::generate(tag, suite).to_sdp_value()
}

/// The seed INVITE's SDP (pjsua 2.x) with the placeholders filled in: a real address and
/// real keys of the right length for each suite.
fn seed_offer() -> String {
    let ip = PEER;
    let mut s = format!(
        "v=0\r
o=- 3775321410 3775321410 IN IP4 {ip}\r
s=pjmedia\r
b=AS:117\r
t=0 0\r
a=X-nat:0\r
m=audio 4000 RTP/SAVP 0 3 8 9 125 101\r
c=IN IP4 {ip}\r
b=TIAS:96000\r
a=rtcp:4001 IN IP4 {ip}\r
a=sendrecv\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:3 GSM/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:9 G722/8000\r
a=rtpmap:125 opus/48000/2\r
a=fmtp:125 useinbandfec=1\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
"
    );
    for (i, suite) in SrtpSuite::ALL.into_iter().enumerate() {
        s.push_str(&format!("a=crypto:{}\r\n", crypto(i as u32 + 1, suite)));
    }
    s
}

fn parse(s: &str) -> SessionDescription {
    s.parse().unwrap()
}

fn offered_key(offer: &SessionDescription, tag: u32) -> CryptoAttribute {
    offer.media[0]
        .attributes_named("crypto")
        .map(|v| CryptoAttribute::parse(v).unwrap())
        .find(|a| a.tag == tag)
        .unwrap()
}

#[test]
fn seed_offer_gets_gcm_opus_and_telephone_event() {
    let offer = parse(&seed_offer());
    let mut s = session(MediaConfig::default());
    let answer = s.answer(&offer).unwrap();
    let a = &answer.audio;
    assert_eq!(a.codec, Codec::Opus(Channels::Mono));
    assert_eq!(a.payload_type, 125);
    assert_eq!(a.clock_rate, 48000);
    assert_eq!(a.channels, 2);
    assert!(a.opus.unwrap().remote_fec);
    let te = a.telephone_event.as_ref().unwrap();
    assert_eq!((te.payload_type, te.clock_rate), (101, 8000));
    assert_eq!(te.events.as_deref(), Some("0-16"));
    assert_eq!(
        a.remote_rtp,
        TransportAddress {
            host: Host::Ip(IpAddr::V4(PEER)),
            port: 4000
        }
    );
    assert_eq!(
        a.remote_rtcp.as_ref().unwrap().socket_addr(),
        Some((PEER, 4001).into())
    );
    assert!(!a.rtcp_mux);
    assert_eq!(a.direction, Direction::SendRecv);
    assert_eq!(a.ptime, 20);
    let keys = a.srtp.as_ref().unwrap();
    assert_eq!(keys.suite, SrtpSuite::AeadAes256Gcm);
    assert_eq!(keys.tag, 1);
    // The peer's key is the one it offered on tag 1; ours is fresh.
    assert_eq!(keys.remote, offered_key(&offer, 1).keys[0].material);
    assert_ne!(keys.local, keys.remote);

    // The answer SDP, line by line.
    let text = answer.sdp.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "v=0");
    assert_eq!(lines[1], "o=- 4242 4242 IN IP4 198.51.100.7");
    assert_eq!(lines[2], "s=-");
    assert_eq!(lines[3], "c=IN IP4 198.51.100.7");
    assert_eq!(lines[4], "t=0 0");
    assert_eq!(lines[5], "m=audio 20000 RTP/SAVP 125 101");
    let attrs = &lines[6..];
    assert_eq!(
        &attrs[..7],
        [
            "a=rtpmap:125 opus/48000/2",
            "a=fmtp:125 useinbandfec=1",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
            "a=rtcp:20001",
        ]
    );
    assert_eq!(attrs.len(), 8);
    let ours = CryptoAttribute::parse(attrs[7].strip_prefix("a=crypto:").unwrap()).unwrap();
    assert_eq!(ours.tag, 1);
    assert_eq!(ours.suite, SrtpSuite::AeadAes256Gcm);
    assert_eq!(ours.keys[0].material, keys.local);
    // The printed answer parses back to the same description.
    assert_eq!(parse(&text), answer.sdp);
}

#[test]
fn seed_offer_with_placeholder_host_yields_a_name_to_resolve() {
    let offer = parse(&seed_offer().replace(&PEER.to_string(), "pbx.example.com"));
    let a = session(MediaConfig::default())
        .answer(&offer)
        .unwrap()
        .audio;
    assert_eq!(a.remote_rtp.host, Host::Name("pbx.example.com".into()));
    assert_eq!(a.remote_rtp.socket_addr(), None);
    assert_eq!(a.remote_rtp.to_string(), "pbx.example.com:4000");
}

#[test]
fn pjsua2_offer_with_only_aes_cm_suites_takes_the_strongest() {
    let offer = format!(
        "v=0\r
o=- 3900000000 3900000000 IN IP4 {PEER}\r
s=pjmedia\r
c=IN IP4 {PEER}\r
t=0 0\r
m=audio 4002 RTP/SAVP 8 0 101\r
a=rtcp:4003 IN IP4 {PEER}\r
a=sendrecv\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=crypto:1 {}\r
a=crypto:2 {}\r
",
        crypto(1, SrtpSuite::AesCm128HmacSha1_80)
            .split_once(' ')
            .unwrap()
            .1,
        crypto(2, SrtpSuite::AesCm128HmacSha1_32)
            .split_once(' ')
            .unwrap()
            .1,
    );
    let offer = parse(&offer);
    let answer = session(MediaConfig::default()).answer(&offer).unwrap();
    let keys = answer.audio.srtp.as_ref().unwrap();
    assert_eq!(keys.suite, SrtpSuite::AesCm128HmacSha1_80);
    assert_eq!(keys.tag, 1);
    assert_eq!(keys.local.master_key().len(), 16);
    // Our preference (PCMU before PCMA) wins over the offer's order.
    assert_eq!(answer.audio.codec, Codec::Pcmu);
    assert_eq!(answer.audio.payload_type, 0);
    assert_eq!(answer.sdp.media[0].formats, ["0", "101"]);
    // With the suite order reversed by configuration, the 32-bit tag suite is chosen.
    let cfg = MediaConfig {
        srtp_suites: vec![
            SrtpSuite::AesCm128HmacSha1_32,
            SrtpSuite::AesCm128HmacSha1_80,
        ],
        ..MediaConfig::default()
    };
    let a = session(cfg).answer(&offer).unwrap().audio;
    assert_eq!(a.srtp.unwrap().tag, 2);
}

fn baresip_offer() -> String {
    format!(
        "v=0\r
o=- 1213231519 1897396467 IN IP4 {PEER}\r
s=-\r
c=IN IP4 {PEER}\r
t=0 0\r
m=audio 10052 RTP/SAVP 96 9 0 8 101\r
b=AS:128\r
a=rtpmap:96 opus/48000/2\r
a=fmtp:96 stereo=1;sprop-stereo=1;maxplaybackrate=16000\r
a=rtpmap:9 G722/8000/1\r
a=rtpmap:0 PCMU/8000/1\r
a=rtpmap:8 PCMA/8000/1\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=rtcp-mux\r
a=sendrecv\r
a=label:1\r
a=ssrc:123456 cname:abcdef\r
a=crypto:1 {}\r
",
        crypto(1, SrtpSuite::AesCm128HmacSha1_80)
            .split_once(' ')
            .unwrap()
            .1,
    )
}

#[test]
fn baresip_offer_opus_pt96_with_rtcp_mux_and_stereo_hints() {
    let offer = parse(&baresip_offer());
    let answer = session(MediaConfig::default()).answer(&offer).unwrap();
    let a = &answer.audio;
    assert_eq!(a.codec, Codec::Opus(Channels::Mono));
    assert_eq!(a.payload_type, 96);
    let opus = a.opus.unwrap();
    assert!(opus.remote_stereo);
    assert_eq!(opus.max_playback_rate, Some(16000));
    assert!(!opus.remote_fec);
    assert!(a.rtcp_mux);
    assert_eq!(a.remote_rtcp, None);
    assert_eq!(
        a.srtp.as_ref().unwrap().suite,
        SrtpSuite::AesCm128HmacSha1_80
    );
    let m = &answer.sdp.media[0];
    assert_eq!(m.formats, ["96", "101"]);
    assert!(m.rtcp_mux());
    assert_eq!(m.rtcp(), None);
    // We ask for mono with FEC.
    assert_eq!(m.fmtp("96"), Some("useinbandfec=1"));
    assert_eq!(m.fmtp("101"), Some("0-15"));

    // Configured for stereo, the peer's stereo=1 is honoured.
    let cfg = MediaConfig {
        opus_stereo: true,
        opus_max_playback_rate: Some(24000),
        ..MediaConfig::default()
    };
    let answer = session(cfg).answer(&offer).unwrap();
    assert_eq!(answer.audio.codec, Codec::Opus(Channels::Stereo));
    assert_eq!(
        answer.sdp.media[0].fmtp("96"),
        Some("useinbandfec=1;stereo=1;sprop-stereo=1;maxplaybackrate=24000")
    );

    // Without Opus, G.722 is next (its rtpmap carries an explicit /1).
    let cfg = MediaConfig {
        codecs: vec![Codec::G722, Codec::Pcmu],
        ..MediaConfig::default()
    };
    let a = session(cfg).answer(&offer).unwrap();
    assert_eq!(a.audio.codec, Codec::G722);
    assert_eq!(a.audio.payload_type, 9);
    assert_eq!(a.sdp.media[0].attribute("rtpmap"), Some("9 G722/8000/1"));
    // RTCP mux refused by configuration: RTCP goes to the next port up.
    let cfg = MediaConfig {
        rtcp_mux: false,
        ..MediaConfig::default()
    };
    let a = session(cfg).answer(&offer).unwrap();
    assert!(!a.audio.rtcp_mux);
    assert!(!a.sdp.media[0].rtcp_mux());
    assert_eq!(a.audio.remote_rtcp.unwrap().port, 10053);
}

#[test]
fn opus_with_telephone_event_48000_prefers_the_matching_clock() {
    let offer = format!(
        "v=0\r\no=- 1 1 IN IP4 {PEER}\r\ns=-\r\nc=IN IP4 {PEER}\r\nt=0 0\r\n\
         m=audio 5000 RTP/AVP 111 0 110 101\r\n\
         a=rtpmap:111 opus/48000/2\r\na=rtpmap:110 telephone-event/48000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n"
    );
    let mut s = session(MediaConfig::default());
    let a = s.answer(&parse(&offer)).unwrap();
    let te = a.audio.telephone_event.unwrap();
    assert_eq!(
        (te.payload_type, te.clock_rate, te.events),
        (110, 48000, None)
    );
    assert_eq!(a.sdp.media[0].formats, ["111", "110"]);
    // PCMU only: telephone-event/8000.
    let cfg = MediaConfig {
        codecs: vec![Codec::Pcmu],
        ..MediaConfig::default()
    };
    let a = session(cfg).answer(&parse(&offer)).unwrap();
    assert_eq!(a.audio.telephone_event.unwrap().payload_type, 101);
    // Telephone events disabled.
    let cfg = MediaConfig {
        telephone_event: false,
        ..MediaConfig::default()
    };
    let a = session(cfg).answer(&parse(&offer)).unwrap();
    assert_eq!(a.audio.telephone_event, None);
    assert_eq!(a.sdp.media[0].formats, ["111"]);
}

fn avp_offer(formats: &str, extra: &str) -> SessionDescription {
    parse(&format!(
        "v=0\r\no=- 1 1 IN IP4 {PEER}\r\ns=-\r\nc=IN IP4 {PEER}\r\nt=0 0\r\n\
         m=audio 5000 RTP/AVP {formats}\r\n{extra}"
    ))
}

#[test]
fn gsm_only_offer_is_refused_with_an_operator_readable_warning() {
    let offer = avp_offer("3 101", "a=rtpmap:101 telephone-event/8000\r\n");
    let e = session(MediaConfig::default()).answer(&offer).unwrap_err();
    assert_eq!(
        e,
        AnswerError::NoCommonCodec {
            offered: vec!["GSM/8000".into()],
            accepted: vec!["opus", "G722", "PCMU", "PCMA"],
        }
    );
    assert_eq!(e.sip_status(), 488);
    assert_eq!(
        e.warning_text(),
        "no common codec: offered GSM/8000; we accept opus, G722, PCMU, PCMA"
    );
    assert_eq!(
        e.warning_header_value("vc.example.com"),
        "305 vc.example.com \"no common codec: offered GSM/8000; we accept opus, G722, PCMU, PCMA\""
    );
    // An unknown dynamic type without rtpmap is named by number.
    let e = session(MediaConfig::default())
        .answer(&avp_offer("97 18", "a=rtpmap:97 iLBC/8000\r\n"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no common codec: offered iLBC/8000, G729/8000; we accept opus, G722, PCMU, PCMA"
    );
    let e = session(MediaConfig::default())
        .answer(&avp_offer("98", ""))
        .unwrap_err();
    assert!(e.to_string().starts_with("no common codec: offered PT 98;"));
}

#[test]
fn unknown_or_unusable_crypto_is_refused_with_reasons() {
    let gcm = crypto(1, SrtpSuite::AeadAes256Gcm);
    let gcm_inline = gcm.split(' ').nth(2).unwrap();
    let extra = format!(
        "a=rtpmap:0 PCMU/8000\r\n\
         a=crypto:1 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkw\r\n\
         a=crypto:2 AEAD_AES_256_GCM {gcm_inline}|2^20\r\n\
         a=crypto:3 AEAD_AES_256_GCM {gcm_inline}|1:4\r\n"
    );
    let offer = parse(&format!(
        "v=0\r\no=- 1 1 IN IP4 {PEER}\r\ns=-\r\nc=IN IP4 {PEER}\r\nt=0 0\r\n\
         m=audio 5000 RTP/SAVP 0\r\n{extra}"
    ));
    let e = session(MediaConfig::default()).answer(&offer).unwrap_err();
    let AnswerError::NoUsableCrypto { reasons, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(reasons.len(), 3);
    assert_eq!(reasons[0].tag, Some(1));
    assert_eq!(reasons[0].suite, "F8_128_HMAC_SHA1_80");
    assert!(matches!(
        reasons[0].reason,
        CryptoRejectReason::Malformed(_)
    ));
    assert!(matches!(
        reasons[1].reason,
        CryptoRejectReason::Unsupported(rtp::sdes::Unsupported::Lifetime(_))
    ));
    assert!(matches!(
        reasons[2].reason,
        CryptoRejectReason::Unsupported(rtp::sdes::Unsupported::Mki)
    ));
    assert_eq!(e.sip_status(), 488);
    let text = e.warning_text();
    assert!(text.starts_with(
        "no usable SRTP crypto: tag 1 F8_128_HMAC_SHA1_80: unknown crypto suite 'F8_128_HMAC_SHA1_80'; \
         tag 2 AEAD_AES_256_GCM: key lifetime 1048576 is below the supported minimum of 2^31; \
         tag 3 AEAD_AES_256_GCM: MKI is not supported; we accept AEAD_AES_256_GCM"
    ), "{text}");
    assert!(!text.contains(gcm_inline));

    // Only an unknown suite offered.
    let offer = parse(&format!(
        "v=0\r\no=- 1 1 IN IP4 {PEER}\r\ns=-\r\nc=IN IP4 {PEER}\r\nt=0 0\r\n\
         m=audio 5000 RTP/SAVP 0\r\n\
         a=crypto:1 SEED_128_CTR_HMAC_SHA1_80 inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkw\r\n"
    ));
    let e = session(MediaConfig::default()).answer(&offer).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no usable SRTP crypto: tag 1 SEED_128_CTR_HMAC_SHA1_80: unknown crypto suite \
         \"SEED_128_CTR_HMAC_SHA1_80\"; we accept AEAD_AES_256_GCM, AEAD_AES_256_GCM_8, \
         AES_256_CM_HMAC_SHA1_80, AES_256_CM_HMAC_SHA1_32, AES_CM_128_HMAC_SHA1_80, \
         AES_CM_128_HMAC_SHA1_32"
    );
    assert_eq!((e.sip_status(), e.warning_code()), (488, 399));

    // A suite we implement but have disabled is named as such.
    let cfg = MediaConfig {
        srtp_suites: vec![SrtpSuite::AeadAes256Gcm],
        ..MediaConfig::default()
    };
    let offer = parse(&baresip_offer());
    let e = session(cfg).answer(&offer).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no usable SRTP crypto: tag 1 AES_CM_128_HMAC_SHA1_80: suite not enabled; \
         we accept AEAD_AES_256_GCM"
    );
    // RTP/SAVP without any a=crypto (e.g. DTLS-SRTP on the old profile).
    let e = session(MediaConfig::default())
        .answer(&parse(&format!(
            "v=0\r\no=- 1 1 IN IP4 {PEER}\r\ns=-\r\nc=IN IP4 {PEER}\r\nt=0 0\r\n\
             m=audio 5000 RTP/SAVP 0\r\n"
        )))
        .unwrap_err();
    assert!(matches!(&e, AnswerError::NoUsableCrypto { reasons, .. } if reasons.is_empty()));
}

#[test]
fn plain_rtp_offer_when_srtp_is_required_is_refused() {
    let offer = avp_offer("0 8", "");
    let cfg = MediaConfig {
        require_srtp: true,
        ..MediaConfig::default()
    };
    let e = session(cfg.clone()).answer(&offer).unwrap_err();
    assert_eq!(
        e,
        AnswerError::SrtpRequired {
            proto: "RTP/AVP".into()
        }
    );
    assert_eq!(e.sip_status(), 488);
    assert_eq!(e.warning_code(), 399);
    // Without the requirement the same offer gets plain RTP.
    let a = session(MediaConfig::default()).answer(&offer).unwrap();
    assert_eq!(a.audio.srtp, None);
    assert_eq!(a.sdp.media[0].proto, "RTP/AVP");
    assert!(!a.sdp.media[0].has_attribute("crypto"));
    // Required, and RTP/AVP carrying unusable crypto: the crypto reasons are reported.
    let e = session(cfg)
        .answer(&avp_offer(
            "0",
            "a=crypto:1 NULL_SUITE inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkw\r\n",
        ))
        .unwrap_err();
    assert!(matches!(e, AnswerError::NoUsableCrypto { .. }));
}

#[test]
fn best_effort_srtp_on_rtp_avp() {
    let line = crypto(1, SrtpSuite::AesCm128HmacSha1_80);
    let offer = avp_offer("0", &format!("a=crypto:{line}\r\n"));
    let a = session(MediaConfig::default()).answer(&offer).unwrap();
    assert_eq!(
        a.audio.srtp.as_ref().unwrap().suite,
        SrtpSuite::AesCm128HmacSha1_80
    );
    // The answer keeps the offered profile and adds our crypto line.
    assert_eq!(a.sdp.media[0].proto, "RTP/AVP");
    assert!(a.sdp.media[0].has_attribute("crypto"));
    // Configured off: plain RTP, no crypto line.
    let cfg = MediaConfig {
        srtp_on_avp: false,
        ..MediaConfig::default()
    };
    let a = session(cfg).answer(&offer).unwrap();
    assert_eq!(a.audio.srtp, None);
    assert!(!a.sdp.media[0].has_attribute("crypto"));
    // Unusable best-effort crypto falls back to plain RTP.
    let offer = avp_offer(
        "0",
        "a=crypto:1 NULL_SUITE inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkw\r\n",
    );
    let a = session(MediaConfig::default()).answer(&offer).unwrap();
    assert_eq!(a.audio.srtp, None);
}

#[test]
fn dtls_and_unknown_transports_are_refused() {
    let offer = parse(&format!(
        "v=0\r\no=- 1 1 IN IP4 {PEER}\r\ns=-\r\nc=IN IP4 {PEER}\r\nt=0 0\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
         a=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\n"
    ));
    let e = session(MediaConfig::default()).answer(&offer).unwrap_err();
    assert_eq!(
        e,
        AnswerError::UnsupportedTransport {
            proto: "UDP/TLS/RTP/SAVPF".into()
        }
    );
    assert_eq!(e.warning_code(), 302);
    assert_eq!(
        e.warning_header_value("h"),
        "302 h \"unsupported media transport UDP/TLS/RTP/SAVPF; we accept RTP/AVP and RTP/SAVP with SDES\""
    );
    // AVPF with SDES (e.g. Asterisk) is accepted and echoed.
    let offer = parse(&format!(
        "v=0\r\no=- 1 1 IN IP4 {PEER}\r\ns=-\r\nc=IN IP4 {PEER}\r\nt=0 0\r\n\
         m=audio 5000 RTP/SAVPF 0\r\na=crypto:{}\r\n",
        crypto(1, SrtpSuite::AesCm128HmacSha1_80)
    ));
    let a = session(MediaConfig::default()).answer(&offer).unwrap();
    assert_eq!(a.sdp.media[0].proto, "RTP/SAVPF");
}

#[test]
fn video_and_other_streams_are_rejected_in_order() {
    let offer = parse(&format!(
        "v=0\r\no=- 1 1 IN IP4 {PEER}\r\ns=-\r\nc=IN IP4 {PEER}\r\nt=0 0\r\n\
         m=video 6000 RTP/AVP 96 97\r\na=rtpmap:96 H264/90000\r\n\
         m=audio 0 RTP/AVP 0\r\n\
         m=audio 5000 RTP/AVP 3\r\n\
         m=audio 5002 RTP/AVP 8\r\n\
         m=audio 5004 RTP/AVP 0\r\n\
         m=application 7000 UDP/BFCP *\r\n"
    ));
    let a = session(MediaConfig::default()).answer(&offer).unwrap();
    // The first acceptable audio stream (index 3) is taken; the GSM one before it and
    // the later audio stream are rejected, as are video and BFCP.
    assert_eq!(a.audio.media_index, 3);
    assert_eq!(a.audio.codec, Codec::Pcma);
    let m = &a.sdp.media;
    assert_eq!(m.len(), 6);
    let summary: Vec<(String, u16, String, Vec<String>)> = m
        .iter()
        .map(|m| (m.media.clone(), m.port, m.proto.clone(), m.formats.clone()))
        .collect();
    let s = |media: &str, port, proto: &str, f: &[&str]| {
        (
            media.to_owned(),
            port,
            proto.to_owned(),
            f.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        summary,
        vec![
            s("video", 0, "RTP/AVP", &["96", "97"]),
            s("audio", 0, "RTP/AVP", &["0"]),
            s("audio", 0, "RTP/AVP", &["3"]),
            s("audio", 20000, "RTP/AVP", &["8"]),
            s("audio", 0, "RTP/AVP", &["0"]),
            s("application", 0, "UDP/BFCP", &["*"]),
        ]
    );
    assert!(m[0].attributes.is_empty());

    // Only video: NoAudio, 488 with warn-code 304.
    let offer = parse(&format!(
        "v=0\r\no=- 1 1 IN IP4 {PEER}\r\ns=-\r\nc=IN IP4 {PEER}\r\nt=0 0\r\n\
         m=video 6000 RTP/AVP 96\r\n"
    ));
    let e = session(MediaConfig::default()).answer(&offer).unwrap_err();
    assert_eq!(e, AnswerError::NoAudio);
    assert_eq!((e.sip_status(), e.warning_code()), (488, 304));
}

#[test]
fn missing_connection_address_is_a_bad_request() {
    let offer = parse("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n");
    let e = session(MediaConfig::default()).answer(&offer).unwrap_err();
    assert_eq!(e, AnswerError::NoConnectionAddress);
    assert_eq!(e.sip_status(), 400);
}

#[test]
fn hold_and_resume_by_reoffer() {
    let mut s = session(MediaConfig::default());
    let initial = parse(&seed_offer());
    let first = s.answer(&initial).unwrap();
    let v1 = first.sdp.origin.session_version;
    let key1 = first.audio.srtp.clone().unwrap();

    // Re-INVITE: sendonly (hold, RFC 3264 §8.4) with the same keys.
    let hold = parse(
        &seed_offer()
            .replace("a=sendrecv", "a=sendonly")
            .replace("3775321410 3775321410", "3775321410 3775321411"),
    );
    // Carry the original keys over: replace the fresh crypto lines with the first ones.
    let mut hold = hold;
    hold.media[0].attributes.retain(|a| !a.is("crypto"));
    hold.media[0].attributes.extend(
        initial.media[0]
            .attributes
            .iter()
            .filter(|a| a.is("crypto"))
            .cloned(),
    );
    let held = s.answer(&hold).unwrap();
    assert_eq!(held.audio.direction, Direction::RecvOnly);
    assert_eq!(held.sdp.media[0].attribute("recvonly"), Some(""));
    assert_eq!(held.sdp.origin.session_id, 4242);
    assert_eq!(held.sdp.origin.session_version, v1 + 1);
    // Peer kept its key: we keep ours (RFC 4568 §7.1.4).
    assert_eq!(held.audio.srtp.as_ref().unwrap().local, key1.local);

    // inactive → inactive.
    let mut inactive = hold.clone();
    for a in &mut inactive.media[0].attributes {
        if a.is("sendonly") {
            a.name = "inactive".into();
        }
    }
    let r = s.answer(&inactive).unwrap();
    assert_eq!(r.audio.direction, Direction::Inactive);
    assert_eq!(r.sdp.origin.session_version, v1 + 2);

    // Legacy hold: c=0.0.0.0 with sendrecv.
    let mut legacy = hold.clone();
    for a in &mut legacy.media[0].attributes {
        if a.is("sendonly") {
            a.name = "sendrecv".into();
        }
    }
    legacy.media[0].connections[0].address = "0.0.0.0".into();
    let r = s.answer(&legacy).unwrap();
    assert_eq!(r.audio.direction, Direction::RecvOnly);
    assert_eq!(r.sdp.origin.session_version, v1 + 3);

    // Resume with the same offer as the first: same answer content, version still goes
    // up because it differs from the last answer we sent.
    let resumed = s.answer(&initial).unwrap();
    assert_eq!(resumed.audio.direction, Direction::SendRecv);
    assert_eq!(resumed.sdp.origin.session_version, v1 + 4);
    assert_eq!(resumed.audio.srtp.as_ref().unwrap().local, key1.local);
    // A repeated identical offer (session refresh) leaves the version alone.
    let again = s.answer(&initial).unwrap();
    assert_eq!(again.sdp.origin.session_version, v1 + 4);
    assert_eq!(again.sdp, resumed.sdp);

    // The peer re-keys: we answer with a fresh key too.
    let rekeyed = s.answer(&parse(&seed_offer())).unwrap();
    let k = rekeyed.audio.srtp.unwrap();
    assert_ne!(k.remote, key1.remote);
    assert_ne!(k.local, key1.local);
    assert_eq!(rekeyed.sdp.origin.session_version, v1 + 5);
}

#[test]
fn refused_reoffer_leaves_the_session_alone() {
    let mut s = session(MediaConfig::default());
    let first = s.answer(&parse(&seed_offer())).unwrap();
    let e = s.answer(&avp_offer("3", "")).unwrap_err();
    assert!(matches!(e, AnswerError::NoCommonCodec { .. }));
    assert_eq!(s.current(), Some(&first.audio));
    assert_eq!(s.last_local_sdp(), Some(&first.sdp));
}

/// A peer that answers our offer the way an RFC 3264 answerer would: it is another
/// `MediaSession`.
#[test]
fn delayed_offer_round_trip_between_two_sessions() {
    let mut us = session(MediaConfig::default());
    let offer = us.create_offer();
    assert!(us.has_pending_offer());
    let m = &offer.media[0];
    assert_eq!(m.proto, "RTP/SAVP");
    assert_eq!(m.formats, ["111", "9", "0", "8", "101"]);
    assert_eq!(m.attributes_named("crypto").count(), 6);
    assert!(m.rtcp_mux());
    assert_eq!(m.rtcp().unwrap().port, 20001);
    assert_eq!(m.fmtp("111"), Some("useinbandfec=1"));
    assert_eq!(parse(&offer.to_string()), offer);

    let peer_cfg = MediaConfig {
        codecs: vec![Codec::G722, Codec::Opus(Channels::Mono)],
        srtp_suites: vec![SrtpSuite::Aes256CmHmacSha1_80],
        rtcp_mux: false,
        ..MediaConfig::default()
    };
    let mut peer = MediaSession::new(
        peer_cfg,
        LocalTransport {
            address: IpAddr::V4(PEER),
            rtp_port: 30000,
            rtcp_port: Some(30010),
        },
        77,
    );
    let answer = peer.answer(&offer).unwrap();
    let mine = us.accept_answer(&answer.sdp).unwrap();
    assert!(!us.has_pending_offer());
    assert_eq!(mine.codec, Codec::G722);
    assert_eq!((mine.payload_type, mine.recv_payload_type), (9, 9));
    assert_eq!(mine.remote_rtp.socket_addr(), Some((PEER, 30000).into()));
    assert_eq!(mine.remote_rtcp.unwrap().port, 30010);
    assert!(!mine.rtcp_mux);
    let te = mine.telephone_event.unwrap();
    assert_eq!((te.payload_type, te.recv_payload_type), (101, 101));
    // Keys cross over: what we send they decrypt, and vice versa.
    let ours = mine.srtp.unwrap();
    let theirs = answer.audio.srtp.unwrap();
    assert_eq!(ours.suite, SrtpSuite::Aes256CmHmacSha1_80);
    assert_eq!(ours.tag, 3);
    assert_eq!(ours.local, theirs.remote);
    assert_eq!(ours.remote, theirs.local);

    // A re-offer from us putting the peer on hold; the suite in use keeps its key.
    us.set_local_direction(Direction::SendOnly);
    let reoffer = us.create_offer();
    assert_eq!(reoffer.origin.session_id, 4242);
    assert_eq!(
        reoffer.origin.session_version,
        offer.origin.session_version + 1
    );
    assert_eq!(reoffer.media[0].attribute("sendonly"), Some(""));
    assert_eq!(offered_key(&reoffer, 3).keys[0].material, ours.local);
    let answer = peer.answer(&reoffer).unwrap();
    assert_eq!(answer.audio.direction, Direction::RecvOnly);
    let held = us.accept_answer(&answer.sdp).unwrap();
    assert_eq!(held.direction, Direction::SendOnly);
}

#[test]
fn plain_offer_and_bad_answers() {
    let cfg = MediaConfig {
        offer_srtp: false,
        ..MediaConfig::default()
    };
    let mut us = session(cfg);
    assert_eq!(
        us.accept_answer(&avp_offer("0", "")).unwrap_err(),
        AnswerError::NoPendingOffer
    );
    let offer = us.create_offer();
    assert_eq!(offer.media[0].proto, "RTP/AVP");
    assert!(!offer.media[0].has_attribute("crypto"));

    let answer_with = |body: &str| {
        parse(&format!(
            "v=0\r\no=- 9 9 IN IP4 {PEER}\r\ns=-\r\nc=IN IP4 {PEER}\r\nt=0 0\r\n{body}"
        ))
    };
    let cases = [
        (
            "m=audio 0 RTP/AVP 0\r\n",
            AnswerError::AnswerMismatch(AnswerMismatch::AudioRejected),
        ),
        (
            "m=audio 5000 RTP/SAVP 0\r\n",
            AnswerError::AnswerMismatch(AnswerMismatch::TransportChanged {
                offered: "audio RTP/AVP".into(),
                answered: "audio RTP/SAVP".into(),
            }),
        ),
        (
            "m=audio 5000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n",
            AnswerError::AnswerMismatch(AnswerMismatch::MediaCount {
                offered: 1,
                answered: 2,
            }),
        ),
        (
            "m=audio 5000 RTP/AVP 3\r\n",
            AnswerError::NoCommonCodec {
                offered: vec!["GSM/8000".into()],
                accepted: vec!["opus", "G722", "PCMU", "PCMA"],
            },
        ),
    ];
    for (body, want) in cases {
        us.create_offer();
        assert_eq!(
            us.accept_answer(&answer_with(body)).unwrap_err(),
            want,
            "{body}"
        );
        assert!(!us.has_pending_offer());
    }
    // A good answer renumbering Opus: we send with their number, receive with ours.
    us.create_offer();
    let a = us
        .accept_answer(&answer_with(
            "m=audio 5000 RTP/AVP 96 100\r\na=rtpmap:96 opus/48000/2\r\n\
             a=fmtp:96 useinbandfec=1\r\na=rtpmap:100 telephone-event/8000\r\na=recvonly\r\n",
        ))
        .unwrap();
    assert_eq!((a.payload_type, a.recv_payload_type), (96, 111));
    assert!(a.opus.unwrap().remote_fec);
    assert_eq!(a.telephone_event.unwrap().payload_type, 100);
    assert_eq!(a.direction, Direction::SendOnly);
    assert_eq!(a.srtp, None);
}

#[test]
fn srtp_answers_must_match_our_offered_lines() {
    let mut us = session(MediaConfig::default());
    let head = format!("v=0\r\no=- 9 9 IN IP4 {PEER}\r\ns=-\r\nc=IN IP4 {PEER}\r\nt=0 0\r\n");
    let body = "m=audio 5000 RTP/SAVP 0\r\n";
    us.create_offer();
    let e = us
        .accept_answer(&parse(&format!("{head}{body}")))
        .unwrap_err();
    assert_eq!(
        e,
        AnswerError::AnswerMismatch(AnswerMismatch::MissingCrypto)
    );
    // Tag 1 is AEAD_AES_256_GCM in our offer; an answer pairing it with another suite
    // is refused.
    us.create_offer();
    let wrong = crypto(1, SrtpSuite::AesCm128HmacSha1_80);
    let e = us
        .accept_answer(&parse(&format!("{head}{body}a=crypto:{wrong}\r\n")))
        .unwrap_err();
    assert_eq!(
        e,
        AnswerError::AnswerMismatch(AnswerMismatch::CryptoNotOffered { tag: 1 })
    );
    us.create_offer();
    let right = crypto(5, SrtpSuite::AesCm128HmacSha1_80);
    let a = us
        .accept_answer(&parse(&format!("{head}{body}a=crypto:{right}\r\n")))
        .unwrap();
    assert_eq!(a.srtp.unwrap().suite, SrtpSuite::AesCm128HmacSha1_80);
}

#[test]
fn bodies_map_parse_and_negotiation_failures_once() {
    let mut s = session(MediaConfig::default());
    let e = s
        .answer_body(b"v=0\r\nm=audio x RTP/AVP 0\r\n")
        .unwrap_err();
    assert!(matches!(e, sdp::SdpError::Parse(_)));
    assert_eq!(e.sip_status(), 400);
    assert_eq!(
        e.warning_header_value("h"),
        "399 h \"malformed SDP: line 2: invalid port in m= line\""
    );
    let e = s
        .answer_body(avp_offer("3", "").to_string().as_bytes())
        .unwrap_err();
    assert_eq!((e.sip_status(), e.warning_code()), (488, 305));
    let ok = s.answer_body(seed_offer().as_bytes()).unwrap();
    assert_eq!(ok.audio.payload_type, 125);
    // An oversized body is refused before parsing.
    let cfg = MediaConfig {
        limits: sdp::ParseLimits {
            max_size: 100,
            ..sdp::ParseLimits::default()
        },
        ..MediaConfig::default()
    };
    let e = session(cfg)
        .answer_body(seed_offer().as_bytes())
        .unwrap_err();
    assert!(matches!(
        e,
        sdp::SdpError::Parse(sdp::ParseError {
            kind: sdp::ParseErrorKind::TooLarge { .. },
            ..
        })
    ));
    // A malformed answer consumes our offer.
    s.create_offer();
    assert!(s.accept_answer_body(b"garbage").is_err());
    assert!(!s.has_pending_offer());
}

#[test]
fn debug_output_of_results_never_shows_keys() {
    let mut s = session(MediaConfig::default());
    let answer = s.answer(&parse(&seed_offer())).unwrap();
    let text = answer.sdp.to_string();
    let inline = text
        .lines()
        .find_map(|l| l.split("inline:").nth(1))
        .unwrap()
        .to_owned();
    for dbg in [format!("{answer:?}"), format!("{s:?}")] {
        assert!(!dbg.contains(&inline), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }
}

/// Another implementation (Mozilla's webrtc-sdp) reads our offers and answers the same
/// way we meant them.
#[test]
fn webrtc_sdp_reads_our_offers_and_answers() {
    let mut s = session(MediaConfig::default());
    let answer = s.answer(&parse(&seed_offer())).unwrap().sdp.to_string();
    let theirs = webrtc_sdp::parse_sdp(&answer, false).unwrap();
    assert_eq!(theirs.media.len(), 1);
    let m = &theirs.media[0];
    assert_eq!(m.get_port(), 20000);
    assert_eq!(m.get_proto().to_string(), "RTP/SAVP");
    assert_eq!(m.get_formats().to_string(), "125 101");
    let mut us = session(MediaConfig::default());
    let offer = us.create_offer().to_string();
    let theirs = webrtc_sdp::parse_sdp(&offer, false).unwrap();
    assert_eq!(theirs.media[0].get_formats().to_string(), "111 9 0 8 101");
}

#[test]
fn config_validation() {
    assert_eq!(MediaConfig::default().validate(), Ok(()));
    let bad = |f: fn(&mut MediaConfig)| {
        let mut c = MediaConfig::default();
        f(&mut c);
        c.validate().unwrap_err()
    };
    use sdp::ConfigError as E;
    assert_eq!(bad(|c| c.codecs.clear()), E::NoCodecs);
    assert_eq!(bad(|c| c.opus_payload_type = 8), E::DynamicPayloadType(8));
    assert_eq!(
        bad(|c| c.telephone_event_payload_type = 128),
        E::DynamicPayloadType(128)
    );
    assert_eq!(
        bad(|c| c.telephone_event_payload_type = 111),
        E::PayloadTypeClash(111)
    );
    assert_eq!(bad(|c| c.ptime = 0), E::Ptime(0));
    assert_eq!(
        bad(|c| {
            c.require_srtp = true;
            c.srtp_suites.clear();
        }),
        E::SrtpRequiredWithoutSuites
    );
}

/// A plain RTP packet: V=2, PT, sequence number, timestamp, SSRC, 160 bytes of payload.
fn rtp_packet(pt: u8, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend((0..160u8).map(|i| i.wrapping_mul(7)));
    p
}

/// The keys negotiated on each side key working SRTP contexts that talk to each other.
#[test]
fn negotiated_keys_protect_and_unprotect_across_the_two_sides() {
    for suite in SrtpSuite::ALL {
        let cfg = MediaConfig {
            srtp_suites: vec![suite],
            ..MediaConfig::default()
        };
        let mut caller = session(cfg.clone());
        let mut callee = session(cfg);
        let offer = caller.create_offer();
        let answer = callee.answer(&offer).unwrap();
        let at_caller = caller.accept_answer(&answer.sdp).unwrap();
        let (a, b) = (at_caller.srtp.unwrap(), answer.audio.srtp.unwrap());
        assert_eq!((a.suite, b.suite), (suite, suite));
        for (sender, receiver) in [(&a, &b), (&b, &a)] {
            let mut tx = sender.local.context(Default::default()).unwrap();
            let mut rx = receiver.remote.context(receiver.remote_config).unwrap();
            let plain = rtp_packet(at_caller.payload_type, 1);
            let (mut srtp, mut back) = (Vec::new(), Vec::new());
            tx.protect_rtp(&plain, &mut srtp).unwrap();
            assert_ne!(srtp[12..172], plain[12..]);
            rx.unprotect_rtp(&srtp, &mut back).unwrap();
            assert_eq!(back, plain, "{suite}");
        }
    }
}
