//! Task identity: a caller-chosen id names at most one live task; random ids don't collide.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{queue, redis_url};
use vidq_queue::{Depth, Pushed, QueueError, RedisQueue, TaskState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushing_an_existing_id_changes_nothing_and_says_where_it_is() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "ident", |mut c| {
        c.max_deliveries = 1;
        c.with_lease(Duration::from_millis(200))
    })
    .await;
    let later = Duration::from_secs(60);
    assert_eq!(
        q.enqueue_unique("job-1:poll", &1, later).await.unwrap(),
        Pushed::Created
    );
    // Pushed again while scheduled, and again due now with another payload: still one task,
    // still the first payload and due time.
    assert_eq!(
        q.enqueue_unique("job-1:poll", &2, Duration::ZERO)
            .await
            .unwrap(),
        Pushed::Exists(TaskState::Waiting)
    );
    assert_eq!(
        q.depth().await.unwrap(),
        Depth {
            scheduled: 1,
            ..Depth::default()
        }
    );
    assert!(q.claim(10).await.unwrap().is_empty(), "not due yet");

    assert_eq!(
        q.enqueue_unique("job-2:poll", &3, Duration::ZERO)
            .await
            .unwrap(),
        Pushed::Created
    );
    let claimed = q.claim(10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].0.id.as_str(), claimed[0].1), ("job-2:poll", 3));
    assert_eq!(
        q.enqueue_unique("job-2:poll", &4, Duration::ZERO)
            .await
            .unwrap(),
        Pushed::Exists(TaskState::Leased)
    );
    assert_eq!(
        q.enqueue_or_revive("job-2:poll", &4, Duration::ZERO)
            .await
            .unwrap(),
        Pushed::Exists(TaskState::Leased),
        "a live task is never revived"
    );

    // Its worker vanishes: past max_deliveries 1 it is dead, and stays so for plain pushes.
    common::wait_until(Duration::from_secs(5), "the task to die", || {
        let q = q.clone();
        async move {
            let _ = q.claim(10).await.unwrap();
            q.depth().await.unwrap().dead == 1
        }
    })
    .await;
    assert_eq!(
        q.enqueue_unique("job-2:poll", &5, Duration::ZERO)
            .await
            .unwrap(),
        Pushed::Exists(TaskState::Dead)
    );
    assert_eq!(q.depth().await.unwrap().dead, 1);
    // A reconciler's push brings it back, payload kept, attempts from 1.
    assert_eq!(
        q.enqueue_or_revive("job-2:poll", &6, Duration::ZERO)
            .await
            .unwrap(),
        Pushed::Revived
    );
    let back = q.claim(10).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].0.id.as_str(), back[0].1, back[0].0.attempt),
        ("job-2:poll", 3, 1)
    );
    assert!(q.ack(&back[0].0).await.unwrap());
    // Once done, the id is free again.
    assert_eq!(
        q.enqueue_unique("job-2:poll", &7, Duration::ZERO)
            .await
            .unwrap(),
        Pushed::Created
    );
    q.purge_dead().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_ids_are_128_bits_and_distinct() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "randid", |c| c).await;
    let ids = q
        .enqueue_batch(&(0..5000).collect::<Vec<_>>())
        .await
        .unwrap();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 5000);
    // 62^21 < 2^128: most 128-bit numbers need 22 base-62 digits.
    let long = ids.iter().filter(|id| id.len() >= 21).count();
    assert!(long > 4900, "ids are 128-bit: {:?}", &ids[..3]);
    assert_eq!(q.depth().await.unwrap().due, 5000);
    q.claim(1000).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_id_is_refused_by_name_and_nothing_is_written() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "badid", |c| c).await;
    let long = "x".repeat(513);
    for bad in ["", long.as_str()] {
        match q.enqueue_unique(bad, &1, Duration::ZERO).await {
            Err(e @ QueueError::InvalidId(_)) => assert!(e.to_string().contains("task id")),
            other => panic!("{bad:?} accepted: {other:?}"),
        }
    }
    assert_eq!(q.depth().await.unwrap(), Depth::default());
}
