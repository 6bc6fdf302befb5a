//! [`Producer`]: stores a job and enqueues its first task.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use vidq_core::{
    JobId, JobRecord, JobState, JobStore, JobTask, Patch, StoreError, TaskKind, TransformRequest,
    Transitioned,
};
use vidq_queue::{DeadTask, QueueConfig, QueueError, RedisQueue};

use crate::ProducerSettings;

/// What can go wrong while enqueueing or reading jobs.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// Redis could not be reached or refused.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The job store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A queue operation failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// No such job (it never existed, or its record expired).
    #[error("no job {0}")]
    NotFound(JobId),
}

/// What [`Producer::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was canceled; queued work stops. An upstream job already running is left to
    /// end and its result is discarded.
    Canceled,
    /// The job had already finished in this state.
    AlreadyFinished(JobState),
}

/// Enqueues jobs and reads them back. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Producer {
    store: JobStore,
    queues: [RedisQueue<JobTask>; 3],
    deadline: Duration,
}

const KINDS: [TaskKind; 3] = [TaskKind::Submit, TaskKind::Poll, TaskKind::Transfer];

impl Producer {
    /// Connects to the Redis of `settings`.
    pub async fn connect(settings: &ProducerSettings) -> Result<Self, ProducerError> {
        let client = redis::Client::open(settings.redis.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        let store = JobStore::new(conn.clone()).with_prefix(settings.redis.prefix.clone())?;
        let queue = |kind: TaskKind| {
            let config =
                QueueConfig::new(kind.queue_name()).with_prefix(settings.redis.prefix.clone());
            RedisQueue::from_parts(client.clone(), conn.clone(), config)
        };
        Ok(Self {
            store,
            queues: [
                queue(TaskKind::Submit)?,
                queue(TaskKind::Poll)?,
                queue(TaskKind::Transfer)?,
            ],
            deadline: settings.jobs.deadline,
        })
    }

    /// The job store underneath (for listing and watching jobs).
    #[must_use]
    pub fn store(&self) -> &JobStore {
        &self.store
    }

    /// Stores a new `queued` job for `request` and enqueues its `submit` task.
    ///
    /// Once this returns `Ok` the job is durable: if the push of its first task failed after
    /// the record was written, the workers' reconciler enqueues it later.
    pub async fn enqueue(&self, request: TransformRequest) -> Result<JobId, ProducerError> {
        let record = JobRecord::new(request, self.deadline);
        let id = record.id;
        self.store.create(&record).await?;
        if let Err(err) = self
            .queue(TaskKind::Submit)
            .enqueue(&JobTask::new(id))
            .await
        {
            tracing::warn!(job.id = %id, error = %err, "job stored, but its first task could not be pushed; the reconciler will enqueue it");
        }
        Ok(id)
    }

    /// The job's record, or `None` when there is no such job.
    pub async fn status(&self, id: &JobId) -> Result<Option<JobRecord>, ProducerError> {
        Ok(self.store.get(id).await?)
    }

    /// Cancels a job that has not finished.
    pub async fn cancel(&self, id: &JobId) -> Result<CancelOutcome, ProducerError> {
        let unfinished = [
            JobState::Queued,
            JobState::Submitting,
            JobState::Processing,
            JobState::Transferring,
        ];
        let outcome = self
            .store
            .transition(
                id,
                &unfinished,
                JobState::Canceled,
                Patch::new().note("canceled"),
            )
            .await?;
        match outcome {
            Transitioned::Applied { .. } => Ok(CancelOutcome::Canceled),
            Transitioned::Skipped { current } => Ok(CancelOutcome::AlreadyFinished(current)),
        }
    }

    /// Dead tasks of `kind`'s queue, newest first.
    pub async fn dead_tasks(
        &self,
        kind: TaskKind,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<DeadTask>, ProducerError> {
        Ok(self.queue(kind).dead_tasks(offset, limit).await?)
    }

    /// Puts one dead task of `kind` back in its queue; false when there is no such task.
    pub async fn retry_dead(&self, kind: TaskKind, task_id: &str) -> Result<bool, ProducerError> {
        Ok(self.queue(kind).retry_dead(task_id).await?)
    }

    /// Puts every dead task of `kind` back in its queue; returns how many.
    pub async fn retry_all_dead(&self, kind: TaskKind) -> Result<u64, ProducerError> {
        Ok(self.queue(kind).retry_all_dead().await?)
    }

    /// The task kinds whose queues the operator commands cover.
    #[must_use]
    pub fn kinds() -> &'static [TaskKind] {
        &KINDS
    }

    fn queue(&self, kind: TaskKind) -> &RedisQueue<JobTask> {
        match kind {
            TaskKind::Submit => &self.queues[0],
            TaskKind::Poll => &self.queues[1],
            TaskKind::Transfer | TaskKind::Notify => &self.queues[2],
        }
    }
}
