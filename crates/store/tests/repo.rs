//! One test suite for the [`Repository`] trait, run against SQLite (a temporary file) and
//! against PostgreSQL when `VC_TEST_DATABASE_URL` names a server (scripts/test starts a
//! throwaway one). Every PostgreSQL test runs in a database of its own, created from that
//! server and dropped afterwards, so concurrent runs never collide. Without the variable the
//! PostgreSQL half prints "skipped PostgreSQL" and passes.
//!
//! The cases see only `Arc<dyn Repository>`: they test the trait's contract, not the SQL.

use domain::meeting::{
    AttendeeCapabilities, AttendeeRecord, MediaPlacement, Meeting, MeetingRecord,
};
use domain::token::{self, TokenKey};
use domain::voice_connector::{PhoneNumber, PhoneNumberAssociation, StoredCredential};
use domain::{ConflictReason, DomainError};
use serde_json::json;
use store::{AttendeeInsert, CachedRepository, MeetingInsert, Repository, SettingKind, StoreError};

mod common;
use common::{Db, connector, with_database};

suite!(
    voice_connector_crud,
    duplicate_voice_connector_id_is_refused,
    settings_crud_and_kinds_are_independent,
    credentials_crud,
    phone_numbers_and_delete_conflict,
    association_never_outlives_its_connector,
    settings_and_credentials_need_their_connector,
    meeting_crud_and_request_token,
    attendee_crud_and_token_hash_lookup,
    attendee_limit_and_external_user_idempotency,
    concurrent_inserts_respect_the_limit,
    concurrent_same_external_user_creates_one,
    concurrent_same_request_token_creates_one_meeting,
    delete_meeting_cascades_to_attendees,
    delete_connector_cascades_to_settings_and_credentials,
    writes_survive_reconnect,
    call_records_are_listed_per_connector_in_order,
    call_records_older_than_retention_are_deleted,
    concurrent_call_records_all_land_and_survive_reconnect,
    open_call_records_are_replaced_by_the_final_one_never_the_reverse,
);

// ---------------------------------------------------------------------------------------
// Builders.

fn vc_id(n: u32) -> String {
    format!("vc{n:020}")
}

fn meeting(id: &str, crt: &str, created_ms: i64) -> MeetingRecord {
    MeetingRecord {
        meeting: Meeting {
            meeting_id: id.to_string(),
            meeting_host_id: None,
            external_meeting_id: format!("ext-{id}"),
            media_region: "us-east-1".into(),
            media_placement: MediaPlacement::for_host("127.0.0.1:8080", id),
            meeting_features: Some(json!({"Audio": {"EchoReduction": "AVAILABLE"}})),
            primary_meeting_id: None,
            tenant_ids: Some(vec!["tenant-a".into()]),
            meeting_arn: format!("arn:aws:chime:us-east-1:000000000000:meeting/{id}"),
        },
        client_request_token: crt.to_string(),
        created_ms,
        last_audio_ms: created_ms,
    }
}

/// An attendee with a real minted token; returns the record and the token.
fn attendee(key: &TokenKey, meeting_id: &str, external: &str) -> (AttendeeRecord, String) {
    let id = domain::ids::new_uuid();
    let (nonce, tok) = key.mint(&id);
    (
        AttendeeRecord {
            meeting_id: meeting_id.to_string(),
            attendee_id: id,
            external_user_id: external.to_string(),
            capabilities: AttendeeCapabilities::default(),
            token_nonce: nonce,
            token_hash: token::token_hash(&tok),
            created_ms: 1_764_000_000_000,
        },
        tok,
    )
}

fn number(e164: &str) -> PhoneNumber {
    PhoneNumber::new(e164, "2026-11-26T00:00:00Z").expect("valid number")
}

fn associate(n: &mut PhoneNumber, vc: &str) {
    n.associations = vec![PhoneNumberAssociation {
        value: vc.to_string(),
        name: "VoiceConnectorId".into(),
        associated_timestamp: "2026-11-26T00:00:01Z".into(),
    }];
    n.status = "Assigned".into();
}

fn is_limit(e: &StoreError) -> bool {
    matches!(e, StoreError::Domain(DomainError::LimitExceeded { .. }))
}

// ---------------------------------------------------------------------------------------
// Cases.

async fn voice_connector_crud(db: &Db) {
    let repo = &db.repo;
    assert_eq!(
        repo.get_voice_connector(&vc_id(1)).await.expect("get"),
        None
    );
    for n in [3, 1, 2, 5, 4] {
        repo.insert_voice_connector(
            &connector(&vc_id(n), &format!("c{n}")),
            1_000 + i64::from(n),
        )
        .await
        .expect("insert");
    }
    let got = repo.get_voice_connector(&vc_id(2)).await.expect("get");
    assert_eq!(got, Some(connector(&vc_id(2), "c2")));

    // Pages in id order, resuming after the last id.
    let page1 = repo.list_voice_connectors(None, 2).await.expect("list");
    let ids: Vec<_> = page1.iter().map(|v| v.voice_connector_id.clone()).collect();
    assert_eq!(ids, [vc_id(1), vc_id(2)]);
    let page2 = repo
        .list_voice_connectors(Some(&vc_id(2)), 2)
        .await
        .expect("list");
    let ids: Vec<_> = page2.iter().map(|v| v.voice_connector_id.clone()).collect();
    assert_eq!(ids, [vc_id(3), vc_id(4)]);
    let page3 = repo
        .list_voice_connectors(Some(&vc_id(4)), 2)
        .await
        .expect("list");
    assert_eq!(page3.len(), 1);
    assert_eq!(
        repo.list_voice_connectors(None, 100)
            .await
            .expect("list")
            .len(),
        5
    );

    let mut c = connector(&vc_id(3), "renamed");
    c.require_encryption = false;
    assert!(repo.update_voice_connector(&c).await.expect("update"));
    assert_eq!(
        repo.get_voice_connector(&vc_id(3)).await.expect("get"),
        Some(c)
    );
    assert!(
        !repo
            .update_voice_connector(&connector(&vc_id(99), "ghost"))
            .await
            .expect("update missing"),
        "updating a missing connector reports false"
    );
    assert_eq!(
        repo.get_voice_connector(&vc_id(99)).await.expect("get"),
        None
    );

    assert!(
        repo.delete_voice_connector(&vc_id(3))
            .await
            .expect("delete")
    );
    assert!(
        !repo
            .delete_voice_connector(&vc_id(3))
            .await
            .expect("delete again")
    );
    assert_eq!(
        repo.get_voice_connector(&vc_id(3)).await.expect("get"),
        None
    );
    assert_eq!(
        repo.list_voice_connectors(None, 100)
            .await
            .expect("list")
            .len(),
        4
    );
}

async fn duplicate_voice_connector_id_is_refused(db: &Db) {
    let repo = &db.repo;
    repo.insert_voice_connector(&connector(&vc_id(7), "first"), 1)
        .await
        .expect("insert");
    let err = repo
        .insert_voice_connector(&connector(&vc_id(7), "second"), 2)
        .await
        .expect_err("same id twice");
    assert!(matches!(err, StoreError::Database(_)), "{err}");
    let kept = repo.get_voice_connector(&vc_id(7)).await.expect("get");
    assert_eq!(kept.map(|c| c.name).as_deref(), Some("first"));
}

async fn settings_crud_and_kinds_are_independent(db: &Db) {
    let repo = &db.repo;
    let id = vc_id(1);
    repo.insert_voice_connector(&connector(&id, "s"), 1)
        .await
        .expect("insert");
    let kinds = [
        SettingKind::Termination,
        SettingKind::Origination,
        SettingKind::Logging,
        SettingKind::TerminationHealth,
    ];
    for k in kinds {
        assert_eq!(repo.get_setting(&id, k).await.expect("get"), None);
        assert!(!repo.delete_setting(&id, k).await.expect("delete missing"));
    }
    for (i, k) in kinds.iter().enumerate() {
        repo.put_setting(&id, *k, &json!({"Kind": k.as_str(), "N": i}))
            .await
            .expect("put");
    }
    for (i, k) in kinds.iter().enumerate() {
        assert_eq!(
            repo.get_setting(&id, *k).await.expect("get"),
            Some(json!({"Kind": k.as_str(), "N": i}))
        );
    }
    // Put replaces the whole document.
    let t = json!({"CidrAllowedList": ["127.0.0.1/32"], "CallingRegions": ["US"], "CpsLimit": 1, "Disabled": false});
    repo.put_setting(&id, SettingKind::Termination, &t)
        .await
        .expect("replace");
    assert_eq!(
        repo.get_setting(&id, SettingKind::Termination)
            .await
            .expect("get"),
        Some(t)
    );
    assert!(
        repo.delete_setting(&id, SettingKind::Origination)
            .await
            .expect("delete")
    );
    assert_eq!(
        repo.get_setting(&id, SettingKind::Origination)
            .await
            .expect("get"),
        None
    );
    assert!(
        repo.get_setting(&id, SettingKind::Logging)
            .await
            .expect("get")
            .is_some(),
        "deleting one kind leaves the others"
    );
}

async fn credentials_crud(db: &Db) {
    let repo = &db.repo;
    let id = vc_id(1);
    let realm = format!("{id}.voiceconnector.localhost");
    repo.insert_voice_connector(&connector(&id, "c"), 1)
        .await
        .expect("insert");
    assert!(
        repo.list_credential_usernames(&id)
            .await
            .expect("list")
            .is_empty()
    );
    let bob = StoredCredential::derive("bob", "pw-b", &realm).expect("derive");
    let alice = StoredCredential::derive("alice", "pw-a", &realm).expect("derive");
    repo.put_credentials(&id, &[bob.clone(), alice.clone()])
        .await
        .expect("put");
    assert_eq!(
        repo.list_credential_usernames(&id).await.expect("list"),
        ["alice", "bob"]
    );
    assert_eq!(
        repo.get_credential(&id, "alice").await.expect("get"),
        Some(alice)
    );
    assert_eq!(repo.get_credential(&id, "carol").await.expect("get"), None);
    assert_eq!(
        repo.get_credential(&vc_id(2), "alice").await.expect("get"),
        None,
        "credentials belong to one connector"
    );
    // Put again replaces the password (its HA1).
    let bob2 = StoredCredential::derive("bob", "pw-b2", &realm).expect("derive");
    repo.put_credentials(&id, std::slice::from_ref(&bob2))
        .await
        .expect("put again");
    let stored = repo.get_credential(&id, "bob").await.expect("get");
    assert_eq!(stored, Some(bob2));
    assert_ne!(stored.map(|c| c.ha1_md5), Some(bob.ha1_md5));
    repo.delete_credentials(&id, &["alice".into(), "nobody".into()])
        .await
        .expect("delete");
    assert_eq!(
        repo.list_credential_usernames(&id).await.expect("list"),
        ["bob"]
    );
}

async fn phone_numbers_and_delete_conflict(db: &Db) {
    let repo = &db.repo;
    let (a, b) = (vc_id(1), vc_id(2));
    for id in [&a, &b] {
        repo.insert_voice_connector(&connector(id, "n"), 1)
            .await
            .expect("insert");
    }
    let numbers = ["+12065550103", "+12065550101", "+18005550102"];
    for n in numbers {
        assert!(repo.add_phone_number(&number(n)).await.expect("add"));
    }
    assert!(
        !repo
            .add_phone_number(&number("+12065550101"))
            .await
            .expect("add again"),
        "a number already in the inventory reports false"
    );
    assert_eq!(
        repo.get_phone_number("+18005550102").await.expect("get"),
        Some(number("+18005550102"))
    );
    assert_eq!(
        repo.get_phone_number("+19995550100").await.expect("get"),
        None
    );

    let mut n1 = number("+12065550101");
    associate(&mut n1, &a);
    repo.update_phone_number(&n1).await.expect("associate");
    let mut n3 = number("+12065550103");
    associate(&mut n3, &b);
    repo.update_phone_number(&n3).await.expect("associate");
    assert_eq!(
        repo.get_phone_number("+12065550101").await.expect("get"),
        Some(n1.clone())
    );

    let ids = |v: Vec<PhoneNumber>| v.into_iter().map(|p| p.phone_number_id).collect::<Vec<_>>();
    assert_eq!(
        ids(repo
            .list_phone_numbers(Some(&a), None, 100)
            .await
            .expect("list")),
        ["+12065550101"]
    );
    assert_eq!(
        ids(repo
            .list_phone_numbers(Some(&b), None, 100)
            .await
            .expect("list")),
        ["+12065550103"]
    );
    assert_eq!(
        ids(repo.list_phone_numbers(None, None, 2).await.expect("list")),
        ["+12065550101", "+12065550103"]
    );
    assert_eq!(
        ids(repo
            .list_phone_numbers(None, Some("+12065550103"), 2)
            .await
            .expect("list")),
        ["+18005550102"]
    );

    // A connector with numbers cannot be deleted; its rows stay.
    let err = repo.delete_voice_connector(&a).await.expect_err("conflict");
    assert!(
        matches!(
            &err,
            StoreError::Domain(DomainError::Conflict(ConflictReason::VoiceConnectorHasNumbers(id))) if *id == a
        ),
        "{err}"
    );
    assert!(repo.get_voice_connector(&a).await.expect("get").is_some());

    // Disassociate, then delete works.
    n1.associations.clear();
    n1.status = "Unassigned".into();
    repo.update_phone_number(&n1).await.expect("disassociate");
    assert!(
        repo.list_phone_numbers(Some(&a), None, 100)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(repo.delete_voice_connector(&a).await.expect("delete"));
    assert_eq!(
        repo.get_phone_number("+12065550101").await.expect("get"),
        Some(n1)
    );
}

async fn association_never_outlives_its_connector(db: &Db) {
    let repo = &db.repo;
    let mut n = number("+12065550199");
    assert!(repo.add_phone_number(&n).await.expect("add"));
    associate(&mut n, &vc_id(404));
    let err = repo
        .update_phone_number(&n)
        .await
        .expect_err("no such connector");
    assert!(
        matches!(err, StoreError::Domain(DomainError::NotFound { .. })),
        "{err}"
    );
    assert_eq!(
        repo.get_phone_number("+12065550199").await.expect("get"),
        Some(number("+12065550199")),
        "nothing changed"
    );

    // Delete and associate race, many times: afterwards either the connector exists (and
    // may hold the number) or it is gone and no number points at it.
    for round in 0..15u32 {
        let id = vc_id(1000 + round);
        repo.insert_voice_connector(&connector(&id, "race"), 1)
            .await
            .expect("insert");
        let mut n = number("+12065550199");
        associate(&mut n, &id);
        let (r1, r2) = (db.repo.clone(), db.repo.clone());
        let id2 = id.clone();
        let del = tokio::spawn(async move { r1.delete_voice_connector(&id2).await });
        let assoc = tokio::spawn(async move { r2.update_phone_number(&n).await });
        let deleted = del.await.expect("task");
        let associated = assoc.await.expect("task");
        let exists = repo.get_voice_connector(&id).await.expect("get").is_some();
        let holds = !repo
            .list_phone_numbers(Some(&id), None, 10)
            .await
            .expect("list")
            .is_empty();
        match (&deleted, &associated) {
            (Ok(true), Err(StoreError::Domain(DomainError::NotFound { .. }))) => {
                assert!(!exists && !holds, "round {round}")
            }
            (Err(StoreError::Domain(DomainError::Conflict(_))), Ok(())) => {
                assert!(exists && holds, "round {round}")
            }
            other => panic!("round {round}: unexpected outcome {other:?}"),
        }
        // Free the number for the next round.
        let mut free = number("+12065550199");
        free.status = "Unassigned".into();
        repo.update_phone_number(&free).await.expect("disassociate");
    }
}

async fn settings_and_credentials_need_their_connector(db: &Db) {
    // What a PutVoiceConnectorTermination racing DeleteVoiceConnector meets: the connector
    // is gone by the time the write lands. That is NotFound, not a database fault.
    let repo = &db.repo;
    let ghost = vc_id(404);
    let err = repo
        .put_setting(&ghost, SettingKind::Termination, &json!({"CpsLimit": 1}))
        .await
        .expect_err("no connector");
    assert!(
        matches!(err, StoreError::Domain(DomainError::NotFound { .. })),
        "{err}"
    );
    let err = repo
        .put_credentials(
            &ghost,
            &[StoredCredential::derive("u", "p", "realm").expect("derive")],
        )
        .await
        .expect_err("no connector");
    assert!(
        matches!(err, StoreError::Domain(DomainError::NotFound { .. })),
        "{err}"
    );
    assert_eq!(
        repo.get_setting(&ghost, SettingKind::Termination)
            .await
            .expect("get"),
        None
    );
    assert!(
        repo.list_credential_usernames(&ghost)
            .await
            .expect("list")
            .is_empty()
    );
}

async fn meeting_crud_and_request_token(db: &Db) {
    let repo = &db.repo;
    let id = domain::ids::new_uuid();
    let m = meeting(&id, "crt-1", 1_764_000_000_000);
    assert_eq!(
        repo.insert_meeting(&m).await.expect("insert"),
        MeetingInsert::Created(m.clone())
    );
    assert_eq!(repo.get_meeting(&id).await.expect("get"), Some(m.clone()));
    // Another meeting with the same ClientRequestToken: the first one comes back.
    let retry = meeting(&domain::ids::new_uuid(), "crt-1", 1_764_000_000_100);
    assert_eq!(
        repo.insert_meeting(&retry).await.expect("insert retry"),
        MeetingInsert::Existing(m.clone())
    );
    assert_eq!(
        repo.get_meeting(&retry.meeting.meeting_id)
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        repo.find_meeting_by_request_token("crt-1")
            .await
            .expect("find"),
        Some(m.clone())
    );
    assert_eq!(
        repo.find_meeting_by_request_token("crt-2")
            .await
            .expect("find"),
        None
    );
    let other = meeting(&domain::ids::new_uuid(), "crt-2", 1_764_000_000_500);
    repo.insert_meeting(&other).await.expect("insert");
    assert_eq!(repo.list_meetings().await.expect("list").len(), 2);

    repo.touch_meeting_audio(&id, 1_764_000_100_000)
        .await
        .expect("touch");
    let touched = repo.get_meeting(&id).await.expect("get").expect("present");
    assert_eq!(touched.last_audio_ms, 1_764_000_100_000);
    assert_eq!(touched.created_ms, 1_764_000_000_000);

    assert!(repo.delete_meeting(&id).await.expect("delete"));
    assert!(!repo.delete_meeting(&id).await.expect("delete again"));
    assert_eq!(repo.get_meeting(&id).await.expect("get"), None);
    assert_eq!(
        repo.find_meeting_by_request_token("crt-1")
            .await
            .expect("find"),
        None
    );
    assert_eq!(repo.list_meetings().await.expect("list"), [other]);
}

async fn attendee_crud_and_token_hash_lookup(db: &Db) {
    let repo = &db.repo;
    let key = TokenKey::generate();
    let mid = domain::ids::new_uuid();
    repo.insert_meeting(&meeting(&mid, "crt", 1))
        .await
        .expect("insert");

    let mut made = Vec::new();
    for i in 0..5 {
        let (a, tok) = attendee(&key, &mid, &format!("user-{i}"));
        match repo.insert_attendee(&a, 250).await.expect("insert") {
            AttendeeInsert::Created(r) => assert_eq!(r, a),
            AttendeeInsert::Existing(r) => panic!("new attendee reported as existing: {r:?}"),
        }
        made.push((a, tok));
    }
    let (a0, tok0) = &made[0];
    assert_eq!(
        repo.get_attendee(&mid, &a0.attendee_id).await.expect("get"),
        Some(a0.clone())
    );
    assert_eq!(
        repo.get_attendee(&domain::ids::new_uuid(), &a0.attendee_id)
            .await
            .expect("get"),
        None,
        "an attendee is found only in its own meeting"
    );
    // The stored nonce re-derives the same token.
    assert_eq!(key.token_for(&a0.attendee_id, &a0.token_nonce), *tok0);

    // Token-hash lookup: found for each token, not for a stranger's or a mangled one.
    for (a, tok) in &made {
        let found = repo
            .find_attendee_by_token_hash(&token::token_hash(tok))
            .await
            .expect("lookup");
        assert_eq!(found.as_ref(), Some(a));
    }
    let (_, stranger) = key.mint("nobody");
    assert_eq!(
        repo.find_attendee_by_token_hash(&token::token_hash(&stranger))
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(
        repo.find_attendee_by_token_hash("").await.expect("lookup"),
        None
    );

    // Pages in id order.
    let mut sorted: Vec<_> = made.iter().map(|(a, _)| a.attendee_id.clone()).collect();
    sorted.sort();
    let p1 = repo.list_attendees(&mid, None, 3).await.expect("list");
    let p2 = repo
        .list_attendees(&mid, p1.last().map(|a| a.attendee_id.as_str()), 3)
        .await
        .expect("list");
    let listed: Vec<_> = p1
        .iter()
        .chain(&p2)
        .map(|a| a.attendee_id.clone())
        .collect();
    assert_eq!(listed, sorted);
    assert_eq!(p2.len(), 2);

    assert!(
        repo.delete_attendee(&mid, &a0.attendee_id)
            .await
            .expect("delete")
    );
    assert!(
        !repo
            .delete_attendee(&mid, &a0.attendee_id)
            .await
            .expect("delete again")
    );
    assert_eq!(
        repo.get_attendee(&mid, &a0.attendee_id).await.expect("get"),
        None
    );
    assert_eq!(
        repo.find_attendee_by_token_hash(&token::token_hash(tok0))
            .await
            .expect("lookup"),
        None,
        "a deleted attendee's token no longer resolves"
    );
    assert_eq!(
        repo.list_attendees(&mid, None, 100)
            .await
            .expect("list")
            .len(),
        4
    );

    // No meeting, no attendee.
    let (orphan, _) = attendee(&key, &domain::ids::new_uuid(), "orphan");
    let err = repo
        .insert_attendee(&orphan, 250)
        .await
        .expect_err("no meeting");
    assert!(
        matches!(err, StoreError::Domain(DomainError::NotFound { .. })),
        "{err}"
    );
}

async fn attendee_limit_and_external_user_idempotency(db: &Db) {
    let repo = &db.repo;
    let key = TokenKey::generate();
    let mid = domain::ids::new_uuid();
    repo.insert_meeting(&meeting(&mid, "crt", 1))
        .await
        .expect("insert");
    let (first, _) = attendee(&key, &mid, "alice");
    repo.insert_attendee(&first, 2).await.expect("insert");

    // Same ExternalUserId: the stored attendee comes back, nothing new is written.
    let (dup, _) = attendee(&key, &mid, "alice");
    match repo.insert_attendee(&dup, 2).await.expect("insert dup") {
        AttendeeInsert::Existing(r) => assert_eq!(r, first),
        AttendeeInsert::Created(r) => panic!("duplicate external user created {r:?}"),
    }
    let (bob, _) = attendee(&key, &mid, "bob");
    assert!(matches!(
        repo.insert_attendee(&bob, 2).await.expect("insert"),
        AttendeeInsert::Created(_)
    ));
    let (carol, _) = attendee(&key, &mid, "carol");
    let err = repo.insert_attendee(&carol, 2).await.expect_err("limit");
    assert!(is_limit(&err), "{err}");
    // At the limit an existing user still gets its attendee back.
    let (bob_again, _) = attendee(&key, &mid, "bob");
    match repo
        .insert_attendee(&bob_again, 2)
        .await
        .expect("existing at limit")
    {
        AttendeeInsert::Existing(r) => assert_eq!(r, bob),
        AttendeeInsert::Created(r) => panic!("created past the limit: {r:?}"),
    }
    assert_eq!(
        repo.list_attendees(&mid, None, 100)
            .await
            .expect("list")
            .len(),
        2
    );
    // The same ExternalUserId in another meeting is another attendee.
    let other = domain::ids::new_uuid();
    repo.insert_meeting(&meeting(&other, "crt-o", 1))
        .await
        .expect("insert");
    let (alice_elsewhere, _) = attendee(&key, &other, "alice");
    assert!(matches!(
        repo.insert_attendee(&alice_elsewhere, 2)
            .await
            .expect("insert"),
        AttendeeInsert::Created(_)
    ));
}

async fn concurrent_inserts_respect_the_limit(db: &Db) {
    let key = TokenKey::generate();
    let mid = domain::ids::new_uuid();
    db.repo
        .insert_meeting(&meeting(&mid, "crt", 1))
        .await
        .expect("insert");
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let repo = db.repo.clone();
            let (a, _) = attendee(&key, &mid, &format!("racer-{i:02}"));
            tokio::spawn(async move { repo.insert_attendee(&a, 10).await })
        })
        .collect();
    let (mut created, mut refused) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(AttendeeInsert::Created(_)) => created += 1,
            Ok(AttendeeInsert::Existing(r)) => panic!("distinct users reported existing: {r:?}"),
            Err(e) if is_limit(&e) => refused += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((created, refused), (10, 10));
    assert_eq!(
        db.repo
            .list_attendees(&mid, None, 100)
            .await
            .expect("list")
            .len(),
        10
    );
}

async fn concurrent_same_external_user_creates_one(db: &Db) {
    let key = TokenKey::generate();
    let mid = domain::ids::new_uuid();
    db.repo
        .insert_meeting(&meeting(&mid, "crt", 1))
        .await
        .expect("insert");
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let repo = db.repo.clone();
            let (a, _) = attendee(&key, &mid, "same-person");
            tokio::spawn(async move { repo.insert_attendee(&a, 250).await })
        })
        .collect();
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        match t.await.expect("task").expect("insert") {
            AttendeeInsert::Created(r) => {
                created += 1;
                ids.insert(r.attendee_id);
            }
            AttendeeInsert::Existing(r) => {
                ids.insert(r.attendee_id);
            }
        }
    }
    assert_eq!(created, 1, "exactly one insert creates the attendee");
    assert_eq!(ids.len(), 1, "everyone gets the same attendee");
}

async fn concurrent_same_request_token_creates_one_meeting(db: &Db) {
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let repo = db.repo.clone();
            let m = meeting(&domain::ids::new_uuid(), "retry-token", 1);
            tokio::spawn(async move { repo.insert_meeting(&m).await })
        })
        .collect();
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        match t.await.expect("task").expect("insert") {
            MeetingInsert::Created(m) => {
                created += 1;
                ids.insert(m.meeting.meeting_id);
            }
            MeetingInsert::Existing(m) => {
                ids.insert(m.meeting.meeting_id);
            }
        }
    }
    assert_eq!(created, 1, "exactly one insert creates the meeting");
    assert_eq!(ids.len(), 1, "every caller gets the same meeting");
    assert_eq!(db.repo.list_meetings().await.expect("list").len(), 1);
}

async fn delete_meeting_cascades_to_attendees(db: &Db) {
    let repo = &db.repo;
    let key = TokenKey::generate();
    let (mid, keep) = (domain::ids::new_uuid(), domain::ids::new_uuid());
    repo.insert_meeting(&meeting(&mid, "a", 1))
        .await
        .expect("insert");
    repo.insert_meeting(&meeting(&keep, "b", 1))
        .await
        .expect("insert");
    let mut tokens = Vec::new();
    for i in 0..3 {
        let (a, tok) = attendee(&key, &mid, &format!("u{i}"));
        repo.insert_attendee(&a, 250).await.expect("insert");
        tokens.push((a, tok));
    }
    let (kept, kept_tok) = attendee(&key, &keep, "u0");
    repo.insert_attendee(&kept, 250).await.expect("insert");

    assert!(repo.delete_meeting(&mid).await.expect("delete"));
    for (a, tok) in &tokens {
        assert_eq!(
            repo.get_attendee(&mid, &a.attendee_id).await.expect("get"),
            None
        );
        assert_eq!(
            repo.find_attendee_by_token_hash(&token::token_hash(tok))
                .await
                .expect("lookup"),
            None,
            "the meeting's join tokens are revoked"
        );
    }
    assert!(
        repo.list_attendees(&mid, None, 100)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        repo.find_attendee_by_token_hash(&token::token_hash(&kept_tok))
            .await
            .expect("lookup"),
        Some(kept),
        "other meetings are untouched"
    );
}

async fn delete_connector_cascades_to_settings_and_credentials(db: &Db) {
    let repo = &db.repo;
    let id = vc_id(1);
    repo.insert_voice_connector(&connector(&id, "x"), 1)
        .await
        .expect("insert");
    repo.put_setting(&id, SettingKind::Termination, &json!({"CpsLimit": 1}))
        .await
        .expect("put");
    repo.put_credentials(
        &id,
        &[StoredCredential::derive("u", "p", "realm").expect("derive")],
    )
    .await
    .expect("put creds");
    assert!(repo.delete_voice_connector(&id).await.expect("delete"));
    // A connector created again under the same id starts empty.
    repo.insert_voice_connector(&connector(&id, "again"), 2)
        .await
        .expect("insert again");
    assert_eq!(
        repo.get_setting(&id, SettingKind::Termination)
            .await
            .expect("get"),
        None
    );
    assert!(
        repo.list_credential_usernames(&id)
            .await
            .expect("list")
            .is_empty()
    );
}

async fn writes_survive_reconnect(db: &Db) {
    let key = TokenKey::generate();
    let id = vc_id(1);
    db.repo
        .insert_voice_connector(&connector(&id, "persist"), 1)
        .await
        .expect("insert");
    let mid = domain::ids::new_uuid();
    db.repo
        .insert_meeting(&meeting(&mid, "crt", 1))
        .await
        .expect("insert");
    let (a, tok) = attendee(&key, &mid, "p");
    db.repo.insert_attendee(&a, 250).await.expect("insert");

    // A new pool (as after a restart); migrations run again and change nothing.
    let again = db.reopen().await;
    assert_eq!(
        again.get_voice_connector(&id).await.expect("get"),
        Some(connector(&id, "persist"))
    );
    assert_eq!(
        again
            .find_attendee_by_token_hash(&token::token_hash(&tok))
            .await
            .expect("lookup"),
        Some(a)
    );
}

#[test]
fn database_name_replacement() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "vc_x"),
        "postgres://postgres@127.0.0.1:5432/vc_x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "vc_y"),
        "postgres://u:p@h/vc_y?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h:1", "z"), "postgres://h:1/z");
}

async fn call_records_are_listed_per_connector_in_order(db: &Db) {
    let repo = &db.repo;
    for (id, vc) in [
        ("t3", "vc-a"),
        ("t1", "vc-a"),
        ("t2", "vc-b"),
        ("t4", "vc-a"),
    ] {
        let doc = serde_json::json!({ "TransactionId": id, "VoiceConnectorId": vc, "Status": "Completed" });
        repo.insert_call_record(id, vc, 1_000, &doc)
            .await
            .expect("insert");
    }
    // Storing the same record again (a retry) keeps one copy.
    let again = serde_json::json!({ "TransactionId": "t1", "VoiceConnectorId": "vc-a", "Status": "Completed" });
    repo.insert_call_record("t1", "vc-a", 1_000, &again)
        .await
        .expect("retry");
    let ids = |v: Vec<serde_json::Value>| -> Vec<String> {
        v.iter()
            .map(|r| r["TransactionId"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        ids(repo
            .list_call_records(Some("vc-a"), None, 100)
            .await
            .expect("list")),
        ["t1", "t3", "t4"]
    );
    assert_eq!(
        ids(repo
            .list_call_records(Some("vc-a"), Some("t1"), 1)
            .await
            .expect("page")),
        ["t3"]
    );
    assert_eq!(
        ids(repo.list_call_records(None, None, 100).await.expect("all")),
        ["t1", "t2", "t3", "t4"]
    );
    assert!(
        repo.list_call_records(Some("vc-x"), None, 100)
            .await
            .expect("none")
            .is_empty()
    );
}

async fn open_call_records_are_replaced_by_the_final_one_never_the_reverse(db: &Db) {
    let repo = &db.repo;
    let doc = |id: &str, status: &str| serde_json::json!({ "TransactionId": id, "Status": status });
    let status = |v: Vec<serde_json::Value>, id: &str| -> String {
        v.iter()
            .find(|r| r["TransactionId"] == id)
            .map(|r| r["Status"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    // Answered, then ended: the final record replaces the open one.
    repo.open_call_record("o1", "vc-o", 1_000, &doc("o1", "InProgress"))
        .await
        .expect("open");
    let open = repo
        .list_call_records(Some("vc-o"), None, 10)
        .await
        .unwrap();
    assert_eq!(status(open, "o1"), "InProgress");
    repo.insert_call_record("o1", "vc-o", 1_000, &doc("o1", "Completed"))
        .await
        .expect("final");
    // The final record got there first (two writers racing): the open one is ignored.
    repo.insert_call_record("o2", "vc-o", 1_000, &doc("o2", "Completed"))
        .await
        .expect("final first");
    repo.open_call_record("o2", "vc-o", 1_000, &doc("o2", "InProgress"))
        .await
        .expect("open late");
    let all = repo
        .list_call_records(Some("vc-o"), None, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(status(all.clone(), "o1"), "Completed");
    assert_eq!(status(all, "o2"), "Completed");
}

async fn call_records_older_than_retention_are_deleted(db: &Db) {
    let repo = &db.repo;
    // More than one delete batch of old records, across connectors, and a few newer ones.
    let old = 5_100u32;
    let mut tasks = Vec::new();
    for i in 0..old + 3 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let (start_ms, vc) = if i < old {
                (
                    1_000 + i64::from(i % 7),
                    if i % 2 == 0 { "vc-a" } else { "vc-b" },
                )
            } else {
                (2_000 + i64::from(i - old), "vc-a")
            };
            let id = format!("r-{i:05}");
            let doc = json!({ "TransactionId": id, "VoiceConnectorId": vc });
            repo.insert_call_record(&id, vc, start_ms, &doc).await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("insert");
    }
    // Strictly before: a record that started at the cut-off stays.
    assert_eq!(
        repo.delete_call_records_before(1_000).await.expect("none"),
        0
    );
    assert_eq!(
        repo.delete_call_records_before(2_001).await.expect("sweep"),
        u64::from(old) + 1
    );
    let left: Vec<String> = db
        .reopen()
        .await
        .list_call_records(None, None, 100)
        .await
        .expect("list")
        .iter()
        .map(|r| r["TransactionId"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        left,
        [format!("r-{:05}", old + 1), format!("r-{:05}", old + 2)]
    );
    assert_eq!(
        repo.delete_call_records_before(2_001).await.expect("again"),
        0,
        "nothing left to delete"
    );
    assert_eq!(
        repo.delete_call_records_before(i64::MAX)
            .await
            .expect("all"),
        2
    );
    assert!(
        repo.list_call_records(None, None, 10)
            .await
            .expect("empty")
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------
// The cache itself.

#[tokio::test]
async fn cache_serves_connector_config_until_ttl_and_drops_it_on_its_own_writes() {
    let db = Db::sqlite().await;
    let inner = db.repo.clone();
    let cached = CachedRepository::new(inner.clone(), std::time::Duration::from_secs(3600));
    let id = vc_id(1);
    cached
        .insert_voice_connector(&connector(&id, "before"), 1)
        .await
        .unwrap();
    cached
        .put_setting(&id, SettingKind::Termination, &json!({"CpsLimit": 1}))
        .await
        .unwrap();
    assert_eq!(
        cached.get_voice_connector(&id).await.unwrap().unwrap().name,
        "before"
    );
    assert!(
        cached
            .list_credential_usernames(&id)
            .await
            .unwrap()
            .is_empty()
    );
    let _ = cached
        .get_setting(&id, SettingKind::Termination)
        .await
        .unwrap();

    // Another node writes straight to the database: within the TTL we still see the old
    // configuration (that is the bound the TTL documents) ...
    inner
        .update_voice_connector(&connector(&id, "other-node"))
        .await
        .unwrap();
    inner
        .put_setting(&id, SettingKind::Termination, &json!({"CpsLimit": 2}))
        .await
        .unwrap();
    assert_eq!(
        cached.get_voice_connector(&id).await.unwrap().unwrap().name,
        "before"
    );
    assert_eq!(
        cached
            .get_setting(&id, SettingKind::Termination)
            .await
            .unwrap(),
        Some(json!({"CpsLimit": 1}))
    );

    // ... while writes through the cache are seen at once.
    cached
        .put_setting(&id, SettingKind::Termination, &json!({"CpsLimit": 3}))
        .await
        .unwrap();
    assert_eq!(
        cached
            .get_setting(&id, SettingKind::Termination)
            .await
            .unwrap(),
        Some(json!({"CpsLimit": 3}))
    );
    cached
        .update_voice_connector(&connector(&id, "after"))
        .await
        .unwrap();
    assert_eq!(
        cached.get_voice_connector(&id).await.unwrap().unwrap().name,
        "after"
    );
    cached.delete_voice_connector(&id).await.unwrap();
    assert!(cached.get_voice_connector(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn cache_with_zero_ttl_always_reads_through() {
    let db = Db::sqlite().await;
    let inner = db.repo.clone();
    let cached = CachedRepository::new(inner.clone(), std::time::Duration::ZERO);
    let id = vc_id(2);
    inner
        .insert_voice_connector(&connector(&id, "one"), 1)
        .await
        .unwrap();
    assert_eq!(
        cached.get_voice_connector(&id).await.unwrap().unwrap().name,
        "one"
    );
    inner
        .update_voice_connector(&connector(&id, "two"))
        .await
        .unwrap();
    assert_eq!(
        cached.get_voice_connector(&id).await.unwrap().unwrap().name,
        "two"
    );
}

async fn concurrent_call_records_all_land_and_survive_reconnect(db: &Db) {
    // A burst of call ends (the group-commit path): every insert returns only once its
    // record is stored, duplicates inside one group keep one copy, and nothing is lost.
    let mut tasks = Vec::new();
    for i in 0..600u32 {
        let repo = db.repo.clone();
        tasks.push(tokio::spawn(async move {
            // Every tenth record is sent twice, as a retry would.
            let n = if i % 10 == 9 { i - 1 } else { i };
            let id = format!("burst-{n:04}");
            let doc = json!({ "TransactionId": id, "VoiceConnectorId": "vc-burst" });
            repo.insert_call_record(&id, "vc-burst", i64::from(n), &doc)
                .await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("insert");
    }
    let reopened = db.reopen().await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = reopened
            .list_call_records(Some("vc-burst"), after.as_deref(), 250)
            .await
            .expect("list");
        if page.is_empty() {
            break;
        }
        for r in &page {
            seen.push(r["TransactionId"].as_str().unwrap_or_default().to_string());
        }
        after = seen.last().cloned();
    }
    assert_eq!(seen.len(), 540, "600 inserts, 60 of them repeats");
    let expected: Vec<String> = (0..600u32)
        .filter(|i| i % 10 != 9)
        .map(|i| format!("burst-{i:04}"))
        .collect();
    assert_eq!(seen, expected);
}
