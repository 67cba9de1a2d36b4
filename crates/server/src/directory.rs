//! The meetings of this node: a meeting's id to its task's channel. A task is spawned on
//! first use and leaves the directory when its last leg goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use engine::{EngineConfig, MeetingMedia};
use tokio::sync::mpsc;

use crate::meeting::{Meeting, MeetingEvent, MeetingMsg, MeetingObserver};

/// Messages a meeting's task may have queued (datagrams of all its legs included).
const MEETING_QUEUE: usize = 8192;

struct Entry {
    generation: u64,
    tx: mpsc::Sender<MeetingMsg>,
}

/// The directory. Its one lock guards only the map of channels: it is held for a lookup
/// or an insert, never across an await, and no packet takes it.
pub struct Meetings {
    map: Mutex<HashMap<String, Entry>>,
    engine: EngineConfig,
    events: mpsc::Sender<MeetingEvent>,
    observer: Arc<dyn MeetingObserver>,
}

impl Meetings {
    pub fn new(
        engine: EngineConfig,
        events: mpsc::Sender<MeetingEvent>,
        observer: Arc<dyn MeetingObserver>,
    ) -> Arc<Self> {
        Arc::new(Meetings {
            map: Mutex::new(HashMap::new()),
            engine,
            events,
            observer,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The meeting's task, if it runs here.
    pub fn get(&self, meeting_id: &str) -> Option<mpsc::Sender<MeetingMsg>> {
        self.lock()
            .get(meeting_id)
            .filter(|e| !e.tx.is_closed())
            .map(|e| e.tx.clone())
    }

    /// The meeting's task, started if it does not run.
    pub fn get_or_start(self: &Arc<Self>, meeting_id: &str) -> mpsc::Sender<MeetingMsg> {
        let mut map = self.lock();
        if let Some(e) = map.get(meeting_id)
            && !e.tx.is_closed()
        {
            return e.tx.clone();
        }
        let generation = rand::random::<u64>();
        let (tx, rx) = mpsc::channel(MEETING_QUEUE);
        let wallclock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let media = MeetingMedia::new(Instant::now(), wallclock, self.engine, rand::random());
        let task = Meeting::new(
            meeting_id.to_string(),
            media,
            tx.clone(),
            self.events.clone(),
            self.observer.clone(),
        );
        let dir = self.clone();
        let id = meeting_id.to_string();
        tokio::spawn(async move {
            task.run(rx, || dir.retire(&id, generation)).await;
        });
        map.insert(
            meeting_id.to_string(),
            Entry {
                generation,
                tx: tx.clone(),
            },
        );
        tx
    }

    /// The task of `generation` leaves the directory (if it is still the one listed).
    fn retire(&self, meeting_id: &str, generation: u64) -> bool {
        let mut map = self.lock();
        match map.get(meeting_id) {
            Some(e) if e.generation == generation => {
                map.remove(meeting_id);
                true
            }
            _ => true,
        }
    }

    /// Meetings with a task here.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
