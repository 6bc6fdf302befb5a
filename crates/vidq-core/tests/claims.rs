//! The submission claim (one paid call in flight per job) and the release of an idempotency
//! key whose job was never created, against a real Redis.

mod common;

use std::time::Duration;

use common::{harness, queued};
use vidq_core::{IdempotencyOutcome, JobId, JobState, Patch, SubmissionClaim};

const HOLD: Duration = Duration::from_millis(600);

#[tokio::test]
async fn a_submission_claim_is_held_until_its_call_has_surely_ended() {
    let h = harness().await;
    let store = &h.store;
    let job = queued();
    store.create(&job).await.unwrap();
    // Only a job in `submitting` can be claimed.
    assert_eq!(
        store.claim_submission(&job.id, "1.a", HOLD).await.unwrap(),
        SubmissionClaim::Moved("queued".into())
    );
    store
        .transition(
            &job.id,
            &[JobState::Queued],
            JobState::Submitting,
            Patch::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.claim_submission(&job.id, "1.a", HOLD).await.unwrap(),
        SubmissionClaim::Taken
    );
    // A second delivery must wait while the first one's call may be in flight.
    match store.claim_submission(&job.id, "2.b", HOLD).await.unwrap() {
        SubmissionClaim::Busy { retry_in } => assert!(retry_in <= HOLD, "{retry_in:?}"),
        other => panic!("a second holder got {other:?}"),
    }
    // Once the hold has passed, it takes over (and knows it may duplicate).
    tokio::time::sleep(HOLD + Duration::from_millis(50)).await;
    assert_eq!(
        store.claim_submission(&job.id, "2.b", HOLD).await.unwrap(),
        SubmissionClaim::TakenOver {
            previous: "1.a".into()
        }
    );
    // A call that ended without an id ends the hold: the next delivery need not wait.
    assert!(store.end_submission_call(&job.id, "2.b").await.unwrap());
    assert!(
        !store.end_submission_call(&job.id, "1.a").await.unwrap(),
        "not its claim"
    );
    assert!(matches!(
        store.claim_submission(&job.id, "3.c", HOLD).await.unwrap(),
        SubmissionClaim::TakenOver { .. }
    ));
    // A definite refusal gives it back: the next is a plain first claim.
    assert!(store.release_submission(&job.id, "3.c").await.unwrap());
    assert_eq!(
        store.claim_submission(&job.id, "4.d", HOLD).await.unwrap(),
        SubmissionClaim::Taken
    );
    // Submitted: nobody claims it again.
    store
        .patch(&job.id, JobState::Submitting, Patch::new().img_uuid("u-1"))
        .await
        .unwrap();
    assert_eq!(
        store.claim_submission(&job.id, "5.e", HOLD).await.unwrap(),
        SubmissionClaim::Moved("submitting".into())
    );
    assert_eq!(
        store
            .claim_submission(&JobId::new(), "1.a", HOLD)
            .await
            .unwrap(),
        SubmissionClaim::Gone
    );
    h.cleanup().await;
}

#[tokio::test]
async fn an_unsubmitted_job_past_its_deadline_is_not_claimed() {
    let h = harness().await;
    let mut job = queued();
    job.deadline_at = 1; // long past, by any clock
    h.store.create(&job).await.unwrap();
    h.store
        .transition(
            &job.id,
            &[JobState::Queued],
            JobState::Submitting,
            Patch::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        h.store
            .claim_submission(&job.id, "1.a", HOLD)
            .await
            .unwrap(),
        SubmissionClaim::Expired
    );
    h.cleanup().await;
}

#[tokio::test]
async fn the_idempotency_key_of_a_job_never_created_is_freed() {
    let h = harness().await;
    let (a, b) = (JobId::new(), JobId::new());
    let ttl = Duration::from_secs(60);
    let put = |id| h.store.put_idempotency_key("order-42", "hash", id, ttl);
    assert_eq!(put(&a).await.unwrap(), IdempotencyOutcome::New);
    assert!(
        !h.store
            .release_idempotency_key("order-42", &b)
            .await
            .unwrap(),
        "not b's"
    );
    assert!(
        h.store
            .release_idempotency_key("order-42", &a)
            .await
            .unwrap()
    );
    assert_eq!(
        put(&b).await.unwrap(),
        IdempotencyOutcome::New,
        "the retry creates its job"
    );
    h.cleanup().await;
}
