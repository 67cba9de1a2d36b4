//! Origination: a carrier's INVITE for one of our numbers goes to the number's voice
//! connector (or its group's members, by priority) and out through the connector's
//! origination routes (lowest Priority first, Weight splitting equal priorities), each an
//! attempt of the B2BUA in `pstn.rs` with an `X-VoiceConnector-ID` header.

use calls::Refusal;
use domain::carrier::{Carrier, CarrierTransport, SrtpPolicy};
use domain::voice_connector::{NumberRoute, Origination, OriginationRoute};
use sip::{HeaderName, Peer, Request};
use store::{Repository, SettingKind, StoreError};

use super::pstn::Target;

/// Where a carrier's INVITE goes.
pub struct Routed {
    /// The carrier it came from.
    pub carrier: Carrier,
    /// The number's connector (the first of its group).
    pub voice_connector_id: String,
    /// The called number.
    pub number: String,
    /// The routes to try, best first.
    pub targets: Vec<Target>,
}

/// `None` unless the INVITE comes from a carrier's source address; then where it goes, or
/// why it is refused (404 for a number not in the inventory, 480 when origination is
/// disabled, 503 when no route is configured).
pub async fn route(
    repo: &dyn Repository,
    req: &Request,
    peer: &Peer,
) -> Option<Result<Routed, Refusal>> {
    let carriers = match repo.list_carriers().await {
        Ok(c) => c,
        Err(e) => return Some(Err(internal(e))),
    };
    let carrier = domain::carrier::carrier_for_source(peer.remote.ip(), &carriers)?.clone();
    let number = req
        .uri
        .user()
        .map(|u| String::from_utf8_lossy(&sip::percent_decode(u)).into_owned())
        .unwrap_or_default();
    Some(targets(repo, carrier, number).await)
}

fn internal(e: StoreError) -> Refusal {
    tracing::error!(error = %e, "origination lookup failed");
    Refusal::new(500, "internal error; see the server log")
}

async fn targets(
    repo: &dyn Repository,
    carrier: Carrier,
    number: String,
) -> Result<Routed, Refusal> {
    let route = repo.phone_number_route(&number).await.map_err(internal)?;
    let connectors = match route {
        None => {
            return Err(Refusal::new(
                404,
                format!("{number} is not a number of this service"),
            ));
        }
        Some(NumberRoute::VoiceConnector(id)) => vec![id],
        Some(NumberRoute::VoiceConnectorGroup(g)) => {
            let group = repo.get_voice_connector_group(&g).await.map_err(internal)?;
            let mut items = group.map(|g| g.voice_connector_items).unwrap_or_default();
            items.sort_by_key(|i| i.priority);
            items.into_iter().map(|i| i.voice_connector_id).collect()
        }
    };
    let mut targets = Vec::new();
    let mut disabled = Vec::new();
    for id in &connectors {
        let Some(vc) = repo.get_voice_connector(id).await.map_err(internal)? else {
            continue;
        };
        let origination: Option<Origination> = repo
            .get_setting(id, SettingKind::Origination)
            .await
            .map_err(internal)?
            .and_then(|d| serde_json::from_value(d).ok());
        let Some(o) = origination.filter(|o| !o.routes.is_empty()) else {
            continue;
        };
        if o.disabled == Some(true) {
            disabled.push(id.clone());
            continue;
        }
        let pick = &mut |n: u32| rand::random::<u32>() % n.max(1);
        targets.extend(
            o.order(pick)
                .into_iter()
                .filter_map(|r| route_target(id, vc.require_encryption, r)),
        );
    }
    if targets.is_empty() {
        let why = if !disabled.is_empty() {
            (
                480,
                format!(
                    "origination is disabled on voice connector {}",
                    disabled.join(", ")
                ),
            )
        } else {
            (
                503,
                format!(
                    "voice connector {} has no origination routes",
                    connectors.join(", ")
                ),
            )
        };
        return Err(Refusal::new(why.0, why.1));
    }
    Ok(Routed {
        carrier,
        voice_connector_id: connectors.first().cloned().unwrap_or_default(),
        number,
        targets,
    })
}

/// One origination route of connector `id` as an attempt's target (TLS and SRTP when the
/// connector requires encryption); `None` for a route without a host.
pub(super) fn route_target(
    id: &str,
    require_encryption: bool,
    r: &OriginationRoute,
) -> Option<Target> {
    let host = r.host.clone()?;
    let tls = require_encryption;
    let transport = match (tls, r.protocol.as_deref()) {
        (true, _) => CarrierTransport::Tls,
        (false, Some(p)) if p.eq_ignore_ascii_case("TCP") => CarrierTransport::Tcp,
        _ => CarrierTransport::Udp,
    };
    let port = r.port.unwrap_or(transport.default_port());
    Some(Target {
        name: format!("{host}:{port}"),
        transport,
        host,
        port,
        codecs: Vec::new(),
        srtp: if tls {
            SrtpPolicy::Mandatory
        } else {
            SrtpPolicy::Off
        },
        credentials: None,
        headers: vec![(HeaderName::Other, format!("X-VoiceConnector-ID: {id}"))],
        voice_connector_id: Some(id.to_string()),
        limits: Default::default(),
    })
}
