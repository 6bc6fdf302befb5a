//! Quotas checked in the create's own atomic step: an owner's unfinished jobs, its creates per
//! UTC day, the backlog cap on every unfinished job. Refused jobs leave nothing behind;
//! ending a job frees its place, reopening it takes one again.

mod common;

use std::time::Duration;

use common::{harness, queued};
use redis::AsyncCommands as _;
use vidq_core::{CreateQuota, JobRecord, JobState, Patch, QuotaKind, StoreError};

fn owned(owner: &str) -> JobRecord {
    let mut job = queued();
    job.owner = Some(owner.into());
    job
}

fn refused(outcome: &Result<(), StoreError>) -> Option<QuotaKind> {
    match outcome {
        Err(StoreError::QuotaExceeded(q)) => Some(q.kind),
        _ => None,
    }
}

#[tokio::test]
async fn concurrent_creates_never_pass_the_unfinished_quota() {
    let h = harness().await;
    let quota = CreateQuota {
        unfinished: Some(5),
        ..CreateQuota::default()
    };
    let jobs: Vec<JobRecord> = (0..24).map(|_| owned("tenant-a")).collect();
    let outcomes = futures::future::join_all(jobs.iter().map(|job| {
        let store = h.store.clone();
        async move {
            store
                .create_within(std::slice::from_ref(job), &quota)
                .await
                .unwrap()
                .remove(0)
        }
    }))
    .await;
    let created = outcomes.iter().filter(|o| o.is_ok()).count();
    let over = outcomes
        .iter()
        .filter(|o| refused(o) == Some(QuotaKind::Unfinished))
        .count();
    assert_eq!((created, over), (5, 19), "{outcomes:?}");
    assert_eq!(h.store.unfinished_count(Some("tenant-a")).await.unwrap(), 5);
    // Refused jobs left nothing: no record, no index entry.
    let mut conn = h.conn().await;
    let all: usize = conn
        .zcard(format!("{}:{{jobs}}:all", h.prefix))
        .await
        .unwrap();
    let active: usize = conn
        .zcard(format!("{}:{{jobs}}:active", h.prefix))
        .await
        .unwrap();
    assert_eq!((all, active), (5, 5));
    for (job, outcome) in jobs.iter().zip(&outcomes) {
        assert_eq!(
            h.store.get(&job.id).await.unwrap().is_some(),
            outcome.is_ok()
        );
    }
    // Another tenant is not held back by tenant-a's quota.
    let other = h
        .store
        .create_within(&[owned("tenant-b")], &quota)
        .await
        .unwrap();
    assert!(other[0].is_ok());
    h.cleanup().await;
}

#[tokio::test]
async fn ending_a_job_frees_its_place_and_reopening_takes_it_again() {
    let h = harness().await;
    let quota = CreateQuota {
        unfinished: Some(1),
        ..CreateQuota::default()
    };
    let first = owned("tenant-a");
    assert!(
        h.store
            .create_within(std::slice::from_ref(&first), &quota)
            .await
            .unwrap()[0]
            .is_ok()
    );
    let second = owned("tenant-a");
    let outcome = h
        .store
        .create_within(std::slice::from_ref(&second), &quota)
        .await
        .unwrap();
    assert_eq!(refused(&outcome[0]), Some(QuotaKind::Unfinished));

    h.store
        .transition(
            &first.id,
            &[JobState::Queued],
            JobState::Failed,
            Patch::new(),
        )
        .await
        .unwrap();
    assert_eq!(h.store.unfinished_count(Some("tenant-a")).await.unwrap(), 0);
    assert_eq!(h.store.unfinished_count(None).await.unwrap(), 0);
    assert!(
        h.store
            .create_within(std::slice::from_ref(&second), &quota)
            .await
            .unwrap()[0]
            .is_ok()
    );

    // An operator's retry reopens the failed job: it counts again (over the quota: reopening
    // is an operator's decision, never refused).
    h.store
        .reopen(
            &first.id,
            JobState::Queued,
            "retried",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(h.store.unfinished_count(Some("tenant-a")).await.unwrap(), 2);
    let third = h
        .store
        .create_within(&[owned("tenant-a")], &quota)
        .await
        .unwrap();
    assert_eq!(refused(&third[0]), Some(QuotaKind::Unfinished));
    h.cleanup().await;
}

#[tokio::test]
async fn the_daily_quota_counts_every_create_of_the_utc_day() {
    let h = harness().await;
    let quota = CreateQuota {
        per_day: Some(3),
        ..CreateQuota::default()
    };
    let batch: Vec<JobRecord> = (0..5).map(|_| owned("tenant-a")).collect();
    let outcomes = h.store.create_within(&batch, &quota).await.unwrap();
    assert!(outcomes[..3].iter().all(Result::is_ok), "{outcomes:?}");
    for outcome in &outcomes[3..] {
        let Err(StoreError::QuotaExceeded(q)) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!((q.kind, q.limit), (QuotaKind::PerDay, 3));
        let wait = q
            .retry_after
            .expect("the daily quota knows when it frees up");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(86_400));
    }
    // Ending jobs does not give the day's places back.
    h.store
        .transition(
            &batch[0].id,
            &[JobState::Queued],
            JobState::Canceled,
            Patch::new(),
        )
        .await
        .unwrap();
    let again = h
        .store
        .create_within(&[owned("tenant-a")], &quota)
        .await
        .unwrap();
    assert_eq!(refused(&again[0]), Some(QuotaKind::PerDay));
    for job in &batch[3..] {
        assert!(h.store.get(&job.id).await.unwrap().is_none());
    }
    h.cleanup().await;
}

#[tokio::test]
async fn the_backlog_cap_counts_every_owner_and_terminal_jobs_pass() {
    let h = harness().await;
    let quota = CreateQuota {
        backlog: Some(3),
        ..CreateQuota::default()
    };
    for owner in ["a", "b", "c"] {
        assert!(
            h.store
                .create_within(&[owned(owner)], &quota)
                .await
                .unwrap()[0]
                .is_ok()
        );
    }
    let over = h.store.create_within(&[owned("d")], &quota).await.unwrap();
    let Err(StoreError::QuotaExceeded(q)) = &over[0] else {
        panic!("{over:?}");
    };
    assert_eq!(
        (q.kind, q.limit, q.retry_after),
        (QuotaKind::Backlog, 3, None)
    );
    // A job born finished (a reused result) adds nothing to the backlog.
    let mut done = owned("d");
    done.state = JobState::Succeeded;
    assert!(h.store.create_within(&[done], &quota).await.unwrap()[0].is_ok());
    assert_eq!(h.store.unfinished_count(None).await.unwrap(), 3);
    h.cleanup().await;
}

#[tokio::test]
async fn a_job_deleted_by_hand_gives_its_place_back_at_the_next_prune() {
    let h = harness().await;
    let quota = CreateQuota {
        unfinished: Some(2),
        ..CreateQuota::default()
    };
    let gone = owned("tenant-a");
    let kept = owned("tenant-a");
    let created = h
        .store
        .create_within(&[gone.clone(), kept.clone()], &quota)
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok));
    let mut conn = h.conn().await;
    let _: () = conn
        .del(&[h.store.job_key(&gone.id), h.store.history_key(&gone.id)])
        .await
        .unwrap();
    let over = h
        .store
        .create_within(&[owned("tenant-a")], &quota)
        .await
        .unwrap();
    assert_eq!(refused(&over[0]), Some(QuotaKind::Unfinished));

    h.store.prune_index(100).await.unwrap();
    assert_eq!(h.store.unfinished_count(Some("tenant-a")).await.unwrap(), 1);
    assert_eq!(h.store.unfinished_count(None).await.unwrap(), 1);
    let again = h
        .store
        .create_within(&[owned("tenant-a")], &quota)
        .await
        .unwrap();
    assert!(again[0].is_ok(), "{again:?}");
    h.cleanup().await;
}
