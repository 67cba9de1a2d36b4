//! SDP: `sdp::SessionDescription::parse`, printing, the typed attribute views, and the
//! answerer (`MediaSession::answer_body` / `answer`) with the default `MediaConfig` and with
//! SRTP required, then a re-offer on the same session and our own offer answered by the
//! input (`create_offer` + `accept_answer_body`).
//!
//! Checked beyond "no panic", as `crates/sdp/tests/properties.rs` states them: a parsed
//! description prints to text that parses back to it; an answer keeps the offer's `m=`
//! lines and parses back to itself; a refusal is a 400 or 488 whose Warning text holds no
//! quote.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use sdp::{LocalTransport, MediaConfig, MediaSession, SessionDescription};

fn session(config: MediaConfig) -> MediaSession {
    MediaSession::new(
        config,
        LocalTransport {
            address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
            rtp_port: 20000,
            rtcp_port: None,
        },
        1,
    )
}

fn views(sdp: &SessionDescription) {
    for (i, m) in sdp.media.iter().enumerate() {
        let _ = (m.is_audio(), m.ptime(), m.maxptime(), m.rtcp(), m.rtcp_mux());
        let _ = sdp::Direction::of_media(sdp, i);
        let _ = sdp.connection_for(i).map(|c| (c.ip(), c.is_unspecified()));
        for f in &m.formats {
            if let Some(pt) = sdp::attributes::parse_payload_type(f)
                && let Some(map) = m.rtpmap(pt)
            {
                let _ = (map.to_value(), map.is_telephone_event());
            }
            if let Some(p) = m.fmtp(f) {
                let p = sdp::FormatParams::parse(p);
                let _ = (p.get_u32("maxplaybackrate"), p.get_flag("stereo"));
            }
        }
        for c in m.attributes_named("crypto") {
            let _ = rtp::sdes::CryptoAttribute::parse(c).map(|a| a.usable_key().is_ok());
        }
    }
}

fn check_answer(offer: &SessionDescription, result: Result<sdp::Answer, sdp::AnswerError>) {
    match result {
        Ok(answer) => {
            assert_eq!(answer.sdp.media.len(), offer.media.len());
            let printed = answer.sdp.to_string();
            let reparsed = SessionDescription::parse(printed.as_bytes())
                .unwrap_or_else(|e| panic!("our answer does not parse: {e}\n{printed}"));
            assert_eq!(reparsed, answer.sdp);
            let _ = format!("{:?}", answer.audio);
        }
        Err(e) => {
            assert!(matches!(e.sip_status(), 400 | 488), "status {}", e.sip_status());
            assert!(!e.warning_text().contains('"'));
            let _ = e.warning_header_value("vc.example.com");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Err(e) = session(MediaConfig::default()).answer_body(data) {
        assert!(matches!(e.sip_status(), 400 | 488), "status {}", e.sip_status());
        assert!(!e.warning_text().contains('"'));
    }

    let Ok(offer) = SessionDescription::parse(data) else {
        return;
    };
    views(&offer);
    let printed = offer.to_string();
    let again = SessionDescription::parse(printed.as_bytes())
        .unwrap_or_else(|e| panic!("a parsed description prints unparseable: {e}\n{printed}"));
    assert_eq!(again, offer, "print then parse changed the description");

    for config in [
        MediaConfig::default(),
        MediaConfig {
            require_srtp: true,
            ..MediaConfig::default()
        },
    ] {
        let mut s = session(config);
        check_answer(&offer, s.answer(&offer));
        // The same offer again is a re-offer on an established session (RFC 3264 §8).
        check_answer(&offer, s.answer(&offer));
        // Our offer, answered by the input.
        let _ = s.create_offer();
        let _ = s.accept_answer(&offer);
    }
});
