//! `voice-connector serve`: opens the store, starts the API and the SIP edge, runs the
//! meeting auto-end sweep, and stops cleanly on SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use store::{Repository, SqlRepository};

use crate::config::Config;
use crate::secrets;

async fn open_store(cfg: &Config) -> anyhow::Result<SqlRepository> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    SqlRepository::connect(&cfg.database_url)
        .await
        .with_context(|| format!("opening database {}", redact_url(&cfg.database_url)))
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

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let repo = open_store(&cfg).await?;
    let (creds, origin) = secrets::api_credentials(&cfg.data_dir)?;
    let token_key = secrets::token_key(&cfg.data_dir)?;
    // Every INVITE reads its connector's configuration: keep it for a second (this node's
    // API writes invalidate it at once; other nodes' writes are seen within the second).
    let repo: Arc<dyn Repository> = Arc::new(store::CachedRepository::new(
        Arc::new(repo),
        std::time::Duration::from_secs(1),
    ));
    let state = api::AppState::new(
        repo.clone(),
        creds.clone(),
        token_key,
        api::ApiConfig {
            sip_domain: cfg.sip_domain.clone(),
            rate_limit: cfg.api_rate_limit,
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
        print_first_start(&creds, &http_addr.to_string(), &cfg);
    }
    tracing::info!(api = %http_addr, sip_domain = %cfg.sip_domain, database = %redact_url(&cfg.database_url), "voice-connector started");

    let metrics = state.metrics.clone();
    let mut router = crate::router::Router::new(repo.clone(), cfg.sip_domain.clone());
    router.drop_unallowed_sources = cfg.sip_drop_unallowed_sources;
    router.siplog = Some(crate::siplog::SipLogger::new(
        cfg.data_dir.join("logs"),
        metrics.clone(),
    ));
    let router = Arc::new(router);
    let media =
        crate::media::Media::new(cfg.rtp_ports, cfg.media_ip, metrics.clone(), repo.clone());
    let edge = crate::sip_edge::start(&cfg, router, Arc::new(media.clone())).await?;
    media.set_commands(edge.commands.clone());
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
    let webrtc = crate::webrtc::WebRtcPort::bind(cfg.webrtc_udp, cfg.media_ip)
        .await
        .with_context(|| format!("binding the WebRTC port {}", cfg.webrtc_udp))?;
    tracing::info!(addr = %webrtc.local_addr()?, "WebRTC (browser attendees) listening");
    media.set_webrtc(webrtc.clone());
    let webrtc_task = tokio::spawn(webrtc.run());
    tokio::spawn(forward_control_events(
        state.events.subscribe(),
        media.clone(),
    ));

    tokio::spawn(media.clone().run_media_metrics(
        cfg.data_dir.join("logs"),
        Duration::from_secs(u64::from(cfg.media_metrics_interval)),
    ));
    let sweeper = tokio::spawn(sweep_meetings(
        state.clone(),
        media.clone(),
        i64::from(cfg.meeting_idle_timeout),
    ));
    let signaling = crate::signaling::router(Arc::new(crate::signaling::SignalingState {
        repo: repo.clone(),
        media: media.clone(),
        metrics: metrics.clone(),
    }));
    let app = signaling.merge(api::router(state.clone()));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    sweeper.abort();
    webrtc_task.abort();
    edge.shutdown().await;
    tracing::info!("voice-connector stopped");
    Ok(())
}

fn print_first_start(creds: &api::sigv4::Credentials, http: &str, cfg: &Config) {
    let id = &creds.access_key_id;
    let secret = creds.secret();
    println!(
        "\nGenerated API credentials (stored in {dir}/api-credentials, mode 0600; shown only now):\n\
         \n  VC_ACCESS_KEY_ID={id}\n  VC_SECRET_ACCESS_KEY={secret}\n\
         \nboto3:\n\
         \n  import boto3\n  voice = boto3.client('chime-sdk-voice', endpoint_url='http://{http}', region_name='us-east-1',\n      aws_access_key_id='{id}', aws_secret_access_key='{secret}')\n  voice.create_voice_connector(Name='pbx', RequireEncryption=True)\n\
         \naws CLI:\n\
         \n  AWS_ACCESS_KEY_ID={id} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION=us-east-1 \\\n    aws chime-sdk-voice list-voice-connectors --endpoint-url http://{http}\n",
        dir = cfg.data_dir.display()
    );
}

/// Deleted meetings and attendees end their calls.
async fn forward_control_events(
    mut rx: tokio::sync::broadcast::Receiver<api::ControlEvent>,
    media: Arc<crate::media::Media>,
) {
    loop {
        match rx.recv().await {
            Ok(api::ControlEvent::MeetingDeleted { meeting_id }) => media.end_meeting(&meeting_id),
            Ok(api::ControlEvent::AttendeeDeleted { attendee_id, .. }) => {
                media.end_attendee(&attendee_id)
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "control events lagged");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// Ends meetings that AWS's auto-end rules say are over, every 30 seconds.
/// Meetings with calls on this node count as having audio; the others end after `idle_secs`
/// without one (several nodes sharing a database each refresh their own meetings).
async fn sweep_meetings(
    state: Arc<api::AppState>,
    media: Arc<crate::media::Media>,
    idle_secs: i64,
) {
    let period = Duration::from_secs((idle_secs as u64 / 4).clamp(1, 30));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let now = domain::timestamp::now_millis();
        for id in media.active_meetings() {
            if let Err(e) = state.repo.touch_meeting_audio(&id, now).await {
                tracing::warn!(meeting = %id, error = %e, "could not record audio activity");
            }
        }
        match state.repo.list_meetings().await {
            Ok(meetings) => {
                for m in meetings.iter().filter(|m| m.expired(now, Some(idle_secs))) {
                    if let Err(e) = api::end_meeting(&state, &m.meeting.meeting_id).await {
                        tracing::warn!(meeting = %m.meeting.meeting_id, error = %e, "auto-end failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "auto-end sweep could not list meetings"),
        }
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

/// `voice-connector admin add-numbers`: adds E.164 numbers to the inventory.
pub async fn add_numbers(cfg: Config, numbers: &[String]) -> anyhow::Result<()> {
    let repo = open_store(&cfg).await?;
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
