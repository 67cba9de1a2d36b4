//! Attendee capabilities (UpdateAttendeeCapabilities, BatchUpdateAttendeeCapabilitiesExcept)
//! on SQLite, SQLite behind the cache, and PostgreSQL when `VC_TEST_DATABASE_URL` is set.

mod common;
use common::{Db, meeting};

use domain::meeting::{AttendeeCapabilities, AttendeeRecord, Capability};
use store::AttendeeInsert;

suite!(one_and_all_but_some);

fn attendee(meeting_id: &str, n: u32) -> AttendeeRecord {
    AttendeeRecord {
        meeting_id: meeting_id.to_string(),
        attendee_id: format!("a-{n}"),
        external_user_id: format!("user-{n}"),
        capabilities: AttendeeCapabilities::default(),
        token_nonce: [n as u8; 16],
        token_hash: format!("hash-{meeting_id}-{n}"),
        created_ms: 1_764_000_000_000,
    }
}

async fn one_and_all_but_some(db: &Db) {
    let repo = &db.repo;
    repo.insert_meeting(&meeting("m1")).await.unwrap();
    repo.insert_meeting(&meeting("m2")).await.unwrap();
    for n in 0..4 {
        let r = repo.insert_attendee(&attendee("m1", n), 250).await.unwrap();
        assert!(matches!(r, AttendeeInsert::Created(_)));
    }
    repo.insert_attendee(&attendee("m2", 9), 250).await.unwrap();
    let listen = AttendeeCapabilities {
        audio: Capability::Receive,
        video: Capability::None,
        content: Capability::None,
    };
    let caps = |m: &'static str, a: &'static str| async move {
        repo.get_attendee(m, a).await.unwrap().unwrap().capabilities
    };
    assert!(
        repo.update_attendee_capabilities("m1", "a-0", &listen)
            .await
            .unwrap()
    );
    assert_eq!(caps("m1", "a-0").await, listen);
    assert_eq!(caps("m1", "a-1").await, AttendeeCapabilities::default());
    // Not this meeting's attendee.
    assert!(
        !repo
            .update_attendee_capabilities("m1", "a-9", &listen)
            .await
            .unwrap()
    );

    let send = AttendeeCapabilities {
        audio: Capability::Send,
        ..listen
    };
    let changed = repo
        .update_capabilities_except("m1", &["a-0".into(), "a-3".into()], &send)
        .await
        .unwrap();
    assert_eq!(changed, vec!["a-1".to_string(), "a-2".to_string()]);
    assert_eq!(caps("m1", "a-0").await, listen);
    assert_eq!(caps("m1", "a-1").await, send);
    assert_eq!(caps("m1", "a-2").await, send);
    assert_eq!(caps("m1", "a-3").await, AttendeeCapabilities::default());
    assert_eq!(caps("m2", "a-9").await, AttendeeCapabilities::default());
    assert!(
        repo.update_capabilities_except("absent", &[], &send)
            .await
            .unwrap()
            .is_empty()
    );
}
