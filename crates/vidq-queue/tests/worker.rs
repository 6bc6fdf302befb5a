//! A worker drains tasks, runs scheduled ones on time, and hands back unstarted leases on stop.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use common::{keys_under, queue, redis_url, stop_signal, wait_until};
use vidq_queue::{Delivery, Depth, RedisQueue};

#[derive(Default)]
struct Seen {
    runs: Mutex<HashMap<u32, u32>>,
    at: Mutex<Vec<(u32, Instant)>>,
}

async fn record(n: u32, seen: Data<Arc<Seen>>) -> Result<(), BoxDynError> {
    *seen.runs.lock().unwrap().entry(n).or_default() += 1;
    seen.at.lock().unwrap().push((n, Instant::now()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_pushed_tasks_exactly_once_and_leaves_no_key() {
    let url = redis_url();
    let mut q: RedisQueue<u32> = queue(&url, "drain", |c| c).await;
    q.enqueue_batch(&(0..500).collect::<Vec<_>>())
        .await
        .unwrap();
    q.push_bulk((500..1000).collect()).await.unwrap(); // apalis TaskSink path
    q.push(1000).await.unwrap();
    let seen = Arc::new(Seen::default());
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("drain")
        .backend(q.clone())
        .data(seen.clone())
        .concurrency(20)
        .build(record);
    let run = tokio::spawn(worker.run_until(signal));
    wait_until(Duration::from_secs(30), "all tasks run", || {
        let n = seen.runs.lock().unwrap().len();
        async move { n == 1001 }
    })
    .await;
    wait_until(Duration::from_secs(10), "queue empty", || {
        let q = q.clone();
        async move { q.depth().await.unwrap() == Depth::default() }
    })
    .await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert!(seen.runs.lock().unwrap().values().all(|&c| c == 1));
    let prefix = q.settings().prefix.clone();
    assert_eq!(keys_under(&url, &prefix).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_scheduled_5s_ahead_runs_between_5_0_and_5_5_s_later() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "sched", |c| c).await;
    let seen = Arc::new(Seen::default());
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("sched")
        .backend(q.clone())
        .data(seen.clone())
        .build(record);
    let run = tokio::spawn(worker.run_until(signal));
    // Let the worker go idle first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pushed = Instant::now();
    q.enqueue_after(&7, Duration::from_secs(5)).await.unwrap();
    wait_until(Duration::from_secs(10), "scheduled task ran", || {
        let n = seen.at.lock().unwrap().len();
        async move { n == 1 }
    })
    .await;
    let ran = seen.at.lock().unwrap()[0].1;
    let elapsed = ran - pushed;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed <= Duration::from_millis(5500),
        "ran {elapsed:?} after push"
    );
}

async fn slow(_n: u32, started: Data<Arc<Mutex<u32>>>) -> Result<(), BoxDynError> {
    *started.lock().unwrap() += 1;
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_hands_back_unstarted_tasks_at_once() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "handback", |mut c| {
        c.claim_batch = 10;
        c
    })
    .await;
    q.enqueue_batch(&(0..10).collect::<Vec<_>>()).await.unwrap();
    let started = Arc::new(Mutex::new(0u32));
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("handback")
        .backend(q.clone())
        .data(started.clone())
        .concurrency(1)
        .build(slow);
    let run = tokio::spawn(worker.run_until(signal));
    wait_until(Duration::from_secs(10), "first task started", || {
        let n = *started.lock().unwrap();
        async move { n >= 1 }
    })
    .await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    let ran = *started.lock().unwrap();
    let depth = q.depth().await.unwrap();
    assert_eq!(depth.leased, 0, "no lease left behind: {depth:?}");
    assert_eq!(u64::from(ran) + depth.due, 10, "{depth:?}");
    // The handed-back tasks were neither failures nor crashes: still their first attempt.
    let claimed = q.claim(10).await.unwrap();
    assert!(!claimed.is_empty());
    assert!(
        claimed
            .iter()
            .all(|(d, _): &(Delivery, u32)| d.attempt == 1)
    );
    for (d, _) in &claimed {
        assert!(q.ack(d).await.unwrap());
    }
}

async fn noop(_n: u32) -> Result<(), BoxDynError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_thousand_tasks_due_at_once_drain_without_error() {
    let url = redis_url();
    let q: RedisQueue<u32> = queue(&url, "100k", |mut c| {
        c.claim_batch = 200;
        c
    })
    .await;
    let all: Vec<u32> = (0..100_000).collect();
    q.enqueue_batch(&all).await.unwrap();
    assert_eq!(q.depth().await.unwrap().due, 100_000);
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("100k")
        .backend(q.clone())
        .concurrency(100)
        .build(noop);
    let run = tokio::spawn(worker.run_until(signal));
    wait_until(Duration::from_secs(120), "100k drained", || {
        let q = q.clone();
        async move { q.depth().await.unwrap() == Depth::default() }
    })
    .await;
    assert!(!run.is_finished(), "the worker must still be running");
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(
        keys_under(&url, &q.settings().prefix).await,
        Vec::<String>::new()
    );
}
