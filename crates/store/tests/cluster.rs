//! The node registry, meeting placement and the cluster bus (issue 16) on SQLite and, when
//! `VC_TEST_DATABASE_URL` is set, PostgreSQL. Each "node" is a repository with a connection
//! pool of its own on the same database.

mod common;
use common::{Db, meeting};

use store::{BusEvent, BusListener, ClusterRepository, NodeInfo, NodeState, SqlRepository};

suite!(
    registry,
    concurrent_first_joins_place_once,
    a_dead_nodes_meeting_moves
);

const DEAD_AFTER: i64 = 5_000;

fn info(id: &str, legs: i64) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        advertise_sip: Some(format!("{id}.example:5060")),
        advertise_http: Some(format!("http://{id}.example:8080")),
        media_ip: Some("127.0.0.2".into()),
        legs,
        meetings: 1,
        cpu_permille: 125,
        draining: false,
    }
}

async fn node(db: &Db) -> SqlRepository {
    SqlRepository::connect(&db.url).await.expect("node repo")
}

async fn registry(db: &Db) {
    let a = node(db).await;
    let b = node(db).await;
    a.heartbeat(&info("a", 3), 1_000, 10_000).await.unwrap();
    b.heartbeat(&info("b", 0), 2_000, 10_000).await.unwrap();
    // A second heartbeat replaces the load, keeps one row.
    let mut a2 = info("a", 7);
    a2.draining = true;
    a.heartbeat(&a2, 1_000, 11_000).await.unwrap();
    let nodes = b.list_nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].info, a2);
    assert_eq!(nodes[0].started_ms, 1_000);
    assert_eq!(nodes[0].heartbeat_ms, 11_000);
    assert_eq!(nodes[0].state(12_000, DEAD_AFTER), NodeState::Draining);
    assert_eq!(nodes[1].state(12_000, DEAD_AFTER), NodeState::Live);
    assert_eq!(nodes[1].state(15_001, DEAD_AFTER), NodeState::Dead);
    // Rows of nodes long gone are forgotten; the others stay.
    assert_eq!(a.forget_nodes(10_500).await.unwrap(), 1);
    let left: Vec<String> = a
        .list_nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.info.id)
        .collect();
    assert_eq!(left, ["a"]);
}

async fn concurrent_first_joins_place_once(db: &Db) {
    let a = std::sync::Arc::new(node(db).await);
    let b = std::sync::Arc::new(node(db).await);
    let now = domain::timestamp::now_millis();
    // Equal load: each node prefers itself, so every placement below is a real race.
    a.heartbeat(&info("a", 0), now, now).await.unwrap();
    b.heartbeat(&info("b", 0), now, now).await.unwrap();
    for i in 0..20 {
        let id = format!("m-{i}");
        db.repo.insert_meeting(&meeting(&id)).await.unwrap();
        let (ra, rb) = tokio::join!(
            {
                let (a, id) = (a.clone(), id.clone());
                tokio::spawn(async move { a.place_meeting(&id, "a", now, DEAD_AFTER).await })
            },
            {
                let (b, id) = (b.clone(), id.clone());
                tokio::spawn(async move { b.place_meeting(&id, "b", now, DEAD_AFTER).await })
            },
        );
        let pa = ra.unwrap().unwrap().expect("meeting exists");
        let pb = rb.unwrap().unwrap().expect("meeting exists");
        assert_eq!(pa.node_id, pb.node_id, "meeting {id}: both nodes agree");
        assert_eq!(
            a.meeting_node(&id).await.unwrap(),
            Some(Some(pa.node_id.clone()))
        );
        let host = pa.node.expect("the host's registry row");
        assert_eq!(host.info.id, pa.node_id);
        assert!(host.info.advertise_sip.is_some());
    }
    assert_eq!(
        a.place_meeting("nope", "a", now, DEAD_AFTER).await.unwrap(),
        None
    );
}

async fn a_dead_nodes_meeting_moves(db: &Db) {
    let a = node(db).await;
    let b = node(db).await;
    let t0 = 1_000_000;
    a.heartbeat(&info("a", 0), t0, t0).await.unwrap();
    b.heartbeat(&info("b", 5), t0, t0).await.unwrap();
    db.repo.insert_meeting(&meeting("m")).await.unwrap();
    assert_eq!(
        b.place_meeting("m", "b", t0, DEAD_AFTER)
            .await
            .unwrap()
            .unwrap()
            .node_id,
        "b",
        "the node that took the call keeps it within the slack"
    );
    // b goes silent; a joins later and the meeting moves to a.
    let later = t0 + DEAD_AFTER + 1;
    a.heartbeat(&info("a", 0), t0, later).await.unwrap();
    assert_eq!(
        a.place_meeting("m", "a", later, DEAD_AFTER)
            .await
            .unwrap()
            .unwrap()
            .node_id,
        "a"
    );
    // A join through b (back from the dead, heartbeating again) stays with a: it is live.
    b.heartbeat(&info("b", 0), t0, later).await.unwrap();
    assert_eq!(
        b.place_meeting("m", "b", later, DEAD_AFTER)
            .await
            .unwrap()
            .unwrap()
            .node_id,
        "a"
    );
    // A draining node takes no new meeting, even the one that took the call.
    let mut drain = info("b", 0);
    drain.draining = true;
    b.heartbeat(&drain, t0, later).await.unwrap();
    db.repo.insert_meeting(&meeting("m2")).await.unwrap();
    assert_eq!(
        b.place_meeting("m2", "b", later, DEAD_AFTER)
            .await
            .unwrap()
            .unwrap()
            .node_id,
        "a"
    );
    // A draining host keeps its calls, not its meeting: the next join through b moves it.
    let mut drain_a = info("a", 0);
    drain_a.draining = true;
    a.heartbeat(&drain_a, t0, later).await.unwrap();
    b.heartbeat(&info("b", 0), t0, later).await.unwrap();
    assert_eq!(
        b.place_meeting("m", "b", later, DEAD_AFTER)
            .await
            .unwrap()
            .unwrap()
            .node_id,
        "b"
    );
}

/// NOTIFY on one node reaches LISTEN on another (PostgreSQL only: SQLite is one node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_reaches_another_node() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let mut listener = BusListener::connect(&db.url, &[store::cluster::CACHE_CHANNEL])
        .await
        .expect("listen");
    let a = node(&db).await;
    a.notify(store::cluster::CACHE_CHANNEL, "node-a")
        .await
        .unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification within 5 s");
    assert_eq!(
        got,
        BusEvent::Message {
            channel: store::cluster::CACHE_CHANNEL.into(),
            payload: "node-a".into()
        }
    );
    // On SQLite NOTIFY is a no-op, not an error.
    let lite = Db::sqlite().await;
    SqlRepository::connect(&lite.url)
        .await
        .unwrap()
        .notify(store::cluster::CACHE_CHANNEL, "x")
        .await
        .unwrap();
}

/// The cache tells the bus of every invalidation by a write through it, and a notification
/// from another node (`invalidate_all`) makes its next read go to the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_announces_its_writes_and_drops_everything_when_told() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use store::{CachedRepository, Repository};

    let db = Db::sqlite().await;
    let cache = CachedRepository::new(db.repo.clone(), std::time::Duration::from_secs(3600));
    let told = Arc::new(AtomicUsize::new(0));
    let t = told.clone();
    cache.on_invalidate(Box::new(move || {
        t.fetch_add(1, Ordering::SeqCst);
    }));
    let vc = common::connector("abcdefghijklmnopqrstuv", "pbx");
    cache.insert_voice_connector(&vc, 1).await.unwrap();
    assert_eq!(
        told.load(Ordering::SeqCst),
        1,
        "a write through the cache is announced"
    );
    assert_eq!(
        cache
            .get_voice_connector(&vc.voice_connector_id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "pbx"
    );
    // Another node renames it (straight in the database): this cache still has the old name.
    let mut renamed = vc.clone();
    renamed.name = "renamed".into();
    assert!(db.repo.update_voice_connector(&renamed).await.unwrap());
    assert_eq!(
        cache
            .get_voice_connector(&vc.voice_connector_id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "pbx"
    );
    assert_eq!(told.load(Ordering::SeqCst), 1, "reads announce nothing");
    // Its notification arrives.
    cache.invalidate_all();
    assert_eq!(
        cache
            .get_voice_connector(&vc.voice_connector_id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "renamed"
    );
    assert_eq!(
        told.load(Ordering::SeqCst),
        1,
        "invalidate_all is not announced back"
    );
}
