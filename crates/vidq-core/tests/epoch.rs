//! The epoch marker against a real Redis (`VIDQ_TEST_REDIS_URL`), each test under its own key
//! prefix: deleting or overwriting `<prefix>:epoch` stands for Redis losing its data.

mod common;

use std::time::Duration;

use common::{WAIT, harness};
use redis::AsyncCommands as _;
use tokio_util::sync::CancellationToken;
use vidq_core::{EpochStatus, EpochWatch};

const PERIOD: Duration = Duration::from_millis(50);

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

struct Running {
    status: EpochStatus,
    key: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the watch stops when cancelled")
            .expect("the watch does not panic");
    }
}

fn start(conn: redis::aio::ConnectionManager, prefix: &str, unready_for: Duration) -> Running {
    let watch = EpochWatch::new(conn, prefix)
        .with_period(PERIOD)
        .with_unready_for(unready_for);
    let stop = CancellationToken::new();
    Running {
        status: watch.status(),
        key: watch.key().to_owned(),
        stop: stop.clone(),
        task: tokio::spawn(watch.run(stop)),
    }
}

async fn marker(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<String> {
    conn.get(key).await.unwrap()
}

#[tokio::test]
async fn a_brand_new_redis_gets_a_marker_and_stays_ready() {
    let h = harness().await;
    let conn = redis::aio::ConnectionManager::new(h.client.clone())
        .await
        .unwrap();
    let watch = start(conn, &h.prefix, Duration::from_secs(60));
    assert_eq!(watch.key, format!("{}:epoch", h.prefix));
    wait_for("the first read", async || watch.status.marker().is_some()).await;
    let mut raw = h.raw().await;
    let value = marker(&mut raw, &watch.key).await.expect("a marker");
    assert_eq!(watch.status.marker().as_ref(), Some(&value));
    let (uuid, time) = value.split_once('@').expect("<uuid>@<time>");
    uuid::Uuid::parse_str(uuid).expect("a UUID");
    let (secs, micros) = time.split_once('.').expect("<secs>.<micros>");
    assert!(secs.parse::<u64>().unwrap() > 1_600_000_000, "{value}");
    assert_eq!(micros.len(), 6, "{value}");
    // Making it at the first read is no change: a brand-new Redis.
    assert_eq!(watch.status.changes(), 0);
    assert_eq!(watch.status.not_ready_reason(), None);
    watch.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_deleted_marker_is_one_change_and_not_ready_for_a_while() {
    let h = harness().await;
    let conn = redis::aio::ConnectionManager::new(h.client.clone())
        .await
        .unwrap();
    let watch = start(conn, &h.prefix, Duration::from_millis(700));
    wait_for("the first read", async || watch.status.marker().is_some()).await;
    let before = watch.status.marker().unwrap();
    let mut raw = h.raw().await;

    let _: () = raw.del(&watch.key).await.unwrap();
    wait_for("the change to be seen", async || watch.status.changes() > 0).await;
    let reason = watch.status.not_ready_reason().expect("not ready");
    assert!(
        reason.starts_with("redis lost its data (epoch marker missing) "),
        "{reason}"
    );
    let after = marker(&mut raw, &watch.key).await.expect("a new marker");
    assert_ne!(after, before);
    assert_eq!(watch.status.marker(), Some(after));

    wait_for("ready again", async || {
        watch.status.not_ready_reason().is_none()
    })
    .await;
    assert_eq!(watch.status.changes(), 1, "one change, counted once");
    watch.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_marker_made_by_another_process_is_a_change_for_this_one() {
    let h = harness().await;
    let conn = redis::aio::ConnectionManager::new(h.client.clone())
        .await
        .unwrap();
    let first = start(conn.clone(), &h.prefix, Duration::from_secs(60));
    wait_for("the first read", async || first.status.marker().is_some()).await;
    // A second process starting on the same Redis records the marker: no change for it.
    let second = start(conn, &h.prefix, Duration::from_secs(60));
    wait_for("the second's first read", async || {
        second.status.marker().is_some()
    })
    .await;
    assert_eq!(second.status.marker(), first.status.marker());
    assert_eq!(second.status.changes(), 0);
    let mut raw = h.raw().await;

    let _: () = raw
        .set(&first.key, "restored-from-an-older-snapshot")
        .await
        .unwrap();
    wait_for("both to see the change", async || {
        first.status.changes() == 1 && second.status.changes() == 1
    })
    .await;
    let reason = first.status.not_ready_reason().expect("not ready");
    assert!(
        reason.starts_with("redis lost its data (epoch marker changed) "),
        "{reason}"
    );
    assert!(second.status.not_ready_reason().is_some());
    assert_eq!(
        marker(&mut raw, &first.key).await.as_deref(),
        Some("restored-from-an-older-snapshot"),
        "a marker that is there is never overwritten"
    );
    first.stop().await;
    second.stop().await;
    h.cleanup().await;
}
