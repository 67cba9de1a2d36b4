//! Offer/answer for one audio stream (RFC 3264), with SDES-SRTP keys (RFC 4568).
//!
//! A [`MediaSession`] is the SDP side of one call leg. It answers offers
//! ([`MediaSession::answer`]) and makes offers ([`MediaSession::create_offer`], then
//! [`MediaSession::accept_answer`]) for the whole life of the dialog, so that re-offers
//! (re-INVITE, UPDATE) keep the `o=` session id and increment the version only when the
//! description changes (RFC 3264 §8), and keep our SRTP key while the peer keeps theirs
//! (RFC 4568 §7.1.4 allows either).
//!
//! Every successful negotiation yields a [`NegotiatedAudio`]: what the media engine needs
//! to run the stream. Every failure is an [`AnswerError`] that says why in words a PBX
//! operator understands.

use crate::attributes::{Direction, FormatParams, RtcpAttribute, RtpMap, parse_payload_type};
use crate::error::{AnswerError, AnswerMismatch, CryptoRejectReason, CryptoRejection, SdpError};
use crate::model::{
    AddrType, Attribute, Connection, MediaDescription, Origin, SessionDescription, Timing,
};
use crate::parse::ParseLimits;
use codec::{Channels, Codec};
use rtp::sdes::{CryptoAttribute, KeyParam, SrtpKeyMaterial};
use rtp::srtp::{SrtpConfig, SrtpSuite};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

mod answer;
mod offer;

/// Our side of the negotiation: codecs, SRTP policy and a few SDP details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Codecs in preference order. Default: Opus, G.722, PCMU, PCMA.
    pub codecs: Vec<Codec>,
    /// SRTP suites in preference order. Default: [`SrtpSuite::ALL`], strongest first.
    pub srtp_suites: Vec<SrtpSuite>,
    /// Refuse plain RTP (a voice connector's `RequireEncryption`). Default false.
    pub require_srtp: bool,
    /// Answer `a=crypto` offered on `RTP/AVP` ("best effort SRTP") with SRTP. Default true.
    pub srtp_on_avp: bool,
    /// Make our own offers `RTP/SAVP` with `a=crypto` lines (always, when
    /// [`require_srtp`](Self::require_srtp) is set). Default true.
    pub offer_srtp: bool,
    /// Negotiate RFC 4733 `telephone-event`. Default true.
    pub telephone_event: bool,
    /// Accept and offer `a=rtcp-mux` (RFC 5761). Default true.
    pub rtcp_mux: bool,
    /// Packetisation time we send and ask for, in ms (`a=ptime`). Default 20.
    pub ptime: u32,
    /// Ask for stereo Opus (`stereo=1`) and decode stereo if the peer sends it. Default
    /// false: meetings are mixed in mono.
    pub opus_stereo: bool,
    /// `maxplaybackrate` we ask for in Opus answers and offers (RFC 7587 §6.1). Default
    /// none (48000 implied).
    pub opus_max_playback_rate: Option<u32>,
    /// Dynamic payload type for Opus in our offers. Default 111.
    pub opus_payload_type: u8,
    /// Dynamic payload type for `telephone-event/8000` in our offers. Default 101.
    pub telephone_event_payload_type: u8,
    /// `o=` username. Default `-`.
    pub username: String,
    /// `s=` session name. Default `-`.
    pub session_name: String,
    /// Bounds for peer SDP bodies given as bytes ([`MediaSession::answer_body`]).
    pub limits: ParseLimits,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            codecs: vec![
                Codec::Opus(Channels::Mono),
                Codec::G722,
                Codec::Pcmu,
                Codec::Pcma,
            ],
            srtp_suites: SrtpSuite::ALL.to_vec(),
            require_srtp: false,
            srtp_on_avp: true,
            offer_srtp: true,
            telephone_event: true,
            rtcp_mux: true,
            ptime: 20,
            opus_stereo: false,
            opus_max_playback_rate: None,
            opus_payload_type: 111,
            telephone_event_payload_type: 101,
            username: "-".into(),
            session_name: "-".into(),
            limits: ParseLimits::default(),
        }
    }
}

/// A [`MediaConfig`] that cannot work (local configuration error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No codecs configured.
    #[error("no codecs configured")]
    NoCodecs,
    /// A dynamic payload type outside 96–127 (RFC 3551 §3).
    #[error("dynamic payload type {0} is outside 96-127")]
    DynamicPayloadType(u8),
    /// Opus and telephone-event configured with the same payload type.
    #[error("Opus and telephone-event both use payload type {0}")]
    PayloadTypeClash(u8),
    /// A packetisation time outside 10–120 ms.
    #[error("ptime {0} ms is outside 10-120")]
    Ptime(u32),
    /// SRTP required with no suite enabled.
    #[error("SRTP is required but no SRTP suite is enabled")]
    SrtpRequiredWithoutSuites,
}

impl MediaConfig {
    /// Checks the configuration once, when it is loaded.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.codecs.is_empty() {
            return Err(ConfigError::NoCodecs);
        }
        for pt in [self.opus_payload_type, self.telephone_event_payload_type] {
            if !(96..=127).contains(&pt) {
                return Err(ConfigError::DynamicPayloadType(pt));
            }
        }
        if self.telephone_event
            && self.opus_payload_type == self.telephone_event_payload_type
            && self.codecs.iter().any(|c| matches!(c, Codec::Opus(_)))
        {
            return Err(ConfigError::PayloadTypeClash(self.opus_payload_type));
        }
        if !(10..=120).contains(&self.ptime) {
            return Err(ConfigError::Ptime(self.ptime));
        }
        if self.require_srtp && self.srtp_suites.is_empty() {
            return Err(ConfigError::SrtpRequiredWithoutSuites);
        }
        Ok(())
    }
}

/// Where we receive media: the address and ports put in our SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTransport {
    /// Address for `c=` and `o=`.
    pub address: IpAddr,
    /// RTP port.
    pub rtp_port: u16,
    /// RTCP port when not multiplexed; `None` means RTP port + 1 (RFC 3550 §11).
    pub rtcp_port: Option<u16>,
}

/// A host in SDP: a literal address or a name the caller has to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A literal IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A fully qualified domain name (RFC 8866 §5.7 allows one).
    Name(String),
}

/// A host and port, e.g. where to send RTP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransportAddress {
    /// Host.
    pub host: Host,
    /// UDP port.
    pub port: u16,
}

impl TransportAddress {
    /// The socket address when the host is a literal address.
    #[must_use]
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }

    fn from_connection(c: &Connection, port: u16) -> Self {
        let host = match c.ip() {
            Some(ip) => Host::Ip(ip),
            None => Host::Name(c.host().to_owned()),
        };
        Self { host, port }
    }
}

impl fmt::Display for TransportAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(ip) => write!(f, "{ip}:{}", self.port),
            Host::Name(n) => write!(f, "{n}:{}", self.port),
        }
    }
}

/// Opus parameters of the negotiated stream (RFC 7587 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusParams {
    /// The peer decodes in-band FEC (`useinbandfec=1` in its SDP): encode with FEC.
    pub remote_fec: bool,
    /// The peer prefers to receive stereo (`stereo=1`).
    pub remote_stereo: bool,
    /// The peer's `maxplaybackrate`: no point encoding a wider band than this.
    pub max_playback_rate: Option<u32>,
    /// The peer's `maxaveragebitrate` in bit/s.
    pub max_average_bitrate: Option<u32>,
    /// The peer asks for constant bitrate (`cbr=1`).
    pub cbr: bool,
    /// The peer asks for DTX (`usedtx=1`).
    pub dtx: bool,
}

impl OpusParams {
    fn from_fmtp(p: &FormatParams) -> Self {
        Self {
            remote_fec: p.get_flag("useinbandfec").unwrap_or(false),
            remote_stereo: p.get_flag("stereo").unwrap_or(false),
            max_playback_rate: p.get_u32("maxplaybackrate"),
            max_average_bitrate: p.get_u32("maxaveragebitrate"),
            cbr: p.get_flag("cbr").unwrap_or(false),
            dtx: p.get_flag("usedtx").unwrap_or(false),
        }
    }
}

/// The negotiated RFC 4733 `telephone-event` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Payload type for events we send.
    pub payload_type: u8,
    /// Payload type for events we receive (equal to `payload_type` unless the answer to
    /// our offer renumbered it).
    pub recv_payload_type: u8,
    /// RTP clock rate, 8000 or 48000.
    pub clock_rate: u32,
    /// The event list of the peer's `a=fmtp` (e.g. `0-16`); `None` means 0–15.
    pub events: Option<String>,
}

/// SRTP keys of the negotiated stream (RFC 4568 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The suite.
    pub suite: SrtpSuite,
    /// The `a=crypto` tag of the offer line chosen.
    pub tag: u32,
    /// The peer's key: decrypts what the peer sends.
    pub remote: SrtpKeyMaterial,
    /// Our key: encrypts what we send.
    pub local: SrtpKeyMaterial,
    /// Settings for the receiving context (honours the peer's `WSH`).
    pub remote_config: SrtpConfig,
}

/// Everything the media engine needs to run the negotiated audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedAudio {
    /// Index of the audio `m=` section in the offer and answer.
    pub media_index: usize,
    /// The codec.
    pub codec: Codec,
    /// Payload type for media we send.
    pub payload_type: u8,
    /// Payload type for media we receive (equal to `payload_type` when we answered).
    pub recv_payload_type: u8,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count of the `a=rtpmap` (2 for Opus, RFC 7587 §7).
    pub channels: u8,
    /// The peer's `a=fmtp` parameters for the codec (what it wants to receive).
    pub format_params: FormatParams,
    /// Opus details when the codec is Opus.
    pub opus: Option<OpusParams>,
    /// Telephone events, if negotiated.
    pub telephone_event: Option<TelephoneEvent>,
    /// Where to send RTP.
    pub remote_rtp: TransportAddress,
    /// Where to send RTCP; `None` when muxed or when the port cannot be derived.
    pub remote_rtcp: Option<TransportAddress>,
    /// RTP and RTCP share one port (RFC 5761).
    pub rtcp_mux: bool,
    /// Our direction: whether we send and whether we expect to receive.
    pub direction: Direction,
    /// SRTP keys, or `None` for plain RTP.
    pub srtp: Option<SrtpKeys>,
    /// Packetisation time we send, in ms.
    pub ptime: u32,
    /// The peer's `a=ptime`, if given.
    pub remote_ptime: Option<u32>,
}

/// Result of [`MediaSession::answer`]: the negotiated stream and the answer to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The negotiated audio stream.
    pub audio: NegotiatedAudio,
    /// The answer SDP (contains our SRTP key: protected signalling only, never logged).
    pub sdp: SessionDescription,
}

/// Our outstanding offer.
#[derive(Debug, Clone)]
struct PendingOffer {
    sdp: SessionDescription,
    /// Codec and payload type, in offer order.
    codecs: Vec<(Codec, u8)>,
    telephone_event: Option<u8>,
    crypto: Vec<CryptoAttribute>,
    rtcp_mux: bool,
}

/// The SDP side of one call leg: answers offers and makes them, across re-offers.
#[derive(Debug, Clone)]
pub struct MediaSession {
    config: MediaConfig,
    local: LocalTransport,
    session_id: u64,
    version: u64,
    last_local: Option<SessionDescription>,
    /// (suite, peer key, our key) of the current SRTP stream.
    current_keys: Option<(SrtpSuite, SrtpKeyMaterial, SrtpKeyMaterial)>,
    pending: Option<PendingOffer>,
    local_direction: Direction,
    current: Option<NegotiatedAudio>,
}

/// A codec the peer offered, with the payload type and the rtpmap it was described by.
struct Offered {
    payload_type: u8,
    map: Option<RtpMap>,
}

fn codec_kind_eq(a: Codec, b: Codec) -> bool {
    match (a, b) {
        (Codec::Opus(_), Codec::Opus(_)) => true,
        (a, b) => a == b,
    }
}

fn codec_of(map: &RtpMap) -> Option<Codec> {
    let channels = match map.channels {
        // RFC 7587 §7 says opus/48000/2; some stacks omit the channel count.
        None if map.encoding.eq_ignore_ascii_case("opus") => Some(2),
        c => c,
    };
    Codec::from_rtpmap(&map.encoding, map.clock_rate, channels)
}

/// The formats of an `m=` line with their rtpmaps. Each payload type counts once and
/// rtpmaps are read in one pass, so a hostile line with thousands of formats and
/// attributes costs linear time.
fn offered_formats(m: &MediaDescription) -> Vec<Offered> {
    let mut maps: Vec<Option<RtpMap>> = vec![None; 128];
    for map in m.attributes_named("rtpmap").filter_map(RtpMap::parse) {
        if let Some(slot) = maps.get_mut(usize::from(map.payload_type))
            && slot.is_none()
        {
            *slot = Some(map);
        }
    }
    let mut seen = [false; 128];
    let mut out = Vec::new();
    for pt in m.formats.iter().filter_map(|f| parse_payload_type(f)) {
        let i = usize::from(pt);
        match seen.get_mut(i) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        let map = maps
            .get_mut(i)
            .and_then(Option::take)
            .or_else(|| RtpMap::from_static(pt));
        out.push(Offered {
            payload_type: pt,
            map,
        });
    }
    out
}

/// Transport profiles we speak (RFC 3551, RFC 3711, RFC 4585, RFC 5124).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Avp,
    Savp,
}

fn profile_of(proto: &str) -> Option<Profile> {
    let p = proto.to_ascii_uppercase();
    match p.as_str() {
        "RTP/AVP" | "RTP/AVPF" => Some(Profile::Avp),
        "RTP/SAVP" | "RTP/SAVPF" => Some(Profile::Savp),
        _ => None,
    }
}

fn crypto_line_parts(value: &str) -> (Option<u32>, String) {
    let mut f = value.split_ascii_whitespace();
    let tag = f.next().and_then(|t| {
        (t.len() <= 9 && !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    });
    let suite: String = f.next().unwrap_or("").chars().take(40).collect();
    (tag, suite)
}

impl MediaSession {
    /// A session that will put `local` in its SDP, with `o=` session id `session_id`
    /// (RFC 8866 §5.2 suggests an NTP timestamp; any number unique to the leg will do).
    #[must_use]
    pub fn new(config: MediaConfig, local: LocalTransport, session_id: u64) -> Self {
        Self {
            config,
            local,
            session_id,
            version: session_id,
            last_local: None,
            current_keys: None,
            pending: None,
            local_direction: Direction::SendRecv,
            current: None,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &MediaConfig {
        &self.config
    }

    /// The most recently negotiated stream, if any.
    #[must_use]
    pub fn current(&self) -> Option<&NegotiatedAudio> {
        self.current.as_ref()
    }

    /// The last SDP we sent (offer or answer).
    #[must_use]
    pub fn last_local_sdp(&self) -> Option<&SessionDescription> {
        self.last_local.as_ref()
    }

    /// Whether an offer of ours awaits its answer.
    #[must_use]
    pub fn has_pending_offer(&self) -> bool {
        self.pending.is_some()
    }

    /// Sets what we are willing to do from now on, e.g. [`Direction::SendOnly`] to put the
    /// peer on hold in our next offer (RFC 3264 §8.4); answers are limited by it too.
    pub fn set_local_direction(&mut self, direction: Direction) {
        self.local_direction = direction;
    }

    /// Changes where we receive media (e.g. after re-allocating ports); applies to the next
    /// offer or answer.
    pub fn set_local_transport(&mut self, local: LocalTransport) {
        self.local = local;
    }

    /// Forgets an outstanding offer (e.g. the INVITE carrying it failed, or glare).
    pub fn cancel_offer(&mut self) {
        self.pending = None;
    }

    fn rtcp_port(&self) -> Option<u16> {
        self.local
            .rtcp_port
            .or_else(|| self.local.rtp_port.checked_add(1))
    }

    fn accepted_codec_names(&self) -> Vec<&'static str> {
        self.config.codecs.iter().map(|c| c.name()).collect()
    }

    fn accepted_suite_names(&self) -> Vec<&'static str> {
        self.config.srtp_suites.iter().map(|s| s.name()).collect()
    }

    /// Wraps media sections in session-level lines and sets `o=`: the version goes up
    /// only if the description differs from the last one we sent (RFC 3264 §8).
    fn finish_local(&mut self, media: Vec<MediaDescription>, timing: Timing) -> SessionDescription {
        let origin = Origin {
            username: self.config.username.clone(),
            session_id: self.session_id,
            session_version: self.version,
            net_type: "IN".into(),
            addr_type: AddrType::for_ip(self.local.address),
            address: self.local.address.to_string(),
        };
        let mut sdp = SessionDescription::new(origin);
        sdp.session_name.clone_from(&self.config.session_name);
        sdp.connection = Some(Connection::for_ip(self.local.address));
        sdp.timings = vec![timing];
        sdp.media = media;
        if let Some(last) = &self.last_local {
            let mut same = last.clone();
            same.origin.session_version = sdp.origin.session_version;
            if same != sdp {
                self.version = self.version.wrapping_add(1);
                sdp.origin.session_version = self.version;
            }
        }
        self.last_local = Some(sdp.clone());
        sdp
    }

    // ---------------------------------------------------------------- answerer

    /// Parses an offer body (within [`MediaConfig::limits`]) and [`answer`](Self::answer)s
    /// it; either failure maps to a SIP status and Warning through [`SdpError`].
    pub fn answer_body(&mut self, body: &[u8]) -> Result<Answer, SdpError> {
        let offer = SessionDescription::parse_with_limits(body, &self.config.limits)?;
        Ok(self.answer(&offer)?)
    }

    /// Parses an answer body and [`accept_answer`](Self::accept_answer)s it.
    pub fn accept_answer_body(&mut self, body: &[u8]) -> Result<NegotiatedAudio, SdpError> {
        let answer = match SessionDescription::parse_with_limits(body, &self.config.limits) {
            Ok(a) => a,
            Err(e) => {
                // The offer is answered, badly: it is no longer outstanding.
                self.pending = None;
                return Err(e.into());
            }
        };
        Ok(self.accept_answer(&answer)?)
    }
}

/// What [`MediaSession::choose_audio`] picked for one offered stream.
struct AudioChoice {
    codec: Codec,
    payload_type: u8,
    map: RtpMap,
    format_params: FormatParams,
    telephone_event: Option<(RtpMap, Option<String>)>,
    crypto: Option<(CryptoAttribute, SrtpKeyMaterial)>,
    remote_rtp: TransportAddress,
    remote_rtcp: Option<TransportAddress>,
    rtcp_mux: bool,
    direction: Direction,
    remote_ptime: Option<u32>,
}

/// RTP and RTCP destinations, rtcp-mux and the peer's direction for stream `index`.
/// `c=0.0.0.0` is the RFC 2543 hold form: the peer does not want media (RFC 3264 §8.4).
fn remote_addresses(
    sdp: &SessionDescription,
    index: usize,
) -> Result<(TransportAddress, Option<TransportAddress>, bool, Direction), AnswerError> {
    let m = sdp.media.get(index).ok_or(AnswerError::NoAudio)?;
    let conn = sdp
        .connection_for(index)
        .ok_or(AnswerError::NoConnectionAddress)?;
    let rtp = TransportAddress::from_connection(conn, m.port);
    let mut direction = Direction::of_media(sdp, index);
    if conn.is_unspecified() {
        direction = direction.intersect(Direction::SendOnly);
    }
    // RFC 3605: a=rtcp; otherwise the next port up (RFC 3550 §11).
    let rtcp = match m.rtcp() {
        Some(RtcpAttribute {
            port,
            connection: Some(c),
        }) => Some(TransportAddress::from_connection(&c, port)),
        Some(RtcpAttribute {
            port,
            connection: None,
        }) => Some(TransportAddress {
            host: rtp.host.clone(),
            port,
        }),
        None => m.port.checked_add(1).map(|port| TransportAddress {
            host: rtp.host.clone(),
            port,
        }),
    };
    Ok((rtp, rtcp, m.rtcp_mux(), direction))
}

/// Peer-supplied names in our texts: printable, bounded.
fn sanitize_token(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(40)
        .collect::<String>()
}
