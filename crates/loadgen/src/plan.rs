//! The joins file: where the server listens and which Request-URI each leg dials, grouped
//! into meetings.
//!
//! ```json
//! {"server": "127.0.0.1:5060",
//!  "local_ip": "127.0.0.1",
//!  "from": "+12065550100",
//!  "meetings": [{"legs": ["sip:+17035550122@<vcid>.voiceconnector.localhost;X-chime-join-token=<token>", "..."]}]}
//! ```
//!
//! Only loopback (127.0.0.0/8) addresses are accepted: this tool offers real load and must
//! not be pointed at another machine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Deserialize;

/// Most legs one run may place (the hard cap; `--legs` and the file are bounded by it).
pub const MAX_LEGS: usize = 5000;

/// The parsed joins file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The server's SIP address (UDP).
    pub server: SocketAddr,
    /// Our address for SIP and RTP.
    #[serde(default = "default_local_ip")]
    pub local_ip: IpAddr,
    /// The From user (E.164).
    #[serde(default = "default_from")]
    pub from: String,
    /// Meetings, each a list of Request-URIs.
    pub meetings: Vec<MeetingPlan>,
}

/// One meeting's legs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingPlan {
    /// Request-URIs, one per attendee.
    pub legs: Vec<String>,
}

/// One leg to dial: its Request-URI and its position in its meeting (picks its tone).
#[derive(Clone, Debug)]
pub struct LegPlan {
    /// Request-URI.
    pub uri: sip::Uri,
    /// Meeting index in the file.
    pub meeting: usize,
    /// Position within the meeting.
    pub position: usize,
}

fn default_local_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn default_from() -> String {
    "+12065550100".into()
}

/// Why a joins file was refused (the file's author's fault).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Not JSON of the expected shape.
    #[error("joins file is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// An address outside 127.0.0.0/8.
    #[error("{0} is not a loopback address (127.0.0.0/8); vc-loadgen only targets this machine")]
    NotLoopback(IpAddr),
    /// A Request-URI that does not parse.
    #[error("meeting {meeting} leg {position}: bad Request-URI: {error}")]
    BadUri {
        /// Meeting index.
        meeting: usize,
        /// Leg index.
        position: usize,
        /// Parser error.
        error: sip::UriError,
    },
    /// More legs than [`MAX_LEGS`].
    #[error("{0} legs is more than the cap of {MAX_LEGS}")]
    TooManyLegs(usize),
    /// No legs at all.
    #[error("the joins file has no legs")]
    Empty,
}

/// True for 127.0.0.0/8 (and ::ffff:127.x mapped addresses).
pub fn is_loopback_v4(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 127,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.octets()[0] == 127),
    }
}

impl Plan {
    /// Parses and checks a joins file.
    pub fn parse(text: &str) -> Result<Plan, PlanError> {
        let plan: Plan = serde_json::from_str(text)?;
        for ip in [plan.server.ip(), plan.local_ip] {
            if !is_loopback_v4(ip) {
                return Err(PlanError::NotLoopback(ip));
            }
        }
        let n: usize = plan.meetings.iter().map(|m| m.legs.len()).sum();
        if n == 0 {
            return Err(PlanError::Empty);
        }
        if n > MAX_LEGS {
            return Err(PlanError::TooManyLegs(n));
        }
        Ok(plan)
    }

    /// Every leg, meeting by meeting, with its URI parsed.
    pub fn legs(&self) -> Result<Vec<LegPlan>, PlanError> {
        let mut out = Vec::new();
        for (meeting, m) in self.meetings.iter().enumerate() {
            for (position, text) in m.legs.iter().enumerate() {
                let uri = sip::Uri::parse(text).map_err(|error| PlanError::BadUri {
                    meeting,
                    position,
                    error,
                })?;
                out.push(LegPlan {
                    uri,
                    meeting,
                    position,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "sip:+17035550122@abc.voiceconnector.localhost;X-chime-join-token=t1";

    #[test]
    fn parses_meetings_and_positions() {
        let text = format!(
            r#"{{"server":"127.0.0.1:5060","meetings":[{{"legs":["{URI}","{URI}"]}},{{"legs":["{URI}"]}}]}}"#
        );
        let plan = Plan::parse(&text).unwrap();
        let legs = plan.legs().unwrap();
        assert_eq!(legs.len(), 3);
        assert_eq!((legs[2].meeting, legs[2].position), (1, 0));
        assert_eq!(legs[0].uri.host(), "abc.voiceconnector.localhost");
        assert_eq!(plan.from, "+12065550100");
    }

    #[test]
    fn refuses_other_machines_and_empty_files() {
        let remote = format!(r#"{{"server":"10.0.0.1:5060","meetings":[{{"legs":["{URI}"]}}]}}"#);
        assert!(matches!(
            Plan::parse(&remote),
            Err(PlanError::NotLoopback(_))
        ));
        let local = format!(
            r#"{{"server":"127.0.0.1:5060","local_ip":"192.168.1.2","meetings":[{{"legs":["{URI}"]}}]}}"#
        );
        assert!(matches!(
            Plan::parse(&local),
            Err(PlanError::NotLoopback(_))
        ));
        let empty = r#"{"server":"127.0.0.2:5060","meetings":[]}"#;
        assert!(matches!(Plan::parse(empty), Err(PlanError::Empty)));
        assert!(matches!(Plan::parse("{"), Err(PlanError::Json(_))));
    }

    #[test]
    fn bad_uri_names_its_leg() {
        let text = r#"{"server":"127.0.0.1:5060","meetings":[{"legs":["not a uri"]}]}"#;
        let plan = Plan::parse(text).unwrap();
        assert!(matches!(
            plan.legs(),
            Err(PlanError::BadUri {
                meeting: 0,
                position: 0,
                ..
            })
        ));
    }
}

/// The load of a `--pstn` or `--ivr` run: calls, their set-up rate, the measured window.
#[derive(Debug, Clone)]
pub struct Load {
    /// Calls to place (held at once).
    pub legs: usize,
    /// Call set-up rate (new calls a second at most).
    pub cps: f64,
    /// Time between the last answer and the start of measuring.
    pub warmup: std::time::Duration,
    /// Measurement time.
    pub duration: std::time::Duration,
    /// Lateness threshold.
    pub late_after: std::time::Duration,
    /// Sender sub-ticks per 20 ms.
    pub slots: u64,
    /// Processes whose CPU is sampled over the measurement (summed).
    pub watch_pids: Vec<u32>,
}
