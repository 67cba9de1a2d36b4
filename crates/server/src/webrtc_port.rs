//! The one UDP port every WebRTC leg shares, and the routing of its datagrams to legs.
//!
//! Browsers reach all WebRTC legs of this server on one host candidate (one address and
//! port), so a firewall needs one rule. A reader task receives every datagram and routes
//! it by source address; a datagram from an address not seen yet must be a STUN binding
//! request, routed by the ICE username fragment we put in that leg's SDP answer
//! (`engine::webrtc::stun_local_ufrag`, RFC 8445 §7.2.2), after which its address is
//! known. Everything else from unknown addresses is dropped. The meeting's task owns the
//! leg (str0m inside `engine::MeetingMedia`) and sends its datagrams from the same socket.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use engine::LegId;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::meeting::MeetingMsg;

/// Most source addresses remembered per leg (ICE may try a few candidate pairs).
const MAX_ADDRS_PER_LEG: usize = 8;

#[derive(Clone)]
struct Route {
    meeting: mpsc::Sender<MeetingMsg>,
    leg: LegId,
    key: u64,
}

#[derive(Default)]
struct Routes {
    by_ufrag: HashMap<String, Route>,
    by_addr: HashMap<SocketAddr, Route>,
    /// Per route key: its ufrag and the addresses learnt, for removal.
    owned: HashMap<u64, (String, Vec<SocketAddr>)>,
    next_key: u64,
}

/// The shared WebRTC socket and its routing table.
pub struct WebRtcPort {
    socket: Arc<UdpSocket>,
    /// The address written into SDP answers (the ICE host candidate).
    advertised_ip: Option<IpAddr>,
    routes: Mutex<Routes>,
}

impl WebRtcPort {
    /// Binds the shared socket. `advertised_ip` is `--media-ip`; without it the candidate
    /// uses the bound address, or the local address that routes to the browser.
    pub async fn bind(
        addr: SocketAddr,
        advertised_ip: Option<IpAddr>,
    ) -> std::io::Result<Arc<Self>> {
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        Ok(Arc::new(WebRtcPort {
            socket,
            advertised_ip,
            routes: Mutex::new(Routes::default()),
        }))
    }

    pub fn socket(&self) -> Arc<UdpSocket> {
        self.socket.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The host candidate for a browser connecting from `browser_ip`.
    pub async fn candidate_for(&self, browser_ip: Option<IpAddr>) -> SocketAddr {
        let local = self
            .socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        if let Some(ip) = self.advertised_ip {
            return SocketAddr::new(ip, local.port());
        }
        if !local.ip().is_unspecified() {
            return local;
        }
        if let Some(remote) = browser_ip
            && let Ok(s) = UdpSocket::bind(SocketAddr::new(
                if remote.is_ipv4() {
                    IpAddr::from([0, 0, 0, 0])
                } else {
                    IpAddr::from([0u16; 8])
                },
                0,
            ))
            .await
            && s.connect(SocketAddr::new(remote, 9)).await.is_ok()
            && let Ok(a) = s.local_addr()
        {
            return SocketAddr::new(a.ip(), local.port());
        }
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), local.port())
    }

    /// Routes datagrams whose STUN username names `ufrag` (and their source addresses
    /// afterwards) to `leg` of the meeting behind `meeting`. Returns the key for
    /// [`remove`](Self::remove).
    pub(crate) fn add(&self, ufrag: &str, meeting: mpsc::Sender<MeetingMsg>, leg: LegId) -> u64 {
        let mut r = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        r.next_key += 1;
        let key = r.next_key;
        r.by_ufrag
            .insert(ufrag.to_string(), Route { meeting, leg, key });
        r.owned.insert(key, (ufrag.to_string(), Vec::new()));
        key
    }

    /// After an ICE restart: STUN requests naming `ufrag` route to the leg of `key`, the
    /// old ufrag no longer does, and the addresses learnt stay routed.
    pub fn set_ufrag(&self, key: u64, ufrag: &str) {
        let mut r = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(old) = r.owned.get(&key).map(|o| o.0.clone()) else {
            return;
        };
        if old == ufrag {
            return;
        }
        let Some(route) = r.by_ufrag.get(&old).filter(|x| x.key == key).cloned() else {
            return;
        };
        r.by_ufrag.remove(&old);
        r.by_ufrag.insert(ufrag.to_string(), route);
        if let Some(o) = r.owned.get_mut(&key) {
            o.0 = ufrag.to_string();
        }
    }

    /// Forgets a leg's routes.
    pub fn remove(&self, key: u64) {
        let mut r = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((ufrag, addrs)) = r.owned.remove(&key) {
            if r.by_ufrag.get(&ufrag).is_some_and(|x| x.key == key) {
                r.by_ufrag.remove(&ufrag);
            }
            for a in addrs {
                if r.by_addr.get(&a).is_some_and(|x| x.key == key) {
                    r.by_addr.remove(&a);
                }
            }
        }
    }

    /// Legs routed now (for tests and metrics).
    pub fn routed_legs(&self) -> usize {
        self.routes.lock().map(|r| r.owned.len()).unwrap_or(0)
    }

    fn route(&self, from: SocketAddr, data: &[u8]) -> Option<Route> {
        let mut r = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let ufrag = engine::webrtc::stun_local_ufrag(data);
        if let Some(route) = r.by_addr.get(&from) {
            // A STUN request naming another leg from a known address (a browser that
            // reconnected from the same port) moves the address to that leg.
            match ufrag.and_then(|u| r.by_ufrag.get(u)) {
                Some(other) if other.key != route.key => {}
                _ => return Some(route.clone()),
            }
        }
        let route = r.by_ufrag.get(ufrag?)?.clone();
        let learnt = r.owned.get_mut(&route.key)?;
        if learnt.1.len() >= MAX_ADDRS_PER_LEG {
            return Some(route);
        }
        learnt.1.push(from);
        r.by_addr.insert(from, route.clone());
        Some(route)
    }

    /// Receives forever, handing each datagram to its leg's meeting.
    pub async fn run(self: Arc<Self>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let (n, from) = match self.socket.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    // ICMP port unreachable and the like surface here on some systems.
                    tracing::debug!(error = %e, "WebRTC socket receive error");
                    continue;
                }
            };
            let Some(data) = buf.get(..n) else { continue };
            let Some(route) = self.route(from, data) else {
                continue;
            };
            let msg = MeetingMsg::Packet {
                leg: route.leg,
                from,
                data: data.to_vec(),
            };
            if let Err(mpsc::error::TrySendError::Closed(_)) = route.meeting.try_send(msg) {
                self.remove(route.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attr = vec![0x00, 0x06];
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[9; 12]);
        m.extend_from_slice(&attr);
        m
    }

    async fn next_packet(rx: &mut mpsc::Receiver<MeetingMsg>) -> Option<(LegId, SocketAddr)> {
        let msg = tokio::time::timeout(std::time::Duration::from_millis(300), rx.recv())
            .await
            .ok()??;
        match msg {
            MeetingMsg::Packet { leg, from, .. } => Some((leg, from)),
            _ => None,
        }
    }

    #[tokio::test]
    async fn datagrams_are_routed_by_ufrag_then_by_source_address() {
        let (port, server, legs) = running_port(2).await;
        let (leg_a, leg_b) = (legs[0], legs[1]);
        let (tx, mut rx) = mpsc::channel(16);
        let key_a = port.add("ufragA", tx.clone(), leg_a);
        port.add("ufragB", tx, leg_b);
        let browser = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let from = browser.local_addr().expect("addr");

        // Unknown address, not STUN: dropped.
        browser.send_to(&[0x80; 40], server).await.expect("send");
        assert_eq!(next_packet(&mut rx).await, None);
        // STUN naming an unknown ufrag: dropped.
        browser
            .send_to(&binding_request("nobody:x"), server)
            .await
            .expect("send");
        assert_eq!(next_packet(&mut rx).await, None);
        // STUN naming leg A's ufrag: routed, and the address is learnt.
        browser
            .send_to(&binding_request("ufragA:browser"), server)
            .await
            .expect("send");
        assert_eq!(next_packet(&mut rx).await, Some((leg_a, from)));
        browser.send_to(&[0x80; 40], server).await.expect("send");
        assert_eq!(next_packet(&mut rx).await, Some((leg_a, from)));
        // The same address checking leg B's ufrag (a reconnect) moves to leg B.
        browser
            .send_to(&binding_request("ufragB:browser"), server)
            .await
            .expect("send");
        assert_eq!(next_packet(&mut rx).await, Some((leg_b, from)));
        assert_eq!(port.routed_legs(), 2);
        port.remove(key_a);
        assert_eq!(port.routed_legs(), 1);
        browser
            .send_to(&binding_request("ufragA:browser"), server)
            .await
            .expect("send");
        assert_eq!(
            next_packet(&mut rx).await.map(|p| p.0),
            Some(leg_b),
            "A is gone; the address stays B's"
        );
    }

    #[tokio::test]
    async fn after_an_ice_restart_the_new_ufrag_routes_to_the_same_leg() {
        let (port, server, legs) = running_port(1).await;
        let leg = legs[0];
        let (tx, mut rx) = mpsc::channel(16);
        let key = port.add("before", tx, leg);
        port.set_ufrag(key, "after");
        // A browser on a new address (its restart found another path).
        let browser = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let from = browser.local_addr().expect("addr");
        browser
            .send_to(&binding_request("before:browser"), server)
            .await
            .expect("send");
        assert_eq!(
            next_packet(&mut rx).await,
            None,
            "the old ufrag routes no more"
        );
        browser
            .send_to(&binding_request("after:browser"), server)
            .await
            .expect("send");
        assert_eq!(next_packet(&mut rx).await, Some((leg, from)));
        assert_eq!(port.routed_legs(), 1);
        port.remove(key);
        assert_eq!(port.routed_legs(), 0);
    }

    /// A port with its reader running, its address, and `n` real legs of one meeting
    /// (for their ids).
    async fn running_port(n: usize) -> (Arc<WebRtcPort>, SocketAddr, Vec<LegId>) {
        let port = WebRtcPort::bind("127.0.0.1:0".parse().expect("addr"), None)
            .await
            .expect("bind");
        let server = port.local_addr().expect("addr");
        tokio::spawn(port.clone().run());
        let now = std::time::Instant::now();
        let mut media = MeetingMedia::new(
            now,
            std::time::Duration::from_secs(1_800_000_000),
            engine::EngineConfig::default(),
            7,
        );
        let legs = (0..n)
            .map(|_| media.add_leg(now, test_leg()).expect("leg"))
            .collect();
        (port, server, legs)
    }

    fn test_leg() -> engine::LegConfig {
        engine::LegConfig {
            codec: codec::Codec::Pcmu,
            payload_type: 0,
            dtmf_payload_type: None,
            dtmf_out: None,
            remote_ptime: None,
            srtp: None,
            remote_rtp: None,
            remote_rtcp: None,
            rtcp_mux: true,
            direction: engine::Direction::SENDRECV,
            muted: false,
            dtx: false,
        }
    }

    use engine::MeetingMedia;
}
