//! Per-meeting N-1 mixer on 20 ms ticks (sans-IO).
#![forbid(unsafe_code)]
