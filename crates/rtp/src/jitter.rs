//! Adaptive per-stream jitter buffer (sans-IO).
