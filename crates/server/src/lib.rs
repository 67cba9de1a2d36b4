//! The `voice-connector` server as a library: configuration, the tokio drivers for the API
//! and the SIP edge, and the wiring between the sans-IO crates. `main.rs` only parses the
//! command line and calls in here, so tests can drive the same code.

pub mod config;
pub mod media;
pub mod offer;
pub mod router;
pub mod secrets;
pub mod serve;
pub mod signaling;
pub mod sip_edge;
pub mod siplog;
pub mod webrtc;
