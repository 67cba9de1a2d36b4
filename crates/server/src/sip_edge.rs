//! The SIP edge: binds UDP, TCP and TLS (crate `sip-transport`), runs the sans-IO user agent
//! (crate `sip`) in one task, and routes every INVITE through [`crate::router::Router`].
//!
//! One task owns the [`sip::UserAgent`]: it feeds it datagrams and timer ticks, drains its
//! transmits to the transports and its events to the application. Work that waits on the
//! database (routing an INVITE, accepting a join) runs in spawned tasks that report back
//! through a bounded command channel, so the user agent never blocks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use domain::policy::Refusal;
use sip::{
    Body, CallKey, HeaderName, Method, Peer, Request, TransportKind, UaConfig, UaEvent, UserAgent,
};
use sip_transport::{Inbound, Outbound, TlsConfig, Transport, TransportConfig, Transports};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::router::{Decision, InviteFacts, Router};

/// The application side of calls: what happens to an admitted join and to call life-cycle
/// events. Implemented by the media engine.
pub trait CallApp: Send + Sync + 'static {
    /// A join was admitted. Returns the SDP answer, or a refusal (status, Warning text).
    fn accept_join(
        &self,
        call: CallKey,
        invite: &Request,
        peer: &Peer,
        join: &Decision,
    ) -> impl std::future::Future<Output = Result<Body, (u16, String)>> + Send;
    /// The ACK arrived: media may flow both ways. `ack_body` carries the answer to a
    /// delayed offer.
    fn confirmed(&self, call: CallKey, ack_body: &[u8]);
    /// The call ended (BYE, CANCEL, timeout, rejection).
    fn terminated(&self, call: CallKey, reason: sip::TerminationReason);
    /// Counts an INVITE that started a call attempt, and its refusal if it was refused.
    fn note_attempt(&self);
    fn note_refusal(&self, status: u16);
    /// An in-dialog offer (re-INVITE or UPDATE, for hold and resume). Returns the answer.
    fn reoffer(&self, call: CallKey, offer: &[u8]) -> Result<Body, (u16, String)>;
}

/// Commands for the user-agent task.
#[derive(Debug)]
pub enum Command {
    /// Answer the pending INVITE.
    Answer {
        call: CallKey,
        status: u16,
        warning: Option<String>,
        headers: Vec<(HeaderName, String)>,
        body: Option<Body>,
    },
    /// End a call (BYE, or 480 when unanswered), with an RFC 3326 Reason on the BYE.
    Hangup {
        call: CallKey,
        reason: Option<String>,
    },
    /// Send nothing for the pending INVITE and forget it (the operator chose silence for
    /// sources outside the allowlist); a retransmission is routed, and dropped, again.
    Discard { call: CallKey },
    /// Answer a server transaction outside the INVITE dialogs (OPTIONS).
    Respond {
        txn: sip::TransactionKey,
        response: sip::Response,
    },
}

/// A running SIP edge.
pub struct SipEdge {
    pub transports: Transports,
    pub commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl SipEdge {
    pub fn local_addr(&self, t: Transport) -> Option<SocketAddr> {
        self.transports.local_addr(t)
    }
    pub async fn shutdown(self) {
        self.transports.shutdown();
        self.task.abort();
    }
}

fn transport_kind(t: Transport) -> TransportKind {
    match t {
        Transport::Udp => TransportKind::Udp,
        Transport::Tcp => TransportKind::Tcp,
        Transport::Tls => TransportKind::Tls,
    }
}

fn transport_of(k: TransportKind) -> Option<Transport> {
    match k {
        TransportKind::Udp => Some(Transport::Udp),
        TransportKind::Tcp => Some(Transport::Tcp),
        TransportKind::Tls => Some(Transport::Tls),
        _ => None,
    }
}

/// The host the Warning header names (RFC 3261 §20.43 warn-agent).
const WARN_AGENT: &str = "voice-connector";

/// `Warning: 399 voice-connector "…"` with quotes and backslashes escaped.
pub fn warning_value(text: &str) -> String {
    let escaped: String = text
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect();
    format!("399 {WARN_AGENT} \"{}\"", escaped.replace('\\', "/"))
}

pub async fn start<A: CallApp>(
    cfg: &Config,
    router: Arc<Router>,
    app: Arc<A>,
) -> anyhow::Result<SipEdge> {
    let mut tcfg = TransportConfig::new(cfg.sip);
    tcfg.tls = Some(match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => TlsConfig::from_files(cfg.sip_tls, c, k),
        _ => TlsConfig::development(cfg.sip_tls, &cfg.data_dir, &cfg.sip_domain),
    });
    let (transports, inbound) = Transports::bind(tcfg)
        .await
        .context("binding the SIP transports")?;
    let (cmd_tx, cmd_rx) = mpsc::channel(4096);
    let mut ua_cfg = UaConfig {
        options_to_app: true,
        ..UaConfig::default()
    };
    ua_cfg.transaction.max_transactions_per_source = cfg.sip_max_transactions_per_source;
    let ua = UserAgent::new(ua_cfg, rand::random());
    let task = tokio::spawn(run_ua(
        ua,
        transports.clone(),
        inbound,
        cmd_rx,
        cmd_tx.clone(),
        router,
        app,
    ));
    Ok(SipEdge {
        transports,
        commands: cmd_tx,
        task,
    })
}

async fn run_ua<A: CallApp>(
    mut ua: UserAgent,
    transports: Transports,
    mut inbound: mpsc::Receiver<Inbound>,
    mut commands: mpsc::Receiver<Command>,
    cmd_tx: mpsc::Sender<Command>,
    router: Arc<Router>,
    app: Arc<A>,
) {
    // Call-IDs of calls whose SIP messages are being logged.
    let mut call_ids = std::collections::HashMap::new();
    loop {
        let deadline = ua.poll_timeout();
        tokio::select! {
            msg = inbound.recv() => {
                let Some(msg) = msg else { break };
                let peer = Peer { transport: transport_kind(msg.transport), local: msg.local, remote: msg.remote };
                if let Some(l) = &router.siplog {
                    l.log(&sip::log::LoggedMessage::inbound(peer, &msg.bytes));
                }
                if let Err(e) = ua.handle_datagram(Instant::now(), &msg.bytes, peer) {
                    tracing::debug!(remote = %msg.remote, error = %e, "malformed SIP message");
                }
            }
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                apply(&mut ua, cmd);
            }
            _ = sleep_until(deadline) => ua.handle_timeout(Instant::now()),
        }
        while let Some(t) = ua.poll_transmit() {
            if let Some(l) = &router.siplog {
                l.log(&sip::log::LoggedMessage::outbound(&t));
            }
            let Some(transport) = transport_of(t.peer.transport) else {
                continue;
            };
            let out = Outbound::to(transport, t.peer.remote, t.payload.into());
            if let Err(e) = transports.send(out).await {
                tracing::warn!(remote = %t.peer.remote, error = %e, "SIP send failed");
            }
        }
        while let Some(ev) = ua.poll_event() {
            on_event(&mut ua, ev, &router, &app, &cmd_tx, &mut call_ids);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn apply(ua: &mut UserAgent, cmd: Command) {
    let now = Instant::now();
    match cmd {
        Command::Answer {
            call,
            status,
            warning,
            headers,
            body,
        } => {
            let Ok(mut resp) = ua.make_response(call, status) else {
                return;
            };
            if let Some(w) = warning {
                resp.headers.push(HeaderName::Warning, &warning_value(&w));
            }
            for (name, value) in headers {
                resp.headers.push(name, &value);
            }
            if let Some(b) = body {
                resp.headers.set(HeaderName::ContentType, &b.content_type);
                resp.body = b.bytes;
            }
            if let Err(e) = ua.respond(now, call, resp) {
                tracing::debug!(?call, error = %e, "answer for a call that is gone");
            }
        }
        Command::Hangup { call, reason } => {
            let _ = match reason {
                Some(r) => ua.hangup_with_reason(now, call, &r),
                None => ua.hangup(now, call),
            };
        }
        Command::Respond { txn, response } => {
            let _ = ua.respond_request(now, txn, response);
        }
        Command::Discard { call } => {
            let _ = ua.discard(call);
        }
    }
}

/// OPTIONS (RFC 3261 §11.2) gets what an INVITE to the same host would: 404 with a Warning
/// for a host that is no voice connector here, else 200 with Allow, Accept and Supported.
/// Pings from a connector's allowlisted sources update its termination health.
async fn answer_options(
    router: &Router,
    ok: sip::Response,
    req: &Request,
    peer: &Peer,
) -> sip::Response {
    let host = req
        .uri
        .host()
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let vc = match router.connector_for_host(&host).await {
        Ok(Some(vc)) => vc,
        Ok(None) => {
            let r = Refusal::UnknownHost {
                host,
                sip_domain: router.sip_domain().to_string(),
            };
            let mut resp = sip::Response::for_request(req, r.status());
            resp.headers
                .push(HeaderName::Warning, &warning_value(&r.to_string()));
            return resp;
        }
        Err(e) => {
            tracing::warn!(error = %e, "OPTIONS lookup failed");
            return ok;
        }
    };
    if let Ok(Some(term)) = router.termination(&vc.voice_connector_id).await
        && term.allows_source(peer.remote.ip())
    {
        let health = domain::voice_connector::TerminationHealth {
            timestamp: Some(domain::timestamp::iso8601(domain::timestamp::now_millis())),
            source: Some(peer.remote.ip().to_string()),
        };
        if let Ok(doc) = serde_json::to_value(&health) {
            let _ = router
                .repo()
                .put_setting(
                    &vc.voice_connector_id,
                    store::SettingKind::TerminationHealth,
                    &doc,
                )
                .await;
        }
    }
    ok
}

/// Reads what routing needs from an INVITE.
fn invite_facts(req: &Request, peer: &Peer) -> InviteFacts {
    let uri = &req.uri;
    let token = uri
        .param("X-chime-join-token")
        .flatten()
        .or_else(|| uri.param("X-joinToken").flatten())
        .map(|t| String::from_utf8_lossy(&sip::percent_decode(t)).into_owned())
        .or_else(|| {
            req.headers
                .get_raw("X-chime-join-token")
                .next()
                .map(|v| v.trim().to_string())
        });
    let from_user = req
        .headers
        .from()
        .and_then(|f| f.uri.user_decoded().map(|u| u.into_owned()))
        .unwrap_or_default();
    InviteFacts {
        host: uri
            .host()
            .trim_matches(|c| c == '[' || c == ']')
            .to_string(),
        user: uri
            .user()
            .map(|u| String::from_utf8_lossy(&sip::percent_decode(u)).into_owned())
            .unwrap_or_default(),
        join_token: token,
        from_user,
        source: peer.remote.ip(),
        over_tls: peer.transport == TransportKind::Tls,
        request_uri: uri.to_string(),
        proxy_authorization: req
            .headers
            .get(HeaderName::ProxyAuthorization)
            .map(str::to_string),
    }
}

fn on_event<A: CallApp>(
    ua: &mut UserAgent,
    ev: UaEvent,
    router: &Arc<Router>,
    app: &Arc<A>,
    cmd_tx: &mpsc::Sender<Command>,
    call_ids: &mut std::collections::HashMap<CallKey, String>,
) {
    match ev {
        UaEvent::IncomingCall {
            call,
            request,
            peer,
        } => {
            if router.siplog.is_some()
                && let Some(id) = request.headers.get(HeaderName::CallId)
            {
                call_ids.insert(call, id.to_string());
            }
            let router = router.clone();
            let app = app.clone();
            let tx = cmd_tx.clone();
            tokio::spawn(async move {
                let cmd = route_call(&router, app.as_ref(), call, &request, &peer).await;
                let _ = tx.send(cmd).await;
            });
        }
        UaEvent::Confirmed { call, ack } => app.confirmed(call, &ack.body),
        UaEvent::Terminated { call, reason } => {
            if let Some((l, id)) = router.siplog.as_ref().zip(call_ids.remove(&call)) {
                l.disable(&id);
            }
            app.terminated(call, reason)
        }
        UaEvent::Reinvite { call, request } => {
            let now = Instant::now();
            match app.reoffer(call, &request.body) {
                Ok(body) => {
                    let _ = ua.answer(now, call, 200, Some(body));
                }
                Err((status, w)) => {
                    if let Ok(mut r) = ua.make_response(call, status) {
                        r.headers.push(HeaderName::Warning, &warning_value(&w));
                        let _ = ua.respond(now, call, r);
                    }
                }
            }
        }
        UaEvent::Request { call, txn, request } => {
            let now = Instant::now();
            let mut resp = sip::Response::for_request(&request, 200);
            if request.method == Method::Update && !request.body.is_empty() {
                match app.reoffer(call, &request.body) {
                    Ok(b) => {
                        resp.headers.set(HeaderName::ContentType, &b.content_type);
                        resp.body = b.bytes;
                    }
                    Err((status, w)) => {
                        resp = sip::Response::for_request(&request, status);
                        resp.headers.push(HeaderName::Warning, &warning_value(&w));
                    }
                }
            }
            let _ = ua.respond_request(now, txn, resp);
        }
        UaEvent::OutOfDialogRequest { txn, request, peer } if request.method == Method::Options => {
            let ok = ua.options_response(&request);
            let router = router.clone();
            let tx = cmd_tx.clone();
            tokio::spawn(async move {
                let response = answer_options(&router, ok, &request, &peer).await;
                let _ = tx.send(Command::Respond { txn, response }).await;
            });
        }
        UaEvent::OutOfDialogRequest { txn, request, .. } => {
            let resp = sip::Response::for_request(&request, 405);
            let _ = ua.respond_request(Instant::now(), txn, resp);
        }
        UaEvent::Prack { .. }
        | UaEvent::Provisional { .. }
        | UaEvent::Answered { .. }
        | UaEvent::InDialogResponse { .. } => {}
    }
}

fn refuse(call: CallKey, r: &Refusal) -> Command {
    let mut headers = Vec::new();
    if matches!(r, Refusal::CpsExceeded { .. }) {
        headers.push((HeaderName::RetryAfter, "1".to_string()));
    }
    Command::Answer {
        call,
        status: r.status(),
        warning: Some(r.to_string()),
        headers,
        body: None,
    }
}

/// Refused calls to an existing connector get a call record too.
async fn record_refusal(
    router: &Router,
    req: &Request,
    peer: &Peer,
    host: &str,
    status: u16,
    reason: String,
) {
    let Ok(Some(vc)) = router.connector_for_host(host).await else {
        return;
    };
    let seed = crate::media::CdrSeed::from_invite(&vc.voice_connector_id, req, peer);
    let rec = seed.finish("Refused", status, Some(reason));
    crate::media::store_call_record(router.repo(), rec, seed.start_ms).await;
}

async fn route_call<A: CallApp>(
    router: &Router,
    app: &A,
    call: CallKey,
    req: &Request,
    peer: &Peer,
) -> Command {
    app.note_attempt();
    let cmd = route_decision(router, app, call, req, peer).await;
    if let Command::Answer { status, .. } = &cmd
        && *status >= 300
    {
        app.note_refusal(*status);
    }
    cmd
}

async fn route_decision<A: CallApp>(
    router: &Router,
    app: &A,
    call: CallKey,
    req: &Request,
    peer: &Peer,
) -> Command {
    let facts = invite_facts(req, peer);
    let decision = match router.route_invite(Instant::now(), &facts).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "routing failed");
            return Command::Answer {
                call,
                status: 500,
                warning: Some("internal error; see the server log".into()),
                headers: vec![],
                body: None,
            };
        }
    };
    match &decision {
        Decision::Refuse(r @ Refusal::SourceNotAllowed { .. }) if router.drop_unallowed_sources => {
            tracing::info!(?call, reason = %r, source = %peer.remote, "call dropped without an answer");
            // SIP status 0 in the record: nothing was sent.
            let why = format!("not answered (sip-drop-unallowed-sources): {r}");
            record_refusal(router, req, peer, &facts.host, 0, why).await;
            Command::Discard { call }
        }
        Decision::Refuse(r) => {
            tracing::info!(?call, status = r.status(), reason = %r, source = %peer.remote, "call refused");
            record_refusal(router, req, peer, &facts.host, r.status(), r.to_string()).await;
            refuse(call, r)
        }
        Decision::Challenge { challenges, reason } => {
            let headers = challenges
                .iter()
                .map(|c| (HeaderName::ProxyAuthenticate, c.clone()))
                .collect();
            Command::Answer {
                call,
                status: 407,
                warning: Some((*reason).to_string()),
                headers,
                body: None,
            }
        }
        Decision::Join { connector, .. } => {
            router
                .start_sip_log(&connector.voice_connector_id, req, peer)
                .await;
            match app.accept_join(call, req, peer, &decision).await {
                Ok(body) => Command::Answer {
                    call,
                    status: 200,
                    warning: None,
                    headers: vec![],
                    body: Some(body),
                },
                Err((status, w)) => {
                    tracing::info!(?call, status, reason = %w, "join refused");
                    record_refusal(router, req, peer, &facts.host, status, w.clone()).await;
                    Command::Answer {
                        call,
                        status,
                        warning: Some(w),
                        headers: vec![],
                        body: None,
                    }
                }
            }
        }
    }
}
