//! One mixer tick: decode what arrived, pick the active speakers, mix N-1 for every
//! listener, encode (sharing an encode between listeners who hear the same mix) and
//! report levels.

use super::*;

impl Mixer {
    /// One 20 ms tick, for the grid instant `at`.
    pub(crate) fn run_tick(&mut self, at: Instant) {
        self.stats.ticks += 1;
        let tick = self.stats.ticks;
        let advance = self.skipped.saturating_add(1);
        self.skipped = 0;

        // 1. Input and levels.
        for (_, p) in self.participants.iter_mut() {
            p.pull_input(at);
        }

        // 2. Speaker selection.
        self.select_speakers();

        // 3. Sum the contributing talkers once per bus in use.
        for b in &mut self.buses {
            b.listeners = 0;
            b.mixed = false;
            b.peak_bound = 0;
            b.shared_needed = false;
            b.shared_pcm = None;
        }
        for s in &mut self.shared {
            s.needed = false;
            s.payload = None;
        }
        for (_, p) in self.participants.iter() {
            if let Some(b) = self.buses.get_mut(p.output.bus) {
                b.listeners += 1;
            }
        }
        for (_, p) in self.participants.iter_mut() {
            p.contributes = p.selected && !p.silent;
            if !p.contributes {
                continue;
            }
            for b in self.buses.iter_mut().filter(|b| b.listeners > 0) {
                b.peak_bound = match p.peak_at(b.rate) {
                    Some(peak) if b.peak_bound != u32::MAX => b.peak_bound.saturating_add(peak),
                    _ => u32::MAX,
                };
                let Some(x) = p.feed(b.rate, tick) else {
                    continue;
                };
                // The first talker writes the bus, the others add to it (one pass each).
                if b.mixed {
                    for (a, &s) in b.acc.iter_mut().zip(x) {
                        *a += i32::from(s);
                    }
                } else {
                    for (a, &s) in b.acc.iter_mut().zip(x) {
                        *a = i32::from(s);
                    }
                    b.mixed = true;
                }
            }
        }

        // 4. Private N−1 mixes, before the shared limiters advance (a listener entering
        //    its private mix continues from the shared limiter's gain).
        //    Scratch buffers live in the mixer: no allocation per tick beyond the output.
        let mut private_vec = std::mem::take(&mut self.private_out);
        private_vec.clear();
        let mut mix = std::mem::take(&mut self.scratch);
        for i in 0..self.participants.capacity_slots() {
            let Some((id, p)) = self.participants.at_mut(i) else {
                continue;
            };
            let bus = p.output.bus;
            // A prompt: this tick's frame of it, and whether it is the last.
            let rate = self.buses.get(bus).map_or(SAMPLE_RATE, |b| b.rate);
            let prompt_ends = p.overlay.as_mut().map(|o| o.next_frame(rate));
            let mixed = self.buses.get(bus).is_some_and(|b| b.mixed);
            // A participant that may not receive gets silence (and its prompt, if any).
            let hears = mixed && p.may_receive;
            let private = (!p.may_receive || prompt_ends.is_some() || p.contributes && hears) && {
                let b = &self.buses[bus];
                if !p.private_last {
                    p.limiter = b.limiter;
                }
                mix.clear();
                mix.resize(b.acc.len(), 0);
                let ok = match p.overlay.as_ref() {
                    Some(o) => {
                        let mut acc = if hears {
                            b.acc.clone()
                        } else {
                            vec![0; b.acc.len()]
                        };
                        for (a, &s) in acc.iter_mut().zip(&o.frame) {
                            *a += i32::from(s);
                        }
                        // Own audio is in the sum only if it contributes.
                        (p.contributes
                            && hears
                            && p.private_mix(&acc, u32::MAX, b.rate, tick, &mut mix))
                            || {
                                p.limiter.process(&acc, None, &mut mix, u32::MAX);
                                true
                            }
                    }
                    None if !hears => true,
                    None => p.private_mix(&b.acc, b.peak_bound, b.rate, tick, &mut mix),
                };
                if ok && p.tapped {
                    p.tap_out.clear();
                    p.tap_out.extend_from_slice(&mix);
                }
                if ok {
                    let media = match &mut p.output.kind {
                        OutputKind::Pcm => Some(Media::Pcm(Arc::from(&mix[..]))),
                        kind @ OutputKind::Encoded { .. } => {
                            self.stats.encodes += 1;
                            match kind.private_chain().map(|c| (c.codec, c.encode(&mix))) {
                                Some((codec, Ok(payload))) => {
                                    Some(Media::Encoded { codec, payload })
                                }
                                _ => {
                                    p.stats.encode_errors += 1;
                                    None
                                }
                            }
                        }
                    };
                    private_vec.push((i, media));
                }
                ok
            };
            if prompt_ends == Some(true) {
                p.overlay = None;
                self.played.push_back(id);
            }
            if private {
                continue;
            }
            if let Some(b) = self.buses.get_mut(bus) {
                b.shared_needed = true;
            }
            if let OutputKind::Encoded { group, .. } = &p.output.kind
                && let Some(s) = self.shared.get_mut(*group)
            {
                s.needed = true;
            }
        }

        // 5. The shared mix of each bus, limited once and encoded once per codec in use.
        for b in self.buses.iter_mut().filter(|b| b.shared_needed) {
            if b.mixed {
                b.limiter.process(&b.acc, None, &mut b.shared, b.peak_bound);
            } else {
                b.shared.fill(0);
                b.limiter = Limiter::default();
            }
        }
        for s in self.shared.iter_mut().filter(|s| s.needed) {
            let Some(b) = self.buses.get(s.bus) else {
                continue;
            };
            self.stats.encodes += 1;
            self.stats.shared_encodes += 1;
            s.payload = s.chain.encode(&b.shared).ok();
        }

        self.scratch = mix;

        // 6. One frame per listener.
        let mut private_out = private_vec.drain(..).peekable();
        for i in 0..self.participants.capacity_slots() {
            let Some((id, p)) = self.participants.at_mut(i) else {
                continue;
            };
            let media = if private_out.peek().is_some_and(|(j, _)| *j == i) {
                p.private_last = true;
                private_out.next().and_then(|(_, m)| m)
            } else {
                p.private_last = false;
                p.output.kind.shared_tick();
                match &p.output.kind {
                    OutputKind::Pcm => self.buses.get_mut(p.output.bus).map(|b| {
                        let pcm = b.shared_pcm.get_or_insert_with(|| Arc::from(&b.shared[..]));
                        Media::Pcm(pcm.clone())
                    }),
                    OutputKind::Encoded { group, codec, .. } => self
                        .shared
                        .get(*group)
                        .and_then(|s| s.payload.clone())
                        .map(|payload| Media::Encoded {
                            codec: *codec,
                            payload,
                        }),
                }
            };
            if p.tapped
                && let Some(b) = self.buses.get(p.output.bus)
            {
                let outgoing = if p.private_last {
                    std::mem::take(&mut p.tap_out)
                } else {
                    b.shared.clone()
                };
                let incoming = p.feed(b.rate, tick).map(<[i16]>::to_vec);
                self.taps.push_back(TapFrame {
                    participant: id,
                    rate: b.rate,
                    incoming: incoming.unwrap_or_else(|| vec![0; outgoing.len()]),
                    outgoing,
                });
            }
            let samples = match p.output_format {
                OutputFormat::Encoded(c) => c.rtp_timestamp_per_frame(),
                OutputFormat::Pcm => FRAME_SAMPLES as u32,
            };
            // The timestamp advances with time whether or not a frame goes out.
            let marker = if p.started {
                p.timestamp = p.timestamp.wrapping_add(samples.wrapping_mul(advance));
                advance > 1
            } else {
                true
            };
            let Some(media) = media else {
                // Only an encoder failure gets here (private ones are already counted).
                if !p.private_last {
                    p.stats.encode_errors += 1;
                }
                continue;
            };
            p.started = true;
            p.stats.frames_out += 1;
            if p.private_last {
                p.stats.private_frames += 1;
            }
            self.stats.frames_out += 1;
            self.outputs.push_back(OutputFrame {
                participant: id,
                media,
                timestamp: p.timestamp,
                samples,
                marker,
            });
        }
        drop(private_out);
        self.private_out = private_vec;
        let cap = self
            .participants
            .len()
            .saturating_mul(self.config.max_queued_frames.max(1));
        while self.outputs.len() > cap {
            self.outputs.pop_front();
            self.stats.frames_dropped += 1;
        }
        self.trim_taps();

        // 7. Levels.
        self.ticks_until_levels = self.ticks_until_levels.saturating_sub(1);
        if self.ticks_until_levels == 0 {
            self.ticks_until_levels = levels_ticks(&self.config);
            let levels = self
                .participants
                .iter()
                .map(|(id, p)| participant_level(id, p))
                .collect();
            self.push_event(MixerEvent::Levels(levels));
        }
    }

    /// Picks the K loudest unmuted participants above the speech threshold.
    fn select_speakers(&mut self) {
        let k = self.config.max_speakers.max(1);
        let threshold = self.config.speech_threshold_dbov;
        let bonus = self.config.speaker_hysteresis_db;
        self.candidates.clear();
        for i in 0..self.participants.capacity_slots() {
            let Some((_, p)) = self.participants.at(i) else {
                continue;
            };
            let db = p.meter.dbov();
            if p.muted || !p.may_send || db < threshold {
                continue;
            }
            let score = if p.selected { db + bonus } else { db };
            self.candidates.push((score, i));
        }
        self.candidates
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        self.candidates.truncate(k);
        for (_, p) in self.participants.iter_mut() {
            p.selected = false;
        }
        // Loudest first by the plain level, for the event.
        let mut chosen: Vec<(f32, ParticipantId)> = Vec::with_capacity(self.candidates.len());
        for &(_, i) in &self.candidates {
            if let Some((id, p)) = self.participants.at_mut(i) {
                p.selected = true;
                chosen.push((p.meter.dbov(), id));
            }
        }
        chosen.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut same = chosen.len() == self.speakers.len();
        if same {
            let mut old = self.speakers.clone();
            let mut new: Vec<ParticipantId> = chosen.iter().map(|c| c.1).collect();
            old.sort_unstable();
            new.sort_unstable();
            same = old == new;
        }
        if !same {
            self.speakers = chosen.into_iter().map(|c| c.1).collect();
            self.push_event(MixerEvent::ActiveSpeakersChanged(self.speakers.clone()));
        } else {
            // Keep the order current (loudest first) without an event.
            self.speakers.clear();
            self.speakers.extend(chosen.into_iter().map(|c| c.1));
        }
    }
}
