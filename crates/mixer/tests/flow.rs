//! Audio capabilities on virtual time: a participant that may not send is in nobody's mix,
//! one that may not receive hears silence and still gets a frame every tick.

mod common;

use std::collections::HashMap;

use common::*;
use mixer::{Mixer, MixerConfig, ParticipantConfig, ParticipantId};

struct Room {
    mixer: Mixer,
    ids: Vec<ParticipantId>,
    tones: Vec<Tone>,
    rx: HashMap<ParticipantId, Received>,
    t: std::time::Instant,
}

impl Room {
    fn new(freqs: &[f64]) -> Self {
        let t = start();
        let mut mixer = Mixer::new(MixerConfig::default(), t);
        let ids: Vec<ParticipantId> = freqs
            .iter()
            .map(|_| mixer.add_participant(ParticipantConfig::pcm()).unwrap())
            .collect();
        let rx = ids.iter().map(|&id| (id, Received::new(None))).collect();
        let tones = freqs.iter().map(|&f| Tone::new(f, 8000.0)).collect();
        Room {
            mixer,
            ids,
            tones,
            rx,
            t,
        }
    }

    fn run(&mut self, ticks: usize) -> usize {
        let before: usize = self.rx.values().map(|r| r.frames.len()).sum();
        for _ in 0..ticks {
            self.t += ms(20);
            for (id, tone) in self.ids.iter().zip(self.tones.iter_mut()) {
                self.mixer.push_pcm(*id, &tone.next(48_000, 960)).unwrap();
            }
            self.mixer.handle_timeout(self.t);
            drain(&mut self.mixer, &mut self.rx);
        }
        self.rx.values().map(|r| r.frames.len()).sum::<usize>() - before
    }

    fn amp(&self, who: usize, f: f64) -> f64 {
        tone_amplitude(self.rx[&self.ids[who]].tail(0.5), 48_000, f)
    }
}

#[test]
fn receive_only_is_heard_by_nobody_and_hears_everyone() {
    // 0: presenter (SendReceive), 1 and 2: listeners (Receive).
    let mut room = Room::new(&[440.0, 1000.0, 1700.0]);
    for &i in &[1, 2] {
        room.mixer.set_flow(room.ids[i], false, true).unwrap();
    }
    assert_eq!(
        room.run(50),
        150,
        "every participant gets a frame every tick"
    );
    assert!(room.amp(1, 440.0) > 7000.0 && room.amp(2, 440.0) > 7000.0);
    assert!(room.amp(0, 1000.0) < 1.0 && room.amp(0, 1700.0) < 1.0);
    assert!(room.amp(2, 1000.0) < 1.0 && room.amp(1, 1700.0) < 1.0);
    assert!(!room.mixer.active_speakers().contains(&room.ids[1]));

    // Listener 1 becomes SendReceive: heard within one tick's worth of audio.
    room.mixer.set_flow(room.ids[1], true, true).unwrap();
    room.run(30);
    assert!(room.amp(0, 1000.0) > 7000.0, "{}", room.amp(0, 1000.0));
    assert!(room.amp(2, 1000.0) > 7000.0);
}

#[test]
fn send_only_hears_silence_and_none_is_cut_both_ways() {
    let mut room = Room::new(&[440.0, 1000.0, 1700.0]);
    room.mixer.set_flow(room.ids[0], true, false).unwrap();
    room.mixer.set_flow(room.ids[2], false, false).unwrap();
    assert_eq!(room.run(50), 150);
    // 0 (Send) is heard, hears nothing: its frames are silence.
    assert!(room.amp(1, 440.0) > 7000.0);
    assert!(room.rx[&room.ids[0]].tail(0.5).iter().all(|&s| s == 0));
    // 2 (None) neither hears nor is heard.
    assert!(room.amp(1, 1700.0) < 1.0);
    assert!(room.rx[&room.ids[2]].tail(0.5).iter().all(|&s| s == 0));
    assert_eq!(room.mixer.flow(room.ids[2]).unwrap(), (false, false));
}
