//! Pausing a queue (`RedisQueue::pause` / `resume`): a paused queue is not claimed while its
//! depth still counts, pushes go on and tasks already leased still settle; resume makes its
//! tasks claimable again at once. (Not `pause.rs`, which is about Redis itself pausing.)

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use common::{keys_under, queue, redis_url, stop_signal, wait_until};
use vidq_queue::{Depth, Place, Priority, RedisQueue};

#[tokio::test]
async fn a_paused_queue_is_not_claimed_but_counts_and_settles_what_runs() {
    let q: RedisQueue<u32> = queue(&redis_url(), "paused", |c| c).await;
    q.enqueue_batch(&[1, 2, 3]).await.unwrap();
    let running = q.claim(1).await.unwrap();
    assert_eq!(running.len(), 1);
    assert!(!q.is_paused().await.unwrap());

    assert!(q.pause().await.unwrap(), "it was running");
    assert!(!q.pause().await.unwrap(), "pausing twice changes nothing");
    assert!(q.is_paused().await.unwrap());
    assert!(
        q.claim(10).await.unwrap().is_empty(),
        "nothing claimed while paused"
    );
    q.enqueue(&4).await.unwrap();
    assert!(q.claim(10).await.unwrap().is_empty());
    assert_eq!(
        q.depth().await.unwrap(),
        Depth {
            due: 3,
            leased: 1,
            paused: true,
            ..Depth::default()
        },
        "its depth still counts, pushes included, and says it is paused"
    );
    // The task running when the pause began still settles.
    assert!(q.ack(&running[0].0).await.unwrap());
    assert_eq!(q.depth().await.unwrap().leased, 0);

    assert!(q.resume().await.unwrap(), "it was paused");
    assert!(!q.depth().await.unwrap().paused, "resumed");
    assert!(!q.resume().await.unwrap(), "resuming twice changes nothing");
    assert!(!q.is_paused().await.unwrap());
    let mut claimed: Vec<u32> = q
        .claim(10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    claimed.sort_unstable();
    let mut expected: Vec<u32> = [1, 2, 3, 4]
        .into_iter()
        .filter(|p| *p != running[0].1)
        .collect();
    expected.sort_unstable();
    assert_eq!(claimed, expected, "every task but the one that ran");
}

#[tokio::test]
async fn a_paused_fair_queue_is_not_claimed_either() {
    let q: RedisQueue<String> = queue(&redis_url(), "paused-fair", |c| {
        c.with_fair_share(BTreeMap::new())
    })
    .await;
    for group in ["a", "b"] {
        q.enqueue_unique_in(
            group,
            &group.to_owned(),
            Duration::ZERO,
            Place::new(group, Priority::Normal),
        )
        .await
        .unwrap();
    }
    q.pause().await.unwrap();
    assert!(q.claim(10).await.unwrap().is_empty());
    assert_eq!(q.depth().await.unwrap().due, 2);
    q.resume().await.unwrap();
    assert_eq!(q.claim(10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn pausing_one_queue_leaves_another_alone_and_resume_leaves_no_key() {
    let url = redis_url();
    let submit: RedisQueue<u32> = queue(&url, "paused-submit", |c| c).await;
    let poll_config = submit.settings().clone();
    let mut poll_config = poll_config;
    poll_config.queue = "paused-poll".into();
    let poll: RedisQueue<u32> = common::connect(&url, poll_config).await.unwrap();
    submit.enqueue(&1).await.unwrap();
    poll.enqueue(&2).await.unwrap();
    submit.pause().await.unwrap();
    let key = format!("{}:{{paused-submit}}:paused", submit.settings().prefix);
    assert!(
        keys_under(&url, &submit.settings().prefix)
            .await
            .contains(&key)
    );
    assert!(submit.claim(10).await.unwrap().is_empty());
    let got = poll.claim(10).await.unwrap();
    assert_eq!(got.len(), 1, "the other queue is still claimed");
    poll.ack(&got[0].0).await.unwrap();
    submit.resume().await.unwrap();
    let got = submit.claim(10).await.unwrap();
    submit.ack(&got[0].0).await.unwrap();
    assert!(
        keys_under(&url, &submit.settings().prefix).await.is_empty(),
        "nothing left behind"
    );
}

type Seen = Arc<Mutex<Vec<(u32, Instant)>>>;

async fn record(n: u32, seen: Data<Seen>) -> Result<(), BoxDynError> {
    seen.lock().unwrap().push((n, Instant::now()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_claims_nothing_while_paused_and_resume_wakes_it() {
    let url = redis_url();
    // A long idle poll: only the wake-up that resume publishes can start the work soon.
    let q: RedisQueue<u32> = queue(&url, "paused-worker", |mut c| {
        c.idle_poll = Duration::from_secs(30);
        c
    })
    .await;
    let seen: Seen = Arc::default();
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("paused-worker")
        .backend(q.clone())
        .data(seen.clone())
        .build(record);
    let run = tokio::spawn(worker.run_until(signal));
    q.enqueue(&1).await.unwrap();
    wait_until(Duration::from_secs(10), "the first task to run", || {
        let n = seen.lock().unwrap().len();
        async move { n == 1 }
    })
    .await;

    q.pause().await.unwrap();
    // The push (one round trip) wakes the worker: wait for its claim, the next round trip on
    // the connection every clone shares.
    let before_push = q.round_trips();
    q.enqueue_batch(&[2, 3]).await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "the worker's claim after the push",
        || {
            let n = q.round_trips();
            async move { n > before_push + 1 }
        },
    )
    .await;
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "nothing claimed while paused"
    );
    assert_eq!(q.depth().await.unwrap().due, 2);

    let resumed = Instant::now();
    q.resume().await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "both tasks to run after resume",
        || {
            let n = seen.lock().unwrap().len();
            async move { n == 3 }
        },
    )
    .await;
    let last = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, at)| *at)
        .max()
        .unwrap();
    assert!(
        last - resumed < Duration::from_secs(5),
        "resume woke the worker, not its 30 s idle poll: {:?}",
        last - resumed
    );
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}
