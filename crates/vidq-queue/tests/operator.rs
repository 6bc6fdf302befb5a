//! Depth counters and the dead-task operator API.

mod common;

use std::time::Duration;

use common::{keys_under, queue, redis_url};
use vidq_queue::{Depth, RedisQueue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_counts_each_state() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "depth", |c| c).await;
    q.enqueue_batch(&[1, 2, 3]).await.unwrap();
    q.enqueue_after(&4, Duration::from_secs(60)).await.unwrap();
    let claimed = q.claim(1).await.unwrap();
    assert_eq!(
        q.depth().await.unwrap(),
        Depth {
            due: 2,
            scheduled: 1,
            leased: 1,
            dead: 0,
            paused: false,
        }
    );
    assert!(q.ack(&claimed[0].0).await.unwrap());
    let rest = q.claim(10).await.unwrap();
    assert_eq!(rest.len(), 2, "the scheduled task is not due yet");
    for (d, _) in &rest {
        q.ack(d).await.unwrap();
    }
    assert_eq!(
        q.depth().await.unwrap(),
        Depth {
            scheduled: 1,
            ..Depth::default()
        }
    );
}

/// Claim everything due and bury it by exhausting a single attempt.
async fn bury_all(q: &RedisQueue<u32>) {
    let all = q.claim(1000).await.unwrap();
    for (d, _) in all {
        // Manual consumers have no middleware: emulate "never finishes" with max_deliveries=1.
        let _ = d;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_tasks_can_be_listed_retried_and_purged() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "deadops", |mut c| {
        c = c.with_lease(Duration::from_millis(100));
        c.renew_every = Duration::from_millis(50);
        c.max_deliveries = 1;
        c
    })
    .await;
    let ids = q.enqueue_batch(&(0..5).collect::<Vec<_>>()).await.unwrap();
    bury_all(&q).await;
    // Their leases expire; the next claims find them over the delivery limit.
    common::wait_until(Duration::from_secs(5), "all dead", || {
        let q = q.clone();
        async move {
            let _ = q.claim(1000).await.unwrap();
            q.depth().await.unwrap().dead == 5
        }
    })
    .await;
    let page1 = q.dead_tasks(0, 3).await.unwrap();
    let page2 = q.dead_tasks(3, 3).await.unwrap();
    assert_eq!((page1.len(), page2.len()), (3, 2));
    let mut listed: Vec<String> = page1.iter().chain(&page2).map(|d| d.id.clone()).collect();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(page1.iter().all(|d| d.reason.contains("max deliveries 1")));

    assert!(q.retry_dead(&ids[0]).await.unwrap());
    assert!(!q.retry_dead("no-such-id").await.unwrap());
    assert_eq!(
        q.depth().await.unwrap(),
        Depth {
            due: 1,
            dead: 4,
            ..Depth::default()
        }
    );
    let back = q.claim(10).await.unwrap();
    assert_eq!(
        back[0].0.attempt, 1,
        "a retried dead task starts its attempts over"
    );
    assert!(
        back[0].0.token.starts_with("2."),
        "its fencing token is a new one: {}",
        back[0].0.token
    );
    assert!(q.ack(&back[0].0).await.unwrap());

    assert_eq!(q.retry_all_dead().await.unwrap(), 4);
    assert_eq!(
        q.depth().await.unwrap(),
        Depth {
            due: 4,
            ..Depth::default()
        }
    );
    bury_all(&q).await;
    common::wait_until(Duration::from_secs(5), "all dead again", || {
        let q = q.clone();
        async move {
            let _ = q.claim(1000).await.unwrap();
            q.depth().await.unwrap().dead == 4
        }
    })
    .await;
    assert_eq!(q.purge_dead().await.unwrap(), 4);
    assert_eq!(q.depth().await.unwrap(), Depth::default());
    assert_eq!(
        keys_under(&url, &q.settings().prefix).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_tasks_expire_after_the_retention_time() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "deadttl", |mut c| {
        c = c.with_lease(Duration::from_millis(100));
        c.renew_every = Duration::from_millis(50);
        c.max_deliveries = 1;
        c.dead_ttl = Duration::from_millis(300);
        c
    })
    .await;
    q.enqueue(&1).await.unwrap();
    bury_all(&q).await;
    common::wait_until(Duration::from_secs(5), "dead", || {
        let q = q.clone();
        async move {
            let _ = q.claim(10).await.unwrap();
            q.depth().await.unwrap().dead == 1
        }
    })
    .await;
    common::wait_until(
        Duration::from_secs(5),
        "dead task trimmed by a later claim",
        || {
            let q = q.clone();
            async move {
                let _ = q.claim(10).await.unwrap();
                q.depth().await.unwrap().dead == 0
            }
        },
    )
    .await;
    assert_eq!(
        keys_under(&url, &q.settings().prefix).await,
        Vec::<String>::new()
    );
}
