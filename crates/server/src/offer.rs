//! SDP offer/answer for a meeting leg (crate `sdp`), turned into the engine's leg settings.

use std::net::IpAddr;

use engine::{Direction as MediaDirection, LegConfig, SrtpKeys};
use sdp::negotiate::{Host, LocalTransport, MediaConfig, MediaSession, NegotiatedAudio};
use sdp::{Direction, SessionDescription};

/// A leg's negotiated media and the SDP state kept for re-offers.
pub struct Negotiated {
    pub session: MediaSession,
    pub leg: LegConfig,
    pub answer: Vec<u8>,
    pub codec: String,
    pub srtp_suite: Option<String>,
}

fn engine_direction(d: Direction) -> MediaDirection {
    match d {
        Direction::SendRecv => MediaDirection {
            send: true,
            recv: true,
        },
        Direction::SendOnly => MediaDirection {
            send: true,
            recv: false,
        },
        Direction::RecvOnly => MediaDirection {
            send: false,
            recv: true,
        },
        Direction::Inactive => MediaDirection {
            send: false,
            recv: false,
        },
    }
}

fn leg_config(a: &NegotiatedAudio) -> LegConfig {
    let addr = |t: &sdp::negotiate::TransportAddress| match t.host {
        Host::Ip(_) => t
            .socket_addr()
            .filter(|s| !s.ip().is_unspecified() && s.port() != 0),
        Host::Name(_) => None,
    };
    LegConfig {
        codec: a.codec,
        payload_type: a.payload_type,
        dtmf_payload_type: a.telephone_event.as_ref().map(|t| t.recv_payload_type),
        dtmf_out: a.telephone_event.as_ref().map(|t| engine::DtmfFormat {
            payload_type: t.payload_type,
            clock_rate: t.clock_rate,
        }),
        remote_ptime: a.remote_ptime,
        srtp: a.srtp.as_ref().map(|k| SrtpKeys {
            suite: k.suite,
            remote_key: k.remote.master_key().to_vec(),
            remote_salt: k.remote.master_salt().to_vec(),
            local_key: k.local.master_key().to_vec(),
            local_salt: k.local.master_salt().to_vec(),
        }),
        remote_rtp: addr(&a.remote_rtp),
        remote_rtcp: a.remote_rtcp.as_ref().and_then(addr),
        rtcp_mux: a.rtcp_mux,
        direction: engine_direction(a.direction),
        muted: false,
        dtx: a.opus.as_ref().is_some_and(|o| o.dtx),
    }
}

/// Why an offer or answer was not usable: the status (400, 488, ...) and the words the
/// `sdp` crate gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct SdpError {
    pub status: u16,
    pub text: String,
}

impl From<sdp::SdpError> for SdpError {
    fn from(e: sdp::SdpError) -> Self {
        SdpError {
            status: e.sip_status(),
            text: e.warning_text(),
        }
    }
}

impl From<sdp::AnswerError> for SdpError {
    fn from(e: sdp::AnswerError) -> Self {
        SdpError {
            status: e.sip_status(),
            text: e.warning_text(),
        }
    }
}

impl From<SdpError> for calls::JoinError {
    fn from(e: SdpError) -> Self {
        calls::JoinError::Sdp {
            status: e.status,
            text: e.text,
        }
    }
}

impl From<SdpError> for calls::ReofferError {
    fn from(e: SdpError) -> Self {
        calls::ReofferError::Sdp {
            status: e.status,
            text: e.text,
        }
    }
}

impl From<SdpError> for calls::Refusal {
    fn from(e: SdpError) -> Self {
        calls::Refusal::new(e.status, e.text)
    }
}

fn parse(offer: &[u8]) -> Result<SessionDescription, SdpError> {
    SessionDescription::parse(offer).map_err(|e| SdpError {
        status: 400,
        text: format!("malformed SDP: {e}"),
    })
}

/// Delayed offer (RFC 3261 §13.2.1, RFC 3264): the INVITE had no SDP, so we offer in the
/// 200 and take the answer from the ACK. SRTP is offered when the connector requires it or
/// the call came over TLS.
pub fn offer(
    require_srtp: bool,
    offer_srtp: bool,
    ip: IpAddr,
    port: u16,
) -> (MediaSession, Vec<u8>) {
    outbound(&[], offer_srtp, require_srtp, ip, port)
}

/// Takes the answer to our delayed offer (from the ACK).
pub fn accept(mut session: MediaSession, answer: &[u8]) -> Result<Negotiated, SdpError> {
    let audio = session.accept_answer_body(answer)?;
    let answer = session
        .last_local_sdp()
        .map(|s| s.to_bytes())
        .unwrap_or_default();
    Ok(Negotiated {
        leg: leg_config(&audio),
        answer,
        codec: audio.codec.name().to_string(),
        srtp_suite: audio.srtp.as_ref().map(|k| k.suite.name().to_string()),
        session,
    })
}

/// Answers the offer of an INVITE. `require_srtp` is the connector's RequireEncryption.
pub fn answer(
    offer: &[u8],
    require_srtp: bool,
    ip: IpAddr,
    port: u16,
) -> Result<Negotiated, SdpError> {
    let offer = parse(offer)?;
    let config = MediaConfig {
        require_srtp,
        ..MediaConfig::default()
    };
    let local = LocalTransport {
        address: ip,
        rtp_port: port,
        rtcp_port: Some(port + 1),
    };
    let mut session = MediaSession::new(config, local, rand::random::<u32>() as u64);
    let ans = session.answer(&offer)?;
    Ok(Negotiated {
        leg: leg_config(&ans.audio),
        answer: ans.sdp.to_bytes(),
        codec: ans.audio.codec.name().to_string(),
        srtp_suite: ans.audio.srtp.as_ref().map(|k| k.suite.name().to_string()),
        session,
    })
}

/// Answers a re-offer (hold, resume, new key) inside the call.
pub fn reanswer(n: &mut Negotiated, offer: &[u8]) -> Result<(Vec<u8>, MediaDirection), SdpError> {
    let offer = parse(offer)?;
    let ans = n.session.answer(&offer)?;
    n.leg = leg_config(&ans.audio);
    n.answer = ans.sdp.to_bytes();
    Ok((n.answer.clone(), n.leg.direction))
}

/// Our offer on an outgoing leg (a carrier trunk, a PBX): only `codecs` (names as SDP
/// writes them, e.g. `PCMU`, `G722`, `opus`; empty: all we have), SRTP offered when
/// `offer_srtp`, required when `require_srtp`.
pub fn outbound(
    codecs: &[String],
    offer_srtp: bool,
    require_srtp: bool,
    ip: IpAddr,
    port: u16,
) -> (MediaSession, Vec<u8>) {
    let mut config = MediaConfig {
        require_srtp,
        offer_srtp: offer_srtp || require_srtp,
        ..MediaConfig::default()
    };
    if !codecs.is_empty() {
        config
            .codecs
            .retain(|c| codecs.iter().any(|n| n.eq_ignore_ascii_case(c.name())));
    }
    let local = LocalTransport {
        address: ip,
        rtp_port: port,
        rtcp_port: Some(port + 1),
    };
    let mut session = MediaSession::new(config, local, rand::random::<u32>() as u64);
    let sdp = session.create_offer().to_bytes();
    (session, sdp)
}
