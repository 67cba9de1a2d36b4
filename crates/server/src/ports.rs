//! The RTP port pool: RTP/RTCP pairs from `--rtp-ports`, bound on `--media-ip` when set.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use sip::Peer;
use tokio::net::UdpSocket;

/// How long a released pair rests before it may be drawn again (unless nothing else is
/// left): stale packets of an old call then rarely reach a new one.
const COOLDOWN: Duration = Duration::from_secs(60);

/// Hands out RTP/RTCP port pairs from the configured range, each drawn at random from the
/// free pairs, so that a third party cannot predict a call's port from the last one it
/// saw. A released pair cools down first: it is drawn again only after [`COOLDOWN`], or
/// earlier, oldest first, when every other pair is taken. A pair another program holds
/// cools down the same way and is retried later instead of being lost. Its lock guards the
/// lists only, for one draw or one release.
pub struct PortPool {
    pairs: Mutex<Pairs>,
    /// `--media-ip` turned out not to be an address of this host (a public address in
    /// front of 1:1 NAT, as on EC2): pairs are bound on the unspecified address instead.
    bind_unspecified: AtomicBool,
}

struct Pairs {
    /// Pairs to draw from at random.
    free: Vec<u16>,
    /// Released pairs, oldest first, with when each was released.
    cooling: VecDeque<(u16, Instant)>,
}

impl Pairs {
    fn take(&mut self, now: Instant, rng: &mut impl Rng) -> Option<u16> {
        while let Some(&(port, at)) = self.cooling.front()
            && now.saturating_duration_since(at) >= COOLDOWN
        {
            self.cooling.pop_front();
            self.free.push(port);
        }
        if self.free.is_empty() {
            return self.cooling.pop_front().map(|(port, _)| port);
        }
        let i = rng.random_range(0..self.free.len());
        Some(self.free.swap_remove(i))
    }

    fn give_back(&mut self, port: u16, now: Instant) {
        self.cooling.push_back((port, now));
    }
}

impl PortPool {
    pub fn new(lo: u16, hi: u16) -> Self {
        let start = lo + (lo % 2);
        let free = (start..hi).step_by(2).collect();
        PortPool {
            pairs: Mutex::new(Pairs {
                free,
                cooling: VecDeque::new(),
            }),
            bind_unspecified: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pairs> {
        self.pairs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Option<u16> {
        self.lock().take(Instant::now(), &mut rand::rng())
    }

    /// Returns a pair (its sockets must be closed).
    pub fn give_back(&self, port: u16) {
        self.lock().give_back(port, Instant::now());
    }

    pub fn available(&self) -> usize {
        let p = self.lock();
        p.free.len() + p.cooling.len()
    }

    /// Binds an RTP/RTCP pair on `ip` (`--media-ip`; the unspecified address when `None`
    /// or when it is not an address of this host), trying further pairs when one is held
    /// by another program (those go back to the pool, to be tried again later).
    pub async fn bind_pair(&self, ip: Option<IpAddr>) -> Option<(u16, UdpSocket, UdpSocket)> {
        let mut busy = Vec::new();
        let mut found = None;
        for _ in 0..16 {
            let Some(port) = self.take() else { break };
            let mut bound = bind_two(self.bind_ip(ip), port).await;
            if let (Some(ip), Err(e)) = (ip, &bound)
                && e.kind() == std::io::ErrorKind::AddrNotAvailable
            {
                if !self.bind_unspecified.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%ip, "--media-ip is not an address of this host (1:1 NAT?): RTP sockets bind on the unspecified address");
                }
                bound = bind_two(self.bind_ip(Some(ip)), port).await;
            }
            match bound {
                Ok((a, b)) => {
                    found = Some((port, a, b));
                    break;
                }
                Err(_) => {
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

    fn bind_ip(&self, ip: Option<IpAddr>) -> IpAddr {
        match ip {
            Some(ip) if !self.bind_unspecified.load(Ordering::Relaxed) => ip,
            Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

async fn bind_two(ip: IpAddr, port: u16) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let rtp = UdpSocket::bind((ip, port)).await?;
    let rtcp = UdpSocket::bind((ip, port + 1)).await?;
    Ok((rtp, rtcp))
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn pairs(lo: u16, hi: u16) -> Pairs {
        let pool = PortPool::new(lo, hi);
        pool.pairs.into_inner().expect("lock")
    }

    #[test]
    fn every_pair_once_in_no_predictable_order() {
        let mut p = pairs(20001, 22000);
        let mut rng = StdRng::seed_from_u64(14);
        let now = Instant::now();
        let mut got = Vec::new();
        while let Some(port) = p.take(now, &mut rng) {
            got.push(port);
        }
        let mut sorted = got.clone();
        sorted.sort_unstable();
        let expected: Vec<u16> = (20002..22000).step_by(2).collect();
        assert_eq!(
            sorted, expected,
            "even RTP ports, RTCP above, inside the range"
        );
        // Neither from the bottom nor in any order: consecutive draws are not neighbours.
        let neighbours = got.windows(2).filter(|w| w[0].abs_diff(w[1]) == 2).count();
        assert!(neighbours < got.len() / 20, "{neighbours} of {}", got.len());
        assert_ne!(&got[..8], &expected[..8]);
    }

    #[test]
    fn a_released_pair_rests_until_the_others_are_taken_or_it_cooled() {
        let mut p = pairs(30000, 30020);
        let mut rng = StdRng::seed_from_u64(1);
        let t0 = Instant::now();
        let first = p.take(t0, &mut rng).expect("a pair");
        p.give_back(first, t0);
        let others: Vec<u16> = (0..9)
            .map(|_| p.take(t0, &mut rng).expect("pair"))
            .collect();
        assert!(!others.contains(&first), "{first} in {others:?}");
        // Only the released one is left: taken although still cooling.
        assert_eq!(p.take(t0, &mut rng), Some(first));
        assert_eq!(p.take(t0, &mut rng), None);

        // Released ones come back oldest first while cooling ...
        let (a, b) = (others[0], others[1]);
        p.give_back(a, t0);
        p.give_back(b, t0 + Duration::from_secs(1));
        assert_eq!(p.take(t0 + Duration::from_secs(2), &mut rng), Some(a));
        // ... and join the random draw once cooled.
        p.give_back(a, t0 + Duration::from_secs(2));
        let later = t0 + Duration::from_secs(2) + COOLDOWN;
        assert_eq!(p.free.len(), 0);
        let drawn = p.take(later, &mut rng).expect("pair");
        assert!(drawn == a || drawn == b);
        assert_eq!(p.cooling.len(), 0, "both cooled into the free list");
        assert_eq!(p.free.len(), 1);
    }

    #[tokio::test]
    async fn pairs_bind_on_the_media_ip() {
        let pool = PortPool::new(46000, 46200);
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (port, rtp, rtcp) = pool.bind_pair(Some(loopback)).await.expect("a pair");
        assert_eq!(rtp.local_addr().expect("addr"), (loopback, port).into());
        assert_eq!(
            rtcp.local_addr().expect("addr"),
            (loopback, port + 1).into()
        );
        let (port, rtp, _rtcp) = pool.bind_pair(None).await.expect("a pair");
        assert_eq!(
            rtp.local_addr().expect("addr"),
            (Ipv4Addr::UNSPECIFIED, port).into()
        );
        // Not an address of this host (TEST-NET-1): the unspecified address, from then on.
        let public = "192.0.2.10".parse().expect("ip");
        let (port, rtp, _rtcp) = pool.bind_pair(Some(public)).await.expect("a pair");
        assert_eq!(
            rtp.local_addr().expect("addr"),
            (Ipv4Addr::UNSPECIFIED, port).into()
        );
        assert_eq!(pool.available(), 100 - 3);
    }
}
