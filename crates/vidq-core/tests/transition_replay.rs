//! The transition script run twice with the same arguments (what a client library does when it
//! resends a script whose reply it lost, say across a failover) applies once and answers
//! "applied" both times; another call (another nonce) finding the job moved is still skipped.

mod common;

use common::{harness, queued};
use redis::AsyncCommands;
use vidq_core::{JobId, JobState, Patch, Transitioned};

const TRANSITION: &str = include_str!("../src/job/lua/transition.lua");

/// queued → submitting with one attempt more, the pair `tx`/`nonce` naming the call.
async fn run(h: &common::Harness, id: &JobId, nonce: &str) -> (i64, String, String) {
    let p = format!("{}:{{jobs}}:", h.prefix);
    let mut conn = h.conn().await;
    redis::Script::new(TRANSITION)
        .key(h.store.job_key(id))
        .key(h.store.history_key(id))
        .key(format!("{p}unfinished"))
        .key(format!("{p}stats:minute:"))
        .key(format!("{p}img:"))
        .arg("queued")
        .arg("submitting")
        .arg("")
        .arg("null")
        .arg(1)
        .arg("0")
        .arg(60_000)
        .arg(50)
        .arg(format!("{p}events"))
        .arg("")
        .arg(format!("{p}tenant:"))
        .arg(1)
        .arg("tx")
        .arg(nonce)
        .invoke_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_transition_run_again_applies_once_and_another_call_is_skipped() {
    let h = harness().await;
    let record = queued();
    let id = record.id;
    h.store.create(&record).await.unwrap();

    let first = run(&h, &id, "call-1").await;
    assert_eq!((first.0, first.1.as_str()), (1, "queued"));
    let again = run(&h, &id, "call-1").await;
    assert_eq!(
        again, first,
        "the same call again: applied, same from and time"
    );

    let job = h.store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Submitting);
    assert_eq!(job.attempts, 1, "attempts bumped once");
    let mut conn = h.conn().await;
    let history: u64 = conn.llen(h.store.history_key(&id)).await.unwrap();
    assert_eq!(
        history,
        record.history.len() as u64 + 1,
        "one history entry"
    );

    let other = run(&h, &id, "call-2").await;
    assert_eq!(
        (other.0, other.1.as_str()),
        (0, "submitting"),
        "another call: fenced"
    );
    h.cleanup().await;
}

#[tokio::test]
async fn the_store_answers_each_call_on_its_own() {
    let h = harness().await;
    let record = queued();
    let id = record.id;
    h.store.create(&record).await.unwrap();
    let patch = || Patch::new().bump_attempts();
    let moved = h
        .store
        .transition(&id, &[JobState::Queued], JobState::Submitting, patch())
        .await
        .unwrap();
    assert!(matches!(
        moved,
        Transitioned::Applied {
            from: JobState::Queued,
            ..
        }
    ));
    // A second call (a duplicate delivery) is not the same call: skipped as before.
    let moved = h
        .store
        .transition(&id, &[JobState::Queued], JobState::Submitting, patch())
        .await
        .unwrap();
    assert!(matches!(
        moved,
        Transitioned::Skipped {
            current: JobState::Submitting
        }
    ));
    h.cleanup().await;
}
