//! A browser leg's video, forwarded without decoding (the leg is one `Rtc` of an SFU, as
//! in str0m's `chat` example): the frames its camera sends come out of
//! [`WebRtcLeg::poll_video`] depacketized; another leg writes them into one of its send
//! sections with [`WebRtcLeg::write_video`] (str0m packetizes them again with that
//! section's SSRC, payload type and sequence numbers). Keyframe requests (PLI, FIR) a
//! receiver's browser sends come out of [`WebRtcLeg::poll_keyframe_request`] and go to the
//! sender with [`WebRtcLeg::request_keyframe`].
//!
//! Simulcast: a sender's layers arrive with their `rid`; one layer is forwarded, the
//! highest one seen (layers are not yet chosen per receiver by its bandwidth estimate).

use std::collections::VecDeque;

use str0m::media::{KeyframeRequest, KeyframeRequestKind, MediaData, Mid, Rid};

use super::{MAX_QUEUE, Str0mRng, WebRtcLeg};

/// One video section of the leg's current SDP answer, as the server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSection {
    /// Its `a=mid`.
    pub mid: String,
    /// The browser sends video in it (its camera or its content).
    pub receives: bool,
    /// The server sends video in it (another attendee's stream).
    pub sends: bool,
    /// The `a=msid` stream id of a section the server sends in: the browser's
    /// `MediaStream.id` for its track.
    pub msid: Option<String>,
    /// The SSRC the server sends with in it.
    pub ssrc: Option<u32>,
}

/// A leg's video queues.
#[derive(Debug, Default)]
pub(super) struct VideoState {
    pub(super) sections: Vec<VideoSection>,
    frames: VecDeque<MediaData>,
    keyframe_requests: VecDeque<KeyframeRequest>,
    /// The simulcast layer forwarded (`None`: the sender sends one layer).
    rid: Option<Rid>,
}

/// Simulcast `rid`s by preference, highest layer first (the SDK's, then str0m's and
/// common ones).
const RID_RANK: [&str; 8] = ["hi", "h", "f", "mid", "m", "low", "l", "q"];

fn rank(rid: Option<Rid>) -> usize {
    rid.and_then(|r| RID_RANK.iter().position(|x| *x == &*r))
        .unwrap_or(RID_RANK.len())
}

impl VideoState {
    /// A frame from the browser: kept when it belongs to the layer forwarded.
    pub(super) fn on_frame(&mut self, d: MediaData) {
        if !self.sections.iter().any(|s| s.receives && *s.mid == *d.mid) {
            return;
        }
        if d.rid != self.rid {
            // A higher layer than the one forwarded takes over; a lower one is dropped.
            if d.rid.is_some() && self.rid.is_some() && rank(d.rid) >= rank(self.rid) {
                return;
            }
            self.rid = d.rid;
        }
        if self.frames.len() < MAX_QUEUE {
            self.frames.push_back(d);
        }
    }

    pub(super) fn on_keyframe_request(&mut self, r: KeyframeRequest) {
        if self.keyframe_requests.len() < MAX_QUEUE {
            self.keyframe_requests.push_back(r);
        }
    }
}

impl WebRtcLeg {
    /// The video sections of the current answer, in SDP order.
    pub fn video_sections(&self) -> &[VideoSection] {
        &self.video.sections
    }

    /// The next video frame the browser sent.
    pub fn poll_video(&mut self) -> Option<MediaData> {
        self.video.frames.pop_front()
    }

    /// The next keyframe request the browser sent for a stream we send it.
    pub fn poll_keyframe_request(&mut self) -> Option<KeyframeRequest> {
        self.video.keyframe_requests.pop_front()
    }

    /// Writes another leg's frame into send section `mid` (its payload type is the one
    /// of this leg that matches the frame's codec). Returns whether str0m took it.
    pub fn write_video(&mut self, mid: Mid, d: &MediaData) -> bool {
        if self.dead || !self.connected {
            return false;
        }
        let scope = Str0mRng::enter(self.str0m_rng);
        let ok = self.rtc.writer(mid).is_some_and(|w| {
            w.match_params(d.params)
                .is_some_and(|pt| w.write(pt, d.network_time, d.time, d.data.clone()).is_ok())
        });
        self.drain();
        self.str0m_rng = scope.leave();
        ok
    }

    /// Asks the browser for a keyframe of the video it sends (of the layer forwarded).
    pub fn request_keyframe(&mut self, kind: KeyframeRequestKind) -> bool {
        if self.dead || !self.connected {
            return false;
        }
        let Some(mid) = self.video.sections.iter().find(|s| s.receives) else {
            return false;
        };
        let mid = Mid::from(mid.mid.as_str());
        let rid = self.video.rid;
        let scope = Str0mRng::enter(self.str0m_rng);
        let ok = self
            .rtc
            .writer(mid)
            .is_some_and(|mut w| w.request_keyframe(rid, kind).is_ok());
        self.drain();
        self.str0m_rng = scope.leave();
        ok
    }
}

/// The video sections of an SDP answer (RFC 8866 §5.14; direction RFC 3264 §5.1, from
/// the answerer's side; `msid` RFC 8830; SSRC RFC 5576, the primary of an `FID` group).
pub(super) fn video_sections(sdp: &str) -> Vec<VideoSection> {
    let mut out: Vec<VideoSection> = Vec::new();
    let mut in_video = false;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split(' ');
            let kind = f.next();
            let port = f.next();
            in_video = kind == Some("video");
            if in_video {
                let open = port.is_some_and(|p| p != "0");
                out.push(VideoSection {
                    mid: String::new(),
                    receives: open,
                    sends: open,
                    msid: None,
                    ssrc: None,
                });
            }
            continue;
        }
        let Some(s) = out.last_mut().filter(|_| in_video) else {
            continue;
        };
        let open = s.receives || s.sends;
        if let Some(mid) = line.strip_prefix("a=mid:") {
            s.mid = mid.trim().to_string();
        } else if open && line == "a=sendonly" {
            s.receives = false;
        } else if open && line == "a=recvonly" {
            s.sends = false;
        } else if line == "a=inactive" {
            (s.sends, s.receives) = (false, false);
        } else if let Some(msid) = line.strip_prefix("a=msid:") {
            s.msid = msid.split(' ').next().map(str::to_string);
        } else if let Some(g) = line.strip_prefix("a=ssrc-group:FID ") {
            s.ssrc = g.split(' ').next().and_then(|x| x.parse().ok());
        } else if let Some(a) = line.strip_prefix("a=ssrc:")
            && s.ssrc.is_none()
        {
            s.ssrc = a.split(' ').next().and_then(|x| x.parse().ok());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_of_an_answer() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=recvonly\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:2\r\na=sendonly\r\na=msid:abc def\r\n\
            a=ssrc-group:FID 22 33\r\na=ssrc:33 cname:x\r\na=ssrc:22 cname:x\r\n\
            m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=sendonly\r\n";
        let s = video_sections(sdp);
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].mid.as_str(), s[0].receives, s[0].sends),
            ("1", true, false)
        );
        assert_eq!(
            (s[1].receives, s[1].sends, s[1].msid.as_deref(), s[1].ssrc),
            (false, true, Some("abc"), Some(22))
        );
        assert!(
            !s[2].receives && !s[2].sends,
            "a rejected section carries nothing"
        );
    }

    #[test]
    fn higher_layers_win() {
        assert!(rank(Some(Rid::from("hi"))) < rank(Some(Rid::from("low"))));
        assert_eq!(rank(None), RID_RANK.len());
    }
}
