//! `engine::MeetingMedia` on virtual time: a meeting with one plain RTP leg (PCMU) and one
//! SRTP leg (suite and codec from the input), fed datagrams with `handle_packet` (raw
//! bytes, or RTP/RTCP built from fuzzed fields and, for the SRTP leg, protected with the
//! peer's key so they get past authentication), mixer ticks with `handle_timeout` (on time
//! or late), renegotiations (direction, mute, codec, re-key, replacing the leg) and
//! out-of-band digits; as a two-party bridge or not (relay without decoding when both legs
//! have one codec).
//! Checked beyond "no panic": whatever the engine sends the SRTP leg authenticates with the
//! key it answered, and goes to the right port: RTCP to the RTCP port (`Transmit::rtcp`)
//! unless rtcp-mux is on, when RTP and RTCP share the RTP port and the peer tells them
//! apart by the packet type (RFC 5761 §4), as it does here.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use codec::{Channels, Codec};
use engine::{Direction, EngineConfig, LegConfig, LegId, MeetingMedia, SrtpKeys};
use libfuzzer_sys::fuzz_target;
use rtp::packet::RtpWriter;
use rtp::srtp::{SrtpContext, SrtpError, SrtpSuite};

#[derive(Arbitrary, Debug)]
struct Input {
    suite: u8,
    codec: u8,
    /// A two-party bridge (`set_bridge`): PCMU on both legs is relayed without decoding.
    bridge: bool,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// Raw bytes arriving on a leg.
    Raw {
        srtp_leg: bool,
        from: u8,
        bytes: Vec<u8>,
    },
    /// An RTP packet built from fields (protected on the SRTP leg when `protect`).
    Rtp {
        srtp_leg: bool,
        from: u8,
        protect: bool,
        marker: bool,
        payload_type: u8,
        sequence_number: u16,
        timestamp: u32,
        ssrc: u8,
        payload: Vec<u8>,
    },
    /// An RTCP packet (SR, RR, SDES, BYE, APP or another type) with a fuzzed body.
    Rtcp {
        srtp_leg: bool,
        from: u8,
        protect: bool,
        packet_type: u8,
        count: u8,
        ssrc: u8,
        body: Vec<u8>,
    },
    /// Time passes in steps of 10 ms; mixer ticks and inactivity checks run.
    Advance {
        tens_of_ms: u8,
    },
    /// The driver wakes up seconds late (the mixer skips ticks; legs go inactive).
    Jump {
        seconds: u8,
    },
    Direction {
        srtp_leg: bool,
        send: bool,
        recv: bool,
    },
    Mute {
        srtp_leg: bool,
        muted: bool,
    },
    /// A renegotiation of the SRTP leg: codec, rtcp-mux, and new keys or the same.
    Update {
        codec: u8,
        rtcp_mux: bool,
        rekey: bool,
    },
    /// The SRTP leg hangs up and a new one joins with the same settings.
    Replace,
    /// A digit signalled out of band on a leg (SIP INFO), any event code and length.
    Digit {
        srtp_leg: bool,
        event: u8,
        ms: u16,
    },
}

const CODECS: [(Codec, u8); 4] = [
    (Codec::Opus(Channels::Mono), 111),
    (Codec::G722, 9),
    (Codec::Pcma, 8),
    (Codec::Pcmu, 0),
];

fn addr(port: u16) -> SocketAddr {
    ([192, 0, 2, 10], port).into()
}

/// Where a packet comes from: the signalled RTP or RTCP address, or somewhere else.
fn source(from: u8, base: u16) -> SocketAddr {
    match from % 4 {
        0 | 1 => addr(base),
        2 => addr(base + 1),
        _ => ([203, 0, 113, 5], 40000).into(),
    }
}

struct Peer {
    /// What the peer sends with (the engine's remote key).
    tx: SrtpContext,
    /// What the peer receives with (the engine's local key).
    rx: SrtpContext,
}

struct Harness {
    media: MeetingMedia,
    now: Instant,
    plain: LegId,
    srtp: LegId,
    srtp_cfg: LegConfig,
    peer: Peer,
    generation: u8,
}

fn keys(suite: SrtpSuite, generation: u8) -> SrtpKeys {
    let fill = |n: usize, x: u8| (0..n as u8).map(|b| b ^ x ^ generation).collect::<Vec<_>>();
    SrtpKeys {
        suite,
        remote_key: fill(suite.master_key_len(), 0x11),
        remote_salt: fill(suite.master_salt_len(), 0x22),
        local_key: fill(suite.master_key_len(), 0x33),
        local_salt: fill(suite.master_salt_len(), 0x44),
    }
}

fn peer_for(k: &SrtpKeys) -> Peer {
    Peer {
        tx: SrtpContext::new(k.suite, &k.remote_key, &k.remote_salt).expect("peer tx"),
        rx: SrtpContext::new(k.suite, &k.local_key, &k.local_salt).expect("peer rx"),
    }
}

fn leg_config(codec: u8, srtp: Option<SrtpKeys>, port: u16) -> LegConfig {
    // The high bit: the peer's Opus offer allows DTX (ignored for the other codecs).
    let dtx = codec & 0x80 != 0;
    let (codec, payload_type) = CODECS[usize::from(codec) % CODECS.len()];
    LegConfig {
        codec,
        payload_type,
        dtmf_payload_type: Some(101),
        dtmf_out: Some(engine::DtmfFormat {
            payload_type: 101,
            clock_rate: 8000,
        }),
        remote_ptime: None,
        srtp,
        remote_rtp: Some(addr(port)),
        remote_rtcp: None,
        rtcp_mux: false,
        direction: Direction::SENDRECV,
        muted: false,
        dtx,
    }
}

fn tolerated(e: SrtpError) -> bool {
    matches!(e, SrtpError::Replay { .. } | SrtpError::ReplayTooOld { .. })
}

impl Harness {
    fn leg(&self, srtp_leg: bool) -> (LegId, u16) {
        if srtp_leg {
            (self.srtp, 6000)
        } else {
            (self.plain, 4000)
        }
    }

    fn drain(&mut self) {
        let mut plain = Vec::new();
        for _ in 0..10_000 {
            let Some(t) = self.media.poll_transmit() else {
                break;
            };
            if t.leg != self.srtp {
                continue;
            }
            // `t.rtcp` says which port, not what the packet is: under rtcp-mux SRTCP comes
            // with `rtcp: false` (fuzz/corpus/engine_meeting/regression-rtcp-mux-srtcp-on-the-rtp-port).
            let is_rtcp = rtp::packet::is_rtcp(&t.bytes);
            assert!(!t.rtcp || is_rtcp, "RTP sent to the RTCP port");
            assert!(
                !t.rtcp || !self.srtp_cfg.rtcp_mux,
                "RTCP sent to a separate port under rtcp-mux"
            );
            assert!(
                t.rtcp || !is_rtcp || self.srtp_cfg.rtcp_mux,
                "RTCP sent to the RTP port without rtcp-mux"
            );
            let r = if is_rtcp {
                self.peer.rx.unprotect_rtcp(&t.bytes, &mut plain)
            } else {
                self.peer.rx.unprotect_rtp(&t.bytes, &mut plain)
            };
            if let Err(e) = r {
                assert!(
                    tolerated(e),
                    "the SRTP leg cannot read what it is sent: {e}"
                );
            }
        }
        while self.media.poll_event().is_some() {}
    }

    fn packet(&mut self, srtp_leg: bool, from: u8, protect: bool, pkt: Vec<u8>, rtcp: bool) {
        let (leg, port) = self.leg(srtp_leg);
        let mut bytes = pkt;
        if srtp_leg && protect {
            let mut out = Vec::new();
            let r = if rtcp {
                self.peer.tx.protect_rtcp(&bytes, &mut out)
            } else {
                self.peer.tx.protect_rtp(&bytes, &mut out)
            };
            if r.is_ok() {
                bytes = out;
            }
        }
        self.media
            .handle_packet(self.now, leg, source(from, port), &bytes);
        self.drain();
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Raw {
                srtp_leg,
                from,
                bytes,
            } => {
                let (leg, port) = self.leg(*srtp_leg);
                self.media
                    .handle_packet(self.now, leg, source(*from, port), bytes);
                self.drain();
            }
            Step::Rtp {
                srtp_leg,
                from,
                protect,
                marker,
                payload_type,
                sequence_number,
                timestamp,
                ssrc,
                payload,
            } => {
                let mut pkt = Vec::new();
                let written = RtpWriter {
                    marker: *marker,
                    payload_type: payload_type & 0x7f,
                    sequence_number: *sequence_number,
                    timestamp: *timestamp,
                    ssrc: 0x5000 + u32::from(ssrc % 3),
                    csrcs: &[],
                    extension: None,
                    padding: 0,
                }
                .write(payload, &mut pkt);
                if written.is_ok() {
                    self.packet(*srtp_leg, *from, *protect, pkt, false);
                }
            }
            Step::Rtcp {
                srtp_leg,
                from,
                protect,
                packet_type,
                count,
                ssrc,
                body,
            } => {
                let pt = [200, 201, 202, 203, 204, 205][usize::from(packet_type % 6)];
                let body = &body[..(body.len() / 4 * 4).min(512)];
                let words = ((8 + body.len()) / 4 - 1) as u16;
                let mut pkt = vec![0x80 | (count & 0x1f), pt];
                pkt.extend_from_slice(&words.to_be_bytes());
                pkt.extend_from_slice(&(0x5000 + u32::from(ssrc % 3)).to_be_bytes());
                pkt.extend_from_slice(body);
                self.packet(*srtp_leg, *from, *protect, pkt, true);
            }
            Step::Advance { tens_of_ms } => {
                let end = self.now + Duration::from_millis(u64::from(*tens_of_ms) * 10);
                for _ in 0..300 {
                    let due = self.media.poll_timeout();
                    if due > end {
                        break;
                    }
                    self.now = self.now.max(due);
                    self.media.handle_timeout(self.now);
                    self.drain();
                }
                self.now = self.now.max(end);
                self.media.handle_timeout(self.now);
                self.drain();
            }
            Step::Jump { seconds } => {
                self.now += Duration::from_secs(u64::from(*seconds));
                self.media.handle_timeout(self.now);
                self.drain();
            }
            Step::Direction {
                srtp_leg,
                send,
                recv,
            } => {
                let (leg, _) = self.leg(*srtp_leg);
                let d = Direction {
                    send: *send,
                    recv: *recv,
                };
                let _ = self.media.set_direction(leg, d);
            }
            Step::Mute { srtp_leg, muted } => {
                let (leg, _) = self.leg(*srtp_leg);
                let _ = self.media.set_muted(leg, *muted);
            }
            Step::Update {
                codec,
                rtcp_mux,
                rekey,
            } => {
                let suite = self.srtp_cfg.srtp.as_ref().expect("keys").suite;
                let generation = self.generation.wrapping_add(u8::from(*rekey));
                let k = keys(suite, generation);
                let mut cfg = leg_config(*codec, Some(k.clone()), 6000);
                cfg.rtcp_mux = *rtcp_mux;
                if self
                    .media
                    .update_leg(self.now, self.srtp, cfg.clone())
                    .is_ok()
                {
                    if *rekey {
                        self.peer = peer_for(&k);
                    }
                    self.generation = generation;
                    self.srtp_cfg = cfg;
                }
                self.drain();
            }
            Step::Digit {
                srtp_leg,
                event,
                ms,
            } => {
                let (leg, _) = self.leg(*srtp_leg);
                let length = Duration::from_millis(u64::from(*ms));
                let _ = self.media.send_dtmf(self.now, leg, *event, length);
                self.drain();
            }
            Step::Replace => {
                let _ = self.media.remove_leg(self.srtp);
                self.srtp = self
                    .media
                    .add_leg(self.now, self.srtp_cfg.clone())
                    .expect("the leg joins again");
                self.peer = peer_for(self.srtp_cfg.srtp.as_ref().expect("keys"));
                self.drain();
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let t0 = Instant::now();
    let mut media = MeetingMedia::new(
        t0,
        Duration::from_secs(1_800_000_000),
        EngineConfig::default(),
        1,
    );
    if input.bridge {
        media.set_bridge();
    }
    let suite = SrtpSuite::ALL[usize::from(input.suite) % SrtpSuite::ALL.len()];
    let k = keys(suite, 0);
    let plain = media
        .add_leg(t0, leg_config(3, None, 4000))
        .expect("RTP leg");
    let srtp_cfg = leg_config(input.codec, Some(k.clone()), 6000);
    let srtp = media.add_leg(t0, srtp_cfg.clone()).expect("SRTP leg");
    let mut h = Harness {
        media,
        now: t0,
        plain,
        srtp,
        srtp_cfg,
        peer: peer_for(&k),
        generation: 0,
    };
    for step in input.steps.iter().take(48) {
        h.step(step);
    }
    let _ = (h.media.leg_stats(h.plain), h.media.leg_stats(h.srtp));
});
