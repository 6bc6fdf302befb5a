//! vidq-queue's side of the queue scenarios: a queue of the bench's own, pushes, and one
//! apalis worker (in this process) draining it while the Redis counters are read around it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apalis::prelude::*;
use serde::Serialize;
use vidq_queue::{QueueConfig, RedisQueue};

use crate::ctx::{Ctx, unique};
use crate::redis_stats::{PerUnit, snapshot};

/// Key prefix of every queue the bench creates.
pub(crate) const PREFIX: &str = "vidq-bench";

/// What handlers report back: tasks done, when the last one finished, lateness samples.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) done: AtomicU64,
    pub(crate) last_ms: AtomicU64,
    pub(crate) early: AtomicU64,
    lateness_ms: Mutex<Vec<f64>>,
}

impl Tally {
    /// One task finished now; `due_ms` (if known) gives its lateness.
    pub(crate) fn record(&self, due_ms: Option<u64>) {
        let now = now_ms();
        if let Some(due) = due_ms {
            if now < due {
                self.early.fetch_add(1, Ordering::Relaxed);
            }
            self.lateness_ms
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(now as f64 - due as f64);
        }
        self.last_ms.fetch_max(now, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub(crate) fn lateness(&self) -> Vec<f64> {
        self.lateness_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh queue named after `what`; claims take up to 200 tasks per round trip.
pub(crate) async fn new_queue<T>(ctx: &Ctx, what: &str) -> anyhow::Result<RedisQueue<T>> {
    let mut config = QueueConfig::new(unique(what)).with_prefix(PREFIX);
    config.claim_batch = 200;
    Ok(RedisQueue::connect_with(&ctx.queue_settings(), config).await?)
}

/// Pushes `n` copies of `payload`, due now, 1,000 per round trip.
pub(crate) async fn push<T: Serialize + Clone>(
    q: &RedisQueue<T>,
    n: u64,
    payload: &T,
) -> anyhow::Result<()> {
    let batch = vec![payload.clone(); 1000];
    let mut pushed = 0;
    while pushed < n {
        let k = usize::try_from((n - pushed).min(1000))?;
        q.enqueue_batch(&batch[..k]).await?;
        pushed += k as u64;
    }
    Ok(())
}

/// The figures of one drain.
pub(crate) struct Drain {
    pub(crate) tasks_per_s: f64,
    pub(crate) cost: PerUnit,
    pub(crate) round_trips: f64,
}

async fn noop(_task: String, tally: Data<Arc<Tally>>) -> Result<(), BoxDynError> {
    tally.record(None);
    Ok(())
}

/// A stop signal for `Worker::run_until`.
pub(crate) fn stop_signal() -> (
    tokio::sync::oneshot::Sender<()>,
    impl Future<Output = Result<(), std::io::Error>> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
        Ok(())
    })
}

/// Waits until every task handed to `q` is settled: nothing due now and nothing leased.
pub(crate) async fn settled<T>(q: &RedisQueue<T>, timeout: Duration) -> anyhow::Result<()> {
    crate::wait::until(
        "the queue to be settled",
        timeout,
        Duration::from_millis(5),
        || async {
            let d = q.depth().await?;
            Ok((d.due == 0 && d.leased == 0).then_some(()))
        },
    )
    .await
}

/// Drains the `n` no-op `String` tasks waiting in `q` with one worker of `concurrency`.
pub(crate) async fn drain(
    ctx: &Ctx,
    q: &RedisQueue<String>,
    n: u64,
    concurrency: usize,
) -> anyhow::Result<Drain> {
    let mut admin = ctx.redis_for_queue(PREFIX, &q.settings().queue).await?;
    let tally = Arc::new(Tally::default());
    let trips0 = q.round_trips();
    let before = snapshot(&mut admin).await?;
    let (stop, until) = stop_signal();
    let worker = WorkerBuilder::new(unique("bench-drain"))
        .backend(q.clone())
        .data(tally.clone())
        .concurrency(concurrency)
        .build(noop);
    let start = Instant::now();
    let run = tokio::spawn(worker.run_until(until));
    crate::wait::until(
        "every task to run",
        Duration::from_secs(600),
        Duration::from_millis(1),
        || async { Ok((tally.done() >= n).then_some(())) },
    )
    .await?;
    // Acks are awaited before a task completes; wait for the last ones to land.
    settled(q, Duration::from_secs(30)).await?;
    let secs = start.elapsed().as_secs_f64();
    let after = snapshot(&mut admin).await?;
    let trips = q.round_trips() - trips0;
    let _ = stop.send(());
    run.await??;
    Ok(Drain {
        tasks_per_s: n as f64 / secs,
        cost: after.per(&before, n),
        round_trips: trips as f64 / n as f64,
    })
}

/// Pushes `n` no-op tasks to a fresh queue and drains them.
pub(crate) async fn push_and_drain(ctx: &Ctx, n: u64, concurrency: usize) -> anyhow::Result<Drain> {
    let q = new_queue::<String>(ctx, "drain").await?;
    push(&q, n, &String::new()).await?;
    drain(ctx, &q, n, concurrency).await
}
