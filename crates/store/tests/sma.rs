//! The programmable-calls half of the repository (SIP media applications, their settings,
//! SIP rules, the function registry, call requests) on SQLite, SQLite behind the cache, and
//! PostgreSQL when `VC_TEST_DATABASE_URL` is set. The cases see only `Arc<dyn Repository>`.

mod common;
use common::Db;

use domain::sma::{
    FunctionEndpoint, FunctionStyle, SipMediaApplication, SipMediaApplicationEndpoint, SipRule,
    SipRuleTargetApplication, SipRuleTriggerType, sip_media_application_arn,
};
use domain::{ConflictReason, DomainError};
use store::{SmaCallRequest, SmaSettingKind, StoreError};

suite!(
    applications_crud_and_settings,
    rules_crud_triggers_and_targets,
    application_in_use_and_enabled_rule_are_refused,
    function_registry_round_trip,
    call_requests_are_taken_once,
);

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:greeter";

fn app(id: &str) -> SipMediaApplication {
    SipMediaApplication {
        sip_media_application_id: id.to_string(),
        aws_region: "us-east-1".into(),
        name: format!("app {id}"),
        endpoints: vec![SipMediaApplicationEndpoint {
            lambda_arn: ARN.into(),
        }],
        created_timestamp: "2026-12-01T00:00:00Z".into(),
        updated_timestamp: "2026-12-01T00:00:00Z".into(),
        sip_media_application_arn: sip_media_application_arn("us-east-1", id),
    }
}

fn rule(id: &str, kind: SipRuleTriggerType, value: &str, targets: &[(&str, u32)]) -> SipRule {
    SipRule {
        sip_rule_id: id.to_string(),
        name: format!("rule {id}"),
        disabled: false,
        trigger_type: kind,
        trigger_value: value.to_string(),
        target_applications: targets
            .iter()
            .map(|(sma, priority)| SipRuleTargetApplication {
                sip_media_application_id: sma.to_string(),
                priority: *priority,
                aws_region: "us-east-1".into(),
            })
            .collect(),
        created_timestamp: "2026-12-01T00:00:00Z".into(),
        updated_timestamp: "2026-12-01T00:00:00Z".into(),
    }
}

fn conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> ConflictReason {
    match r {
        Err(StoreError::Domain(DomainError::Conflict(c))) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::Domain(DomainError::NotFound { .. }))),
        "expected NotFound, got {r:?}"
    );
}

async fn applications_crud_and_settings(db: &Db) {
    let repo = &db.repo;
    for id in ["a1", "a2", "a3"] {
        repo.insert_sip_media_application(&app(id), 1)
            .await
            .unwrap();
    }
    assert_eq!(
        repo.get_sip_media_application("a2").await.unwrap(),
        Some(app("a2"))
    );
    assert_eq!(repo.get_sip_media_application("zz").await.unwrap(), None);
    let page = repo.list_sip_media_applications(None, 2).await.unwrap();
    let ids: Vec<_> = page
        .iter()
        .map(|a| a.sip_media_application_id.as_str())
        .collect();
    assert_eq!(ids, ["a1", "a2"]);
    let rest = repo
        .list_sip_media_applications(Some("a2"), 2)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].sip_media_application_id, "a3");

    let mut changed = app("a1");
    changed.name = "renamed".into();
    assert!(repo.update_sip_media_application(&changed).await.unwrap());
    assert_eq!(
        repo.get_sip_media_application("a1").await.unwrap(),
        Some(changed)
    );
    assert!(!repo.update_sip_media_application(&app("zz")).await.unwrap());

    let logging = serde_json::json!({"EnableSipMediaApplicationMessageLogs": true});
    repo.put_sma_setting("a1", SmaSettingKind::Logging, &logging)
        .await
        .unwrap();
    assert_eq!(
        repo.get_sma_setting("a1", SmaSettingKind::Logging)
            .await
            .unwrap(),
        Some(logging)
    );
    assert_eq!(
        repo.get_sma_setting("a1", SmaSettingKind::AlexaSkill)
            .await
            .unwrap(),
        None
    );
    not_found(
        repo.put_sma_setting("zz", SmaSettingKind::Logging, &serde_json::json!({}))
            .await,
    );

    assert!(repo.delete_sip_media_application("a1").await.unwrap());
    assert!(!repo.delete_sip_media_application("a1").await.unwrap());
    assert_eq!(
        repo.get_sma_setting("a1", SmaSettingKind::Logging)
            .await
            .unwrap(),
        None
    );
}

async fn rules_crud_triggers_and_targets(db: &Db) {
    let repo = &db.repo;
    repo.insert_sip_media_application(&app("a1"), 1)
        .await
        .unwrap();
    repo.insert_sip_media_application(&app("a2"), 1)
        .await
        .unwrap();
    let number = rule(
        "r1",
        SipRuleTriggerType::ToPhoneNumber,
        "+15550001",
        &[("a1", 1)],
    );
    let host = rule(
        "r2",
        SipRuleTriggerType::RequestUriHostname,
        "vc1.voice.example",
        &[("a2", 1), ("a1", 2)],
    );
    // Read before the rules exist: the cache must not keep these answers past the writes.
    assert_eq!(repo.sip_rule_for_number("+15550001").await.unwrap(), None);
    assert_eq!(
        repo.sip_rule_for_host("VC1.voice.example").await.unwrap(),
        None
    );
    repo.insert_sip_rule(&number, 1).await.unwrap();
    repo.insert_sip_rule(&host, 2).await.unwrap();
    assert_eq!(
        repo.sip_rule_for_number("+15550001").await.unwrap(),
        Some(number.clone())
    );
    assert_eq!(
        repo.sip_rule_for_host("VC1.voice.example").await.unwrap(),
        Some(host.clone())
    );
    assert_eq!(repo.get_sip_rule("r2").await.unwrap(), Some(host.clone()));

    // The same trigger twice is refused; a target that does not exist leaves nothing behind.
    let twin = rule(
        "r3",
        SipRuleTriggerType::ToPhoneNumber,
        "+15550001",
        &[("a1", 1)],
    );
    assert!(matches!(
        conflict(repo.insert_sip_rule(&twin, 3).await),
        ConflictReason::SipRuleTriggerTaken { rule, .. } if rule == "r1"
    ));
    let ghost = rule(
        "r4",
        SipRuleTriggerType::ToPhoneNumber,
        "+15550004",
        &[("nope", 1)],
    );
    not_found(repo.insert_sip_rule(&ghost, 4).await);
    assert_eq!(repo.get_sip_rule("r4").await.unwrap(), None);
    assert_eq!(repo.sip_rule_for_number("+15550004").await.unwrap(), None);

    let all = repo.list_sip_rules(None, None, 10).await.unwrap();
    assert_eq!(all, [number.clone(), host.clone()]);
    assert_eq!(
        repo.list_sip_rules(None, Some("r1"), 10).await.unwrap(),
        std::slice::from_ref(&host)
    );
    assert_eq!(
        repo.list_sip_rules(Some("a2"), None, 10).await.unwrap(),
        std::slice::from_ref(&host)
    );
    assert_eq!(
        repo.list_sip_rules(Some("a1"), None, 1).await.unwrap(),
        std::slice::from_ref(&number)
    );

    // Update: disable and retarget; the per-number lookup sees it at once.
    let mut updated = number.clone();
    updated.disabled = true;
    updated.target_applications = host.target_applications.clone();
    assert!(repo.update_sip_rule(&updated).await.unwrap());
    assert_eq!(
        repo.sip_rule_for_number("+15550001").await.unwrap(),
        Some(updated.clone())
    );
    assert_eq!(
        repo.list_sip_rules(Some("a2"), None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    let mut missing = updated.clone();
    missing.target_applications[0].sip_media_application_id = "nope".into();
    not_found(repo.update_sip_rule(&missing).await);
    assert_eq!(
        repo.get_sip_rule("r1").await.unwrap(),
        Some(updated.clone())
    );
    assert!(
        !repo
            .update_sip_rule(&rule("zz", SipRuleTriggerType::ToPhoneNumber, "+1555", &[]))
            .await
            .unwrap()
    );

    assert!(repo.delete_sip_rule("r1").await.unwrap());
    assert_eq!(repo.sip_rule_for_number("+15550001").await.unwrap(), None);
    assert!(!repo.delete_sip_rule("r1").await.unwrap());
}

async fn application_in_use_and_enabled_rule_are_refused(db: &Db) {
    let repo = &db.repo;
    repo.insert_sip_media_application(&app("a1"), 1)
        .await
        .unwrap();
    let r = rule(
        "r1",
        SipRuleTriggerType::ToPhoneNumber,
        "+15550001",
        &[("a1", 1)],
    );
    repo.insert_sip_rule(&r, 1).await.unwrap();
    assert_eq!(
        conflict(repo.delete_sip_media_application("a1").await),
        ConflictReason::SipMediaApplicationInUse {
            application: "a1".into(),
            rule: "r1".into()
        }
    );
    assert_eq!(
        conflict(repo.delete_sip_rule("r1").await),
        ConflictReason::SipRuleEnabled("r1".into())
    );
    let mut off = r.clone();
    off.disabled = true;
    assert!(repo.update_sip_rule(&off).await.unwrap());
    assert!(repo.delete_sip_rule("r1").await.unwrap());
    assert!(repo.delete_sip_media_application("a1").await.unwrap());
}

async fn function_registry_round_trip(db: &Db) {
    let repo = &db.repo;
    let f = FunctionEndpoint {
        lambda_arn: ARN.into(),
        url: "http://127.0.0.1:9000/hook".into(),
        style: FunctionStyle::Webhook,
    };
    assert_eq!(repo.function(ARN).await.unwrap(), None);
    repo.put_function(&f).await.unwrap();
    assert_eq!(repo.function(ARN).await.unwrap(), Some(f.clone()));
    let mut moved = f.clone();
    moved.url = "http://127.0.0.1:9001".into();
    moved.style = FunctionStyle::Invoke;
    repo.put_function(&moved).await.unwrap();
    assert_eq!(repo.function(ARN).await.unwrap(), Some(moved.clone()));
    let other = FunctionEndpoint {
        lambda_arn: "arn:aws:lambda:us-east-1:123456789012:function:another".into(),
        ..f.clone()
    };
    repo.put_function(&other).await.unwrap();
    assert_eq!(repo.list_functions().await.unwrap(), [other.clone(), moved]);
    assert!(repo.delete_function(ARN).await.unwrap());
    assert!(!repo.delete_function(ARN).await.unwrap());
    assert_eq!(repo.function(ARN).await.unwrap(), None);
    assert_eq!(repo.list_functions().await.unwrap(), [other]);
}

async fn call_requests_are_taken_once(db: &Db) {
    let repo = &db.repo;
    let req = |id: &str, kind: &str, created_ms: i64| SmaCallRequest {
        id: id.to_string(),
        transaction_id: "t1".into(),
        sip_media_application_id: "a1".into(),
        kind: kind.to_string(),
        body: serde_json::json!({"ToPhoneNumber": "+15550001"}),
        created_ms,
    };
    repo.insert_sma_call_request(&req("t1", "create", 10))
        .await
        .unwrap();
    repo.insert_sma_call_request(&req("u1", "update", 20))
        .await
        .unwrap();
    assert!(repo.sma_transaction_known("a1", "t1").await.unwrap());
    assert!(!repo.sma_transaction_known("a2", "t1").await.unwrap());
    assert!(!repo.sma_transaction_known("a1", "t2").await.unwrap());
    let first = repo.take_sma_call_requests(100, 1).await.unwrap();
    assert_eq!(first, [req("t1", "create", 10)]);
    let second = repo.take_sma_call_requests(100, 10).await.unwrap();
    assert_eq!(second, [req("u1", "update", 20)]);
    assert!(
        repo.take_sma_call_requests(100, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
