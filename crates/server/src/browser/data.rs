//! Realtime data messages between a meeting's browsers: each session's accepted messages
//! (`chime_signal::Output::DataMessage`, already checked against Amazon Chime's limits)
//! go to the meeting's other sessions on this node, with ingest times that only go up.
//! Messages with a lifetime are kept (at most [`MAX_KEPT`] a meeting, at most
//! `chime_signal::data::MAX_LIFETIME`) and given to sessions that join later, as Amazon
//! Chime replays them to catch up a joiner; a meeting's kept messages go with its last
//! session.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chime_signal::DataMessage;
use chime_signal::data::MAX_LIFETIME;
use tokio::sync::mpsc;

/// Most messages a meeting keeps for later joiners (Amazon Chime's 1024).
pub const MAX_KEPT: usize = 1024;
/// Messages queued to one session; a session that falls further behind loses them.
pub const SESSION_QUEUE: usize = 256;

/// A message as relayed: shared by every receiving session.
pub type Relayed = Arc<DataMessage>;

struct Member {
    session: u64,
    tx: mpsc::Sender<Relayed>,
}

#[derive(Default)]
struct Room {
    members: Vec<Member>,
    last_ingest_ns: i64,
    kept: VecDeque<(Instant, Relayed)>,
}

/// The data-message rooms of this node's meetings.
#[derive(Default)]
pub struct DataRooms {
    rooms: Mutex<HashMap<String, Room>>,
}

impl DataRooms {
    /// A session joins `meeting`'s room: the receiver of the others' messages, the kept
    /// ones (still alive at `now`) already in it.
    pub fn join(&self, meeting: &str, session: u64, now: Instant) -> mpsc::Receiver<Relayed> {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let room = rooms.entry(meeting.to_string()).or_default();
        room.kept.retain(|(until, _)| *until > now);
        // The newest that fit the queue.
        let skip = room.kept.len().saturating_sub(SESSION_QUEUE);
        for (_, m) in room.kept.iter().skip(skip) {
            let _ = tx.try_send(m.clone());
        }
        room.members.push(Member { session, tx });
        rx
    }

    /// The session left; the room goes with its last session.
    pub fn leave(&self, meeting: &str, session: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(room) = rooms.get_mut(meeting) {
            room.members.retain(|m| m.session != session);
            if room.members.is_empty() {
                rooms.remove(meeting);
            }
        }
    }

    /// Relays `message` from `session` to the room's other sessions. Returns how many
    /// sessions could not take it (their queue full or gone).
    pub fn relay(
        &self,
        meeting: &str,
        session: u64,
        mut message: DataMessage,
        now: Instant,
    ) -> usize {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let Some(room) = rooms.get_mut(meeting) else {
            return 0;
        };
        // Ingest times only go up within a meeting, whatever the senders' clocks.
        message.ingest_time_ns = message.ingest_time_ns.max(room.last_ingest_ns + 1);
        room.last_ingest_ns = message.ingest_time_ns;
        let lifetime = Duration::from_millis(u64::from(message.lifetime_ms)).min(MAX_LIFETIME);
        let message = Arc::new(message);
        if !lifetime.is_zero() {
            if room.kept.len() >= MAX_KEPT {
                room.kept.pop_front();
            }
            room.kept.push_back((now + lifetime, message.clone()));
        }
        room.members
            .iter()
            .filter(|m| m.session != session)
            .filter(|m| m.tx.try_send(message.clone()).is_err())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str, ingest: i64, lifetime_ms: u32) -> DataMessage {
        DataMessage {
            topic: topic.into(),
            data: b"x".to_vec(),
            lifetime_ms,
            sender_attendee_id: "a".into(),
            sender_external_user_id: "ua".into(),
            ingest_time_ns: ingest,
        }
    }

    #[test]
    fn others_get_a_message_the_sender_does_not() {
        let rooms = DataRooms::default();
        let now = Instant::now();
        let mut a = rooms.join("m1", 1, now);
        let mut b = rooms.join("m1", 2, now);
        let mut other = rooms.join("m2", 3, now);
        assert_eq!(rooms.relay("m1", 1, msg("chat", 10, 0), now), 0);
        assert_eq!(
            b.try_recv().map(|m| m.topic.clone()).ok(),
            Some("chat".into())
        );
        assert!(a.try_recv().is_err(), "not back to its sender");
        assert!(other.try_recv().is_err(), "not to another meeting");
    }

    #[test]
    fn ingest_times_only_go_up() {
        let rooms = DataRooms::default();
        let now = Instant::now();
        let _a = rooms.join("m", 1, now);
        let mut b = rooms.join("m", 2, now);
        rooms.relay("m", 1, msg("t", 100, 0), now);
        rooms.relay("m", 1, msg("t", 50, 0), now);
        let first = b.try_recv().map(|m| m.ingest_time_ns).ok();
        let second = b.try_recv().map(|m| m.ingest_time_ns).ok();
        assert_eq!((first, second), (Some(100), Some(101)));
    }

    #[test]
    fn messages_with_a_lifetime_reach_later_joiners_until_they_expire() {
        let rooms = DataRooms::default();
        let now = Instant::now();
        let _a = rooms.join("m", 1, now);
        rooms.relay("m", 1, msg("kept", 1, 10_000), now);
        rooms.relay("m", 1, msg("gone", 2, 0), now);
        let mut late = rooms.join("m", 2, now + Duration::from_secs(5));
        assert_eq!(
            late.try_recv().map(|m| m.topic.clone()).ok(),
            Some("kept".into())
        );
        assert!(late.try_recv().is_err());
        let mut later = rooms.join("m", 3, now + Duration::from_secs(11));
        assert!(later.try_recv().is_err(), "expired");
        // The room goes with its last session, and its kept messages with it.
        for s in 1..=3 {
            rooms.leave("m", s);
        }
        assert!(rooms.rooms.lock().unwrap().is_empty());
    }

    #[test]
    fn a_session_that_does_not_read_loses_messages_not_the_others() {
        let rooms = DataRooms::default();
        let now = Instant::now();
        let _slow = rooms.join("m", 1, now);
        let mut b = rooms.join("m", 2, now);
        let mut lost = 0;
        for i in 0..(SESSION_QUEUE + 10) {
            lost += rooms.relay("m", 3, msg("t", i as i64, 0), now);
            while b.try_recv().is_ok() {}
        }
        assert_eq!(lost, 10);
    }
}
