//! [`Pipeline`]: what every task needs — the job store, the upstream client, storage, the
//! queues — and the few steps tasks share (schedule the next task, fail a job).

use std::sync::Arc;
use std::time::Duration;

use vidq_core::{
    JobId, JobRecord, JobState, JobStore, JobTask, Patch, Priority, TaskKind, Transitioned,
};
use vidq_goenhance::Client;
use vidq_queue::{Place, Pushed, RedisQueue, Reschedule};
use vidq_storage::Storage;

use crate::limits::Limits;
use crate::settings::WebhookSettings;

/// Shared by every task of a worker process. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Pipeline {
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
    limits: Limits,
    webhooks: WebhookSettings,
}

/// The queue handles tasks push follow-up work to.
#[derive(Clone)]
pub(crate) struct Queues {
    /// `submit` tasks.
    pub(crate) submit: RedisQueue<JobTask>,
    /// `poll` tasks.
    pub(crate) poll: RedisQueue<JobTask>,
    /// `transfer` tasks.
    pub(crate) transfer: RedisQueue<JobTask>,
    /// `notify` tasks.
    pub(crate) notify: RedisQueue<JobTask>,
}

/// Attempts each kind gets before its job fails with the last error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaxAttempts {
    /// `submit`.
    pub(crate) submit: u64,
    /// `poll`.
    pub(crate) poll: u64,
    /// `transfer`.
    pub(crate) transfer: u64,
}

/// The parts a [`Pipeline`] is made of.
pub(crate) struct PipelineParts {
    /// Job records.
    pub(crate) store: JobStore,
    /// The upstream API.
    pub(crate) upstream: Client,
    /// Where videos go.
    pub(crate) storage: Storage,
    /// Downloads of results (no overall timeout: a large video takes a while).
    pub(crate) download: reqwest::Client,
    /// Follow-up work.
    pub(crate) queues: Queues,
    /// Time between two polls of a job.
    pub(crate) poll_interval: Duration,
    /// Attempts per kind.
    pub(crate) max_attempts: MaxAttempts,
    /// Limits shared by all replicas.
    pub(crate) limits: Limits,
    /// Where and how terminal events are posted.
    pub(crate) webhooks: WebhookSettings,
}

impl Pipeline {
    /// Assembles a pipeline.
    #[must_use]
    pub(crate) fn new(parts: PipelineParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: parts.store,
                upstream: parts.upstream,
                storage: parts.storage,
                download: parts.download,
                queues: parts.queues,
                poll_interval: parts.poll_interval,
                max_attempts: parts.max_attempts,
                limits: parts.limits,
                webhooks: parts.webhooks,
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

    pub(crate) fn limits(&self) -> &Limits {
        &self.inner.limits
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

    /// The longest backoff of `kind`'s queue.
    pub(crate) fn retry_max(&self, kind: TaskKind) -> Duration {
        self.queue(kind).settings().retry.max
    }

    fn queue(&self, kind: TaskKind) -> &RedisQueue<JobTask> {
        match kind {
            TaskKind::Submit => &self.inner.queues.submit,
            TaskKind::Poll => &self.inner.queues.poll,
            TaskKind::Transfer => &self.inner.queues.transfer,
            TaskKind::Notify => &self.inner.queues.notify,
        }
    }

    /// Runs the current task again after `delay`: the queue puts the same task back, in the
    /// same atomic step as its ack, once the handler returns `Ok`. Records when it is expected
    /// so the reconciler can notice if it never runs.
    pub(crate) async fn again(
        &self,
        job: &JobId,
        delay: Duration,
        again: &Reschedule,
    ) -> anyhow::Result<()> {
        self.inner.store.touch_active(job, delay).await?;
        again.after(delay);
        Ok(())
    }

    /// Puts the current `submit` task back in its place in the fair order (its tenant's turn
    /// and its place among the tenant's jobs kept) and holds the whole submit queue for
    /// `delay`: a limit every submission shares (rate, concurrent-job cap, daily budget) said
    /// "not yet", so no other submission could go either. Records when it is expected.
    pub(crate) async fn hold_submissions(
        &self,
        job: &JobId,
        delay: Duration,
        again: &Reschedule,
    ) -> anyhow::Result<()> {
        self.inner.store.touch_active(job, delay).await?;
        again.hold_queue(delay);
        Ok(())
    }

    /// How long the submit queue stays held (a shared limit said "not yet" to every
    /// submission), by Redis's clock; `None` when it is not held.
    pub(crate) async fn submissions_held_for(&self) -> anyhow::Result<Option<Duration>> {
        Ok(self.inner.queues.submit.held_for().await?)
    }

    /// [`Pipeline::schedule`] for a job whose record is at hand: a `submit` task goes into its
    /// tenant's group with the job's priority.
    pub(crate) async fn schedule_job(
        &self,
        kind: TaskKind,
        job: &JobRecord,
        delay: Duration,
    ) -> anyhow::Result<Pushed> {
        if kind != TaskKind::Submit {
            return self.schedule(kind, &job.id, delay).await;
        }
        self.inner.store.touch_active(&job.id, delay).await?;
        let pushed = self
            .inner
            .queues
            .submit
            .enqueue_or_revive_in(
                &kind.task_id(&job.id),
                &JobTask::new(job.id),
                delay,
                submit_place(job),
            )
            .await?;
        Ok(pushed)
    }

    /// Enqueues the job's next task of `kind` to run after `delay`, and records when it is
    /// expected so the reconciler can notice if it never runs.
    pub(crate) async fn schedule(
        &self,
        kind: TaskKind,
        job: &JobId,
        delay: Duration,
    ) -> anyhow::Result<Pushed> {
        let queue = self.queue(kind);
        self.inner.store.touch_active(job, delay).await?;
        // One live task per job step: if this step is queued or running already, this push
        // changes nothing; if its task died, it goes back to the queue.
        let pushed = queue
            .enqueue_or_revive(&kind.task_id(job), &JobTask::new(*job), delay)
            .await?;
        if let Pushed::Exists(state) = pushed {
            tracing::debug!(task.kind = %kind, task.state = ?state, "the step is queued already");
        }
        Ok(pushed)
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
            self.release_slot(job).await;
            tracing::warn!(job.error = reason, "job failed");
            metrics::counter!("vidq_jobs_finished_total", "state" => "failed").increment(1);
            self.finished(job).await;
        }
        Ok(ended)
    }
}

impl Pipeline {
    /// The job left `processing`: it no longer counts against the upstream's concurrent job
    /// cap. A failure here only delays the slot's return until its lifetime ends.
    pub(crate) async fn release_slot(&self, job: &JobId) {
        if let Err(err) = self.inner.limits.release(job).await {
            tracing::warn!(error = %err, "could not release the job's upstream slot");
        }
        // A submission held back by the cap may go now: the next in the fair order goes at
        // once rather than when the hold would have ended.
        if self.inner.limits.caps_processing()
            && let Err(err) = self.inner.queues.submit.end_hold().await
        {
            tracing::debug!(error = %err, "could not end the submit queue's hold");
        }
    }
}

impl Pipeline {
    pub(crate) fn webhooks(&self) -> &WebhookSettings {
        &self.inner.webhooks
    }

    /// The job reached a terminal state: when it has a `callback_url`, enqueue the `notify`
    /// task that posts the event, then drop the job from the active index. Handled here: a
    /// failure is logged and counted, never returned (the job's end is already written), and
    /// leaves the job in the active index, where the reconciler finishes the follow-up.
    pub(crate) async fn finished(&self, job: &JobId) {
        let record = match self.inner.store.get(job).await {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(error = %err, "job ended, but reading it for its webhook failed");
                metrics::counter!("vidq_webhooks_total", "outcome" => "not_enqueued").increment(1);
                return;
            }
        };
        if record.request.callback_url().is_some()
            && let Err(err) = self
                .inner
                .queues
                .notify
                .enqueue_or_revive(
                    &TaskKind::Notify.task_id(job),
                    &JobTask::new(*job),
                    Duration::ZERO,
                )
                .await
        {
            // It stays in the active index: the reconciler enqueues the webhook later.
            tracing::warn!(error = %err, "job ended, but its webhook could not be enqueued yet");
            metrics::counter!("vidq_webhooks_total", "outcome" => "not_enqueued").increment(1);
            return;
        }
        if let Err(err) = self.inner.store.remove_active(job).await {
            tracing::warn!(error = %err, "job ended, but dropping it from the active index failed");
        }
    }
}

/// Group of jobs that have no owner in the fair order of submissions (no tenant name has `~`).
pub(crate) const OWNERLESS_GROUP: &str = "~";

/// Where a job's `submit` task waits: its owner's group, at its priority.
pub(crate) fn submit_place(job: &JobRecord) -> Place<'_> {
    let priority = match job.request.priority() {
        Priority::High => vidq_queue::Priority::High,
        Priority::Normal => vidq_queue::Priority::Normal,
        Priority::Low => vidq_queue::Priority::Low,
    };
    Place::new(job.owner.as_deref().unwrap_or(OWNERLESS_GROUP), priority)
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
