//! The job indexes and idempotency keys against a real Redis (`VIDQ_TEST_REDIS_URL`):
//! listing with a cursor and a state filter, lazy index repair, the reconciler's view of
//! overdue jobs. Each test uses its own random key prefix and deletes its keys at the end.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{harness, queued};
use redis::AsyncCommands;
use vidq_core::{
    INDEX_GRACE_MS, IdempotencyOutcome, JobId, JobState, ListCursor, Patch, StoreError,
};

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
        .pttl(h.store.idempotency_key(None, "order-1"))
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
    let all = format!("{}:{{jobs}}:all", h.prefix);
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
async fn stale_active_finds_overdue_jobs_by_redis_clock() {
    let h = harness().await;
    let (late, on_time) = (queued(), queued());
    h.store.create(&late).await.unwrap();
    h.store.create(&on_time).await.unwrap();
    let late_by = h
        .store
        .touch_active(&late.id, Duration::ZERO)
        .await
        .unwrap();
    h.store
        .touch_active(&on_time.id, Duration::from_secs(60))
        .await
        .unwrap();

    // Expected now by Redis's clock: stale at once for a zero staleness, whatever the host says.
    let stale = h.store.stale_active(Duration::ZERO, 10).await.unwrap();
    assert_eq!(stale, vec![(late.id, late_by)]);
    assert!(
        h.store
            .stale_active(Duration::from_secs(3600), 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing has been late for an hour"
    );
    h.store
        .touch_active(&on_time.id, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        h.store.stale_active(Duration::ZERO, 1).await.unwrap().len(),
        1,
        "limit holds"
    );
    h.store.remove_active(&late.id).await.unwrap();
    h.store.remove_active(&on_time.id).await.unwrap();
    assert!(
        h.store
            .stale_active(Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
    h.cleanup().await;
}

#[tokio::test]
async fn touch_active_scores_by_redis_clock_plus_the_delay() {
    let h = harness().await;
    let job = queued();
    h.store.create(&job).await.unwrap();
    let before = h.store.redis_now_ms().await.unwrap();
    let at = h
        .store
        .touch_active(&job.id, Duration::from_secs(30))
        .await
        .unwrap();
    let after = h.store.redis_now_ms().await.unwrap();
    assert!(
        (before + 30_000..=after + 30_000).contains(&at),
        "{before} + 30 s <= {at} <= {after} + 30 s"
    );
    assert_eq!(h.store.active_expected_by(&job.id).await.unwrap(), Some(at));
    h.cleanup().await;
}

#[tokio::test]
async fn a_new_job_is_expected_by_redis_clock_not_its_creation_time() {
    let h = harness().await;
    // Made on a host whose clock is an hour behind (or ahead): the index must not care.
    let (mut behind, mut ahead) = (queued(), queued());
    behind.created_at -= 3_600_000;
    ahead.created_at += 3_600_000;
    let before = h.store.redis_now_ms().await.unwrap();
    h.store.create(&behind).await.unwrap();
    h.store.create(&ahead).await.unwrap();
    let after = h.store.redis_now_ms().await.unwrap();
    for job in [&behind, &ahead] {
        let at = h.store.active_expected_by(&job.id).await.unwrap().unwrap();
        assert!(
            (before..=after).contains(&at),
            "{before} <= {at} <= {after}"
        );
    }
    // Neither is an hour late nor an hour early: both are due now by Redis's clock.
    let mut stale: Vec<JobId> = h
        .store
        .stale_active(Duration::ZERO, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    stale.sort();
    let mut both = vec![behind.id, ahead.id];
    both.sort();
    assert_eq!(stale, both);
    assert!(
        h.store
            .stale_active(Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    h.cleanup().await;
}

#[tokio::test]
async fn stale_active_cuts_off_at_redis_now_minus_stale_after() {
    let h = harness().await;
    let job = queued();
    h.store.create(&job).await.unwrap();
    // Expected 90 s ago by Redis's clock.
    let at = h.store.redis_now_ms().await.unwrap() - 90_000;
    let mut conn = h.conn().await;
    let _: () = conn
        .zadd(
            format!("{}:{{jobs}}:active", h.prefix),
            job.id.to_string(),
            at,
        )
        .await
        .unwrap();
    let stale = h
        .store
        .stale_active(Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(stale, vec![(job.id, at)]);
    assert!(
        h.store
            .stale_active(Duration::from_secs(120), 10)
            .await
            .unwrap()
            .is_empty()
    );
    h.cleanup().await;
}

#[tokio::test]
async fn a_reopened_job_is_expected_now_by_redis_clock() {
    let h = harness().await;
    let job = queued();
    h.store.create(&job).await.unwrap();
    h.store
        .transition(&job.id, &[Queued], Failed, Patch::new().error("boom"))
        .await
        .unwrap();
    h.store.remove_active(&job.id).await.unwrap();
    let before = h.store.redis_now_ms().await.unwrap();
    h.store
        .reopen(&job.id, Queued, "retry", Duration::from_secs(3600))
        .await
        .unwrap();
    let after = h.store.redis_now_ms().await.unwrap();
    let at = h.store.active_expected_by(&job.id).await.unwrap().unwrap();
    assert!(
        (before..=after).contains(&at),
        "{before} <= {at} <= {after}"
    );
    h.cleanup().await;
}

#[tokio::test]
async fn listing_and_pruning_age_index_entries_by_redis_clock() {
    let h = harness().await;
    let all = format!("{}:{{jobs}}:all", h.prefix);
    let mut conn = h.conn().await;
    let now = h.store.redis_now_ms().await.unwrap();
    // Two ids without a record: one created within the grace (maybe still being created),
    // one past it, both by Redis's clock.
    let (young, old) = (JobId::new(), JobId::new());
    let _: () = conn
        .zadd(&all, young.to_string(), now - INDEX_GRACE_MS / 2)
        .await
        .unwrap();
    let _: () = conn
        .zadd(&all, old.to_string(), now - INDEX_GRACE_MS - 5_000)
        .await
        .unwrap();
    assert_eq!(h.store.prune_index(100).await.unwrap(), 1);
    let members: Vec<String> = conn.zrange(&all, 0, -1).await.unwrap();
    assert_eq!(members, vec![young.to_string()]);

    let _: () = conn
        .zadd(&all, old.to_string(), now - INDEX_GRACE_MS - 5_000)
        .await
        .unwrap();
    assert!(h.store.list(None, None, 10).await.unwrap().jobs.is_empty());
    let members: Vec<String> = conn.zrange(&all, 0, -1).await.unwrap();
    assert_eq!(
        members,
        vec![young.to_string()],
        "listing dropped only the old one"
    );
    h.cleanup().await;
}
