//! SRTP/SRTCP (`rtp::srtp::SrtpContext`) with a fixed key for each of the six suites: raw
//! datagrams into `unprotect_rtp` / `unprotect_rtcp`, and packets protected by a sender
//! with the same key, optionally tampered with, into the receiver. Checked beyond "no
//! panic": while sender and receiver have seen the same packets (no raw or tampered one
//! yet), an untampered packet comes back exactly as it was protected (or is refused as a
//! replay).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rtp::packet::RtpWriter;
use rtp::srtp::{SrtpConfig, SrtpContext, SrtpError, SrtpSuite};

#[derive(Arbitrary, Debug)]
struct Input {
    suite: u8,
    replay_window: u16,
    max_streams: u8,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// Bytes from the network.
    Raw { rtcp: bool, bytes: Vec<u8> },
    /// An RTP packet from the peer.
    Rtp {
        header: Header,
        payload: Vec<u8>,
        tamper: Option<Tamper>,
    },
    /// An RTCP receiver report (with `body` appended) from the peer.
    Rtcp {
        ssrc: u8,
        body: Vec<u8>,
        tamper: Option<Tamper>,
    },
}

#[derive(Arbitrary, Debug)]
struct Header {
    marker: bool,
    payload_type: u8,
    sequence_number: u16,
    timestamp: u32,
    /// One of a few SSRCs, so that streams repeat and the stream table evicts.
    ssrc: u8,
    csrcs: Vec<u32>,
    extension: Option<(u16, Vec<u8>)>,
    padding: u8,
}

#[derive(Arbitrary, Debug)]
enum Tamper {
    Flip { at: u16, xor: u8 },
    Truncate(u16),
    Append(Vec<u8>),
}

impl Tamper {
    fn apply(&self, pkt: &mut Vec<u8>) {
        match self {
            Tamper::Flip { at, xor } => {
                if !pkt.is_empty() {
                    let i = usize::from(*at) % pkt.len();
                    pkt[i] ^= xor;
                }
            }
            Tamper::Truncate(n) => pkt.truncate(usize::from(*n)),
            Tamper::Append(b) => pkt.extend_from_slice(b),
        }
    }
}

fn ssrc(i: u8) -> u32 {
    0x1000_0000 + u32::from(i % 5)
}

fn rtp_packet(h: &Header, payload: &[u8]) -> Option<Vec<u8>> {
    let csrcs = &h.csrcs[..h.csrcs.len().min(15)];
    let ext = h.extension.as_ref().map(|(profile, data)| {
        let words = data.len() / 4;
        (*profile, &data[..words * 4])
    });
    let mut out = Vec::new();
    RtpWriter {
        marker: h.marker,
        payload_type: h.payload_type & 0x7f,
        sequence_number: h.sequence_number,
        timestamp: h.timestamp,
        ssrc: ssrc(h.ssrc),
        csrcs,
        extension: ext,
        padding: h.padding % 8,
    }
    .write(payload, &mut out)
    .ok()?;
    Some(out)
}

fn rtcp_packet(ssrc_sel: u8, body: &[u8]) -> Vec<u8> {
    let body = &body[..(body.len() / 4 * 4).min(1024)];
    // The length field counts 32-bit words minus one: header, SSRC and body.
    let words = (8 + body.len()) / 4 - 1;
    let mut out = vec![0x80, 201];
    out.extend_from_slice(&(words as u16).to_be_bytes());
    out.extend_from_slice(&ssrc(ssrc_sel).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn tolerated(e: SrtpError) -> bool {
    matches!(
        e,
        SrtpError::Replay { .. } | SrtpError::ReplayTooOld { .. } | SrtpError::KeyExhausted
    )
}

/// A sender and a receiver sharing one key.
struct Pair {
    tx: SrtpContext,
    rx: SrtpContext,
    /// Sender and receiver have seen the same packets (nothing raw, tampered or refused).
    in_sync: bool,
}

impl Pair {
    /// Protects `pkt` (RTP or RTCP), tampers with it if asked, and unprotects it.
    fn send(&mut self, rtcp: bool, pkt: &[u8], tamper: Option<&Tamper>) {
        let (mut protected, mut plain) = (Vec::new(), Vec::new());
        let sealed = if rtcp {
            self.tx.protect_rtcp(pkt, &mut protected)
        } else {
            self.tx.protect_rtp(pkt, &mut protected)
        };
        if sealed.is_err() {
            self.in_sync = false;
            return;
        }
        if let Some(t) = tamper {
            t.apply(&mut protected);
            self.in_sync = false;
        }
        let opened = if rtcp {
            self.rx.unprotect_rtcp(&protected, &mut plain)
        } else {
            self.rx.unprotect_rtp(&protected, &mut plain)
        };
        match opened {
            Ok(()) => assert!(!self.in_sync || plain == pkt, "SRTP changed the packet"),
            Err(e) if tolerated(e) => {}
            Err(e) => {
                assert!(!self.in_sync, "an untampered packet was refused (rtcp: {rtcp}): {e}");
                self.in_sync = false;
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let suite = SrtpSuite::ALL[usize::from(input.suite) % SrtpSuite::ALL.len()];
    let key: Vec<u8> = (0..suite.master_key_len() as u8).collect();
    let salt: Vec<u8> = (0..suite.master_salt_len() as u8).map(|b| b ^ 0xa5).collect();
    let config = SrtpConfig {
        replay_window: 64 + usize::from(input.replay_window) % 1024,
        max_streams: 1 + usize::from(input.max_streams) % 4,
    };
    let mut pair = Pair {
        tx: SrtpContext::with_config(suite, &key, &salt, config).expect("tx"),
        rx: SrtpContext::with_config(suite, &key, &salt, config).expect("rx"),
        in_sync: true,
    };
    let mut plain = Vec::new();
    for step in input.steps.iter().take(64) {
        match step {
            // Even a refused packet touches the receiver's stream table (its
            // least-recently-used order), which the sender does not see.
            Step::Raw { rtcp: false, bytes } => {
                let _ = pair.rx.unprotect_rtp(bytes, &mut plain);
                pair.in_sync = false;
            }
            Step::Raw { rtcp: true, bytes } => {
                let _ = pair.rx.unprotect_rtcp(bytes, &mut plain);
                pair.in_sync = false;
            }
            Step::Rtp {
                header,
                payload,
                tamper,
            } => {
                if let Some(pkt) = rtp_packet(header, payload) {
                    pair.send(false, &pkt, tamper.as_ref());
                }
            }
            Step::Rtcp { ssrc, body, tamper } => {
                pair.send(true, &rtcp_packet(*ssrc, body), tamper.as_ref());
            }
        }
    }
});
