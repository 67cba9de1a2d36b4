//! Concurrent WebRTC legs per core: N str0m clients (real ICE, DTLS, SRTP over loopback)
//! join meetings of the server's browser side through the signaling WebSocket, each
//! sending a 20 ms Opus frame 50 times a second and receiving the N-1 mix. The server runs
//! on its own tokio runtime whose worker threads are named `vc-server`; its CPU time is read
//! from `/proc/self/task/*/stat` for those threads only, so the clients' cost (Opus
//! encoding, their DTLS and SRTP) is not counted.
//!
//! ```text
//! cargo bench -p voice-connector --bench webrtc_legs -- --legs 200 --per-meeting 5 --seconds 20
//! ```
//!
//! Prints server CPU per leg, legs per core (1 / that), and how much of the expected
//! 50 packets/s per leg the clients received (the server kept up when it is ~100 %).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use codec::Channels;
use codec::opus::{OpusConfig, OpusEncoder};

struct Args {
    legs: usize,
    per_meeting: usize,
    seconds: u64,
    server_threads: usize,
}

fn args() -> Args {
    let mut a = Args {
        legs: 100,
        per_meeting: 5,
        seconds: 20,
        server_threads: 1,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let val = argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (argv[i].as_str(), val) {
            ("--legs", Some(v)) => a.legs = v as usize,
            ("--per-meeting", Some(v)) => a.per_meeting = (v as usize).max(1),
            ("--seconds", Some(v)) => a.seconds = v.max(1),
            ("--server-threads", Some(v)) => a.server_threads = (v as usize).max(1),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// CPU seconds (user + system) of this process's threads whose name starts with `prefix`.
fn thread_cpu(prefix: &str) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for t in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ... ; comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // After the comm: state is field 3, utime 14, stime 15 (1-based) → indexes 11, 12.
        let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        total += utime + stime;
    }
    total as f64 / tick
}

fn main() {
    let a = args();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.server_threads)
        .thread_name("vc-server")
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()
        .expect("client runtime");
    let srv = Arc::new(server_rt.block_on(common::TestServer::start()));

    // Canned Opus frames (a 440 Hz tone): clients do not spend CPU encoding.
    let mut enc = OpusEncoder::new(&OpusConfig::voip(Channels::Mono)).expect("encoder");
    let mut canned = Vec::new();
    let mut phase = 0.0f64;
    for _ in 0..50 {
        let mut pcm = vec![0i16; 960];
        for s in &mut pcm {
            *s = (phase.sin() * 8000.0) as i16;
            phase += 2.0 * std::f64::consts::PI * 440.0 / 48_000.0;
        }
        let mut p = Vec::new();
        enc.encode(&pcm, &mut p).expect("encode");
        canned.push(p);
    }
    let canned: Arc<[Vec<u8>]> = canned.into();

    eprintln!(
        "joining {} WebRTC legs, {} per meeting, server on {} thread(s)…",
        a.legs, a.per_meeting, a.server_threads
    );
    let t_join = Instant::now();
    let mut joined = Vec::new();
    let meetings = a.legs.div_ceil(a.per_meeting);
    for m in 0..meetings {
        let meeting = server_rt.block_on(srv.create_meeting());
        for k in 0..a.per_meeting.min(a.legs - m * a.per_meeting) {
            let (_, token) =
                server_rt.block_on(srv.add_attendee(&meeting, &format!("user-{m}-{k}")));
            let http = srv.http;
            let canned = canned.clone();
            let meeting = meeting.clone();
            let j = client_rt.block_on(async move {
                common::join_browser_canned(http, &meeting, &token, canned).await
            });
            joined.push(j);
        }
    }
    eprintln!(
        "joined in {:.1} s; waiting for ICE and DTLS…",
        t_join.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && joined
            .iter()
            .any(|j| !j.heard.lock().map(|h| h.connected).unwrap_or(false))
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let connected = joined
        .iter()
        .filter(|j| j.heard.lock().map(|h| h.connected).unwrap_or(false))
        .count();
    std::thread::sleep(Duration::from_secs(2));

    let packets = |js: &[common::Joined]| -> u64 {
        js.iter()
            .map(|j| j.heard.lock().map(|h| h.packets).unwrap_or(0))
            .sum()
    };
    let p0 = packets(&joined);
    let cpu0 = thread_cpu("vc-server");
    let ccpu0 = thread_cpu("client");
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(a.seconds));
    let wall = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu("vc-server") - cpu0;
    let ccpu = thread_cpu("client") - ccpu0;
    let p1 = packets(&joined);

    let received_rate = (p1 - p0) as f64 / wall;
    let expected_rate = 50.0 * connected as f64;
    let cpu_per_leg = cpu / wall / connected.max(1) as f64;
    println!(
        "WebRTC legs: {connected}/{} connected, {meetings} meetings of {}",
        a.legs, a.per_meeting
    );
    println!(
        "server CPU: {:.3} core-seconds/s over {wall:.1} s = {:.2} % of a core per leg",
        cpu / wall,
        cpu_per_leg * 100.0
    );
    println!(
        "legs per core: {:.0}",
        if cpu_per_leg > 0.0 {
            1.0 / cpu_per_leg
        } else {
            f64::INFINITY
        }
    );
    // The peer in the same run: the str0m clients do a leg's ICE, DTLS and SRTP both ways
    // (canned Opus, no decode), but no jitter buffer, decode, mix or encode.
    println!(
        "clients (str0m, SRTP both ways, no mixing): {:.2} % of a core per leg",
        ccpu / wall / connected.max(1) as f64 * 100.0
    );
    println!(
        "mix delivered to clients: {:.1} % of 50 packets/s per leg",
        100.0 * received_rate / expected_rate.max(1.0)
    );
    for j in &joined {
        j.stop.store(true, Ordering::Relaxed);
    }
    drop(joined);
    client_rt.shutdown_timeout(Duration::from_secs(2));
    server_rt.shutdown_timeout(Duration::from_secs(2));
}
