//! `voice-connector serve`: opens the store, starts the API and the SIP edge, runs the
//! meeting auto-end sweep, and stops cleanly on SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use store::{Repository, SqlRepository};

use crate::config::Config;
use crate::secrets;

/// Opens (and migrates) the configured database, with the data dir's private modes.
pub(crate) async fn open_store(cfg: &Config) -> anyhow::Result<SqlRepository> {
    secrets::private_data_dir(&cfg.data_dir)?;
    secrets::create_private_database(&cfg.database_url)?;
    let repo = SqlRepository::connect(&cfg.database_url)
        .await
        .with_context(|| format!("opening database {}", redact_url(&cfg.database_url)))?;
    secrets::private_database_files(&cfg.database_url)?;
    Ok(repo)
}

/// The database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// How often calls are checked against the store for meetings and attendees deleted
/// elsewhere (another node) or missed on the event channel.
const RECONCILE_PERIOD: Duration = Duration::from_secs(5);

/// How long a shutdown waits for the last call records to be stored.
const RECORD_FLUSH: Duration = Duration::from_secs(10);

/// A running server: the API and signaling on one HTTP listener, the SIP edge, the
/// WebRTC port and the background drivers.
pub struct Server {
    pub http: std::net::SocketAddr,
    pub repo: Arc<dyn Repository>,
    pub controller: crate::edge::Controller,
    pub meetings: Arc<crate::directory::Meetings>,
    pub webrtc: Arc<crate::webrtc_port::WebRtcPort>,
    edge: crate::edge::SipEdge,
    records: crate::records::RecordWriter,
    drain_timeout: u32,
    cluster: Arc<crate::cluster::Cluster>,
    http_server: crate::http::HttpServer,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// `voice-connector serve`: runs until SIGINT or SIGTERM.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let server = Server::start(cfg).await?;
    shutdown_signal().await;
    server.stop().await?;
    tracing::info!("voice-connector stopped");
    Ok(())
}

impl Server {
    /// Stops taking requests, lets the HTTP connections finish (until
    /// `--http-shutdown-timeout`, then drops them), and stops the rest.
    pub async fn stop(self) -> anyhow::Result<()> {
        // The registry first: no new meeting is placed here from now on.
        self.cluster.set_draining().await;
        // Calls first: no new ones, the live ones get their drain time, then BYE; their
        // records are stored before anything else stops.
        self.controller
            .drain(Duration::from_secs(u64::from(self.drain_timeout)))
            .await;
        if !self.records.flush(RECORD_FLUSH).await {
            tracing::error!("call records were still being stored when the shutdown went on");
        }
        self.http_server.stop().await;
        for t in self.tasks {
            t.abort();
        }
        self.edge.shutdown().await;
        Ok(())
    }

    /// Opens the store and starts everything.
    pub async fn start(cfg: Config) -> anyhow::Result<Server> {
        let repo = open_store(&cfg).await?;
        crate::sma::tls::install(cfg.sma_ca_file.as_deref())?;
        let (creds, origin) = secrets::api_credentials(&cfg.data_dir)?;
        let token_key = secrets::token_key(&cfg.data_dir)?;
        // Every INVITE reads its connector's configuration: keep it for a second (this node's
        // API writes invalidate it at once; other nodes' writes are seen within the second).
        let cluster = crate::cluster::Cluster::new(&cfg.cluster, repo.clone());
        let cache = Arc::new(store::CachedRepository::new(
            Arc::new(repo),
            std::time::Duration::from_secs(1),
        ));
        let repo: Arc<dyn Repository> = cache.clone();
        let state = api::AppState::new(
            repo.clone(),
            creds.clone(),
            token_key,
            api::ApiConfig {
                sip_domain: cfg.sip_domain.clone(),
                rate_limit: cfg.api_rate_limit,
                body_timeout: cfg.http_options.request_timeout,
                public_url: cfg.http_options.public_url.clone(),
                tls: cfg.http_options.tls_on(cfg.http),
            },
        );
        state
            .metrics
            .set_start_time(domain::timestamp::now_millis() / 1000);

        let listener = tokio::net::TcpListener::bind(cfg.http)
            .await
            .with_context(|| format!("binding the API to {}", cfg.http))?;
        let http_addr = listener.local_addr()?;
        if let secrets::Origin::Generated = origin {
            print_first_start(&creds, http_addr, &cfg);
        }
        tracing::info!(api = %http_addr, sip_domain = %cfg.sip_domain, database = %redact_url(&cfg.database_url), "voice-connector started");

        let metrics = state.metrics.clone();
        let mut admission = crate::admission::Admission::new(repo.clone(), cfg.sip_domain.clone());
        admission.drop_unallowed_sources = cfg.sip_drop_unallowed_sources;
        admission.siplog = Some(crate::siplog::SipLogger::new(
            cfg.data_dir.join("logs"),
            metrics.clone(),
        ));
        let (events_tx, events_rx) = tokio::sync::mpsc::channel(1024);
        let meetings = crate::directory::Meetings::new(
            engine::EngineConfig {
                media_latch: cfg.media_latch,
                ..Default::default()
            },
            events_tx,
            Arc::new(MeetingMetrics(metrics.clone())),
        );
        let records = crate::records::RecordWriter::start(repo.clone());
        records.export_to(crate::cdr_export::CdrExport::new(
            repo.clone(),
            cfg.s3.clone(),
            cfg.data_dir.clone(),
        ));
        let ctx = crate::edge::JoinContext {
            admission: Arc::new(admission),
            meetings: meetings.clone(),
            ports: Arc::new(crate::ports::PortPool::new(
                cfg.rtp_ports.0,
                cfg.rtp_ports.1,
            )),
            media_ip: cfg.media_ip,
            records: records.clone(),
            metrics: metrics.clone(),
            refusals: Default::default(),
            cluster: Some(cluster.clone()),
            sma: Arc::new(crate::sma::call::Services {
                invoker: crate::sma::invoke::Invoker::default(),
                prompts: crate::sma::prompts::Prompts::new(
                    crate::sma::objects::ObjectStore::new(cfg.s3.clone(), cfg.data_dir.clone()),
                    Default::default(),
                ),
                objects: crate::sma::objects::ObjectStore::new(
                    cfg.s3.clone(),
                    cfg.data_dir.clone(),
                ),
                tts: cfg.tts_command.clone(),
                repo: repo.clone(),
            }),
        };
        let edge = crate::edge::start(&cfg, ctx, events_rx).await?;
        let controller = edge.controller.clone();
        for (t, name) in [
            (sip_transport::Transport::Udp, "udp"),
            (sip_transport::Transport::Tcp, "tcp"),
            (sip_transport::Transport::Tls, "tls"),
        ] {
            if let Some(a) = edge.local_addr(t) {
                tracing::info!(transport = name, addr = %a, "SIP listening");
            }
        }
        if let Some(ca) = edge.transports.dev_ca_path() {
            tracing::info!(ca = %ca.display(), "development CA (trust it in PBX test setups)");
        }
        let webrtc = crate::webrtc_port::WebRtcPort::bind(cfg.webrtc_udp, cfg.media_ip)
            .await
            .with_context(|| format!("binding the WebRTC port {}", cfg.webrtc_udp))?;
        tracing::info!(addr = %webrtc.local_addr()?, "WebRTC (browser attendees) listening");
        let webrtc_task = tokio::spawn(webrtc.clone().run());
        let control_task = tokio::spawn(crate::sweeps::forward_control_events(
            state.events.subscribe(),
            controller.clone(),
            repo.clone(),
            meetings.clone(),
        ));
        let cluster_started = crate::cluster::start(
            &cluster,
            crate::cluster::Addresses {
                sip: edge.local_addr(sip_transport::Transport::Udp),
                http: http_addr,
                http_tls: cfg.http_options.tls_on(cfg.http),
                public_url: cfg.http_options.public_url.clone(),
                media_ip: cfg.media_ip,
            },
            &cfg.database_url,
            cache,
            &state.events,
            node_load(controller.clone()),
        )
        .await;
        let mut cluster_tasks = cluster_started.tasks;
        cluster_tasks.push(tokio::spawn(crate::sweeps::forward_control_events(
            cluster_started.remote_events,
            controller.clone(),
            repo.clone(),
            meetings.clone(),
        )));
        let reconcile_task = tokio::spawn(crate::sweeps::reconcile_every(
            repo.clone(),
            controller.clone(),
            RECONCILE_PERIOD,
        ));
        let probe_task = tokio::spawn(crate::sweeps::probe_carriers(
            repo.clone(),
            controller.clone(),
            cfg.carrier_options_interval,
        ));
        let register_task = tokio::spawn(crate::edge::register_carriers(
            repo.clone(),
            controller.clone(),
        ));
        let metrics_task = tokio::spawn(crate::media_metrics::run(
            controller.clone(),
            cfg.data_dir.join("logs"),
            Duration::from_secs(u64::from(cfg.media_metrics_interval)),
        ));
        let sweeper = tokio::spawn(crate::sweeps::sweep_meetings(
            state.clone(),
            controller.clone(),
            i64::from(cfg.meeting_idle_timeout),
        ));
        let sma_controller = controller.clone();
        let sma_requests = tokio::spawn(crate::sma::requests::poll(repo.clone(), move |reqs| {
            let c = sma_controller.clone();
            async move { c.sma_requests(reqs).await }
        }));
        let retention = tokio::spawn(crate::sweeps::sweep_call_records(
            repo.clone(),
            cfg.call_record_retention_days,
        ));
        crate::streaming::retention::install(&cfg.data_dir, cfg.s3.clone());
        let stream_audio = tokio::spawn(crate::sweeps::sweep_stream_audio(
            cfg.stream_retention_sweep_secs,
        ));
        let signaling = crate::signaling::routes(Arc::new(crate::signaling::SignalingState {
            repo: repo.clone(),
            browsers: crate::browser::Browsers {
                controller,
                meetings: meetings.clone(),
                port: webrtc.clone(),
                data: Default::default(),
                turn: cfg.turn.clone(),
            },
            metrics: metrics.clone(),
            lookups: crate::http::LookupGate::new(
                crate::http::LookupGate::CONCURRENT,
                crate::http::LookupGate::WAIT,
                metrics.clone(),
            ),
        }));
        let app = signaling
            .merge(api::router(state.clone()))
            .merge(crate::console::routes())
            .merge(crate::cluster::admin::routes(
                state.clone(),
                cluster.clone(),
            ))
            .merge(crate::console_sip::routes(
                state.clone(),
                cfg.data_dir.join("logs"),
            ))
            .merge(crate::console_calls::routes(
                state.clone(),
                edge.controller.clone(),
            ))
            .merge(crate::console_carriers::routes(state.clone()));
        let tls = match cfg.http_options.tls_on(cfg.http) {
            false => None,
            true => Some(http_tls(&cfg, &edge)?),
        };
        tracing::info!(
            url = %format!("{}://{http_addr}", if tls.is_some() { "https" } else { "http" }),
            public_url = cfg.http_options.public_url.as_deref().unwrap_or("-"),
            "API listening"
        );
        let http_server =
            crate::http::HttpServer::spawn(listener, app, tls, &cfg.http_options, metrics.clone());
        Ok(Server {
            http: http_addr,
            repo,
            controller: edge.controller.clone(),
            meetings,
            webrtc,
            edge,
            records,
            drain_timeout: cfg.drain_timeout,
            cluster,
            http_server,
            tasks: vec![
                sweeper,
                webrtc_task,
                control_task,
                reconcile_task,
                probe_task,
                register_task,
                metrics_task,
                retention,
                sma_requests,
                stream_audio,
            ]
            .into_iter()
            .chain(cluster_tasks)
            .collect(),
        })
    }
}

/// The HTTP listener's TLS: the certificate SIP over TLS uses (`--tls-cert`/`--tls-key`, or
/// the one the development CA issued for SIP, which names localhost and the loopback
/// addresses).
fn http_tls(
    cfg: &Config,
    edge: &crate::edge::SipEdge,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let (cert, key) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let dev = edge
                .transports
                .dev_certificates()
                .context("--http-tls needs --tls-cert/--tls-key or the development CA")?;
            (dev.server_cert.clone(), dev.server_key.clone())
        }
    };
    crate::http::tls_acceptor(&cert, &key)
        .with_context(|| format!("HTTPS certificate {}", cert.display()))
}

fn print_first_start(creds: &api::sigv4::Credentials, http: std::net::SocketAddr, cfg: &Config) {
    let id = &creds.access_key_id;
    let secret = creds.secret();
    let dir = cfg.data_dir.display();
    // Over HTTPS the clients trust the development CA (or the operator's certificate).
    let (url, verify, ca_bundle) =
        match (&cfg.http_options.public_url, cfg.http_options.tls_on(http)) {
            (Some(public), _) => (public.clone(), String::new(), String::new()),
            (None, false) => (format!("http://{http}"), String::new(), String::new()),
            (None, true) if cfg.tls_cert.is_some() => {
                (format!("https://{http}"), String::new(), String::new())
            }
            (None, true) => (
                format!("https://{http}"),
                format!(", verify='{dir}/tls/ca.pem'"),
                format!(" --ca-bundle {dir}/tls/ca.pem"),
            ),
        };
    println!(
        "\nGenerated API credentials (stored in {dir}/api-credentials, mode 0600; shown only now):\n\
         \n  VC_ACCESS_KEY_ID={id}\n  VC_SECRET_ACCESS_KEY={secret}\n\
         \nboto3:\n\
         \n  import boto3\n  voice = boto3.client('chime-sdk-voice', endpoint_url='{url}', region_name='us-east-1',\n      aws_access_key_id='{id}', aws_secret_access_key='{secret}'{verify})\n  voice.create_voice_connector(Name='pbx', RequireEncryption=True)\n\
         \naws CLI:\n\
         \n  AWS_ACCESS_KEY_ID={id} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION=us-east-1 \\\n    aws chime-sdk-voice list-voice-connectors --endpoint-url {url}{ca_bundle}\n",
    );
}

/// This node's SIP and browser legs and its meetings (bridges are not meetings), for the
/// cluster's heartbeat.
fn node_load(controller: crate::edge::Controller) -> crate::cluster::LoadFn {
    Box::new(move || {
        let c = controller.clone();
        Box::pin(async move {
            let meetings = c.meetings().await;
            let meetings = meetings
                .iter()
                .filter(|m| !crate::edge::is_bridge(m))
                .count();
            (c.members().await.len(), meetings)
        })
    })
}

/// Counts what meeting tasks see, for `/metrics`.
struct MeetingMetrics(Arc<api::metrics::Metrics>);

impl crate::meeting::MeetingObserver for MeetingMetrics {
    fn dtmf(&self) {
        self.0.counter_add("vc_dtmf_events_total", "", 1);
    }
    fn webrtc_connected(&self) {
        self.0.counter_add("vc_webrtc_connected_total", "", 1);
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// `voice-connector admin add-numbers`: adds E.164 numbers to the inventory, or with
/// `pool` (its state and city) to the operator's pool.
pub async fn add_numbers(
    cfg: Config,
    numbers: &[String],
    pool: Option<(Option<&str>, Option<&str>)>,
) -> anyhow::Result<()> {
    let repo = open_store(&cfg).await?;
    if let Some((state, city)) = pool {
        let lines = api::numbering::add_to_pool(&repo, numbers, state, city)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        lines.iter().for_each(|l| println!("{l}"));
        return Ok(());
    }
    let now = domain::timestamp::iso8601(domain::timestamp::now_millis());
    for n in numbers {
        let pn = domain::voice_connector::PhoneNumber::new(n, &now)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if repo.add_phone_number(&pn).await? {
            println!(
                "added {n} ({})",
                pn.country.as_deref().unwrap_or("unknown country")
            );
        } else {
            println!("{n} is already in the inventory");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_not_shown() {
        assert_eq!(
            super::redact_url("postgres://vc:s3cret@db:5432/vc"),
            "postgres://vc:***@db:5432/vc"
        );
        assert_eq!(
            super::redact_url("sqlite://./data/x.db"),
            "sqlite://./data/x.db"
        );
    }
}
