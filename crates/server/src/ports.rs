//! The RTP port pool: RTP/RTCP pairs from `--rtp-ports`, bound on the media address.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use sip::Peer;
use tokio::net::UdpSocket;

/// Hands out RTP/RTCP port pairs from the configured range, first in first out: a released
/// pair goes to the back, so a port is reused as late as possible (stale packets of an old
/// call rarely reach a new one), and a pair another program holds is retried later instead
/// of being lost. Its lock guards the free list only, for a push or a pop.
pub struct PortPool {
    free: Mutex<VecDeque<u16>>,
}

impl PortPool {
    pub fn new(lo: u16, hi: u16) -> Self {
        let start = lo + (lo % 2);
        let free = (start..hi).step_by(2).collect();
        PortPool {
            free: Mutex::new(free),
        }
    }

    fn take(&self) -> Option<u16> {
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// Returns a pair (its sockets must be closed).
    pub fn give_back(&self, port: u16) {
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(port);
    }

    pub fn available(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Binds an RTP/RTCP pair, trying further pairs when one is held by another program
    /// (those go back to the pool, to be tried again later).
    pub async fn bind_pair(&self) -> Option<(u16, UdpSocket, UdpSocket)> {
        let mut busy = Vec::new();
        let mut found = None;
        for _ in 0..16 {
            let Some(port) = self.take() else { break };
            let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
            match (
                UdpSocket::bind((any, port)).await,
                UdpSocket::bind((any, port + 1)).await,
            ) {
                (Ok(a), Ok(b)) => {
                    found = Some((port, a, b));
                    break;
                }
                _ => {
                    tracing::debug!(
                        port,
                        "RTP port pair is held by another program; trying the next"
                    );
                    busy.push(port);
                }
            }
        }
        for port in busy {
            self.give_back(port);
        }
        if found.is_none() {
            tracing::warn!("no RTP port pair could be bound");
        }
        found
    }
}

/// The address to write into SDP: `--media-ip`, else the address the SIP request arrived
/// on, else the local address that routes to the caller.
pub async fn media_address(configured: Option<IpAddr>, peer: &Peer) -> IpAddr {
    if let Some(ip) = configured {
        return ip;
    }
    if !peer.local.ip().is_unspecified() {
        return peer.local.ip();
    }
    if let Ok(s) = UdpSocket::bind((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)).await
        && s.connect(peer.remote).await.is_ok()
        && let Ok(a) = s.local_addr()
    {
        return a.ip();
    }
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}
