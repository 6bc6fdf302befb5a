//! The safety net: re-enqueues any unfinished job whose next task has not run for a while
//! (a lost push, a task dead-lettered by the queue), and queues the webhook of any ended job
//! whose worker died before it could. Bounded per round; safe on every replica,
//! since a round is taken by one replica at a time through a Redis lock, and a duplicate task
//! is harmless anyway (every transition is a compare-and-set). Each round also sweeps the
//! `jobs:all` listing index of ids whose record expired ([`vidq_core::JobStore::prune_index`]).
//!
//! "A while" is measured by Redis's clock (the store compares with Redis `TIME`), so a replica
//! whose clock is off finds exactly the jobs the others would.
//!
//! A record that does not decode is skipped (and pushed back by `stale_after`, so it cannot
//! fill every round's batch), counted in `vidq_reconciler_undecodable_total` and logged once
//! per record by this process: it needs an operator, not a retry every round.

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vidq_core::{JobId, JobState, StoreError, TaskKind};
use vidq_queue::Pushed;
use vidq_redis::Conn;

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
    mut conn: Conn,
    config: ReconcilerConfig,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut undecodable = Undecodable::default();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match round(&pipeline, &mut conn, &config, &mut undecodable).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "reconciler re-enqueued stuck jobs"),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "reconciler round failed"),
        }
    }
}

/// Records met that do not decode, each reported once by this process.
#[derive(Debug, Default)]
pub(crate) struct Undecodable {
    reported: HashSet<JobId>,
}

impl Undecodable {
    /// Most ids remembered; past it the set starts afresh (a record may then be reported again).
    const MAX: usize = 10_000;

    /// Counts and logs `id` unless it was reported already.
    fn report(&mut self, id: &JobId, error: &StoreError) {
        if self.reported.len() >= Self::MAX {
            self.reported.clear();
        }
        if self.reported.insert(*id) {
            metrics::counter!("vidq_reconciler_undecodable_total").increment(1);
            tracing::error!(job.id = %id, error = %error, "reconciler skips a job record it cannot decode");
        }
    }
}

/// One round: returns how many jobs were re-enqueued.
pub(crate) async fn round(
    pipeline: &Pipeline,
    conn: &mut Conn,
    config: &ReconcilerConfig,
    undecodable: &mut Undecodable,
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
    let stale = store.stale_active(config.stale_after, config.batch).await?;
    let mut repaired = 0;
    for (id, _) in stale {
        let job = match store.get(&id).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                store.remove_active(&id).await?;
                continue;
            }
            Err(error) if cannot_decode(&error) => {
                undecodable.report(&id, &error);
                // Looked at again after `stale_after`, behind the jobs it would otherwise crowd.
                store.touch_active(&id, config.stale_after).await?;
                continue;
            }
            Err(error) => return Err(error.into()),
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
        // The push is a no-op when the step's task is queued or running (a backlog, a slow
        // step): only a task that was really missing (or dead) counts as a repair.
        match pipeline.schedule_job(kind, &job, Duration::ZERO).await? {
            Pushed::Exists(_) => {
                tracing::debug!(job.id = %id, task.kind = %kind, "late, but its task is queued");
                // A submission waiting on a held submit queue (the daily budget until Redis's
                // next day, the concurrent-job cap) is expected when the hold ends, not now.
                if kind == TaskKind::Submit
                    && let Some(left) = pipeline.submissions_held_for().await?
                {
                    store.touch_active(&id, left).await?;
                }
            }
            Pushed::Created | Pushed::Revived => {
                tracing::warn!(job.id = %id, job.state = %job.state, task.kind = %kind, "re-enqueued a stuck job");
                metrics::counter!("vidq_reconciler_requeued_total", "kind" => kind.queue_name())
                    .increment(1);
                repaired += 1;
            }
        }
    }
    let pruned = store.prune_index(config.batch).await?;
    if pruned > 0 {
        tracing::info!(
            index.pruned = pruned,
            "dropped expired jobs from the listing index"
        );
    }
    Ok(repaired)
}

/// Whether `error` says the job's stored data is unusable (rather than Redis unreachable).
fn cannot_decode(error: &StoreError) -> bool {
    match error {
        StoreError::Corrupt { .. } => true,
        // A job key holding another type than a hash.
        StoreError::Redis(err) => err.code() == Some("WRONGTYPE"),
        _ => false,
    }
}
