//! The `voice-connector` server as a library: configuration, the tokio drivers around the
//! sans-IO crates, and their wiring. `main.rs` only parses the command line and calls in
//! here, so tests can drive the same code.
//!
//! Drivers, each in its own module, none importing one that imports it back:
//! - [`edge`]: the SIP edge task, owning the `sip::UserAgent` and the `calls::CallTable`;
//! - [`meeting`]: one task per meeting, owning its media, roster and browsers, found
//!   through [`directory`];
//! - [`records`]: the call-record writer;
//! - [`ports`]: the RTP port pool;
//! - [`media_metrics`]: the media-metrics writer;
//! - [`sweeps`]: deletions ending calls (reconciled with the store), meeting auto-end,
//!   call-record retention;
//! - [`signaling`] and [`browser`]: browser attendees' WebSocket sessions and legs, with
//!   [`webrtc_port`], the UDP port all WebRTC legs share.

pub mod admin;
pub mod admin_functions;
pub mod admission;
pub mod browser;
pub mod cdr_export;
pub mod cluster;
pub mod config;
pub mod console;
pub mod console_calls;
pub mod console_carriers;
pub mod console_sip;
pub mod directory;
pub mod edge;
pub mod http;
pub mod media_metrics;
pub mod meeting;
pub mod offer;
pub mod ports;
pub mod records;
pub mod secrets;
pub mod serve;
pub mod signaling;
pub mod siplog;
pub mod sma;
pub mod streaming;
pub mod sweeps;
pub mod webrtc_port;
