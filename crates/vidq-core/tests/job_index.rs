//! The job indexes and idempotency keys against a real Redis (`VIDQ_TEST_REDIS_URL`):
//! listing with a cursor and a state filter, lazy index repair, the reconciler's view of
//! overdue jobs. Each test uses its own random key prefix and deletes its keys at the end.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{harness, queued};
use redis::AsyncCommands;
use vidq_core::{IdempotencyOutcome, JobId, JobState, ListCursor, Patch, StoreError};

use JobState::*;

#[tokio::test]
async fn idempotency_key_returns_the_first_job() {
    let h = harness().await;
    let ttl = Duration::from_secs(60);
    let (first, second) = (JobId::new(), JobId::new());
    let put = |key: &'static str, hash: &'static str, id: JobId| {
        let store = h.store.clone();
        async move {
            store
                .put_idempotency_key(key, hash, &id, ttl)
                .await
                .unwrap()
        }
    };
    assert_eq!(put("order-1", "h1", first).await, IdempotencyOutcome::New);
    assert_eq!(
        put("order-1", "h1", second).await,
        IdempotencyOutcome::Existing {
            id: first,
            same_body: true
        }
    );
    assert_eq!(
        put("order-1", "h2", second).await,
        IdempotencyOutcome::Existing {
            id: first,
            same_body: false
        }
    );
    assert_eq!(put("order-2", "h1", second).await, IdempotencyOutcome::New);
    let mut conn = h.conn().await;
    let ttl_left: i64 = conn
        .pttl(format!("{}:idem:{{order-1}}", h.prefix))
        .await
        .unwrap();
    assert!(ttl_left > 0 && ttl_left <= 60_000, "{ttl_left}");
    let empty = h.store.put_idempotency_key("", "h", &first, ttl).await;
    assert!(matches!(empty, Err(StoreError::InvalidArgument { .. })));
    h.cleanup().await;
}

#[tokio::test]
async fn list_paginates_newest_first_and_filters_by_state() {
    let h = harness().await;
    let mut ids = Vec::new();
    let base = vidq_core::unix_ms_now();
    for i in 0..7u64 {
        let mut job = queued();
        // Two pairs share a creation millisecond: the cursor must not skip or repeat them.
        job.created_at = base + i / 2;
        h.store.create(&job).await.unwrap();
        ids.push(job.id);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<ListCursor> = None;
    let mut pages = 0;
    loop {
        let page = h.store.list(None, cursor.as_ref(), 3).await.unwrap();
        pages += 1;
        assert!(page.jobs.len() <= 3);
        seen.extend(page.jobs.iter().map(|j| (j.created_at, j.id)));
        // The cursor survives a trip through an API as text.
        cursor = page.next_cursor.map(|c| c.to_string().parse().unwrap());
        if cursor.is_none() {
            break;
        }
        assert!(pages < 10, "listing does not end");
    }
    let unique: HashSet<_> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(unique, ids.iter().copied().collect(), "every job once");
    assert_eq!(seen.len(), 7);
    assert!(
        seen.windows(2).all(|w| w[0].0 >= w[1].0),
        "newest first: {seen:?}"
    );

    for id in &ids[1..3] {
        h.store
            .transition(id, &[Queued], Submitting, Patch::new())
            .await
            .unwrap();
    }
    let page = h.store.list(Some(Submitting), None, 10).await.unwrap();
    let found: HashSet<_> = page.jobs.iter().map(|j| j.id).collect();
    assert_eq!(found, ids[1..3].iter().copied().collect());
    assert!(page.jobs.iter().all(|j| j.state == Submitting));
    assert!(page.next_cursor.is_none());
    assert_eq!(
        h.store
            .list(Some(Queued), None, 10)
            .await
            .unwrap()
            .jobs
            .len(),
        5
    );

    assert!(matches!(
        "garbage".parse::<ListCursor>(),
        Err(StoreError::InvalidArgument { .. })
    ));
    h.cleanup().await;
}

#[tokio::test]
async fn index_entries_of_expired_jobs_are_dropped_lazily() {
    let h = harness().await;
    let live = queued();
    h.store.create(&live).await.unwrap();
    let gone = JobId::new();
    let all = format!("{}:jobs:all", h.prefix);
    let mut conn = h.conn().await;
    let _: () = conn.zadd(&all, gone.to_string(), 1_000u64).await.unwrap();

    let page = h.store.list(None, None, 10).await.unwrap();
    assert_eq!(
        page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![live.id]
    );
    let score: Option<f64> = conn.zscore(&all, gone.to_string()).await.unwrap();
    assert_eq!(score, None, "listing dropped the expired job's entry");

    let _: () = conn.zadd(&all, gone.to_string(), 1_000u64).await.unwrap();
    assert_eq!(h.store.prune_index(100).await.unwrap(), 1);
    let members: Vec<String> = conn.zrange(&all, 0, -1).await.unwrap();
    assert_eq!(members, vec![live.id.to_string()]);
    h.cleanup().await;
}

#[tokio::test]
async fn stale_active_finds_overdue_jobs() {
    let h = harness().await;
    let (late, on_time) = (queued(), queued());
    h.store.create(&late).await.unwrap();
    h.store.create(&on_time).await.unwrap();
    let now = vidq_core::unix_ms_now();
    h.store.touch_active(&late.id, now - 60_000).await.unwrap();
    h.store
        .touch_active(&on_time.id, now + 60_000)
        .await
        .unwrap();

    let stale = h.store.stale_active(now, 10).await.unwrap();
    assert_eq!(stale, vec![(late.id, now - 60_000)]);
    assert_eq!(
        h.store.stale_active(now + 120_000, 1).await.unwrap().len(),
        1,
        "limit holds"
    );
    h.store.remove_active(&late.id).await.unwrap();
    assert!(h.store.stale_active(now, 10).await.unwrap().is_empty());
    h.cleanup().await;
}
