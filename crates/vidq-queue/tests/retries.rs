//! Retry policy, retry-after, permanent failures, max deliveries, fencing, bad payloads.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use common::{queue, redis_url, stop_signal, wait_until};
use vidq_queue::{Delivery, RedisQueue, RetryPolicy, TaskError};

#[derive(Default)]
struct Log(Mutex<Vec<(usize, u64, Instant)>>);

impl Log {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn push(&self, entry: (usize, u64, Instant)) {
        self.0.lock().unwrap().push(entry);
    }
}

/// Mode by payload: 0 fails twice then succeeds, 1 asks for a 700 ms retry-after once,
/// 2 always fails, 3 fails permanently.
async fn flaky(
    mode: u32,
    log: Data<Arc<Log>>,
    attempt: Attempt,
    d: Data<Delivery>,
) -> Result<(), BoxDynError> {
    let n = attempt.current();
    log.push((n, d.attempt, Instant::now()));
    match mode {
        0 if n < 3 => Err("flaky upstream".into()),
        1 if n < 2 => Err(TaskError::retry_after(Duration::from_millis(700))
            .because("rate limited")
            .into()),
        2 => Err("always broken".into()),
        3 => Err(TaskError::permanent("bad request").into()),
        _ => Ok(()),
    }
}

async fn run_one(
    mode: u32,
    policy: RetryPolicy,
    expect_runs: usize,
) -> (RedisQueue<u32>, Vec<(usize, u64, Instant)>) {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, &format!("retry{mode}"), |c| c.with_retry(policy)).await;
    let log = Arc::new(Log::default());
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("retry")
        .backend(q.clone())
        .data(log.clone())
        .build(flaky);
    let run = tokio::spawn(worker.run_until(signal));
    q.enqueue(&mode).await.unwrap();
    wait_until(
        Duration::from_secs(20),
        "expected runs and a settled queue",
        || {
            let (q, n) = (q.clone(), log.len());
            async move {
                let d = q.depth().await.unwrap();
                n >= expect_runs && d.due + d.scheduled + d.leased == 0
            }
        },
    )
    .await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    let runs = log.0.lock().unwrap().clone();
    (q, runs)
}

fn policy(max_attempts: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base: Duration::from_millis(200),
        max: Duration::from_secs(5),
        jitter: 0.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_attempt_count_and_backoff() {
    let (q, runs) = run_one(0, policy(5), 3).await;
    let attempts: Vec<usize> = runs.iter().map(|r| r.0).collect();
    let deliveries: Vec<u64> = runs.iter().map(|r| r.1).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    assert_eq!(deliveries, vec![1, 2, 3]);
    let gap1 = runs[1].2 - runs[0].2;
    let gap2 = runs[2].2 - runs[1].2;
    assert!(
        gap1 >= Duration::from_millis(200) && gap1 < Duration::from_millis(900),
        "{gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(400) && gap2 < Duration::from_millis(1100),
        "{gap2:?}"
    );
    assert_eq!(q.depth().await.unwrap().dead, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_from_the_handler_overrides_the_backoff() {
    let (_q, runs) = run_one(1, policy(5), 2).await;
    assert_eq!(runs.len(), 2);
    let gap = runs[1].2 - runs[0].2;
    assert!(
        gap >= Duration::from_millis(700) && gap < Duration::from_millis(1400),
        "{gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attempt_limit_sends_a_task_to_the_dead_set_with_its_reason() {
    let (q, runs) = run_one(2, policy(3), 3).await;
    assert_eq!(runs.len(), 3, "ran exactly max_attempts times");
    let dead = q.dead_tasks(0, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("gave up after 3 attempts"),
        "{}",
        dead[0].reason
    );
    assert!(
        dead[0].reason.contains("always broken"),
        "{}",
        dead[0].reason
    );
    assert_eq!(dead[0].payload, b"2");
    q.purge_dead().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_skips_retries() {
    let (q, runs) = run_one(3, policy(5), 1).await;
    assert_eq!(runs.len(), 1);
    let dead = q.dead_tasks(0, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].reason.contains("bad request"), "{}", dead[0].reason);
    q.purge_dead().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_ack_with_a_stale_token_changes_nothing() {
    let url = redis_url();
    let q: RedisQueue<u32> =
        queue(&url, "stale", |c| c.with_lease(Duration::from_millis(300))).await;
    q.enqueue(&1).await.unwrap();
    let first = q.claim(10).await.unwrap();
    assert_eq!(first.len(), 1);
    let stale = first[0].0.clone();
    assert!(stale.token.starts_with("1."), "{stale:?}");
    // Its lease expires; the next claim takes the task over.
    let second = Arc::new(Mutex::new(Vec::new()));
    wait_until(
        Duration::from_secs(5),
        "lease to expire and be reclaimed",
        || {
            let (q, second) = (q.clone(), second.clone());
            async move {
                let got = q.claim(10).await.unwrap();
                let found = !got.is_empty();
                second.lock().unwrap().extend(got);
                found
            }
        },
    )
    .await;
    let fresh = second.lock().unwrap()[0].0.clone();
    assert_eq!(fresh.id, stale.id);
    assert!(fresh.token.starts_with("2."), "{fresh:?}");
    assert_eq!(
        fresh.attempt, 1,
        "a vanished worker is not a failed attempt"
    );
    assert!(!q.ack(&stale).await.unwrap(), "stale ack must be refused");
    assert_eq!(
        q.depth().await.unwrap().leased,
        1,
        "still leased to the new holder"
    );
    assert!(q.ack(&fresh).await.unwrap());
    assert_eq!(q.depth().await.unwrap(), vidq_queue::Depth::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_never_finished_is_dead_after_max_deliveries() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "maxdlv", |mut c| {
        c = c.with_lease(Duration::from_millis(200));
        c.max_deliveries = 3;
        c
    })
    .await;
    q.enqueue(&9).await.unwrap();
    let deliveries = Arc::new(Mutex::new(Vec::new()));
    wait_until(Duration::from_secs(10), "task dead", || {
        let (q, seen) = (q.clone(), deliveries.clone());
        async move {
            for (d, _) in q.claim(1).await.unwrap() {
                // never acked: as if the worker crashed
                seen.lock()
                    .unwrap()
                    .push(d.token.split('.').next().unwrap().parse::<u64>().unwrap());
            }
            q.depth().await.unwrap().dead == 1
        }
    })
    .await;
    assert_eq!(*deliveries.lock().unwrap(), vec![1, 2, 3]);
    let dead = q.dead_tasks(0, 1).await.unwrap();
    assert!(
        dead[0].reason.contains("max deliveries 3"),
        "{}",
        dead[0].reason
    );
    q.purge_dead().await.unwrap();
}

async fn count(_n: u32, seen: Data<Arc<Log>>) -> Result<(), BoxDynError> {
    seen.push((0, 0, Instant::now()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_payload_goes_dead_and_the_worker_keeps_going() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "undecodable", |c| c).await;
    let wrong: RedisQueue<String> = common::connect(&url, q.settings().clone()).await.unwrap();
    q.enqueue(&1).await.unwrap();
    wrong.enqueue(&"not a number".to_owned()).await.unwrap();
    q.enqueue(&2).await.unwrap();
    let seen = Arc::new(Log::default());
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("undecodable")
        .backend(q.clone())
        .data(seen.clone())
        .build(count);
    let run = tokio::spawn(worker.run_until(signal));
    wait_until(
        Duration::from_secs(10),
        "good tasks done, bad one dead",
        || {
            let (q, n) = (q.clone(), seen.len());
            async move {
                let d = q.depth().await.unwrap();
                n == 2 && d.dead == 1 && d.due + d.leased == 0
            }
        },
    )
    .await;
    q.enqueue(&3).await.unwrap();
    wait_until(Duration::from_secs(10), "worker still processing", || {
        let n = seen.len();
        async move { n == 3 }
    })
    .await;
    assert!(!run.is_finished());
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    let dead = q.dead_tasks(0, 10).await.unwrap();
    assert!(
        dead[0].reason.contains("undecodable payload"),
        "{}",
        dead[0].reason
    );
    q.purge_dead().await.unwrap();
}
