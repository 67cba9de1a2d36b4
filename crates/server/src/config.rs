//! Configuration: command-line flags, `VC_*` environment variables and an optional TOML file
//! (`--config`), with the same names everywhere. Precedence: flag, then environment, then file,
//! then the built-in default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(
    name = "voice-connector",
    version,
    about = "Self-hostable SIP voice connector and meeting audio service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API, SIP edge and media engine with embedded defaults.
    Serve(ServeArgs),
    /// Administrative tasks on the data store (phone-number inventory, carriers).
    #[command(subcommand)]
    Admin(AdminCommand),
}

// Parsed once per process: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Add E.164 numbers to the phone-number inventory, e.g. `admin add-numbers +12065550100`.
    AddNumbers {
        #[command(flatten)]
        settings: Settings,
        /// Into the operator's pool instead: numbers the account orders with
        /// CreatePhoneNumberOrder after finding them with SearchAvailablePhoneNumbers.
        #[arg(long)]
        pool: bool,
        /// With `--pool`: the US state the numbers serve (two letters), for searches by State.
        #[arg(long, requires = "pool")]
        state: Option<String>,
        /// With `--pool`: the city the numbers serve, for searches by City.
        #[arg(long, requires = "pool")]
        city: Option<String>,
        /// E.164 numbers (`+` followed by 2 to 15 digits).
        #[arg(required = true)]
        numbers: Vec<String>,
    },
    /// Carrier trunks to the phone network: add, list, update, remove.
    #[command(subcommand)]
    Carriers(Box<crate::admin::CarrierCommand>),
    /// The function registry of SIP media applications: which HTTP endpoint runs a Lambda
    /// ARN (add, list, remove).
    #[command(subcommand)]
    Functions(Box<crate::admin_functions::FunctionCommand>),
    /// Where calls' audio is streamed: a WebSocket per voice connector or a default (set,
    /// get, clear).
    #[command(subcommand)]
    Streaming(Box<crate::streaming::admin::StreamingCommand>),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub settings: Settings,
}

/// Every setting, as given on the command line or in the environment. `None` means "not
/// given here": the TOML file or the default decides.
#[derive(Debug, Args, Default, Clone)]
pub struct Settings {
    /// TOML file with any of the settings below (same names, with `_` for `-`).
    #[arg(long, env = "VC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database, API credentials and the development CA [default: ./data]
    #[arg(long, env = "VC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the AWS-compatible HTTP API [default: 127.0.0.1:8080]
    #[arg(long, env = "VC_HTTP")]
    pub http: Option<SocketAddr>,
    /// SIP over UDP and TCP [default: 0.0.0.0:5060]
    #[arg(long, env = "VC_SIP")]
    pub sip: Option<SocketAddr>,
    /// SIP over TLS [default: 0.0.0.0:5061]
    #[arg(long, env = "VC_SIP_TLS")]
    pub sip_tls: Option<SocketAddr>,
    /// UDP port range for RTP and RTCP, `LOW-HIGH` [default: 20000-29999]
    #[arg(long, env = "VC_RTP_PORTS")]
    pub rtp_ports: Option<String>,
    /// Address written into SDP [default: the local address the SIP request arrived on]
    #[arg(long, env = "VC_MEDIA_IP")]
    pub media_ip: Option<std::net::IpAddr>,
    /// Send a SIP leg's media to where its first valid RTP comes from, instead of only to
    /// (and taking it only from) the address its SDP names: for PBXs behind NAT that signal
    /// a private address. Lets whoever reaches the port first take an unencrypted NATed
    /// leg's audio: prefer SRTP, or the PBX's public address in its SDP [default: false]
    #[arg(long, env = "VC_MEDIA_LATCH", num_args = 0..=1, default_missing_value = "true")]
    pub media_latch: Option<bool>,
    /// The one UDP port all browser (WebRTC) legs share; its port goes into every answer's
    /// ICE host candidate (with --media-ip when set). Port 0 picks a free one [default: 0.0.0.0:0]
    #[arg(long, env = "VC_WEBRTC_UDP")]
    pub webrtc_udp: Option<SocketAddr>,
    /// Domain under which each voice connector gets `<id>.<sip-domain>` [default: voiceconnector.localhost]
    #[arg(long, env = "VC_SIP_DOMAIN")]
    pub sip_domain: Option<String>,
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB` [default: sqlite file in the data dir]
    #[arg(long, env = "VC_DATABASE_URL")]
    pub database_url: Option<String>,
    /// API requests per second per access key before 429 ThrottledClientException; 0 = no limit [default: 1000]
    #[arg(long, env = "VC_API_RATE_LIMIT")]
    pub api_rate_limit: Option<u32>,
    /// A meeting with no audio connection for this many seconds ends (AWS's rule) [default: 300]
    #[arg(long, env = "VC_MEETING_IDLE_TIMEOUT")]
    pub meeting_idle_timeout: Option<u32>,
    /// Seconds between media-metrics records of calls on connectors with EnableMediaMetricLogs [default: 60]
    #[arg(long, env = "VC_MEDIA_METRICS_INTERVAL")]
    pub media_metrics_interval: Option<u32>,
    /// Open SIP transactions allowed per source address (IPv6: per /64) before 503, and 1 KiB
    /// each of their bytes (a call holds two for about 32 s on UDP, so N allows about N/64
    /// calls per second from one PBX) [default: 16384]
    #[arg(long, env = "VC_SIP_MAX_TRANSACTIONS_PER_SOURCE")]
    pub sip_max_transactions_per_source: Option<usize>,
    /// Answer nothing to an INVITE whose source address is outside its voice connector's
    /// CidrAllowedList, instead of 403 (a scanner then cannot tell the host exists) [default: false]
    #[arg(long, env = "VC_SIP_DROP_UNALLOWED_SOURCES", num_args = 0..=1, default_missing_value = "true")]
    pub sip_drop_unallowed_sources: Option<bool>,
    /// Call records older than this many days are deleted (swept hourly); 0 keeps them
    /// forever [default: 90]
    #[arg(long, env = "VC_CALL_RECORD_RETENTION_DAYS")]
    pub call_record_retention_days: Option<u32>,
    /// Seconds between sweeps of retained call audio (a streaming configuration's
    /// DataRetentionInHours): audio past its period is deleted [default: 300]
    #[arg(long, env = "VC_STREAM_RETENTION_SWEEP_SECS", value_parser = clap::value_parser!(u32).range(1..))]
    pub stream_retention_sweep_secs: Option<u32>,
    /// Seconds calls may go on after SIGTERM (new calls get 503 with Retry-After meanwhile)
    /// before they get BYE with a Reason [default: 20]
    #[arg(long, env = "VC_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<u32>,
    /// Seconds a carrier (or a PBX we call) may ring before we CANCEL and try the next
    /// route [default: 30]
    #[arg(long, env = "VC_CARRIER_ANSWER_TIMEOUT")]
    pub carrier_answer_timeout: Option<u32>,
    /// Seconds between OPTIONS keep-alives to each carrier (up/down in `admin carriers
    /// list` and /metrics); 0 turns them off [default: 30]
    #[arg(long, env = "VC_CARRIER_OPTIONS_INTERVAL")]
    pub carrier_options_interval: Option<u32>,
    /// TLS certificate chain (PEM) for SIP over TLS [default: issued by the development CA]
    #[arg(long, env = "VC_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) matching --tls-cert
    #[arg(long, env = "VC_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve the API and the browsers' WebSocket over HTTPS/WSS, with the certificate SIP
    /// over TLS uses (--tls-cert, or the development CA's): `on`, `off`, or `auto` (on
    /// unless --http is a loopback address or --public-url names a TLS proxy in front) [default: auto]
    #[arg(long, env = "VC_HTTP_TLS", num_args = 0..=1, default_missing_value = "on")]
    pub http_tls: Option<crate::http::TlsMode>,
    /// `https://HOST[:PORT]` where clients reach the API (a TLS proxy in front of it): the
    /// meetings' SignalingUrl and EventIngestionUrl use it [default: the request's Host]
    #[arg(long, env = "VC_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds an HTTP request head (and a TLS handshake) may take to arrive; also how long
    /// an idle kept-alive connection stays open [default: 10]
    #[arg(long, env = "VC_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Option<u64>,
    /// Seconds an HTTP request may take from its head to its answer, body included [default: 30]
    #[arg(long, env = "VC_HTTP_REQUEST_TIMEOUT")]
    pub http_request_timeout: Option<u64>,
    /// Open HTTP connections (WebSockets included) at most; past it new ones get 503 [default: 1024]
    #[arg(long, env = "VC_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// Seconds the HTTP connections get to finish at shutdown before they are dropped [default: 5]
    #[arg(long, env = "VC_HTTP_SHUTDOWN_TIMEOUT")]
    pub http_shutdown_timeout: Option<u64>,
    /// `http(s)://HOST[:PORT]` of an S3-compatible server (MinIO, Ceph, moto) holding SIP
    /// media applications' prompts and recordings, spoken to path-style with SigV4
    /// [default: none: prompts from <data-dir>/audio/BUCKET/KEY, recordings to
    /// <data-dir>/recordings/BUCKET/KEY]
    #[arg(long, env = "VC_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Region the S3 requests are signed for [default: us-east-1]
    #[arg(long, env = "VC_S3_REGION")]
    pub s3_region: Option<String>,
    /// Access key id for --s3-endpoint [default: AWS_ACCESS_KEY_ID]
    #[arg(long, env = "VC_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// Secret access key for --s3-endpoint [default: AWS_SECRET_ACCESS_KEY]
    #[arg(long, env = "VC_S3_SECRET_ACCESS_KEY", hide_env_values = true, value_parser = secret_arg)]
    pub s3_secret_access_key: Option<crate::sma::s3::Secret>,
    /// PEM file of CA certificates trusted, besides the system's bundle, by the https
    /// client of SIP media application functions and --s3-endpoint (a private CA)
    #[arg(long, env = "VC_SMA_CA_FILE")]
    pub sma_ca_file: Option<PathBuf>,
    /// Text-to-speech program for SIP media applications' Speak and SpeakAndGetDigits:
    /// espeak-ng or one that takes its arguments (`--stdout`, `-v LANGUAGE`, `-m` for SSML,
    /// the text last) and writes a WAV to stdout [default: none: Speak fails, saying so]
    #[arg(long, env = "VC_TTS_COMMAND")]
    pub tts_command: Option<PathBuf>,
    /// TURN server URIs given to browsers in JOIN_ACK, comma-separated (e.g.
    /// `turn:turn.example.com:3478?transport=udp,turn:turn.example.com:443?transport=tcp`),
    /// with --turn-secret-file; browsers then relay all their media through it
    /// [default: none: browsers reach the WebRTC port directly]
    #[arg(long, env = "VC_TURN_URIS", value_delimiter = ',')]
    pub turn_uris: Vec<String>,
    /// File holding the secret shared with the TURN server (coturn's `static-auth-secret`):
    /// browsers get time-limited credentials made with it
    #[arg(long, env = "VC_TURN_SECRET_FILE")]
    pub turn_secret_file: Option<PathBuf>,
    /// This node's name in the registry of nodes sharing one PostgreSQL database
    /// [default: the host name]
    #[arg(long, env = "VC_NODE_ID")]
    pub node_id: Option<String>,
    /// host:port other nodes send SIP for this node's meetings to [default: --sip when it
    /// names an address]
    #[arg(long, env = "VC_ADVERTISE_SIP")]
    pub advertise_sip: Option<String>,
    /// Base URL of this node's API and signaling [default: --public-url, else http(s)://--http]
    #[arg(long, env = "VC_ADVERTISE_HTTP")]
    pub advertise_http: Option<String>,
    /// Seconds without a heartbeat after which a node is dead and its meetings are placed
    /// again at their next join [default: 5]
    #[arg(long, env = "VC_NODE_DEAD_AFTER", value_parser = clap::value_parser!(u32).range(2..))]
    pub node_dead_after: Option<u32>,
}

/// The TOML file: the same names as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileSettings {
    data_dir: Option<PathBuf>,
    http: Option<SocketAddr>,
    sip: Option<SocketAddr>,
    sip_tls: Option<SocketAddr>,
    rtp_ports: Option<String>,
    media_ip: Option<std::net::IpAddr>,
    media_latch: Option<bool>,
    webrtc_udp: Option<SocketAddr>,
    sip_domain: Option<String>,
    database_url: Option<String>,
    api_rate_limit: Option<u32>,
    meeting_idle_timeout: Option<u32>,
    media_metrics_interval: Option<u32>,
    sip_max_transactions_per_source: Option<usize>,
    sip_drop_unallowed_sources: Option<bool>,
    call_record_retention_days: Option<u32>,
    stream_retention_sweep_secs: Option<u32>,
    drain_timeout: Option<u32>,
    carrier_answer_timeout: Option<u32>,
    carrier_options_interval: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    http_tls: Option<crate::http::TlsMode>,
    public_url: Option<String>,
    http_header_timeout: Option<u64>,
    http_request_timeout: Option<u64>,
    http_max_connections: Option<usize>,
    http_shutdown_timeout: Option<u64>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<crate::sma::s3::Secret>,
    sma_ca_file: Option<PathBuf>,
    tts_command: Option<PathBuf>,
    node_id: Option<String>,
    advertise_sip: Option<String>,
    advertise_http: Option<String>,
    node_dead_after: Option<u32>,
}

/// The resolved configuration every part of the server reads.
#[derive(Debug, Clone)]
#[allow(dead_code)] // media_ip is read by the media engine, which lands next
pub struct Config {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub sip: SocketAddr,
    pub sip_tls: SocketAddr,
    pub rtp_ports: (u16, u16),
    pub media_ip: Option<std::net::IpAddr>,
    /// Symmetric-RTP latching for SIP legs (`engine::EngineConfig::media_latch`).
    pub media_latch: bool,
    pub webrtc_udp: SocketAddr,
    pub sip_domain: String,
    pub database_url: String,
    pub api_rate_limit: u32,
    pub meeting_idle_timeout: u32,
    pub media_metrics_interval: u32,
    pub sip_max_transactions_per_source: usize,
    pub sip_drop_unallowed_sources: bool,
    /// 0: call records are kept forever.
    pub call_record_retention_days: u32,
    /// Seconds between sweeps of retained call audio.
    pub stream_retention_sweep_secs: u32,
    /// Seconds calls may go on after SIGTERM.
    pub drain_timeout: u32,
    /// Seconds an outgoing leg may ring before the next route is tried.
    pub carrier_answer_timeout: u32,
    /// Seconds between OPTIONS keep-alives to carriers; 0: none.
    pub carrier_options_interval: u32,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The HTTP listener: TLS, public URL, deadlines, connection cap.
    pub http_options: crate::http::HttpOptions,
    /// The S3-compatible server of prompts and recordings; `None`: the data directory.
    pub s3: Option<crate::sma::s3::S3Config>,
    /// CA certificates the https client trusts besides the system's (`--sma-ca-file`).
    pub sma_ca_file: Option<PathBuf>,
    /// The text-to-speech program (`--tts-command`).
    pub tts_command: Option<PathBuf>,
    /// The TURN server browsers relay through (`--turn-uris`, `--turn-secret-file`).
    pub turn: Option<chime_signal::TurnConfig>,
    /// This node in the cluster (`--node-id`, `--advertise-*`, `--node-dead-after`).
    pub cluster: crate::cluster::ClusterConfig,
}

fn secret_arg(s: &str) -> Result<crate::sma::s3::Secret, std::convert::Infallible> {
    Ok(crate::sma::s3::Secret::new(s))
}

fn parse_port_range(s: &str) -> anyhow::Result<(u16, u16)> {
    let (lo, hi) = s
        .split_once('-')
        .with_context(|| format!("--rtp-ports must be LOW-HIGH, got {s:?}"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .with_context(|| format!("bad low port in {s:?}"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .with_context(|| format!("bad high port in {s:?}"))?;
    if lo == 0 || hi < lo || (hi - lo) < 1 {
        bail!("--rtp-ports {s:?}: need 1 <= LOW < HIGH");
    }
    Ok((lo, hi))
}

impl Settings {
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let http_options = self.http_options(&file)?;
        let s3 = self.s3(&file)?;
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = self
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| {
                format!("sqlite://{}", data_dir.join("voice-connector.db").display())
            });
        let sip_domain = self
            .sip_domain
            .clone()
            .or(file.sip_domain)
            .unwrap_or_else(|| "voiceconnector.localhost".to_string())
            .to_ascii_lowercase();
        if sip_domain.is_empty()
            || sip_domain.starts_with('.')
            || sip_domain.contains(char::is_whitespace)
        {
            bail!("--sip-domain {sip_domain:?} is not a host name");
        }
        let tls_cert = self.tls_cert.clone().or(file.tls_cert);
        let tls_key = self.tls_key.clone().or(file.tls_key);
        if tls_cert.is_some() != tls_key.is_some() {
            bail!("--tls-cert and --tls-key go together");
        }
        Ok(Config {
            http: self
                .http
                .or(file.http)
                .unwrap_or(([127, 0, 0, 1], 8080).into()),
            sip: self.sip.or(file.sip).unwrap_or(([0, 0, 0, 0], 5060).into()),
            sip_tls: self
                .sip_tls
                .or(file.sip_tls)
                .unwrap_or(([0, 0, 0, 0], 5061).into()),
            rtp_ports: parse_port_range(
                self.rtp_ports
                    .as_deref()
                    .or(file.rtp_ports.as_deref())
                    .unwrap_or("20000-29999"),
            )?,
            media_ip: self.media_ip.or(file.media_ip),
            media_latch: self.media_latch.or(file.media_latch).unwrap_or(false),
            webrtc_udp: self
                .webrtc_udp
                .or(file.webrtc_udp)
                .unwrap_or(([0, 0, 0, 0], 0).into()),
            sip_domain,
            database_url,
            api_rate_limit: self.api_rate_limit.or(file.api_rate_limit).unwrap_or(1000),
            media_metrics_interval: self
                .media_metrics_interval
                .or(file.media_metrics_interval)
                .unwrap_or(60)
                .max(1),
            sip_max_transactions_per_source: self
                .sip_max_transactions_per_source
                .or(file.sip_max_transactions_per_source)
                .unwrap_or(sip::TransactionConfig::default().max_transactions_per_source)
                .max(16),
            sip_drop_unallowed_sources: self
                .sip_drop_unallowed_sources
                .or(file.sip_drop_unallowed_sources)
                .unwrap_or(false),
            call_record_retention_days: self
                .call_record_retention_days
                .or(file.call_record_retention_days)
                .unwrap_or(90),
            stream_retention_sweep_secs: self
                .stream_retention_sweep_secs
                .or(file.stream_retention_sweep_secs)
                .unwrap_or(300)
                .max(1),
            drain_timeout: self.drain_timeout.or(file.drain_timeout).unwrap_or(20),
            carrier_answer_timeout: self
                .carrier_answer_timeout
                .or(file.carrier_answer_timeout)
                .unwrap_or(30),
            carrier_options_interval: self
                .carrier_options_interval
                .or(file.carrier_options_interval)
                .unwrap_or(30),
            meeting_idle_timeout: self
                .meeting_idle_timeout
                .or(file.meeting_idle_timeout)
                .unwrap_or(domain::meeting::IDLE_END_SECS as u32),
            data_dir,
            tls_cert,
            tls_key,
            http_options,
            s3,
            sma_ca_file: self.sma_ca_file.clone().or(file.sma_ca_file),
            tts_command: self.tts_command.clone().or(file.tts_command),
            turn: crate::browser::turn_config(&self.turn_uris, self.turn_secret_file.as_deref())?,
            cluster: crate::cluster::ClusterConfig::resolve(
                self.node_id.clone().or(file.node_id),
                self.advertise_sip.clone().or(file.advertise_sip),
                self.advertise_http.clone().or(file.advertise_http),
                self.node_dead_after.or(file.node_dead_after),
            )?,
        })
    }

    /// `--s3-*`, with the access key from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`
    /// when neither the flags, their `VC_*` variables nor the file give it.
    fn s3(&self, file: &FileSettings) -> anyhow::Result<Option<crate::sma::s3::S3Config>> {
        let from_env = |name: &str| std::env::var(name).ok().filter(|s| !s.is_empty());
        let region = self.s3_region.clone().or(file.s3_region.clone());
        let key_id = self
            .s3_access_key_id
            .clone()
            .or(file.s3_access_key_id.clone());
        let secret = self
            .s3_secret_access_key
            .clone()
            .or(file.s3_secret_access_key.clone());
        let Some(endpoint) = self.s3_endpoint.clone().or(file.s3_endpoint.clone()) else {
            if region.is_some() || key_id.is_some() || secret.is_some() {
                bail!("--s3-region and the --s3 access key need --s3-endpoint");
            }
            return Ok(None);
        };
        let key_id = key_id.or_else(|| from_env("AWS_ACCESS_KEY_ID"));
        let secret =
            secret.or_else(|| from_env("AWS_SECRET_ACCESS_KEY").map(crate::sma::s3::Secret::new));
        let (Some(key_id), Some(secret)) = (key_id, secret) else {
            bail!(
                "--s3-endpoint needs --s3-access-key-id and --s3-secret-access-key \
                 (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            );
        };
        let region = region.unwrap_or_else(|| "us-east-1".to_string());
        crate::sma::s3::S3Config::new(&endpoint, &region, &key_id, secret)
            .map(Some)
            .map_err(anyhow::Error::msg)
    }

    fn http_options(&self, file: &FileSettings) -> anyhow::Result<crate::http::HttpOptions> {
        let d = crate::http::HttpOptions::default();
        let secs =
            |flag: Option<u64>, file: Option<u64>, default: std::time::Duration, name| match flag
                .or(file)
            {
                Some(0) => bail!("--{name} must be at least 1 second"),
                Some(n) => Ok(std::time::Duration::from_secs(n)),
                None => Ok(default),
            };
        Ok(crate::http::HttpOptions {
            tls: self.http_tls.or(file.http_tls).unwrap_or(d.tls),
            public_url: self
                .public_url
                .clone()
                .or(file.public_url.clone())
                .map(|u| crate::http::public_url(&u))
                .transpose()?,
            header_timeout: secs(
                self.http_header_timeout,
                file.http_header_timeout,
                d.header_timeout,
                "http-header-timeout",
            )?,
            request_timeout: secs(
                self.http_request_timeout,
                file.http_request_timeout,
                d.request_timeout,
                "http-request-timeout",
            )?,
            max_connections: self
                .http_max_connections
                .or(file.http_max_connections)
                .unwrap_or(d.max_connections)
                .max(1),
            shutdown_timeout: secs(
                self.http_shutdown_timeout,
                file.http_shutdown_timeout,
                d.shutdown_timeout,
                "http-shutdown-timeout",
            )?,
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Settings::default().resolve().expect("defaults resolve");
        assert_eq!(c.http.to_string(), "127.0.0.1:8080");
        assert_eq!(c.sip.to_string(), "0.0.0.0:5060");
        assert_eq!(c.sip_tls.to_string(), "0.0.0.0:5061");
        assert_eq!(c.rtp_ports, (20000, 29999));
        assert_eq!(c.sip_domain, "voiceconnector.localhost");
        assert!(c.database_url.starts_with("sqlite://"));
        assert_eq!(c.call_record_retention_days, 90);
    }

    #[test]
    fn file_then_flag_precedence() {
        let dir = std::env::temp_dir().join(format!("vc-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("c.toml");
        std::fs::write(&path, "http = \"127.0.0.1:9000\"\nsip-domain = \"Example.COM\"\nrtp-ports = \"30000-30100\"\n")
            .expect("write");
        let mut s = Settings {
            config: Some(path.clone()),
            ..Default::default()
        };
        let c = s.resolve().expect("resolve");
        assert_eq!(c.http.to_string(), "127.0.0.1:9000");
        assert_eq!(c.sip_domain, "example.com");
        assert_eq!(c.rtp_ports, (30000, 30100));
        s.http = Some("127.0.0.1:9001".parse().expect("addr"));
        assert_eq!(
            s.resolve().expect("resolve").http.to_string(),
            "127.0.0.1:9001"
        );
        std::fs::write(&path, "htp = 1\n").expect("write");
        assert!(s.resolve().is_err(), "unknown keys are refused");
    }

    #[test]
    fn http_listener_settings() {
        let c = Settings::default().resolve().expect("defaults");
        assert_eq!(c.http_options, crate::http::HttpOptions::default());
        let dir = std::env::temp_dir().join(format!("vc-cfg-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "http-tls = true\npublic-url = \"HTTPS://vc.example.com/\"\nhttp-max-connections = 10\n",
        )
        .expect("write");
        let mut s = Settings {
            config: Some(path.clone()),
            http_header_timeout: Some(3),
            ..Default::default()
        };
        let o = s.resolve().expect("resolve").http_options;
        assert_eq!(o.tls, crate::http::TlsMode::On);
        assert_eq!(o.public_url.as_deref(), Some("https://vc.example.com"));
        assert_eq!(o.max_connections, 10);
        assert_eq!(o.header_timeout, std::time::Duration::from_secs(3));
        s.http_request_timeout = Some(0);
        assert!(s.resolve().is_err(), "a zero deadline is refused");
        s.http_request_timeout = None;
        s.public_url = Some("https://vc.example.com/api".into());
        assert!(s.resolve().is_err(), "a public URL with a path is refused");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn s3_settings() {
        use crate::sma::s3::Secret;
        assert!(
            Settings::default()
                .resolve()
                .expect("defaults")
                .s3
                .is_none()
        );
        let mut s = Settings {
            s3_endpoint: Some("http://127.0.0.1:9000".into()),
            s3_access_key_id: Some("AKID".into()),
            s3_secret_access_key: Some(Secret::new("s3cr3t")),
            ..Default::default()
        };
        let c = s.resolve().expect("resolve");
        let s3 = c.s3.as_ref().expect("s3 configured");
        assert_eq!(
            (s3.region.as_str(), s3.connect.as_str()),
            ("us-east-1", "127.0.0.1:9000")
        );
        assert!(
            !format!("{c:?}").contains("s3cr3t"),
            "the secret is never printed"
        );
        s.s3_endpoint = Some("https://s3.amazonaws.com".into());
        let c = s.resolve().expect("https endpoint");
        let tls_name = c.s3.and_then(|s3| s3.tls_name);
        assert_eq!(tls_name.as_deref(), Some("s3.amazonaws.com"));
        s.s3_endpoint = None;
        assert!(
            s.resolve().is_err(),
            "an access key without an endpoint is refused"
        );
    }

    #[test]
    fn bad_port_range() {
        assert!(parse_port_range("30000").is_err());
        assert!(parse_port_range("300-200").is_err());
        assert!(parse_port_range("0-10").is_err());
    }
}
