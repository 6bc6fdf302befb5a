//! The worker registry against a real Redis (`VIDQ_TEST_REDIS_URL`), each test under its own
//! key prefix: beats list a worker, a missed TTL drops it by Redis time, a clean remove drops
//! it at once, and the keys expire with the last worker.

mod common;

use std::time::Duration;

use common::{WAIT, harness};
use redis::AsyncCommands as _;
use vidq_core::workers::{QueueLoad, WorkerInfo, WorkerRegistry};

fn queues(running: usize) -> Vec<QueueLoad> {
    vec![
        QueueLoad {
            queue: "submit".into(),
            concurrency: 4,
            running,
        },
        QueueLoad {
            queue: "poll".into(),
            concurrency: 16,
            running: 0,
        },
    ]
}

async fn registry(h: &common::Harness) -> WorkerRegistry {
    let conn = redis::aio::ConnectionManager::new(h.client.clone())
        .await
        .unwrap();
    WorkerRegistry::new(conn, &h.prefix)
}

/// Calls `check` every 20 ms until it is true, for at most [`WAIT`].
async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_beat_lists_the_worker_with_its_queues_and_redis_times() {
    let h = harness().await;
    let reg = registry(&h).await;
    let mut a = WorkerInfo::for_this_process(queues(2));
    let mut b = WorkerInfo::for_this_process(queues(0));
    assert_ne!(a.id, b.id, "ids are unique per registration");
    assert_eq!(a.pid, std::process::id());
    assert!(a.id.starts_with(&a.host));

    let (secs, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut h.raw().await)
        .await
        .unwrap();
    let redis_now = secs * 1000 + micros / 1000;
    reg.beat(&mut a, Duration::from_secs(60)).await.unwrap();
    reg.beat(&mut b, Duration::from_secs(30)).await.unwrap();
    assert!(a.started_at_ms >= redis_now && a.started_at_ms < redis_now + 5_000);
    assert_eq!(a.last_seen_ms, a.started_at_ms);
    assert_eq!(a.expires_at_ms, a.last_seen_ms + 60_000);

    let listed = reg.list().await.unwrap();
    assert_eq!(
        listed,
        vec![b.clone(), a.clone()],
        "soonest to expire first"
    );

    // A later beat keeps started_at and moves last_seen; the running count is the new one.
    let started = a.started_at_ms;
    a.queues = queues(3);
    wait_for("Redis' clock to move", async || {
        let mut again = a.clone();
        reg.beat(&mut again, Duration::from_secs(60)).await.unwrap();
        again.last_seen_ms > started
    })
    .await;
    let listed = reg.list().await.unwrap();
    let seen = listed.iter().find(|w| w.id == a.id).unwrap();
    assert_eq!(seen.started_at_ms, started);
    assert!(seen.last_seen_ms > started);
    assert_eq!(seen.queues[0].running, 3);
    assert_eq!(seen.queues[0].concurrency, 4);
    h.cleanup().await;
}

#[tokio::test]
async fn a_worker_that_stops_beating_drops_out_by_redis_time() {
    let h = harness().await;
    let reg = registry(&h).await;
    let mut dying = WorkerInfo::for_this_process(queues(1));
    let mut alive = WorkerInfo::for_this_process(queues(0));
    reg.beat(&mut dying, Duration::from_millis(300))
        .await
        .unwrap();
    reg.beat(&mut alive, Duration::from_secs(60)).await.unwrap();
    assert_eq!(reg.list().await.unwrap().len(), 2);

    wait_for("the silent worker to drop out", async || {
        let ids: Vec<String> = reg
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|w| w.id)
            .collect();
        ids == vec![alive.id.clone()]
    })
    .await;
    // The read pruned it from both keys, not just from its answer.
    let [set, info] = reg.keys();
    let mut conn = h.raw().await;
    let members: Vec<String> = conn.zrange(set, 0, -1).await.unwrap();
    assert_eq!(members, vec![alive.id.clone()]);
    let fields: Vec<String> = conn.hkeys(info).await.unwrap();
    assert_eq!(fields, vec![alive.id.clone()]);
    h.cleanup().await;
}

#[tokio::test]
async fn a_clean_stop_removes_the_worker_at_once() {
    let h = harness().await;
    let reg = registry(&h).await;
    let mut w = WorkerInfo::for_this_process(queues(0));
    reg.beat(&mut w, Duration::from_secs(60)).await.unwrap();
    assert!(reg.remove(&w.id).await.unwrap());
    assert!(reg.list().await.unwrap().is_empty());
    assert!(
        !reg.remove(&w.id).await.unwrap(),
        "a second remove finds nothing"
    );
    let mut conn = h.raw().await;
    let [set, info] = reg.keys();
    let exists: u32 = conn.exists(&[set, info]).await.unwrap();
    assert_eq!(exists, 0, "the last worker's stop leaves no keys");
    h.cleanup().await;
}

#[tokio::test]
async fn the_keys_expire_with_the_last_worker() {
    let h = harness().await;
    let reg = registry(&h).await;
    let mut w = WorkerInfo::for_this_process(queues(0));
    reg.beat(&mut w, Duration::from_millis(200)).await.unwrap();
    let [set, info] = reg.keys();
    let (set, info) = (set.to_owned(), info.to_owned());
    let mut conn = h.raw().await;
    wait_for("the registry keys to expire", async || {
        let exists: u32 = conn.exists(&[&set, &info]).await.unwrap();
        exists == 0
    })
    .await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_bad_beat_is_refused_and_writes_nothing() {
    let h = harness().await;
    let reg = registry(&h).await;
    let mut w = WorkerInfo::for_this_process(queues(0));
    let err = reg.beat(&mut w, Duration::ZERO).await.unwrap_err();
    assert!(err.to_string().contains("ttl"), "{err}");
    w.id.clear();
    let err = reg.beat(&mut w, Duration::from_secs(1)).await.unwrap_err();
    assert!(err.to_string().contains("id"), "{err}");
    assert!(reg.list().await.unwrap().is_empty());
    h.cleanup().await;
}
