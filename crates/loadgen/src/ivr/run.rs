//! The IVR run's loop (place, hold, measure, drain) and its report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use codec::Codec;
use serde_json::{Value, json};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use super::latency::{self, Samples};
use super::prompt::{self, Burst};
use super::{
    BUCKET, CALL_SLACK, Counters, DIGITS, End, FunctionConfig, IvrOptions, MAX_CALLS, Runner,
    SHORT_FRAMES,
};
use crate::media::{self, PHASE_DONE, PHASE_MEASURE, PHASE_WARMUP, Payloads, RxResult};
use crate::pstn::bye_answered;
use crate::report::{self, Sampler};
use crate::run::RunError;
use crate::uac::{not_hung_up, ua_config};
use sip::{Peer, TransportKind, UserAgent};

/// How long the calls still up when the measurement ends get to finish by themselves.
const DRAIN: Duration = Duration::from_secs(10);
/// How long BYEs of the calls hung up at the end get to be answered.
const BYE_WAIT: Duration = Duration::from_secs(3);

/// Runs the IVR mode and returns the report (JSON).
pub async fn run(opts: IvrOptions) -> Result<Value, RunError> {
    let prompt_key = format!("prompt-{}ms.wav", opts.prompt_ms);
    let goodbye_key = format!("goodbye-{}ms.wav", opts.goodbye_ms);
    prompt::write_prompts(
        &opts.audio_root.join(BUCKET),
        (&prompt_key, opts.prompt_ms),
        (&goodbye_key, opts.goodbye_ms),
    )?;
    let function = FunctionConfig {
        bucket: BUCKET.into(),
        prompt_key,
        goodbye_key,
        digits: DIGITS,
    };
    let (note_tx, mut note_rx) = mpsc::unbounded_channel();
    let hook = tokio::spawn(super::hook::serve(
        TcpListener::bind(opts.webhook).await?,
        function,
        note_tx,
    ));
    let sip = UdpSocket::bind(opts.caller).await?;
    let (local, remote) = (sip.local_addr()?, opts.server);
    let peer = Peer {
        transport: TransportKind::Udp,
        local,
        remote,
    };
    let phase = Arc::new(AtomicU8::new(PHASE_WARMUP));
    let (sender_tx, sender_stop_tx, sender) = media::spawn_sender(opts.load.slots, phase.clone());
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel();
    let (keyed_tx, mut keyed_rx) = mpsc::unbounded_channel();
    let mut r = Runner {
        ua: UserAgent::new(ua_config(), rand::random()),
        sip,
        peer,
        calls: HashMap::new(),
        by_id: HashMap::new(),
        by_from: HashMap::new(),
        done: Vec::new(),
        c: Counters::default(),
        next_id: 0,
        phase: phase.clone(),
        sender: sender_tx,
        payloads: Arc::new(Payloads::new(Codec::Pcmu)?),
        ended_tx,
        keyed_tx,
        origin: Instant::now(),
        origin_wall: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok(),
        opts: opts.clone(),
    };
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / opts.load.cps.max(0.1));
    let ramp_deadline = start + interval * opts.load.legs as u32 + Duration::from_secs(30);
    let mut next_place = start;
    let mut warmup_until: Option<Instant> = None;
    let mut measure: Option<(Instant, Instant)> = None;
    let mut drain_until: Option<Instant> = None;
    let mut stop_at: Option<Instant> = None;
    let mut bye_pending: HashSet<String> = HashSet::new();
    let mut next_sweep = start;
    let mut next_active = start;
    let mut sampler = Sampler::new(start, opts.load.watch_pids.clone());
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        let measuring = measure.is_some_and(|(_, end)| now < end);
        if drain_until.is_none() {
            while r.calls.len() < opts.load.legs && next_place <= now && r.c.attempted < MAX_CALLS {
                r.place(now, measuring)?;
                next_place += interval;
            }
            // No burst after a quiet spell: at most 100 ms of placements are owed.
            next_place = next_place.max(now.checked_sub(Duration::from_millis(100)).unwrap_or(now));
        }
        let ramped = r.c.attempted >= opts.load.legs as u64 || now >= ramp_deadline;
        if warmup_until.is_none() && ramped {
            warmup_until = Some(now + opts.load.warmup);
        }
        if measure.is_none() && warmup_until.is_some_and(|w| now >= w) {
            phase.store(PHASE_MEASURE, Ordering::Relaxed);
            measure = Some((now, now + opts.load.duration));
        }
        if drain_until.is_none() && measure.is_some_and(|(_, end)| now >= end) {
            phase.store(PHASE_DONE, Ordering::Relaxed);
            drain_until = Some(now + DRAIN);
        }
        if stop_at.is_none() && drain_until.is_some_and(|d| now >= d || r.calls.is_empty()) {
            for key in not_hung_up(&r.calls, |c| &c.bye) {
                if let Some(call) = r.calls.get_mut(&key) {
                    call.bye.send(&mut r.ua, now, key, &mut bye_pending);
                }
                r.terminated(key, End::Stopped);
            }
            stop_at = Some(now + BYE_WAIT);
        }
        if stop_at.is_some_and(|s| now >= s || (r.calls.is_empty() && bye_pending.is_empty())) {
            break;
        }
        if now >= next_sweep {
            next_sweep = now + Duration::from_millis(100);
            r.sweep(now);
        }
        if measuring && now >= next_active {
            next_active = now + Duration::from_millis(500);
            r.c.active.push(r.calls.len());
        }
        sampler.tick(now, phase.load(Ordering::Relaxed) == PHASE_MEASURE);
        let mut wake = now + Duration::from_millis(20);
        if let Some(t) = r.ua.poll_timeout() {
            wake = wake.min(t);
        }
        if drain_until.is_none() && r.calls.len() < opts.load.legs {
            wake = wake.min(next_place.max(now));
        }
        tokio::select! {
            res = r.sip.recv_from(&mut buf) => {
                if let Ok((n, from)) = res {
                    let bytes = buf.get(..n).unwrap_or(&[]);
                    if let Some(id) = bye_answered(bytes) {
                        bye_pending.remove(&id);
                    }
                    let peer = Peer { remote: from, ..r.peer };
                    let _ = r.ua.handle_datagram(Instant::now(), bytes, peer);
                }
            }
            Some(n) = note_rx.recv() => r.note(n),
            Some(e) = ended_rx.recv() => {
                if e.index == 0 {
                    r.key_digits(e.call);
                }
            }
            Some((id, at)) = keyed_rx.recv() => {
                if let Some(call) = r.by_id.get(&id).and_then(|k| r.calls.get_mut(k)) {
                    call.timeline.digits_sent = Some(at);
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        if r.ua.poll_timeout().is_some_and(|t| t <= now) {
            r.ua.handle_timeout(now);
        }
        r.flush(now).await;
    }
    phase.store(PHASE_DONE, Ordering::Relaxed);
    hook.abort();
    let _ = sender_stop_tx.send(());
    let tx = sender.await.unwrap_or_default();
    report(&mut r, &opts, measure, &sampler, &tx, bye_pending.len()).await
}

/// Loud frames of the prompts heard: (count, shortest, mean, short ones).
fn frames_json(heard: &[u32], expected: u32) -> Value {
    let short = heard
        .iter()
        .filter(|n| **n + SHORT_FRAMES < expected)
        .count();
    let mean = if heard.is_empty() {
        None
    } else {
        Some(heard.iter().map(|n| f64::from(*n)).sum::<f64>() / heard.len() as f64)
    };
    json!({"expected_frames": expected, "heard": heard.len(), "min_frames": heard.iter().min(),
           "max_frames": heard.iter().max(), "mean_frames": mean, "short": short})
}

async fn report(
    r: &mut Runner,
    opts: &IvrOptions,
    measure: Option<(Instant, Instant)>,
    sampler: &Sampler,
    tx: &media::TxTotals,
    bye_unanswered: usize,
) -> Result<Value, RunError> {
    let (mut digit, mut first, mut goodbye) =
        (Samples::default(), Samples::default(), Samples::default());
    let (mut prompt_frames, mut goodbye_frames) = (Vec::new(), Vec::new());
    let mut ends: BTreeMap<String, u64> = BTreeMap::new();
    let (mut measured, mut completed, mut digits_wrong, mut extra_bursts) =
        (0u64, 0u64, 0u64, 0u64);
    let mut rx: Vec<RxResult> = Vec::new();
    let (prompt_len, goodbye_len) = (opts.prompt_ms / 20, opts.goodbye_ms / 20);
    for d in std::mem::take(&mut r.done) {
        let (result, bursts) = match d.media {
            Some(h) => match h.await {
                Ok((res, listener)) => {
                    extra_bursts += u64::from(listener.extra_bursts);
                    (Some(res), listener.bursts)
                }
                Err(_) => (None, Vec::new()),
            },
            None => (None, Vec::new()),
        };
        rx.extend(result);
        if !d.measured {
            continue;
        }
        measured += 1;
        let label = match &d.end {
            End::Bye => "bye".to_string(),
            End::Failed(s) => format!("failed {s}"),
            End::TimedOut => "timed out".to_string(),
            End::Stopped => "hung up by the generator".to_string(),
            End::Other(o) => o.clone(),
        };
        *ends.entry(label).or_default() += 1;
        digits_wrong += u64::from(d.timeline.digits_event.is_some() && !d.digits_ok);
        let heard: Vec<u32> = bursts.iter().map(|b: &Burst| b.loud).collect();
        prompt_frames.extend(heard.first().copied());
        goodbye_frames.extend(heard.get(1).copied());
        let full = |i: usize, len: u32| heard.get(i).is_some_and(|n| n + SHORT_FRAMES >= len);
        if d.end == End::Bye && d.digits_ok && full(0, prompt_len) && full(1, goodbye_len) {
            completed += 1;
        }
        let (a, b1, b2) = latency::call_latencies(&d.timeline, &bursts, r.origin);
        a.into_iter().for_each(|x| digit.push(x));
        b1.into_iter().for_each(|x| first.push(x));
        b2.into_iter().for_each(|x| goodbye.push(x));
    }
    let (measured_s, offset) = match measure {
        Some((s, e)) => (
            e.saturating_duration_since(s).as_secs_f64(),
            Some(s.saturating_duration_since(r.origin)),
        ),
        None => (0.0, None),
    };
    let active = &r.c.active;
    let (generator, watched) = sampler.json();
    let c = &r.c;
    Ok(json!({
        "mode": "ivr",
        "legs": opts.load.legs,
        "measured_s": measured_s,
        "late_threshold_ms": opts.load.late_after.as_secs_f64() * 1000.0,
        "prompt_ms": opts.prompt_ms, "goodbye_ms": opts.goodbye_ms, "digits": DIGITS,
        "call_deadline_s": (f64::from(opts.prompt_ms + opts.goodbye_ms) / 1000.0) + CALL_SLACK.as_secs_f64(),
        "calls": {
            "attempted": c.attempted, "answered": c.answered, "measured": measured,
            "completed": completed, "ends": ends, "digits_wrong": digits_wrong,
            "digits_failed": c.digits_failed, "prompt_end_unseen": c.prompt_end_unseen,
            "calls_per_s": if measured_s > 0.0 { measured as f64 / measured_s } else { 0.0 },
            "bye_unanswered": bye_unanswered,
            "legs_without_kernel_timestamps": c.no_kernel_timestamps,
        },
        "active": {
            "min": active.iter().min(), "max": active.iter().max(),
            "mean": if active.is_empty() { None } else {
                Some(active.iter().sum::<usize>() as f64 / active.len() as f64) },
        },
        "function": { "events": c.hook_events, "unmatched": c.hook_unmatched },
        "prompts": {
            "prompt": frames_json(&prompt_frames, prompt_len),
            "goodbye": frames_json(&goodbye_frames, goodbye_len),
            "extra_bursts": extra_bursts,
        },
        "latency": {
            "digit_to_event": digit.json(),
            "answer_to_prompt": first.json(),
            "answer_to_goodbye": goodbye.json(),
        },
        "rx": report::rx_summary(rx.iter(), offset),
        "tx": report::tx_summary(tx),
        "generator": generator,
        "watched": watched,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_prompts_are_counted() {
        let j = frames_json(&[50, 49, 47, 10], 50);
        assert_eq!(j["short"], 2);
        assert_eq!(j["min_frames"], 10);
        assert_eq!(j["mean_frames"], 39.0);
        assert_eq!(frames_json(&[], 25)["heard"], 0);
    }
}
