//! The per-state indexes (`{jobs}:state:<state>`, `{jobs}:tenant:<owner>:state:<state>`)
//! against a real Redis (`VIDQ_TEST_REDIS_URL`): jobs move between them with each transition,
//! a tenant's listing reads only its own, a filtered page reads the state's index (no scan of
//! the others), cursor pages stay complete while jobs move, and entries of expired jobs are
//! pruned. Each test uses its own random key prefix and deletes its keys at the end.

mod common;

use std::collections::HashSet;

use common::{harness, queued};
use redis::AsyncCommands;
use vidq_core::{INDEX_GRACE_MS, JobId, JobState, ListCursor, Patch};

use JobState::*;

async fn members(h: &common::Harness, key: &str) -> Vec<String> {
    let mut conn = h.conn().await;
    conn.zrange(key, 0, -1).await.unwrap()
}

#[tokio::test]
async fn jobs_move_between_state_indexes_with_each_transition() {
    let h = harness().await;
    let state_key = |s: &str| format!("{}:{{jobs}}:state:{s}", h.prefix);
    let tenant_key = |t: &str, s: &str| format!("{}:{{jobs}}:tenant:{t}:state:{s}", h.prefix);
    let plain = queued();
    let mut owned = queued();
    owned.owner = Some("tenant-a".to_owned());
    let mut other = queued();
    other.owner = Some("tenant-b".to_owned());
    for job in [&plain, &owned, &other] {
        h.store.create(job).await.unwrap();
    }
    let mut all_queued = members(&h, &state_key("queued")).await;
    all_queued.sort();
    let mut want: Vec<String> = [plain.id, owned.id, other.id]
        .iter()
        .map(|id| id.to_string())
        .collect();
    want.sort();
    assert_eq!(all_queued, want);
    assert_eq!(
        members(&h, &tenant_key("tenant-a", "queued")).await,
        vec![owned.id.to_string()]
    );

    h.store
        .transition(&owned.id, &[Queued], Submitting, Patch::new())
        .await
        .unwrap();
    assert!(
        !members(&h, &state_key("queued"))
            .await
            .contains(&owned.id.to_string())
    );
    assert_eq!(
        members(&h, &state_key("submitting")).await,
        vec![owned.id.to_string()]
    );
    assert!(
        members(&h, &tenant_key("tenant-a", "queued"))
            .await
            .is_empty()
    );
    assert_eq!(
        members(&h, &tenant_key("tenant-a", "submitting")).await,
        vec![owned.id.to_string()]
    );
    // The score is the job's creation time, whatever state it is in.
    let mut conn = h.conn().await;
    let score: Option<f64> = conn
        .zscore(state_key("submitting"), owned.id.to_string())
        .await
        .unwrap();
    assert_eq!(score.map(|s| s as u64), Some(owned.created_at));

    // A skipped compare-and-set moves nothing.
    h.store
        .transition(&owned.id, &[Queued], Canceled, Patch::new())
        .await
        .unwrap();
    assert!(members(&h, &state_key("canceled")).await.is_empty());

    // Terminal, then retried by an operator (failed → queued): in and out of `failed`.
    h.store
        .transition(&owned.id, &[Submitting], Failed, Patch::new())
        .await
        .unwrap();
    assert_eq!(
        members(&h, &tenant_key("tenant-a", "failed")).await,
        vec![owned.id.to_string()]
    );
    assert!(members(&h, &state_key("submitting")).await.is_empty());

    // Listing by state reads those indexes; a tenant sees only its own.
    let listed = |s: JobState, t: Option<&'static str>| {
        let store = h.store.clone();
        async move {
            let page = match t {
                Some(t) => store.list_tenant(t, Some(s), None, 10).await,
                None => store.list(Some(s), None, 10).await,
            }
            .unwrap();
            page.jobs.iter().map(|j| j.id).collect::<HashSet<JobId>>()
        }
    };
    assert_eq!(listed(Failed, None).await, HashSet::from([owned.id]));
    assert_eq!(
        listed(Failed, Some("tenant-a")).await,
        HashSet::from([owned.id])
    );
    assert!(listed(Failed, Some("tenant-b")).await.is_empty());
    assert_eq!(
        listed(Queued, Some("tenant-b")).await,
        HashSet::from([other.id])
    );
    assert_eq!(
        listed(Queued, None).await,
        HashSet::from([plain.id, other.id])
    );
    h.cleanup().await;
}

/// A page deep in a state with few jobs among many: the old listing examined 4 × the page of
/// `{jobs}:all` and could come back empty with a cursor; the state's index answers it whole.
#[tokio::test]
async fn a_filtered_page_is_full_however_rare_the_state() {
    let h = harness().await;
    let base = vidq_core::unix_ms_now();
    let mut rare = Vec::new();
    for i in 0..60u64 {
        let mut job = queued();
        job.created_at = base + i;
        h.store.create(&job).await.unwrap();
        if i % 20 == 0 {
            h.store
                .transition(&job.id, &[Queued], Canceled, Patch::new())
                .await
                .unwrap();
            rare.push(job.id);
        }
    }
    let page = h.store.list(Some(Canceled), None, 3).await.unwrap();
    assert_eq!(
        page.jobs.iter().map(|j| j.id).collect::<HashSet<_>>(),
        rare.iter().copied().collect(),
        "all three on the first page"
    );
    assert!(
        page.jobs
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at)
    );
    h.cleanup().await;
}

/// Cursor pages of one state while jobs leave it (and others join it) between the pages:
/// every job that stays in the state throughout is listed exactly once, newest first.
#[tokio::test]
async fn cursor_pages_stay_complete_while_jobs_move() {
    let h = harness().await;
    let base = vidq_core::unix_ms_now();
    let mut ids = Vec::new();
    for i in 0..12u64 {
        let mut job = queued();
        // Pairs share a millisecond.
        job.created_at = base + i / 2;
        h.store.create(&job).await.unwrap();
        ids.push(job.id);
    }
    // Newest first: ids[11], ids[10], ...
    let first = h.store.list(Some(Queued), None, 4).await.unwrap();
    assert_eq!(first.jobs.len(), 4);
    let cursor: ListCursor = first.next_cursor.unwrap().to_string().parse().unwrap();
    let last_seen = first.jobs.last().unwrap().id;
    // The cursor's own job and one not yet listed leave `queued`; a listed one too.
    let mut moved = vec![last_seen, first.jobs[0].id];
    let unlisted = ids
        .iter()
        .copied()
        .find(|id| !first.jobs.iter().any(|j| j.id == *id))
        .unwrap();
    moved.push(unlisted);
    for id in &moved {
        h.store
            .transition(id, &[Queued], Submitting, Patch::new())
            .await
            .unwrap();
    }
    let mut seen: Vec<JobId> = first.jobs.iter().map(|j| j.id).collect();
    let mut cursor = Some(cursor);
    let mut pages = 1;
    while let Some(c) = cursor {
        let page = h.store.list(Some(Queued), Some(&c), 4).await.unwrap();
        assert!(page.jobs.iter().all(|j| j.state == Queued));
        seen.extend(page.jobs.iter().map(|j| j.id));
        cursor = page.next_cursor;
        pages += 1;
        assert!(pages < 10, "listing does not end");
    }
    let unique: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no job twice: {seen:?}");
    for id in &ids {
        if !moved.contains(id) {
            assert!(unique.contains(id), "{id} still queued and never listed");
        }
    }
    assert!(
        !unique.contains(&unlisted),
        "a job that left before its page"
    );
    h.cleanup().await;
}

#[tokio::test]
async fn state_index_entries_of_expired_jobs_are_pruned() {
    let h = harness().await;
    let state_key = format!("{}:{{jobs}}:state:succeeded", h.prefix);
    let tenant_key = format!("{}:{{jobs}}:tenant:tenant-a:state:succeeded", h.prefix);
    let now = h.store.redis_now_ms().await.unwrap();
    let mut old = queued();
    old.owner = Some("tenant-a".to_owned());
    old.created_at = now - INDEX_GRACE_MS - 5_000;
    let mut young = queued();
    young.owner = Some("tenant-a".to_owned());
    for job in [&old, &young] {
        h.store.create(job).await.unwrap();
        for (from, to) in [
            (Queued, Submitting),
            (Submitting, Processing),
            (Processing, Transferring),
            (Transferring, Succeeded),
        ] {
            h.store
                .transition(&job.id, &[from], to, Patch::new())
                .await
                .unwrap();
        }
    }
    let mut conn = h.conn().await;
    // Both records expire (the finished TTL, here by hand).
    for job in [&old, &young] {
        let _: () = conn.del(h.store.job_key(&job.id)).await.unwrap();
    }
    assert_eq!(members(&h, &state_key).await.len(), 2);
    let pruned = h.store.prune_index(100).await.unwrap();
    // `all`, `tenant:tenant-a`, `state:succeeded`, `tenant:tenant-a:state:succeeded`: the old
    // job's entry in each; the young one's stay (within the grace).
    assert_eq!(pruned, 4);
    assert_eq!(members(&h, &state_key).await, vec![young.id.to_string()]);
    assert_eq!(members(&h, &tenant_key).await, vec![young.id.to_string()]);
    h.cleanup().await;
}

/// Jobs created before the per-state indexes existed (here: their indexes deleted by hand)
/// are put in them by the one-time backfill, a few per step, ties of one millisecond
/// included; a job that moves between steps ends up in its new state's index only.
#[tokio::test]
async fn the_backfill_indexes_jobs_created_before_the_state_indexes() {
    let h = harness().await;
    let base = vidq_core::unix_ms_now();
    let mut jobs = Vec::new();
    for i in 0..7u64 {
        let mut job = queued();
        // Five share one millisecond: more than a step of 2.
        job.created_at = base + i.saturating_sub(2) / 5;
        if i % 2 == 0 {
            job.owner = Some("tenant-a".to_owned());
        }
        h.store.create(&job).await.unwrap();
        jobs.push(job);
    }
    h.store
        .transition(&jobs[3].id, &[Queued], Canceled, Patch::new())
        .await
        .unwrap();
    // An older release wrote no per-state index: drop them all, and the backfill's progress.
    let mut conn = h.conn().await;
    let mut keys: Vec<String> = JobState::ALL
        .iter()
        .flat_map(|s| {
            [
                format!("{}:{{jobs}}:state:{}", h.prefix, s.as_str()),
                format!("{}:{{jobs}}:tenant:tenant-a:state:{}", h.prefix, s.as_str()),
            ]
        })
        .collect();
    keys.push(format!("{}:{{jobs}}:state_backfill", h.prefix));
    for key in &keys {
        let _: () = conn.del(key).await.unwrap();
    }
    assert!(
        h.store
            .list(Some(Queued), None, 10)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );

    let mut steps = 0;
    while !h.store.backfill_state_index(2).await.unwrap() {
        steps += 1;
        assert!(steps < 20, "the backfill does not end");
        if steps == 2 {
            // A job moves while the backfill runs (already visited or not).
            for id in [jobs[0].id, jobs[6].id] {
                h.store
                    .transition(&id, &[Queued], Submitting, Patch::new())
                    .await
                    .unwrap();
            }
        }
    }
    assert!(steps >= 4, "7 jobs in steps of 2: {steps}");
    let ids = |page: vidq_core::JobPage| page.jobs.iter().map(|j| j.id).collect::<HashSet<_>>();
    assert_eq!(
        ids(h.store.list(Some(Queued), None, 10).await.unwrap()),
        HashSet::from([jobs[1].id, jobs[2].id, jobs[4].id, jobs[5].id])
    );
    assert_eq!(
        ids(h.store.list(Some(Submitting), None, 10).await.unwrap()),
        HashSet::from([jobs[0].id, jobs[6].id])
    );
    assert_eq!(
        ids(h.store.list(Some(Canceled), None, 10).await.unwrap()),
        HashSet::from([jobs[3].id])
    );
    assert_eq!(
        ids(h
            .store
            .list_tenant("tenant-a", Some(Queued), None, 10)
            .await
            .unwrap()),
        HashSet::from([jobs[2].id, jobs[4].id])
    );
    for s in JobState::ALL {
        let n: u64 = conn
            .zcard(format!("{}:{{jobs}}:state:{}", h.prefix, s.as_str()))
            .await
            .unwrap();
        let want = match s {
            Queued => 4,
            Submitting => 2,
            Canceled => 1,
            _ => 0,
        };
        assert_eq!(n, want, "{s:?}: each job in one state's index");
    }
    // Finished: each later call is a no-op.
    assert!(h.store.backfill_state_index(2).await.unwrap());
    h.cleanup().await;
}
