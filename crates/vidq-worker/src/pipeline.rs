//! [`Pipeline`]: what every task needs — the job store, the upstream client, storage, the
//! queues — and the few steps tasks share (schedule the next task, fail a job).

use std::sync::Arc;
use std::time::Duration;

use vidq_core::{JobId, JobState, JobStore, JobTask, Patch, TaskKind, Transitioned, unix_ms_now};
use vidq_goenhance::Client;
use vidq_queue::RedisQueue;
use vidq_storage::Storage;

/// Shared by every task of a worker process. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    store: JobStore,
    upstream: Client,
    storage: Storage,
    download: reqwest::Client,
    queues: Queues,
    poll_interval: Duration,
    max_attempts: MaxAttempts,
}

/// The queue handles tasks push follow-up work to.
#[derive(Clone)]
pub struct Queues {
    /// `submit` tasks.
    pub submit: RedisQueue<JobTask>,
    /// `poll` tasks.
    pub poll: RedisQueue<JobTask>,
    /// `transfer` tasks.
    pub transfer: RedisQueue<JobTask>,
}

/// Attempts each kind gets before its job fails with the last error.
#[derive(Debug, Clone, Copy)]
pub struct MaxAttempts {
    /// `submit`.
    pub submit: u64,
    /// `poll`.
    pub poll: u64,
    /// `transfer`.
    pub transfer: u64,
}

/// The parts a [`Pipeline`] is made of.
pub struct PipelineParts {
    /// Job records.
    pub store: JobStore,
    /// The upstream API.
    pub upstream: Client,
    /// Where videos go.
    pub storage: Storage,
    /// Downloads of results (no overall timeout: a large video takes a while).
    pub download: reqwest::Client,
    /// Follow-up work.
    pub queues: Queues,
    /// Time between two polls of a job.
    pub poll_interval: Duration,
    /// Attempts per kind.
    pub max_attempts: MaxAttempts,
}

impl Pipeline {
    /// Assembles a pipeline.
    #[must_use]
    pub fn new(parts: PipelineParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: parts.store,
                upstream: parts.upstream,
                storage: parts.storage,
                download: parts.download,
                queues: parts.queues,
                poll_interval: parts.poll_interval,
                max_attempts: parts.max_attempts,
            }),
        }
    }

    pub(crate) fn store(&self) -> &JobStore {
        &self.inner.store
    }

    pub(crate) fn upstream(&self) -> &Client {
        &self.inner.upstream
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    pub(crate) fn download(&self) -> &reqwest::Client {
        &self.inner.download
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        self.inner.poll_interval
    }

    /// Whether `attempt` (1-based) is the last one a task of `kind` gets.
    pub(crate) fn is_last_attempt(&self, kind: TaskKind, attempt: usize) -> bool {
        let max = match kind {
            TaskKind::Submit => self.inner.max_attempts.submit,
            TaskKind::Poll => self.inner.max_attempts.poll,
            TaskKind::Transfer | TaskKind::Notify => self.inner.max_attempts.transfer,
        };
        attempt as u64 >= max
    }

    /// Enqueues the job's next task of `kind` to run after `delay`, and records when it is
    /// expected so the reconciler can notice if it never runs.
    pub(crate) async fn schedule(
        &self,
        kind: TaskKind,
        job: &JobId,
        delay: Duration,
    ) -> anyhow::Result<()> {
        let queue = match kind {
            TaskKind::Submit => &self.inner.queues.submit,
            TaskKind::Poll => &self.inner.queues.poll,
            TaskKind::Transfer | TaskKind::Notify => &self.inner.queues.transfer,
        };
        let expect_by = unix_ms_now().saturating_add(millis(delay));
        self.inner.store.touch_active(job, expect_by).await?;
        let task = JobTask::new(*job);
        if delay.is_zero() {
            queue.enqueue(&task).await?;
        } else {
            queue.enqueue_after(&task, delay).await?;
        }
        Ok(())
    }

    /// Ends the job `failed` with `reason`, if it is still in `from`. Returns whether this
    /// call ended it.
    pub(crate) async fn fail(
        &self,
        job: &JobId,
        from: JobState,
        reason: &str,
    ) -> anyhow::Result<bool> {
        let outcome = self
            .inner
            .store
            .transition(job, &[from], JobState::Failed, Patch::new().error(reason))
            .await?;
        let ended = matches!(outcome, Transitioned::Applied { .. });
        if ended {
            tracing::warn!(job.error = reason, "job failed");
            metrics::counter!("vidq_jobs_finished_total", "state" => "failed").increment(1);
        }
        Ok(ended)
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
