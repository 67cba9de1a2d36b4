//! The queue of CreateSipMediaApplicationCall and UpdateSipMediaApplicationCall requests:
//! the API stores each request (`store::SmaRepository::insert_sma_call_request`); this
//! task takes them out every [`PERIOD`] and hands them to whoever places and updates the
//! calls (the SIP edge, through a closure `serve` gives it: this module imports no other
//! driver). Each request is taken once, also across nodes sharing a database.
//!
//! Requests of kind "inbound" only make an inbound call's TransactionId known to
//! UpdateSipMediaApplicationCall: they are taken and dropped here. A request that waited
//! longer than [`MAX_AGE`] (the server was down, or the store was unreachable) is dropped
//! with a warning rather than placing a call nobody expects any more.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use store::SmaCallRequest;

/// How often the queue is read.
pub const PERIOD: Duration = Duration::from_millis(250);
/// Most requests taken per read.
pub const BATCH: u32 = 32;
/// Oldest request still carried out.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// The request kinds the edge carries out.
pub const CREATE: &str = "create";
pub const UPDATE: &str = "update";
/// The kind that only records an inbound call's TransactionId.
pub const INBOUND: &str = "inbound";

/// Of the requests taken at `now_ms`, the ones to carry out (create and update, not too
/// old), in the order they were made.
pub fn due(now_ms: i64, taken: Vec<SmaCallRequest>) -> Vec<SmaCallRequest> {
    let max_age = MAX_AGE.as_millis() as i64;
    taken
        .into_iter()
        .filter(|r| match r.kind.as_str() {
            CREATE | UPDATE if now_ms - r.created_ms > max_age => {
                tracing::warn!(transaction = %r.transaction_id, kind = %r.kind, age_ms = now_ms - r.created_ms, "a SIP media application call request waited too long; dropped");
                false
            }
            CREATE | UPDATE => true,
            INBOUND => false,
            other => {
                tracing::warn!(transaction = %r.transaction_id, kind = %other, "unknown SIP media application call request; dropped");
                false
            }
        })
        .collect()
}

/// Takes queued requests every [`PERIOD`], at most [`BATCH`] at a time, and hands the due
/// ones to `hand` (awaited before the next read, so a slow consumer slows the reads). A
/// store error is logged (once per failing stretch) and the read tried again next period.
pub async fn poll<F, Fut>(repo: Arc<dyn store::Repository>, mut hand: F)
where
    F: FnMut(Vec<SmaCallRequest>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let now_ms = domain::timestamp::now_millis();
        match repo.take_sma_call_requests(now_ms, BATCH).await {
            Ok(taken) => {
                if failing {
                    tracing::info!("SIP media application call requests are read again");
                    failing = false;
                }
                let due = due(now_ms, taken);
                if !due.is_empty() {
                    hand(due).await;
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "reading SIP media application call requests failed; retrying");
            }
            Err(_) => {}
        }
    }
}

/// The Arguments (UpdateSipMediaApplicationCall) or ArgumentsMap
/// (CreateSipMediaApplicationCall) of a request's body: string values only, as the API's
/// model has them (anything else is left out).
pub fn arguments(
    body: &serde_json::Value,
    field: &str,
) -> std::collections::BTreeMap<String, String> {
    body.get(field)
        .and_then(|v| v.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(id: &str, kind: &str, created_ms: i64) -> SmaCallRequest {
        SmaCallRequest {
            id: id.to_string(),
            transaction_id: format!("t-{id}"),
            sip_media_application_id: "app".into(),
            kind: kind.into(),
            body: json!({"Arguments": {"a": "1"}}),
            created_ms,
        }
    }

    #[test]
    fn only_fresh_creates_and_updates_are_due() {
        let now = 1_000_000;
        let taken = vec![
            request("1", CREATE, now - 10),
            request("2", INBOUND, now - 10),
            request("3", UPDATE, now),
            request("4", CREATE, now - MAX_AGE.as_millis() as i64 - 1),
            request("5", "delete", now),
        ];
        let ids: Vec<String> = due(now, taken).into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["1", "3"]);
    }

    #[test]
    fn arguments_keep_strings_only() {
        let body = json!({"Arguments": {"a": "1", "b": 2, "c": "x"}, "ArgumentsMap": "no"});
        let args = arguments(&body, "Arguments");
        assert_eq!(args.len(), 2);
        assert_eq!(args["a"], "1");
        assert_eq!(args["c"], "x");
        assert!(arguments(&body, "ArgumentsMap").is_empty());
        assert!(arguments(&json!({}), "Arguments").is_empty());
    }

    #[tokio::test]
    async fn the_poller_hands_queued_requests_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("vc.db").display());
        let repo: Arc<dyn store::Repository> =
            Arc::new(store::SqlRepository::connect(&url).await.unwrap());
        let now = domain::timestamp::now_millis();
        for (id, kind) in [("a", CREATE), ("b", INBOUND), ("c", UPDATE)] {
            repo.insert_sma_call_request(&request(id, kind, now))
                .await
                .unwrap();
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let task = tokio::spawn(poll(repo.clone(), move |reqs| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(reqs).await;
            }
        }));
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("handed over within 5 s")
            .unwrap();
        let ids: Vec<&str> = first.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        // Taken: nothing more is handed over.
        let again = tokio::time::timeout(PERIOD * 4, rx.recv()).await;
        assert!(again.is_err(), "handed over twice: {again:?}");
        // A new one is.
        repo.insert_sma_call_request(&request("d", UPDATE, now))
            .await
            .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the next one within 5 s")
            .unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].id, "d");
        task.abort();
    }
}
