//! `vc-loadgen`: a media load generator for the voice connector (issue 7, "Media capacity"
//! and "Overload").
//!
//! It reads a joins file (see [`plan`]), places SIP calls over UDP with the sans-IO
//! `sip::UserAgent` (INVITE with an SDES-SRTP offer, RFC 4568, AES_CM_128_HMAC_SHA1_80;
//! ACK; BYE at the end), then sends every leg a tone as SRTP (RFC 3711) at 50 packets/s
//! from its own UDP socket on one shared schedule ([`pacing`]), and unprotects and accounts
//! the mix the server sends back ([`stats`]). The report is one JSON object on stdout.
//!
//! With `--pstn SERVER` it is instead both ends of calls through a B2BUA or a proxy
//! ([`pstn`]): the PBX placing them and the carrier answering them, with plain RTP both
//! ways and loss and lateness per leg. With `--ivr SERVER` it calls a SIP media
//! application and is the application's function ([`ivr`]): prompts heard, digits keyed,
//! the server's latency per event round trip.
//!
//! ```text
//! vc-loadgen --joins joins.json --codec pcmu --legs 600 --duration 20
//! vc-loadgen --joins joins.json --rate 200 --duration 60 --hold 10
//! vc-loadgen --pstn 127.0.0.1:5060 --carrier 127.0.0.2:5080 --uri-host <vc host> --legs 200 --codec g722
//! vc-loadgen --ivr 127.0.0.1:5060 --caller 127.0.0.2:5080 --number +14155550199 \
//!     --webhook 127.0.0.1:9000 --audio-root data/audio --legs 100
//! ```
//!
//! Bounded: at most [`plan::MAX_LEGS`] legs, durations of at most 30 minutes, loopback
//! (127.0.0.0/8) targets only.
#![forbid(unsafe_code)]

mod ivr;
mod media;
mod pacing;
mod plan;
mod procstat;
mod pstn;
mod report;
mod run;
mod stats;
mod uac;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Longest run allowed, in seconds.
const MAX_SECONDS: f64 = 1800.0;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CodecArg {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

impl CodecArg {
    fn codec(self) -> codec::Codec {
        match self {
            CodecArg::Pcmu => codec::Codec::Pcmu,
            CodecArg::Pcma => codec::Codec::Pcma,
            CodecArg::G722 => codec::Codec::G722,
            CodecArg::Opus => codec::Codec::Opus(codec::Channels::Mono),
        }
    }
}

/// Media load generator: SIP joins, SRTP audio, loss and lateness per leg.
#[derive(Parser, Debug)]
#[command(name = "vc-loadgen", version)]
struct Args {
    /// The joins file (JSON: server, meetings with their legs' Request-URIs).
    #[arg(long, required_unless_present_any = ["pstn", "ivr"])]
    joins: Option<PathBuf>,
    /// PSTN mode: place calls through this B2BUA or proxy (SIP/UDP, 127.0.0.0/8) and
    /// answer them as the carrier on `--carrier`.
    #[arg(long, conflicts_with_all = ["joins", "rate", "ivr"], requires_all = ["carrier", "legs"])]
    pstn: Option<SocketAddr>,
    /// PSTN mode: the carrier's SIP address, listened on (127.0.0.x:port).
    #[arg(long, requires = "pstn")]
    carrier: Option<SocketAddr>,
    /// PSTN mode: the Request-URI host (a voice connector's outbound host name); without
    /// it the Request-URI names the carrier's address, for a proxy that relays by it.
    #[arg(long, requires = "pstn")]
    uri_host: Option<String>,
    /// PSTN mode: the carrier leg's codec (`--codec` is the PBX leg's).
    #[arg(long, value_enum, default_value = "pcmu")]
    carrier_codec: CodecArg,
    /// Codec to offer.
    #[arg(long, value_enum, default_value = "pcmu")]
    codec: CodecArg,
    #[command(flatten)]
    ivr: ivr::IvrArgs,
    /// Fixed mode: legs to place (default: every leg of the file).
    #[arg(long, conflicts_with = "rate")]
    legs: Option<usize>,
    /// Rate mode: calls per second to offer.
    #[arg(long)]
    rate: Option<f64>,
    /// Rate mode: seconds each admitted call holds.
    #[arg(long, default_value_t = 10.0, requires = "rate")]
    hold: f64,
    /// Fixed mode: seconds measured. Rate mode: seconds calls are offered.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Fixed mode: seconds between the last answer and the start of measuring.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Fixed mode: calls per second while setting up.
    #[arg(long, default_value_t = 200.0)]
    cps: f64,
    /// A packet is late when it arrives more than this many ms after its slot.
    #[arg(long, default_value_t = 60)]
    late_ms: u64,
    /// Sender sub-ticks per 20 ms frame (legs are spread over them).
    #[arg(long, default_value_t = 10)]
    slots: u64,
    /// Worker threads (1: everything on one thread).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Sample these processes' CPU and RSS over the measurement, summed (the server's pid,
    /// or a peer's pids, comma-separated).
    #[arg(long, value_delimiter = ',')]
    watch_pid: Vec<u32>,
    /// One row per leg in the report.
    #[arg(long)]
    per_leg: bool,
    /// Test hook: drop every n-th authenticated packet before accounting.
    #[arg(long, default_value_t = 0)]
    rx_drop_every: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match real_main(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vc-loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum MainError {
    #[error("reading the joins file: {0}")]
    Read(std::io::Error),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error("{0}")]
    Usage(&'static str),
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Run(#[from] run::RunError),
}

fn real_main(args: Args) -> Result<(), MainError> {
    check_common(&args)?;
    if let Some(server) = args.pstn {
        return pstn_main(&args, server);
    }
    if let Some(server) = args.ivr.ivr {
        return ivr_main(&args, server);
    }
    let path = args
        .joins
        .clone()
        .ok_or(MainError::Usage("--joins or --pstn is needed"))?;
    let text = std::fs::read_to_string(path).map_err(MainError::Read)?;
    let plan = plan::Plan::parse(&text)?;
    let mode = match args.rate {
        Some(rate) => run::Mode::Rate {
            rate,
            hold: Duration::from_secs_f64(args.hold),
        },
        None => run::Mode::Fixed {
            legs: args.legs.unwrap_or(plan::MAX_LEGS),
            warmup: Duration::from_secs_f64(args.warmup),
        },
    };
    let opts = run::Options {
        mode,
        codec: args.codec.codec(),
        duration: Duration::from_secs_f64(args.duration),
        cps: args.cps,
        late_after: Duration::from_millis(args.late_ms),
        slots: args.slots,
        rx_drop_every: args.rx_drop_every,
        per_leg: args.per_leg,
        watch_pids: args.watch_pid,
    };
    let report = runtime(args.threads)?.block_on(run::run(plan, opts))?;
    println!("{report}");
    Ok(())
}

/// The PSTN mode ([`pstn`]).
fn pstn_main(args: &Args, server: SocketAddr) -> Result<(), MainError> {
    let carrier = args
        .carrier
        .ok_or(MainError::Usage("--pstn needs --carrier"))?;
    if !plan::is_loopback_v4(server.ip()) || !plan::is_loopback_v4(carrier.ip()) {
        return Err(MainError::Usage(
            "--pstn and --carrier must be 127.0.0.0/8 addresses",
        ));
    }
    let opts = pstn::PstnOptions {
        server,
        carrier,
        uri_host: args.uri_host.clone(),
        pbx_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        from: "+12065550100".into(),
        pbx_codec: args.codec.codec(),
        carrier_codec: args.carrier_codec.codec(),
        load: load(args, "--pstn needs --legs")?,
    };
    let report = runtime(args.threads)?.block_on(pstn::run(opts))?;
    println!("{report}");
    Ok(())
}

/// The IVR mode ([`ivr`]).
fn ivr_main(args: &Args, server: SocketAddr) -> Result<(), MainError> {
    let a = &args.ivr;
    let (Some(caller), Some(webhook), Some(number), Some(audio_root)) =
        (a.caller, a.webhook, a.number.clone(), a.audio_root.clone())
    else {
        return Err(MainError::Usage(
            "--ivr needs --caller, --webhook, --number and --audio-root",
        ));
    };
    if ![server, caller, webhook]
        .iter()
        .all(|s| plan::is_loopback_v4(s.ip()))
    {
        return Err(MainError::Usage(
            "--ivr, --caller and --webhook must be 127.0.0.0/8 addresses",
        ));
    }
    let opts = ivr::IvrOptions {
        server,
        caller,
        number,
        webhook,
        audio_root,
        prompt_ms: a.prompt_ms,
        goodbye_ms: a.goodbye_ms,
        load: load(args, "--ivr needs --legs")?,
    };
    let report = runtime(args.threads)?.block_on(ivr::run(opts))?;
    println!("{report}");
    Ok(())
}

/// The bounds every mode shares.
fn check_common(args: &Args) -> Result<(), MainError> {
    let ok_secs = |s: f64| s.is_finite() && (0.0..=MAX_SECONDS).contains(&s);
    if !ok_secs(args.duration) || !ok_secs(args.warmup) || !ok_secs(args.hold) {
        return Err(MainError::Usage("durations must be 0..1800 s"));
    }
    if let Some(n) = args.legs
        && n > plan::MAX_LEGS
    {
        return Err(MainError::Usage("--legs is above the hard cap of 5000"));
    }
    if let Some(r) = args.rate
        && !(r.is_finite() && r > 0.0 && r <= 2000.0)
    {
        return Err(MainError::Usage("--rate must be in (0, 2000] calls/s"));
    }
    if !(args.cps.is_finite() && args.cps > 0.0 && args.cps <= 2000.0) {
        return Err(MainError::Usage("--cps must be in (0, 2000]"));
    }
    if !(1..=1000).contains(&args.slots) || !(1..=16).contains(&args.threads) {
        return Err(MainError::Usage("--slots 1..1000, --threads 1..16"));
    }
    Ok(())
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, MainError> {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(MainError::Runtime)
}

/// The load options `--pstn` and `--ivr` share; `missing` when `--legs` is not given.
fn load(args: &Args, missing: &'static str) -> Result<plan::Load, MainError> {
    Ok(plan::Load {
        legs: args.legs.ok_or(MainError::Usage(missing))?,
        cps: args.cps,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        late_after: Duration::from_millis(args.late_ms),
        slots: args.slots,
        watch_pids: args.watch_pid.clone(),
    })
}
