//! Domain model and policy: voice connectors, termination, origination, meetings, attendees, join tokens.
#![forbid(unsafe_code)]
