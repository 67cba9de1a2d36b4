//! The operations of botocore's two models that this server does not serve
//! (`model/unserved.json`, written by `scripts/extract-unserved-ops.py`). A request for one of
//! them is answered `NotImplementedException` naming the operation and why, so a script
//! written for AWS stops with a reason instead of an unknown-route error.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{Route, Service, path_parts};

#[derive(Debug, Deserialize)]
struct RawOp {
    method: String,
    #[serde(rename = "requestUri")]
    request_uri: String,
    reason: String,
}

/// One operation we do not serve.
#[derive(Debug)]
pub struct UnservedOp {
    pub name: String,
    pub service: Service,
    pub reason: String,
    method: String,
    route: Route,
}

/// Every operation of both services that we do not serve, routable like served ones.
#[derive(Debug)]
pub struct Unserved {
    ops: Vec<UnservedOp>,
}

impl Unserved {
    /// Loads the embedded list (a build defect, caught by the unit tests, if it is malformed).
    pub fn load() -> Self {
        let raw: BTreeMap<String, BTreeMap<String, RawOp>> =
            serde_json::from_str(include_str!("../model/unserved.json"))
                .expect("embedded unserved-operation list is valid JSON");
        let mut ops = Vec::new();
        for (service, list) in raw {
            let service = match service.as_str() {
                "voice" => Service::Voice,
                _ => Service::Meetings,
            };
            for (name, op) in list {
                ops.push(UnservedOp {
                    name,
                    service,
                    reason: op.reason,
                    method: op.method,
                    route: Route::parse(&op.request_uri),
                });
            }
        }
        // Operations told apart by a query discriminator (`?operation=…`) first.
        ops.sort_by_key(|o| std::cmp::Reverse(o.route.query_len()));
        Unserved { ops }
    }

    /// The unserved operation a request is for, if any.
    pub fn find(
        &self,
        method: &str,
        raw_path: &str,
        query: &[(String, String)],
    ) -> Option<&UnservedOp> {
        let parts = path_parts(raw_path);
        self.ops
            .iter()
            .filter(|op| op.method == method)
            .find(|op| op.route.matches(&parts, query).is_some())
    }

    /// How many operations are listed.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when every operation is served.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::q;

    #[test]
    fn unserved_operations_are_found_by_their_routes() {
        let u = Unserved::load();
        assert!(!u.is_empty());
        let op = u
            .find(
                "GET",
                "/voice-connectors/abc/programmable-numbers/proxy",
                &[],
            )
            .expect("GetVoiceConnectorProxy");
        assert_eq!(op.name, "GetVoiceConnectorProxy");
        assert_eq!(op.service, Service::Voice);
        let start = u
            .find(
                "POST",
                "/meetings/m-1/transcription",
                &q(&[("operation", "start")]),
            )
            .expect("StartMeetingTranscription");
        assert_eq!(start.name, "StartMeetingTranscription");
        assert_eq!(start.service, Service::Meetings);
        let proxy = u
            .find("GET", "/voice-connectors/abc/proxy-sessions", &[])
            .expect("ListProxySessions");
        assert!(proxy.reason.contains("proxy"), "{}", proxy.reason);
        assert!(u.find("GET", "/no/such/thing", &[]).is_none());
    }

    #[test]
    fn no_served_operation_is_listed_as_unserved() {
        let model = crate::model::Model::load();
        for op in &Unserved::load().ops {
            assert!(
                !model.serves(&op.name),
                "{} is served and listed as unserved: run scripts/extract-unserved-ops.py",
                op.name
            );
        }
    }
}
