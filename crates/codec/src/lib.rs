//! G.711, G.722, Opus, resampling, RFC 4733 telephone-event.
#![forbid(unsafe_code)]
