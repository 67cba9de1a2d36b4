//! OPTIONS (RFC 3261 §11.2) gets what an INVITE to the same host would: 404 with a Warning
//! for a host that is no voice connector here, else 200 with Allow, Accept and Supported.
//! Pings from a connector's allowlisted sources update its termination health.

use domain::policy::Refusal;
use sip::{HeaderName, Peer, Request};

use crate::admission::Admission;

use super::wire::warning_value;

pub async fn answer(
    admission: &Admission,
    ok: sip::Response,
    req: &Request,
    peer: &Peer,
) -> sip::Response {
    let host = req
        .uri
        .host()
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let vc = match admission.connector_for_host(&host).await {
        Ok(Some(vc)) => vc,
        Ok(None) => {
            let r = Refusal::UnknownHost {
                host,
                sip_domain: admission.sip_domain().to_string(),
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
    if let Ok(Some(term)) = admission.termination(&vc.voice_connector_id).await
        && term.allows_source(peer.remote.ip())
    {
        let health = domain::voice_connector::TerminationHealth {
            timestamp: Some(domain::timestamp::iso8601(domain::timestamp::now_millis())),
            source: Some(peer.remote.ip().to_string()),
        };
        if let Ok(doc) = serde_json::to_value(&health) {
            let _ = admission
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
