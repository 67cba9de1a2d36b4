//! SIP over UDP, TCP and TLS on tokio; development CA and certificates.
