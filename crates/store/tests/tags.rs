//! Tags by ARN on SQLite, SQLite behind the cache, and PostgreSQL when
//! `VC_TEST_DATABASE_URL` is set.

mod common;
use common::Db;

use domain::DomainError;
use store::{MAX_TAGS_PER_RESOURCE, StoreError};

suite!(tags_add_replace_remove, tag_limit_is_atomic);

const VC: &str = "arn:aws:chime:us-east-1:000000000000:vc/abcdefghijklmnopqrstu";
const MEETING: &str = "arn:aws:chime:us-east-1:000000000000:meeting/m-1";

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn tags_add_replace_remove(db: &Db) {
    let repo = &db.repo;
    assert!(repo.list_tags(VC).await.unwrap().is_empty());
    repo.tag_resource(VC, &kv(&[("team", "voice"), ("env", "prod")]))
        .await
        .unwrap();
    repo.tag_resource(MEETING, &kv(&[("team", "meetings")]))
        .await
        .unwrap();
    repo.tag_resource(VC, &kv(&[("env", "staging"), ("cost", "")]))
        .await
        .unwrap();
    assert_eq!(
        repo.list_tags(VC).await.unwrap(),
        kv(&[("cost", ""), ("env", "staging"), ("team", "voice")])
    );
    repo.untag_resource(VC, &["env".into(), "absent".into()])
        .await
        .unwrap();
    assert_eq!(
        repo.list_tags(VC).await.unwrap(),
        kv(&[("cost", ""), ("team", "voice")])
    );
    assert_eq!(
        repo.list_tags(MEETING).await.unwrap(),
        kv(&[("team", "meetings")])
    );
}

async fn tag_limit_is_atomic(db: &Db) {
    let repo = &db.repo;
    let first: Vec<(String, String)> = (0..MAX_TAGS_PER_RESOURCE - 1)
        .map(|i| (format!("k{i:02}"), "v".to_string()))
        .collect();
    repo.tag_resource(VC, &first).await.unwrap();
    let err = repo
        .tag_resource(VC, &kv(&[("x", "1"), ("y", "2")]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Domain(DomainError::LimitExceeded { limit, .. }) if limit == MAX_TAGS_PER_RESOURCE
        ),
        "{err}"
    );
    assert_eq!(
        repo.list_tags(VC).await.unwrap().len(),
        first.len(),
        "nothing of the refused request is kept"
    );
    // Replacing a value does not count as a new tag; one more fits exactly.
    repo.tag_resource(VC, &kv(&[("k00", "new"), ("x", "1")]))
        .await
        .unwrap();
    assert_eq!(
        repo.list_tags(VC).await.unwrap().len(),
        MAX_TAGS_PER_RESOURCE as usize
    );
}
