//! SDP model, parse/print, offer/answer, codec and SDES crypto selection (sans-IO).
#![forbid(unsafe_code)]
