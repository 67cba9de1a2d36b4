//! The SIP edge: binds UDP, TCP and TLS listeners (crate `sip-transport`), runs the sans-IO
//! transaction layer (crate `sip`) and hands requests to the application.
