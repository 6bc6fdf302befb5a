//! Retry accounting: backoff follows the attempts of the current round, handled failures are
//! not crashes, and a lost lease stops the running handler.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use common::{queue, redis_url, stop_signal, wait_until};
use vidq_queue::{Depth, RedisQueue, Reschedule, RetryPolicy, TaskError};

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base: Duration::from_millis(200),
        max: Duration::from_secs(20),
        jitter: 0.0,
    }
}

#[derive(Default)]
struct Runs(Mutex<Vec<Instant>>);

/// Rescheduled three times, then fails once, then succeeds.
async fn again_then_fail(
    _n: u32,
    runs: Data<Arc<Runs>>,
    again: Data<Reschedule>,
) -> Result<(), BoxDynError> {
    let k = {
        let mut r = runs.0.0.lock().unwrap();
        r.push(Instant::now());
        r.len()
    };
    match k {
        1..=3 => {
            again.after(Duration::from_millis(10));
            Ok(())
        }
        4 => Err("upstream 503".into()),
        _ => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescheduled_task_that_fails_waits_the_first_backoff_not_the_max() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "acct-resched", |c| c.with_retry(policy())).await;
    q.enqueue(&1).await.unwrap();
    let runs = Arc::new(Runs::default());
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("acct")
        .backend(q.clone())
        .data(runs.clone())
        .build(again_then_fail);
    let run = tokio::spawn(worker.run_until(signal));
    wait_until(
        Duration::from_secs(15),
        "five runs and an empty queue",
        || {
            let (q, runs) = (q.clone(), runs.clone());
            async move {
                runs.0.lock().unwrap().len() == 5 && q.depth().await.unwrap() == Depth::default()
            }
        },
    )
    .await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    let r = runs.0.lock().unwrap().clone();
    let gap = r[4] - r[3];
    assert!(
        gap >= Duration::from_millis(200) && gap < Duration::from_secs(2),
        "the first failure of a round waits the policy's first delay (200 ms): {gap:?}"
    );
}

/// Fails (handled, retryable) five times, then succeeds.
async fn fails_five_times(_n: u32, count: Data<Arc<AtomicU32>>) -> Result<(), BoxDynError> {
    if count.fetch_add(1, Ordering::SeqCst) < 5 {
        return Err("receiver answered 500".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handled_failures_do_not_count_as_crashes() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "acct-crash", |mut c| {
        c.max_deliveries = 2;
        c.with_retry(RetryPolicy {
            base: Duration::from_millis(20),
            ..policy()
        })
    })
    .await;
    q.enqueue(&1).await.unwrap();
    let count = Arc::new(AtomicU32::new(0));
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("acct")
        .backend(q.clone())
        .data(count.clone())
        .build(fails_five_times);
    let run = tokio::spawn(worker.run_until(signal));
    wait_until(Duration::from_secs(15), "the task to succeed", || {
        let (q, count) = (q.clone(), count.clone());
        async move { count.load(Ordering::SeqCst) == 6 && q.depth().await.unwrap() == Depth::default() }
    })
    .await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(
        q.depth().await.unwrap().dead,
        0,
        "never dead-lettered as a crash loop"
    );
}

async fn asks_for_an_hour(_n: u32, count: Data<Arc<AtomicU32>>) -> Result<(), BoxDynError> {
    if count.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(TaskError::retry_after(Duration::from_secs(3600))
            .because("429")
            .into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_is_capped_by_the_policy_max() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "acct-cap", |c| {
        c.with_retry(RetryPolicy {
            max: Duration::from_millis(300),
            ..policy()
        })
    })
    .await;
    q.enqueue(&1).await.unwrap();
    let count = Arc::new(AtomicU32::new(0));
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("acct")
        .backend(q.clone())
        .data(count.clone())
        .build(asks_for_an_hour);
    let run = tokio::spawn(worker.run_until(signal));
    wait_until(Duration::from_secs(10), "the second run", || {
        let count = count.clone();
        async move { count.load(Ordering::SeqCst) == 2 }
    })
    .await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}

#[derive(Default)]
struct Progress {
    started: AtomicBool,
    side_effect: AtomicBool,
    stopped_early: AtomicBool,
}

struct StoppedEarly(Arc<Progress>);

impl Drop for StoppedEarly {
    fn drop(&mut self) {
        if !self.0.side_effect.load(Ordering::SeqCst) {
            self.0.stopped_early.store(true, Ordering::SeqCst);
        }
    }
}

async fn long_step(_n: u32, p: Data<Arc<Progress>>) -> Result<(), BoxDynError> {
    let _guard = StoppedEarly((*p).clone());
    p.started.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    p.side_effect.store(true, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_stops_the_running_handler() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "acct-lost", |c| {
        c.with_lease(Duration::from_millis(900))
    })
    .await;
    let id = q.enqueue(&1).await.unwrap();
    let p = Arc::new(Progress::default());
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("acct")
        .backend(q.clone())
        .data(p.clone())
        .build(long_step);
    let run = tokio::spawn(worker.run_until(signal));
    wait_until(Duration::from_secs(10), "the handler to start", || {
        let p = p.clone();
        async move { p.started.load(Ordering::SeqCst) }
    })
    .await;
    // Another holder takes the task over: its lease is made to look expired, and a claim
    // elsewhere takes it with a new token. The running worker's renewal may extend the lease
    // between the two (an expired lease nobody took is still its holder's), so the takeover
    // is tried until it lands.
    let mut conn = common::admin(&url).await;
    let lease_key = format!("{}:{{acct-lost}}:lease", q.settings().prefix);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let taken = loop {
        let _: i64 = redis::cmd("ZADD")
            .arg(&lease_key)
            .arg("XX")
            .arg(0)
            .arg(&id)
            .query_async(&mut conn)
            .await
            .unwrap();
        let taken = q.claim(1).await.unwrap();
        if !taken.is_empty() || std::time::Instant::now() > deadline {
            break taken;
        }
    };
    assert_eq!(taken.len(), 1, "the other holder has it");
    wait_until(
        Duration::from_secs(5),
        "the first handler to be stopped",
        || {
            let p = p.clone();
            async move { p.stopped_early.load(Ordering::SeqCst) }
        },
    )
    .await;
    assert!(
        !p.side_effect.load(Ordering::SeqCst),
        "no side effect after the loss"
    );
    assert!(
        q.ack(&taken[0].0).await.unwrap(),
        "the new holder settles it"
    );
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(q.depth().await.unwrap(), Depth::default());
}
