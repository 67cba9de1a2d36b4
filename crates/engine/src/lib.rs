//! The media side of a meeting, sans-IO: every leg's SRTP, RTP framing, symmetric-RTP
//! latching, inactivity detection, DTMF and statistics around one [`mixer::Mixer`].
//!
//! The driver (the server's tokio code) owns the sockets. It passes each received datagram to
//! [`MeetingMedia::handle_packet`] with the time and source address, calls
//! [`MeetingMedia::handle_timeout`] at [`MeetingMedia::poll_timeout`], and sends what
//! [`MeetingMedia::poll_transmit`] yields. Events (DTMF, inactivity, active speakers) come out
//! of [`MeetingMedia::poll_event`].
//!
//! The path of one RTP packet: socket → `handle_packet` (SRTP unprotect, RFC 3711 §3.3;
//! only from the address the SDP named, or latched once with `EngineConfig::media_latch`; RFC 4733 events split off) → the mixer's jitter
//! buffer → decode, mix N-1 every 20 ms → encode → `poll_transmit` (RTP header with this
//! leg's SSRC, sequence and timestamp, RFC 3550 §5.1; SRTP protect) → socket.
//!
//! A browser attendee is a WebRTC leg ([`MeetingMedia::add_webrtc_leg`], [`webrtc`]):
//! str0m does ICE-lite, DTLS-SRTP and RTP for it; its Opus goes into the same mixer and it
//! hears the N-1 mix as one continuous stream of 20 ms Opus frames. Its datagrams use the
//! same `handle_packet` / `poll_transmit` path as any leg.
//!
//! A SIP media application's call is a leg alone in its meeting: [`MeetingMedia::play`]
//! plays it a [`Prompt`] (also to one leg among others: only that leg hears it), and
//! [`MeetingMedia::set_tap`] hands its audio both ways to the application for recording.
#![forbid(unsafe_code)]

mod leg;
mod meeting;
pub mod webrtc;

pub use leg::{Direction, DtmfFormat, LegConfig, LegId, LegStats, SrtpKeys, Transmit};
pub use meeting::{
    EngineConfig, EngineError, EngineEvent, MAX_AUDIO, MeetingMedia, Prompt, TapTrack, WebRtcAnswer,
};
