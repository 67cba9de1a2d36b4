//! Taps on a meeting's legs: a leg's audio handed, a frame a mixer tick, to whoever asked
//! for it (a SIP media application's RecordAudio or call recording, a live stream). One
//! leg may have several taps, each with its own track and [`TapKey`]; the engine delivers
//! the union of their tracks, and each sink gets the part it asked for. A sink that cannot
//! keep up loses frames, never the mix.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use calls::LegId;
use engine::TapTrack;
use tokio::sync::mpsc;

/// 20 ms of a tapped leg's audio, at `rate`: what the leg sent us (`incoming`) and what we
/// sent it (`outgoing`); a track the tap did not ask for is empty.
#[derive(Debug, Clone)]
pub struct TapFrame<L = LegId> {
    pub leg: L,
    pub rate: u32,
    pub incoming: Vec<i16>,
    pub outgoing: Vec<i16>,
}

/// Names one tap, so that its owner can stop it without stopping the others.
pub type TapKey = u64;

/// A tap to start: the track wanted and where its frames go.
pub type TapSink = (TapTrack, mpsc::Sender<TapFrame>);

/// A new tap key, unique in this process.
pub fn next_key() -> TapKey {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The taps of one meeting's legs.
/// A leg's taps: key, track, sink.
type Sinks<L> = Vec<(TapKey, TapTrack, mpsc::Sender<TapFrame<L>>)>;

pub(super) struct LegTaps<E = engine::LegId, L = LegId> {
    by_leg: HashMap<E, Sinks<L>>,
}

impl<E, L> Default for LegTaps<E, L> {
    fn default() -> Self {
        LegTaps {
            by_leg: HashMap::new(),
        }
    }
}

impl<E: std::hash::Hash + Eq + Copy, L: Copy> LegTaps<E, L> {
    /// Starts (`Some`, replacing a tap of the same key) or stops (`None`) a tap; the track
    /// the engine must now deliver for the leg (None: the leg is tapped no more).
    pub(super) fn set(
        &mut self,
        leg: E,
        key: TapKey,
        sink: Option<(TapTrack, mpsc::Sender<TapFrame<L>>)>,
    ) -> Option<TapTrack> {
        let sinks = self.by_leg.entry(leg).or_default();
        sinks.retain(|(k, _, _)| *k != key);
        if let Some((track, tx)) = sink {
            sinks.push((key, track, tx));
        }
        let track = union(sinks.iter().map(|(_, t, _)| *t));
        if track.is_none() {
            self.by_leg.remove(&leg);
        }
        track
    }

    /// The leg left the meeting.
    pub(super) fn forget(&mut self, leg: E) {
        self.by_leg.remove(&leg);
    }

    /// A tick of the leg's audio to each of its taps.
    pub(super) fn deliver(&self, leg: E, id: L, rate: u32, incoming: Vec<i16>, outgoing: Vec<i16>) {
        let Some(sinks) = self.by_leg.get(&leg) else {
            return;
        };
        let (mut incoming, mut outgoing) = (Some(incoming), Some(outgoing));
        let last = sinks.len() - 1;
        for (i, (_, track, tx)) in sinks.iter().enumerate() {
            // The last sink takes the tick's samples; the others get copies.
            let part = |wanted: bool, samples: &mut Option<Vec<i16>>| match wanted {
                false => Vec::new(),
                true if i == last => samples.take().unwrap_or_default(),
                true => samples.clone().unwrap_or_default(),
            };
            let frame = TapFrame {
                leg: id,
                rate,
                incoming: part(*track != TapTrack::Outgoing, &mut incoming),
                outgoing: part(*track != TapTrack::Incoming, &mut outgoing),
            };
            let _ = tx.try_send(frame);
        }
    }
}

/// The one track that carries all of these (None for none).
fn union(tracks: impl Iterator<Item = TapTrack>) -> Option<TapTrack> {
    tracks.reduce(|a, b| if a == b { a } else { TapTrack::Both })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_taps_on_a_leg_each_get_their_track() {
        let mut taps = LegTaps::<u32, u32>::default();
        let leg = 7;
        let (in_tx, mut in_rx) = mpsc::channel(4);
        let (out_tx, mut out_rx) = mpsc::channel(4);
        assert_eq!(
            taps.set(leg, 1, Some((TapTrack::Incoming, in_tx))),
            Some(TapTrack::Incoming)
        );
        assert_eq!(
            taps.set(leg, 2, Some((TapTrack::Outgoing, out_tx))),
            Some(TapTrack::Both)
        );
        let id = 70;
        taps.deliver(leg, id, 8000, vec![1; 160], vec![2; 160]);
        let f = in_rx.try_recv().unwrap();
        assert_eq!((f.incoming.len(), f.outgoing.len(), f.rate), (160, 0, 8000));
        let f = out_rx.try_recv().unwrap();
        assert_eq!((f.incoming.len(), f.outgoing.len()), (0, 160));
        assert_eq!(taps.set(leg, 1, None), Some(TapTrack::Outgoing));
        assert_eq!(taps.set(leg, 2, None), None);
        taps.deliver(leg, id, 8000, vec![1; 160], vec![2; 160]);
        assert!(in_rx.try_recv().is_err() && out_rx.try_recv().is_err());
    }
}
