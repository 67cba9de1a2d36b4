//! The media side of each SIP leg, as the edge task keeps it: its ports, its negotiated
//! SDP (or our pending delayed offer), its meeting's channel and its call record's seed;
//! and what ending a leg costs: its place in the mixer, its ports, its record.

use std::sync::Arc;
use std::time::Instant;

use calls::{CallEnd, LegId, Member, ReofferError};
use engine::LegStats;
use sdp::negotiate::MediaSession;
use sip::Body;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::meeting::MeetingMsg;
use crate::offer::{self, Negotiated};
use crate::ports::PortPool;
use crate::records::{CdrSeed, RecordWriter};

/// One SIP leg's media.
pub struct SipLeg {
    pub member: Member,
    /// The caller's number (the From user): how browsers list a SIP caller.
    pub caller: String,
    pub port: u16,
    pub rtp: Arc<UdpSocket>,
    pub rtcp: Arc<UdpSocket>,
    /// The meeting's task, once the leg is in its mixer.
    pub meeting: Option<mpsc::Sender<MeetingMsg>>,
    /// Negotiated media; `None` while our delayed offer awaits the ACK's answer.
    pub negotiated: Option<Negotiated>,
    /// Our delayed offer, waiting for its answer.
    pub pending: Option<MediaSession>,
    pub cdr: CdrSeed,
    /// The connector has EnableMediaMetricLogs.
    pub media_metrics: bool,
    pub started: Instant,
    /// Whether this leg's end writes a call record (a carrier leg's call is recorded on
    /// its PBX leg).
    pub record: bool,
    /// The attendee's audio capability when it joined (a delayed offer's leg enters the
    /// mixer with it).
    pub audio: domain::meeting::Capability,
    /// A delayed offer's call stream, begun when the leg enters its mixer.
    pub stream_later: Option<crate::streaming::Deferred>,
}

impl SipLeg {
    /// A leg's media on its bound ports, not yet negotiated nor in a mixer; its end writes a
    /// call record.
    pub fn new(
        member: Member,
        caller: String,
        port: u16,
        (rtp, rtcp): (UdpSocket, UdpSocket),
        cdr: CdrSeed,
    ) -> Self {
        SipLeg {
            member,
            caller,
            port,
            rtp: Arc::new(rtp),
            rtcp: Arc::new(rtcp),
            meeting: None,
            negotiated: None,
            pending: None,
            cdr,
            media_metrics: false,
            started: Instant::now(),
            record: true,
            audio: domain::meeting::Capability::SendReceive,
            stream_later: None,
        }
    }

    /// What putting this leg into its mixer takes, with `negotiated` media.
    pub fn attach_request(&self, negotiated: &Negotiated) -> super::join::AttachRequest {
        super::join::AttachRequest {
            member: self.member.clone(),
            caller: self.caller.clone(),
            rtp: self.rtp.clone(),
            rtcp: self.rtcp.clone(),
            cfg: negotiated.leg.clone(),
        }
    }

    /// Applies the ACK's answer to our delayed offer.
    pub fn apply_answer(&mut self, sdp: &[u8]) -> Result<(), calls::Refusal> {
        let session = self
            .pending
            .take()
            .ok_or_else(|| calls::Refusal::new(491, "no offer of ours is pending"))?;
        let n = offer::accept(session, sdp)?;
        self.negotiated = Some(n);
        Ok(())
    }

    /// Answers an in-dialog offer (hold, resume, new keys or codec); returns the answer
    /// and whether the peer now sends media.
    pub fn reoffer(&mut self, leg: LegId, sdp: &[u8]) -> Result<(Body, bool), ReofferError> {
        let n = self.negotiated.as_mut().ok_or(ReofferError::OfferPending)?;
        let (answer, direction) = offer::reanswer(n, sdp)?;
        if let Some(tx) = &self.meeting {
            // Codec, keys, addresses and direction as renegotiated.
            tx.try_send(MeetingMsg::Update {
                leg,
                cfg: n.leg.clone(),
            })
            .map_err(|_| ReofferError::MediaBusy)?;
        }
        Ok((Body::sdp(answer), direction.recv))
    }
}

/// What ending a SIP leg needs.
pub struct Release {
    pub ports: Arc<PortPool>,
    pub records: RecordWriter,
    pub metrics: Arc<api::metrics::Metrics>,
}

impl Release {
    /// Takes the leg out of its mixer, frees its ports and stores its record.
    pub async fn sip_leg(&self, leg: LegId, media: SipLeg, end: CallEnd) {
        let mut stats = None;
        if let Some(tx) = &media.meeting {
            let (reply, rx) = oneshot::channel();
            let msg = MeetingMsg::Remove {
                leg,
                dropped: false,
                reply: Some(reply),
            };
            if tx.send(msg).await.is_ok() {
                stats = rx.await.ok().flatten();
            }
        }
        let SipLeg {
            member,
            port,
            rtp,
            rtcp,
            negotiated,
            cdr,
            started,
            record,
            ..
        } = media;
        drop((rtp, rtcp));
        self.ports.give_back(port);
        tracing::info!(call = %leg, meeting = %member.meeting_id, reason = %end.reason, secs = started.elapsed().as_secs(), stats = ?stats, "call ended");
        self.metrics.counter_add(
            "vc_calls_ended_total",
            &format!("status=\"{}\"", end.status.as_str()),
            1,
        );
        if !record {
            if let Some(st) = &stats {
                self.count(st);
            }
            return;
        }
        let mut rec = cdr.finish(end.status.as_str(), end.code, Some(end.reason));
        if !super::pstn::is_bridge(&member.meeting_id) {
            rec.meeting_id = Some(member.meeting_id);
            rec.attendee_id = Some(member.attendee_id);
        }
        if let Some(n) = &negotiated {
            rec.codec = Some(n.codec.clone());
            rec.srtp_suite = n.srtp_suite.clone();
        }
        if let Some(st) = &stats {
            self.count(st);
            if st.foreign_source > 0 && st.packets_in == 0 {
                tracing::warn!(call = %leg, foreign = st.foreign_source, "RTP came only from addresses other than the one in the SDP: a PBX behind NAT needs its public address in its SDP, or --media-latch");
            }
        }
        rec.media = stats.map(|s| domain::call_record::MediaStatistics {
            packets_received: s.packets_in,
            packets_sent: s.packets_out,
            packets_lost: s.lost,
            jitter_ms: s.jitter_ms,
            round_trip_time_ms: s.rtt_ms,
            srtp_failures: s.srtp_failures,
            rtcp_packets_received: s.rtcp_in,
            invalid_packets: s.invalid,
            foreign_source_packets: s.foreign_source,
        });
        self.records.write(rec, cdr.start_ms).await;
    }

    /// Frees the ports of a leg that never got into the call table.
    pub fn unused(&self, media: SipLeg) {
        let port = media.port;
        drop(media);
        self.ports.give_back(port);
    }

    fn count(&self, st: &LegStats) {
        let m = &self.metrics;
        m.counter_add("vc_rtp_packets_total", "direction=\"in\"", st.packets_in);
        m.counter_add("vc_rtp_packets_total", "direction=\"out\"", st.packets_out);
        m.counter_add("vc_rtp_packets_lost_total", "", st.lost.max(0) as u64);
        m.counter_add("vc_srtp_failures_total", "", st.srtp_failures);
        m.counter_add("vc_rtp_foreign_source_total", "", st.foreign_source);
        // What went out: relayed without decoding (a bridge of one codec), or mixed.
        m.counter_add("vc_rtp_sent_total", "mode=\"relayed\"", st.relayed);
        m.counter_add("vc_rtp_sent_total", "mode=\"mixed\"", st.mixed);
        m.counter_add("vc_rtp_sent_total", "mode=\"dtmf\"", st.dtmf_out);
        m.observe(
            "vc_call_jitter_ms",
            &[5.0, 10.0, 20.0, 40.0, 80.0, 160.0],
            f64::from(st.jitter_ms),
        );
    }
}

impl super::Edge {
    /// A call just answered gets its open record now, so that a crash still leaves one.
    pub(super) fn open_record(&mut self, leg: LegId) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        l.cdr.answered_ms = Some(domain::timestamp::now_millis());
        let mut rec = l.cdr.open(200);
        if !super::pstn::is_bridge(&l.member.meeting_id) {
            rec.meeting_id = Some(l.member.meeting_id.clone());
            rec.attendee_id = Some(l.member.attendee_id.clone());
        }
        if let Some(n) = &l.negotiated {
            rec.codec = Some(n.codec.clone());
            rec.srtp_suite = n.srtp_suite.clone();
        }
        let start = l.cdr.start_ms;
        let (records, hold) = (self.ctx.records.clone(), self.ctx.records.hold());
        tokio::spawn(async move {
            records.open(rec, start).await;
            drop(hold);
        });
    }
}
