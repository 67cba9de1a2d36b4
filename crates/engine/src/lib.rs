//! Call state machine: SIP dialog, media session and meeting (sans-IO).
#![forbid(unsafe_code)]
