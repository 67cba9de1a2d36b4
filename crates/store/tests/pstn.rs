//! The PSTN half of the repository (carriers, carrier status, voice connector groups,
//! number routes) on SQLite, SQLite behind the cache, and PostgreSQL when
//! `VC_TEST_DATABASE_URL` is set. The cases see only `Arc<dyn Repository>`.

mod common;
use common::Db;

use domain::carrier::{
    Carrier, CarrierRegistration, CarrierStatus, HostPort, RegistrationState, Secret,
};
use domain::group::{VoiceConnectorGroup, VoiceConnectorItem, voice_connector_group_arn};
use domain::voice_connector::{
    DELETE_IN_PROGRESS, NumberRoute, PhoneNumber, PhoneNumberAssociation,
};
use domain::{ConflictReason, DomainError};
use store::StoreError;

suite!(
    carriers_crud_and_name_conflict,
    carrier_status_round_trip,
    carrier_registration_round_trip,
    groups_crud_and_member_checks,
    number_routes_follow_associations_and_deletion,
    group_and_connector_deletes_refuse_while_in_use,
    account_settings_round_trip,
    call_record_pstn_columns,
);

fn carrier(name: &str, prefix: &str) -> Carrier {
    let mut c = Carrier::new(name);
    c.addresses = vec![HostPort::parse("127.0.0.30:5060", 5060).expect("addr")];
    c.prefixes = vec![prefix.to_string()];
    c.username = Some("trunk".into());
    c.password = Some(Secret::new("s3cret-pw"));
    c.validate().expect("valid carrier");
    c
}

fn group(id: &str, members: &[(&str, u32)]) -> VoiceConnectorGroup {
    VoiceConnectorGroup {
        voice_connector_group_id: id.to_string(),
        name: format!("group {id}"),
        voice_connector_items: members
            .iter()
            .map(|(vc, priority)| VoiceConnectorItem {
                voice_connector_id: vc.to_string(),
                priority: *priority,
            })
            .collect(),
        created_timestamp: "2026-12-01T00:00:00Z".into(),
        updated_timestamp: "2026-12-01T00:00:00Z".into(),
        voice_connector_group_arn: voice_connector_group_arn("us-east-1", id),
    }
}

fn associate(n: &mut PhoneNumber, name: &str, value: &str) {
    n.associations = vec![PhoneNumberAssociation {
        value: value.to_string(),
        name: name.to_string(),
        associated_timestamp: "2026-12-01T00:00:01Z".into(),
    }];
    n.status = "Assigned".into();
}

fn conflict(r: Result<bool, StoreError>) -> ConflictReason {
    match r {
        Err(StoreError::Domain(DomainError::Conflict(c))) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn carriers_crud_and_name_conflict(db: &Db) {
    let repo = &db.repo;
    assert!(repo.list_carriers().await.expect("list").is_empty());
    let a = carrier("alpha", "+1");
    repo.insert_carrier(&a).await.expect("insert");
    // Read after write (through the cache too: the write dropped the cached list).
    assert_eq!(
        repo.list_carriers().await.expect("list"),
        std::slice::from_ref(&a)
    );
    match repo.insert_carrier(&carrier("alpha", "+44")).await {
        Err(StoreError::Domain(DomainError::Conflict(ConflictReason::CarrierExists(n)))) => {
            assert_eq!(n, "alpha")
        }
        other => panic!("duplicate name: {other:?}"),
    }
    repo.put_carrier(&carrier("beta", "+44"))
        .await
        .expect("put new");
    let mut changed = carrier("alpha", "+1206");
    changed.priority = 7;
    assert!(repo.update_carrier(&changed).await.expect("update"));
    let stored = repo.carrier("alpha").await.expect("get").expect("present");
    assert_eq!(stored.id, a.id, "an update keeps the carrier's id");
    assert_eq!(stored.priority, 7);
    assert_eq!(stored.prefixes, ["+1206"]);
    assert_eq!(
        stored.password.as_ref().map(Secret::expose),
        Some("s3cret-pw"),
        "the edge needs the password to answer challenges"
    );
    assert!(
        !repo
            .update_carrier(&carrier("gamma", "+1"))
            .await
            .expect("absent")
    );
    let names: Vec<_> = repo
        .list_carriers()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(repo.delete_carrier("alpha").await.expect("delete"));
    assert!(!repo.delete_carrier("alpha").await.expect("again"));
    assert_eq!(repo.list_carriers().await.expect("list").len(), 1);
    // Survives a restart.
    let again = db.reopen().await;
    assert_eq!(
        again
            .carrier("beta")
            .await
            .expect("get")
            .expect("kept")
            .name,
        "beta"
    );
}

async fn carrier_status_round_trip(db: &Db) {
    let repo = &db.repo;
    repo.insert_carrier(&carrier("probe", "+1"))
        .await
        .expect("insert");
    let mut s = CarrierStatus {
        carrier: "probe".into(),
        up: true,
        last_options_ms: Some(1_000),
        last_status: Some(200),
    };
    repo.put_carrier_status(&s).await.expect("put");
    s.up = false;
    s.last_options_ms = Some(2_000);
    s.last_status = None;
    repo.put_carrier_status(&s).await.expect("put again");
    assert_eq!(repo.list_carrier_status().await.expect("list"), [s]);
    repo.delete_carrier("probe").await.expect("delete");
    assert!(
        repo.list_carrier_status().await.expect("list").is_empty(),
        "a removed carrier's status goes with it"
    );
}

async fn carrier_registration_round_trip(db: &Db) {
    let repo = &db.repo;
    repo.insert_carrier(&carrier("reg", "+1"))
        .await
        .expect("insert");
    let mut r = CarrierRegistration {
        carrier: "reg".into(),
        state: RegistrationState::Failing,
        last_status: Some(503),
        expires_ms: None,
        updated_ms: 1_000,
    };
    repo.put_carrier_registration(&r).await.expect("put");
    r.state = RegistrationState::Registered;
    r.last_status = Some(200);
    r.expires_ms = Some(3_601_000);
    r.updated_ms = 2_000;
    repo.put_carrier_registration(&r).await.expect("put again");
    assert_eq!(
        repo.list_carrier_registrations().await.expect("list"),
        [r.clone()]
    );
    repo.delete_carrier("reg").await.expect("delete");
    assert!(
        repo.list_carrier_registrations()
            .await
            .expect("list")
            .is_empty(),
        "a removed carrier's registration goes with it"
    );
}

async fn groups_crud_and_member_checks(db: &Db) {
    let repo = &db.repo;
    for id in ["vca", "vcb"] {
        repo.insert_voice_connector(&common::connector(id, id), 1)
            .await
            .expect("connector");
    }
    let g = group("g1", &[("vca", 1), ("vcb", 2)]);
    repo.insert_voice_connector_group(&g, 5)
        .await
        .expect("insert");
    assert_eq!(
        repo.get_voice_connector_group("g1").await.expect("get"),
        Some(g.clone())
    );
    match repo
        .insert_voice_connector_group(&group("g2", &[("nope", 1)]), 5)
        .await
    {
        Err(StoreError::Domain(DomainError::NotFound { id, .. })) => assert_eq!(id, "nope"),
        other => panic!("missing member: {other:?}"),
    }
    assert!(
        repo.get_voice_connector_group("g2")
            .await
            .expect("get")
            .is_none(),
        "a refused insert leaves nothing behind"
    );
    repo.insert_voice_connector_group(&group("g3", &[]), 6)
        .await
        .expect("empty group");
    let page = repo
        .list_voice_connector_groups(None, 1)
        .await
        .expect("page");
    assert_eq!(page.len(), 1);
    let rest = repo
        .list_voice_connector_groups(Some(&page[0].voice_connector_group_id), 10)
        .await
        .expect("rest");
    assert_eq!(rest.len(), 1);
    let mut renamed = g.clone();
    renamed.name = "renamed".into();
    renamed.voice_connector_items.pop();
    assert!(
        repo.update_voice_connector_group(&renamed)
            .await
            .expect("update")
    );
    assert_eq!(
        repo.get_voice_connector_group("g1")
            .await
            .expect("get")
            .expect("there")
            .voice_connector_items
            .len(),
        1
    );
    // vcb left the group, so it can go.
    assert!(
        repo.delete_voice_connector("vcb")
            .await
            .expect("delete vcb")
    );
    assert!(
        !repo
            .update_voice_connector_group(&group("absent", &[]))
            .await
            .expect("absent")
    );
    assert!(
        repo.delete_voice_connector_group("g3")
            .await
            .expect("delete")
    );
    assert!(
        !repo
            .delete_voice_connector_group("g3")
            .await
            .expect("again")
    );
}

async fn number_routes_follow_associations_and_deletion(db: &Db) {
    let repo = &db.repo;
    repo.insert_voice_connector(&common::connector("vcr", "r"), 1)
        .await
        .expect("connector");
    repo.insert_voice_connector_group(&group("gr", &[("vcr", 1)]), 1)
        .await
        .expect("group");
    let mut direct = PhoneNumber::new("+12065550101", "t").expect("number");
    let mut grouped = PhoneNumber::new("+12065550102", "t").expect("number");
    for n in [&direct, &grouped] {
        assert!(repo.add_phone_number(n).await.expect("add"));
    }
    assert_eq!(
        repo.phone_number_route("+12065550101")
            .await
            .expect("route"),
        None
    );
    assert_eq!(
        repo.phone_number_route("+19995550000")
            .await
            .expect("route"),
        None
    );
    associate(&mut direct, "VoiceConnectorId", "vcr");
    repo.update_phone_number(&direct).await.expect("associate");
    associate(&mut grouped, "VoiceConnectorGroupId", "gr");
    repo.update_phone_number(&grouped).await.expect("associate");
    assert_eq!(
        repo.phone_number_route("+12065550101")
            .await
            .expect("route"),
        Some(NumberRoute::VoiceConnector("vcr".into()))
    );
    assert_eq!(
        repo.phone_number_route("+12065550102")
            .await
            .expect("route"),
        Some(NumberRoute::VoiceConnectorGroup("gr".into()))
    );
    let in_group = repo
        .list_group_phone_numbers("gr", None, 10)
        .await
        .expect("list");
    assert_eq!(in_group, std::slice::from_ref(&grouped));
    let after = repo
        .list_group_phone_numbers("gr", Some("+12065550102"), 10)
        .await
        .expect("after");
    assert!(after.is_empty());
    let mut ghost = PhoneNumber::new("+12065550103", "t").expect("number");
    repo.add_phone_number(&ghost).await.expect("add");
    associate(&mut ghost, "VoiceConnectorGroupId", "no-such-group");
    match repo.update_phone_number(&ghost).await {
        Err(StoreError::Domain(DomainError::NotFound { kind, .. })) => {
            assert_eq!(kind, "VoiceConnectorGroup")
        }
        other => panic!("association with a missing group: {other:?}"),
    }
    // The deletion queue: no route while there, back after a restore.
    direct.associations.clear();
    direct.status = DELETE_IN_PROGRESS.into();
    direct.deletion_timestamp = Some("2026-12-01T00:00:02Z".into());
    repo.update_phone_number(&direct).await.expect("delete");
    assert_eq!(
        repo.phone_number_route("+12065550101")
            .await
            .expect("route"),
        None
    );
    let stored = repo
        .get_phone_number("+12065550101")
        .await
        .expect("get")
        .expect("still listed while queued");
    assert!(stored.is_deleted());
    assert_eq!(
        stored.deletion_timestamp.as_deref(),
        Some("2026-12-01T00:00:02Z")
    );
}

async fn group_and_connector_deletes_refuse_while_in_use(db: &Db) {
    let repo = &db.repo;
    repo.insert_voice_connector(&common::connector("vcd", "d"), 1)
        .await
        .expect("connector");
    repo.insert_voice_connector_group(&group("gd", &[("vcd", 1)]), 1)
        .await
        .expect("group");
    let mut n = PhoneNumber::new("+12065550109", "t").expect("number");
    repo.add_phone_number(&n).await.expect("add");
    associate(&mut n, "VoiceConnectorGroupId", "gd");
    repo.update_phone_number(&n).await.expect("associate");
    assert_eq!(
        conflict(repo.delete_voice_connector("vcd").await),
        ConflictReason::ConnectorInGroup {
            voice_connector: "vcd".into(),
            group: "gd".into()
        }
    );
    assert_eq!(
        conflict(repo.delete_voice_connector_group("gd").await),
        ConflictReason::GroupHasNumbers("gd".into())
    );
    n.associations.clear();
    n.status = "Unassigned".into();
    repo.update_phone_number(&n).await.expect("disassociate");
    assert!(
        repo.delete_voice_connector_group("gd")
            .await
            .expect("delete group")
    );
    assert!(
        repo.delete_voice_connector("vcd")
            .await
            .expect("delete connector")
    );
}

async fn account_settings_round_trip(db: &Db) {
    let repo = &db.repo;
    assert_eq!(
        repo.get_account_setting("phone-number").await.expect("get"),
        None
    );
    let v = serde_json::json!({"CallingName": "Example Co"});
    repo.put_account_setting("phone-number", &v)
        .await
        .expect("put");
    let w = serde_json::json!({"CallingName": "Other"});
    repo.put_account_setting("phone-number", &w)
        .await
        .expect("replace");
    assert_eq!(
        db.reopen()
            .await
            .get_account_setting("phone-number")
            .await
            .expect("get"),
        Some(w)
    );
}

async fn call_record_pstn_columns(db: &Db) {
    let repo = &db.repo;
    let open = serde_json::json!({
        "TransactionId": "pstn-1", "Direction": "Outbound",
        "SourcePhoneNumber": "+12065550100", "DestinationPhoneNumber": "+33142000000",
    });
    repo.open_call_record("pstn-1", "vc", 1, &open)
        .await
        .expect("open");
    let mut done = open.clone();
    done["Carrier"] = "telco-a".into();
    done["Attempts"] = serde_json::json!([{"Route": "telco-b", "StatusCode": 503}]);
    done["BillableDurationSeconds"] = 42.into();
    repo.insert_call_record("pstn-1", "vc", 1, &done)
        .await
        .expect("final");
    repo.insert_call_record(
        "join-1",
        "vc",
        2,
        &serde_json::json!({"Direction": "Outbound"}),
    )
    .await
    .expect("join");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.expect("connect");
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, source_country, destination_country, carrier, attempts, billable_seconds \
         FROM call_records ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("select");
    assert_eq!(rows[0].0, "join-1");
    assert_eq!(rows[0].3, None, "a join has no carrier");
    let (_, src, dst, carrier, attempts, billable) = rows[1].clone();
    assert_eq!((src.as_deref(), dst.as_deref()), (Some("US"), Some("FR")));
    assert_eq!(
        carrier.as_deref(),
        Some("telco-a"),
        "the final record's columns replace the open one's"
    );
    assert!(attempts.is_some_and(|a| a.contains("503")));
    assert_eq!(billable, Some(42));
    pool.close().await;
}
