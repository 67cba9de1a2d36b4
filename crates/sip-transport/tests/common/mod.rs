//! Helpers shared by the integration tests (real sockets on 127.0.0.1, port 0).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use sip_transport::{Inbound, Limits, TransportConfig, Transports};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// Upper bound for waiting on an event that must happen; a hang fails instead of blocking.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn config() -> TransportConfig {
    TransportConfig::new(loopback())
}

pub async fn bind(config: TransportConfig) -> (Transports, mpsc::Receiver<Inbound>) {
    Transports::bind(config).await.expect("bind")
}

pub async fn bind_with(limits: Limits) -> (Transports, mpsc::Receiver<Inbound>) {
    let mut c = config();
    c.limits = limits;
    bind(c).await
}

/// A request with a body and a correct Content-Length.
pub fn request(method: &str, n: u32, body: &str) -> Vec<u8> {
    format!(
        "{method} sip:+17035550122@vc.example SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:a@example>;tag=1\r\n\
         To: <sip:b@example>\r\n\
         Call-ID: {n}@test\r\n\
         CSeq: {n} {method}\r\n\
         Content-Length: {}\r\n\
         \r\n\
         {body}",
        body.len()
    )
    .into_bytes()
}

pub fn response(n: u32) -> Vec<u8> {
    format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK{n}\r\nCSeq: {n} OPTIONS\r\nl: 0\r\n\r\n"
    )
    .into_bytes()
}

pub async fn recv(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("no inbound message in time")
        .expect("inbound channel closed")
}

/// Reads until the peer closes; returns everything read. Fails if it stays open.
pub async fn read_to_close<R: AsyncReadExt + Unpin>(r: &mut R) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, r.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection stayed open"),
        }
    }
}

/// Reads exactly `n` bytes.
pub async fn read_exact<R: AsyncReadExt + Unpin>(r: &mut R, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(PATIENCE, r.read_exact(&mut buf))
        .await
        .expect("read in time")
        .expect("read");
    buf
}
