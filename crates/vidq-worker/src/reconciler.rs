//! The safety net: re-enqueues any unfinished job whose next task has not run for a while
//! (a lost push, a task dead-lettered by the queue), and queues the webhook of any ended job
//! whose worker died before it could. Bounded per round; safe on every replica,
//! since a round is taken by one replica at a time through a Redis lock, and a duplicate task
//! is harmless anyway (every transition is a compare-and-set).

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;
use vidq_core::{JobState, TaskKind, unix_ms_now};

use crate::pipeline::{Pipeline, millis};

/// How the reconciler runs.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// Time between rounds.
    pub interval: Duration,
    /// A job whose next task is this late is re-enqueued.
    pub stale_after: Duration,
    /// Most jobs looked at per round.
    pub batch: usize,
    /// Key of the lock that lets one replica run a round.
    pub lock_key: String,
}

/// Runs rounds until `stop` is cancelled.
pub(crate) async fn run(
    pipeline: Pipeline,
    mut conn: ConnectionManager,
    config: ReconcilerConfig,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match round(&pipeline, &mut conn, &config).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "reconciler re-enqueued stuck jobs"),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "reconciler round failed"),
        }
    }
}

/// One round: returns how many jobs were re-enqueued.
pub(crate) async fn round(
    pipeline: &Pipeline,
    conn: &mut ConnectionManager,
    config: &ReconcilerConfig,
) -> anyhow::Result<usize> {
    let lock_ms = millis(config.interval).max(1000);
    let taken: Option<String> = redis::cmd("SET")
        .arg(&config.lock_key)
        .arg("1")
        .arg("NX")
        .arg("PX")
        .arg(lock_ms)
        .query_async(conn)
        .await?;
    if taken.is_none() {
        return Ok(0); // another replica runs this round
    }
    let store = pipeline.store();
    let older_than = unix_ms_now().saturating_sub(millis(config.stale_after));
    let stale = store.stale_active(older_than, config.batch).await?;
    let mut repaired = 0;
    for (id, _) in stale {
        let Some(job) = store.get(&id).await? else {
            store.remove_active(&id).await?;
            continue;
        };
        let kind = match job.state {
            JobState::Queued | JobState::Submitting => TaskKind::Submit,
            JobState::Processing => TaskKind::Poll,
            JobState::Transferring => TaskKind::Transfer,
            _ => {
                // Ended, but whoever ended it did not get to queue its webhook.
                if job.request.callback_url().is_some() {
                    tracing::warn!(job.id = %id, job.state = %job.state, "enqueueing the webhook of an ended job");
                    metrics::counter!("vidq_reconciler_requeued_total", "kind" => TaskKind::Notify.queue_name())
                        .increment(1);
                    repaired += 1;
                }
                pipeline.finished(&id).await;
                continue;
            }
        };
        tracing::warn!(job.id = %id, job.state = %job.state, task.kind = %kind, "re-enqueueing a stuck job");
        metrics::counter!("vidq_reconciler_requeued_total", "kind" => kind.queue_name())
            .increment(1);
        pipeline.schedule(kind, &id, Duration::ZERO).await?;
        repaired += 1;
    }
    Ok(repaired)
}
