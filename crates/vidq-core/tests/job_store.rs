//! The job store against a real Redis (`VIDQ_TEST_REDIS_URL`): records, compare-and-set
//! transitions, history, TTL and events. Each test uses its own random key prefix and deletes
//! its keys at the end.

mod common;

use std::time::Duration;

use common::{WAIT, harness, queued};
use futures::StreamExt;
use redis::AsyncCommands;
use vidq_core::{
    JobEvent, JobId, JobRecord, JobState, Output, Patch, SignedUrl, StoreError, TransformRequest,
    Transition, Transitioned,
};

use JobState::*;

fn full_record() -> JobRecord {
    let request: TransformRequest = serde_json::from_value(serde_json::json!({
        "reference_video_url": "https://videos.example/in.mp4", "model": 2000, "duration": 12,
        "seed": 99, "resolution": "540p", "prompt": "make it noir",
        "extra": {"style_strength": 0.7}, "callback_url": "https://hooks.example/done",
        "metadata": {"team": "video"}, "reuse": false
    }))
    .unwrap();
    let mut record = JobRecord::new(request, Duration::from_secs(600));
    record.state = Transferring;
    record.img_uuid = Some("9f0c6f5e-5f5b-4a0e-9a55-0e5c1f3f1a11".into());
    record.attempts = 2;
    record.updated_at = record.created_at + 5;
    record.error = Some("previous attempt: upstream 503".into());
    record.result_url = Some(SignedUrl::new("https://cdn.example/out.mp4?sig=abc"));
    record.output = Some(Output {
        bucket: "videos".into(),
        key: format!("jobs/{}.mp4", record.id),
        bytes: 7_340_032,
        sha256: "ab".repeat(32),
        content_type: "video/mp4".into(),
    });
    record.upstream_cost = Some(12.5);
    record.upstream_request_id = Some("req-123".into());
    record.owner = Some("tenant-a".into());
    record.history = vec![
        Transition {
            from: Queued,
            to: Submitting,
            at_ms: record.created_at + 1,
            note: None,
        },
        Transition {
            from: Submitting,
            to: Processing,
            at_ms: record.created_at + 2,
            note: Some("upstream accepted".into()),
        },
    ];
    record
}

#[tokio::test]
async fn create_then_get_round_trips_every_field() {
    let h = harness().await;
    let record = full_record();
    h.store.create(&record).await.unwrap();
    assert_eq!(h.store.get(&record.id).await.unwrap(), Some(record.clone()));

    let minimal = queued();
    h.store.create(&minimal).await.unwrap();
    assert_eq!(h.store.get(&minimal.id).await.unwrap(), Some(minimal));

    let again = h.store.create(&record).await.unwrap_err();
    assert!(
        matches!(again, StoreError::AlreadyExists(id) if id == record.id),
        "{again}"
    );
    assert_eq!(h.store.get(&JobId::new()).await.unwrap(), None);
    h.cleanup().await;
}

#[tokio::test]
async fn transition_is_a_compare_and_set_that_applies_its_patch() {
    let h = harness().await;
    let job = queued();
    h.store.create(&job).await.unwrap();

    let first = h
        .store
        .transition(
            &job.id,
            &[Queued],
            Submitting,
            Patch::new().bump_attempts().note("go"),
        )
        .await
        .unwrap();
    assert!(
        matches!(first, Transitioned::Applied { from: Queued, .. }),
        "{first:?}"
    );
    let after = h.store.get(&job.id).await.unwrap().unwrap();
    assert_eq!((after.state, after.attempts), (Submitting, 1));
    assert_eq!(after.history.len(), 1);
    assert_eq!(
        (after.history[0].from, after.history[0].to),
        (Queued, Submitting)
    );
    assert_eq!(after.history[0].note.as_deref(), Some("go"));

    // A duplicate task that still thinks the job is queued changes nothing.
    let stale = h
        .store
        .transition(&job.id, &[Queued], Submitting, Patch::new().bump_attempts())
        .await
        .unwrap();
    assert_eq!(
        stale,
        Transitioned::Skipped {
            current: Submitting
        }
    );
    assert_eq!(h.store.get(&job.id).await.unwrap().unwrap(), after);

    let accepted = Patch::new()
        .img_uuid("1e0b4c1e-2a2b-4c3d-8e4f-5a6b7c8d9e0f")
        .upstream_cost(3.0)
        .upstream_request_id("req-9");
    h.store
        .transition(&job.id, &[Submitting], Processing, accepted)
        .await
        .unwrap();
    let url = SignedUrl::new("https://cdn.example/v.mp4?sig=1");
    let patched = h
        .store
        .patch(
            &job.id,
            Processing,
            Patch::new().result_url(url.clone()).error("slow"),
        )
        .await
        .unwrap();
    assert!(matches!(
        patched,
        Transitioned::Applied {
            from: Processing,
            ..
        }
    ));
    let wrong = h
        .store
        .patch(&job.id, Queued, Patch::new().error("x"))
        .await
        .unwrap();
    assert_eq!(
        wrong,
        Transitioned::Skipped {
            current: Processing
        }
    );

    let now = h.store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(now.state, Processing, "a patch does not move the state");
    assert_eq!(
        now.img_uuid.as_deref(),
        Some("1e0b4c1e-2a2b-4c3d-8e4f-5a6b7c8d9e0f")
    );
    assert_eq!(now.upstream_cost, Some(3.0));
    assert_eq!(now.upstream_request_id.as_deref(), Some("req-9"));
    assert_eq!(now.result_url, Some(url));
    assert_eq!(now.error.as_deref(), Some("slow"));
    assert_eq!(now.history.len(), 2, "a patch adds no history");
    assert!(now.updated_at >= after.updated_at);

    let cleared = Patch::new().clear_result_url().clear_error();
    h.store.patch(&job.id, Processing, cleared).await.unwrap();
    let now = h.store.get(&job.id).await.unwrap().unwrap();
    assert_eq!((now.result_url, now.error), (None, None));

    let refused = h
        .store
        .transition(&job.id, &[Processing], Succeeded, Patch::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::InvalidTransition {
                from: Processing,
                to: Succeeded
            }
        ),
        "{refused}"
    );
    let missing = h
        .store
        .transition(&JobId::new(), &[Queued], Submitting, Patch::new())
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
    h.cleanup().await;
}

#[tokio::test]
async fn terminal_state_is_set_once_under_a_race() {
    let h = harness().await;
    let job = queued();
    h.store.create(&job).await.unwrap();
    h.store
        .transition(&job.id, &[Queued], Submitting, Patch::new())
        .await
        .unwrap();
    h.store
        .transition(&job.id, &[Submitting], Processing, Patch::new())
        .await
        .unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = h.store.clone();
        let to = [Failed, Canceled, Expired][i % 3];
        tasks.spawn(async move {
            let outcome = store
                .transition(&job.id, &[Processing, Transferring], to, Patch::new())
                .await
                .unwrap();
            (to, outcome)
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (to, outcome) = joined.unwrap();
        match outcome {
            Transitioned::Applied { .. } => winners.push(to),
            Transitioned::Skipped { current } => assert!(current.is_terminal()),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racer wins: {winners:?}");
    let record = h.store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(record.state, winners[0]);
    let terminal_entries = record.history.iter().filter(|t| t.to.is_terminal()).count();
    assert_eq!(terminal_entries, 1);

    let leave = h
        .store
        .transition(&job.id, &[winners[0]], Queued, Patch::new())
        .await
        .unwrap_err();
    assert!(
        matches!(leave, StoreError::InvalidTransition { .. }),
        "{leave}"
    );
    h.cleanup().await;
}

#[tokio::test]
async fn history_keeps_only_the_newest_entries() {
    let h = harness().await;
    let store = h.store.clone().with_history_cap(3);
    let job = queued();
    store.create(&job).await.unwrap();
    let moves = [
        (Queued, Submitting),
        (Submitting, Queued),
        (Queued, Submitting),
        (Submitting, Queued),
        (Queued, Submitting),
        (Submitting, Processing),
    ];
    for (i, (from, to)) in moves.into_iter().enumerate() {
        let note = Patch::new().note(format!("move {i}"));
        store.transition(&job.id, &[from], to, note).await.unwrap();
    }
    let history = store.get(&job.id).await.unwrap().unwrap().history;
    let notes: Vec<_> = history.iter().map(|t| t.note.clone().unwrap()).collect();
    assert_eq!(notes, ["move 3", "move 4", "move 5"]);
    assert_eq!(history[2].to, Processing);
    assert!(history.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    h.cleanup().await;
}

#[tokio::test]
async fn finished_job_gets_a_ttl_and_stays_active_until_its_follow_up_is_queued() {
    let h = harness().await;
    let store = h.store.clone().with_finished_ttl(Duration::from_secs(3600));
    let job = queued();
    store.create(&job).await.unwrap();
    let mut conn = h.conn().await;
    let before: i64 = conn.pttl(store.job_key(&job.id)).await.unwrap();
    assert_eq!(before, -1, "a live job does not expire");
    let active = store.active_expected_by(&job.id).await.unwrap();
    assert!(active.is_some(), "a new job is in the active index");

    store
        .transition(&job.id, &[Queued], Canceled, Patch::new().note("user"))
        .await
        .unwrap();
    for key in [store.job_key(&job.id), store.history_key(&job.id)] {
        let ttl: i64 = conn.pttl(&key).await.unwrap();
        assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{key}: {ttl}");
    }
    // Still owed: its webhook. The reconciler would find it here if nobody queued that.
    assert!(store.active_expected_by(&job.id).await.unwrap().is_some());
    store.remove_active(&job.id).await.unwrap();
    assert_eq!(store.active_expected_by(&job.id).await.unwrap(), None);
    h.cleanup().await;
}

#[tokio::test]
async fn terminal_transition_publishes_an_event() {
    let h = harness().await;
    let job = queued();
    h.store.create(&job).await.unwrap();
    // Sharded pub/sub (SSUBSCRIBE), on the node of the channel's slot on a cluster; subscribed
    // before anything is published.
    let mut messages = h.redis.subscribe_sharded(vec![h.store.events_channel()]);
    let subscribed = tokio::time::timeout(WAIT, messages.next()).await;
    assert!(
        matches!(subscribed, Ok(Some(vidq_redis::Delivery::Subscribed))),
        "subscribed within the deadline"
    );

    h.store
        .transition(&job.id, &[Queued], Submitting, Patch::new())
        .await
        .unwrap();
    let applied = h
        .store
        .transition(
            &job.id,
            &[Submitting],
            Failed,
            Patch::new().error("upstream refused"),
        )
        .await
        .unwrap();
    let Transitioned::Applied { at_ms, .. } = applied else {
        panic!("{applied:?}")
    };
    let message = tokio::time::timeout(WAIT, async {
        loop {
            match messages.next().await {
                Some(vidq_redis::Delivery::Message(m)) => return m,
                Some(vidq_redis::Delivery::Subscribed) => {}
                None => panic!("the subscription ended"),
            }
        }
    })
    .await
    .expect("event within the deadline");
    let event: JobEvent = serde_json::from_slice(message.get_payload_bytes()).unwrap();
    assert_eq!(
        event,
        JobEvent {
            id: job.id,
            state: Failed,
            at_ms
        },
        "the first event is the terminal one: non-terminal moves publish nothing"
    );
    h.cleanup().await;
}

#[tokio::test]
async fn corrupt_stored_field_is_an_error_not_a_panic() {
    let h = harness().await;
    let job = queued();
    h.store.create(&job).await.unwrap();
    let mut conn = h.conn().await;
    let _: () = conn
        .hset(h.store.job_key(&job.id), "attempts", "many")
        .await
        .unwrap();
    let error = h.store.get(&job.id).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { field, .. } if field == "attempts"),
        "{error}"
    );
    let _: () = conn
        .hset(h.store.job_key(&job.id), "state", "limbo")
        .await
        .unwrap();
    let error = h.store.get(&job.id).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { field, .. } if field == "state"),
        "{error}"
    );
    h.cleanup().await;
}
