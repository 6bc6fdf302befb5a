//! [`Producer`]: stores a job and enqueues its first task.

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use vidq_core::{
    CreateQuota, IdempotencyOutcome, JobId, JobRecord, JobState, JobStore, JobTask, Patch,
    StoreError, TaskKind, TransformRequest, Transitioned,
};
use vidq_queue::{DeadTask, Depth, Place, Pushed, QueueConfig, QueueError, RedisQueue};
use vidq_redis::{Conn, Redis};

use crate::ProducerSettings;
use crate::reuse;

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
    #[error("job {0} is {1}: only failed jobs can be retried")]
    NotRetryable(JobId, JobState),
    #[error("no job {0}")]
    NotFound(JobId),
    /// The idempotency key is already held by a request with another body.
    #[error("the idempotency key was already used with another request body")]
    IdempotencyConflict,
    /// The idempotency key is held by a request whose job is still being created.
    #[error("a request with this idempotency key is still being processed")]
    IdempotencyPending,
}

/// How [`Producer::enqueue_with`] should treat a request beyond storing it.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// The caller's `Idempotency-Key`: the same key and body return the same job.
    pub idempotency_key: Option<String>,
    /// A stable hash of the request body, compared under the same idempotency key; by
    /// default the sha256 of the validated request's JSON.
    pub body_hash: Option<String>,
    /// How long the idempotency key holds (default 24 h).
    pub idempotency_ttl: Option<Duration>,
    /// Reuse identical work seen within this long (`None`: never reuse). A request with
    /// `"reuse": false` never reuses, nor is it offered for reuse.
    pub reuse_within: Option<Duration>,
    /// The tenant owning the new job (the HTTP API passes the token's name). Idempotency
    /// keys and reuse are scoped by it: another owner's same key is another key.
    pub owner: Option<String>,
    /// Let reuse answer with another owner's identical work: only a succeeded job's stored
    /// video, copied into a new job of this owner's; another owner's job in flight is never
    /// followed (default false: reuse stays within the owner).
    pub reuse_across_owners: bool,
    /// Limits checked in the create's own atomic step (the owner's quotas, the backlog cap):
    /// a job over one is not written, and the error is [`StoreError::QuotaExceeded`].
    /// Followed and replayed jobs are not creates and pass.
    pub quota: CreateQuota,
    /// The trace a new job joins (the API request's span): each of its tasks is a span of it.
    pub trace: Option<vidq_core::TraceContext>,
}

/// What [`Producer::enqueue_with`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// A new job was stored and its first task enqueued.
    Created,
    /// A new job was stored `succeeded` at once with the video of `source` (no upstream call).
    Reused {
        /// The succeeded job whose video was reused.
        source: JobId,
    },
    /// An identical job still in flight was returned instead of a new one: follow it.
    Followed,
    /// The idempotency key had already been used with the same body: its job is returned.
    Replayed,
}

/// The job [`Producer::enqueue_with`] returns, and how it came to be.
#[derive(Debug, Clone)]
pub struct Enqueued {
    /// The job, as stored.
    pub job: JobRecord,
    /// New, reused, followed or replayed.
    pub outcome: EnqueueOutcome,
}

enum Plan {
    Create(JobRecord),
    Reuse(JobRecord, JobId),
    Follow(JobRecord),
}

const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

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
    layer: Redis,
    conn: Conn,
    store: JobStore,
    queues: [RedisQueue<JobTask>; 4],
    deadline: Duration,
}

const KINDS: [TaskKind; 4] = TaskKind::ALL;

impl Producer {
    /// Connects to the Redis of `settings`.
    pub async fn connect(settings: &ProducerSettings) -> Result<Self, ProducerError> {
        let layer = Redis::connect(&settings.redis).await.map_err(|e| match e {
            vidq_redis::RedisError::Redis { source, .. } => ProducerError::Redis(source),
            other => ProducerError::Queue(QueueError::Config(other.to_string())),
        })?;
        let conn = layer.conn();
        let store = JobStore::on_redis(&layer).with_prefix(settings.redis.prefix.clone())?;
        let queue = |kind: TaskKind| {
            let config =
                QueueConfig::new(kind.queue_name()).with_prefix(settings.redis.prefix.clone());
            RedisQueue::from_redis(&layer, config)
        };
        Ok(Self {
            layer: layer.clone(),
            conn: conn.clone(),
            store,
            queues: [
                queue(TaskKind::Submit)?,
                queue(TaskKind::Poll)?,
                queue(TaskKind::Transfer)?,
                queue(TaskKind::Notify)?,
            ],
            deadline: settings.jobs.deadline,
        })
    }

    /// The Redis connection underneath (shared with the store and the queues).
    pub(crate) fn redis(&self) -> &Conn {
        &self.conn
    }

    /// The process's Redis connection layer (for subscriptions and WAIT).
    #[must_use]
    pub fn redis_layer(&self) -> &Redis {
        &self.layer
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
        self.store_and_push(&record).await?;
        Ok(record.id)
    }

    /// Stores a job for `request` like [`Self::enqueue`], honouring an idempotency key and
    /// reusing identical work (see [`EnqueueOptions`]).
    ///
    /// Reuse: when the upstream arguments match a job remembered within `reuse_within`, a
    /// succeeded source gives a new job `succeeded` from birth with the same video (its
    /// history notes `reused <source id>`; its `callback_url`, if any, is notified like any
    /// finished job's), and a source still in flight is returned itself, unless this request
    /// asks for a webhook to another `callback_url` (following could not honour it, so a job
    /// of its own is made); failed, canceled or expired sources are not reused. Of identical
    /// requests arriving at the same instant, one creates the job and the others follow it.
    pub async fn enqueue_with(
        &self,
        request: TransformRequest,
        options: EnqueueOptions,
    ) -> Result<Enqueued, ProducerError> {
        let owner = options.owner.as_deref();
        if owner.is_some_and(|o| !crate::settings::valid_tenant_name(o)) {
            return Err(StoreError::InvalidArgument {
                name: "owner",
                reason: "must be 1 to 64 ASCII letters, digits, `-`, `_` or `.`".into(),
            }
            .into());
        }
        let reuse_scope = if options.reuse_across_owners {
            None
        } else {
            owner
        };
        let reuse_key = options
            .reuse_within
            .filter(|_| request.reuse())
            .map(|ttl| (reuse::key(self.store.prefix(), reuse_scope, &request), ttl));
        let body_hash = match options.body_hash {
            Some(hash) => hash,
            None => request_hash(&request)?,
        };
        let mut plan = match &reuse_key {
            Some((key, ttl)) => self.reuse_plan(key, *ttl, request, owner).await?,
            None => Plan::Create(self.new_record(request, owner)),
        };
        if let Plan::Create(job) | Plan::Reuse(job, _) = &mut plan {
            job.trace.clone_from(&options.trace);
        }
        // A job claimed for reuse but not created must not stay offered.
        let withdraw = async |job: &JobRecord| {
            if let Some((key, _)) = &reuse_key {
                reuse::release(&self.conn, key, &job.id).await;
            }
        };
        // Nor may its idempotency key keep pointing at it: the caller's retry must create it.
        let unclaim = async |job: &JobRecord| {
            if let Some(key) = &options.idempotency_key
                && let Err(err) = self
                    .store
                    .release_tenant_idempotency_key(owner, key, &job.id)
                    .await
            {
                tracing::warn!(error = %err, "could not free the idempotency key of a job not created");
            }
        };
        if let Some(key) = &options.idempotency_key {
            let id = match &plan {
                Plan::Create(job) | Plan::Reuse(job, _) | Plan::Follow(job) => job.id,
            };
            let ttl = options.idempotency_ttl.unwrap_or(DEFAULT_IDEMPOTENCY_TTL);
            let outcome = self
                .store
                .put_tenant_idempotency_key(owner, key, &body_hash, &id, ttl)
                .await;
            let fresh = matches!(outcome, Ok(IdempotencyOutcome::New));
            if !fresh && let Plan::Create(job) = &plan {
                withdraw(job).await;
            }
            match outcome? {
                IdempotencyOutcome::New => {}
                IdempotencyOutcome::Existing {
                    same_body: false, ..
                } => return Err(ProducerError::IdempotencyConflict),
                IdempotencyOutcome::Existing { id, .. } => return self.replay(&id).await,
            }
        }
        match plan {
            Plan::Follow(job) => Ok(Enqueued {
                job,
                outcome: EnqueueOutcome::Followed,
            }),
            Plan::Reuse(job, source) => {
                let created = self
                    .store
                    .create_within(std::slice::from_ref(&job), &options.quota)
                    .await
                    .map_err(ProducerError::from)
                    .and_then(first_outcome);
                if let Err(err) = created {
                    withdraw(&job).await;
                    unclaim(&job).await;
                    return Err(err);
                }
                if job.request.callback_url().is_some()
                    && let Err(err) = self.push_step(TaskKind::Notify, &job.id).await
                {
                    tracing::warn!(job.id = %job.id, error = %err, "reused job stored, but its webhook could not be enqueued");
                }
                Ok(Enqueued {
                    job,
                    outcome: EnqueueOutcome::Reused { source },
                })
            }
            Plan::Create(job) => {
                let created = self
                    .create_and_push(std::slice::from_ref(&job), &options.quota)
                    .await
                    .and_then(first_outcome);
                if let Err(err) = created {
                    withdraw(&job).await;
                    unclaim(&job).await;
                    return Err(err);
                }
                Ok(Enqueued {
                    job,
                    outcome: EnqueueOutcome::Created,
                })
            }
        }
    }

    /// Answers PING: whether Redis is reachable.
    pub async fn ping(&self) -> Result<(), ProducerError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// What to do about `request` given the job its reuse key points at. A new job is
    /// offered for reuse (the key claimed) before it is stored, only if the key still points
    /// where this call saw it: two identical requests at the same instant make one job, and
    /// the second follows it.
    async fn reuse_plan(
        &self,
        key: &str,
        ttl: Duration,
        request: TransformRequest,
        owner: Option<&str>,
    ) -> Result<Plan, ProducerError> {
        for _ in 0..3 {
            let seen = reuse::lookup(&self.conn, key).await?;
            let source = match &seen {
                Some(id) => self.settled_record(id).await?,
                None => None,
            };
            if let Some(plan) = self.reuse_of(source, &request, owner) {
                return Ok(plan);
            }
            let job = self.new_record(request.clone(), owner);
            if reuse::claim(&self.conn, key, seen.as_ref(), &job.id, ttl).await? {
                return Ok(Plan::Create(job));
            }
            // Another identical request claimed the key meanwhile: look again.
        }
        tracing::warn!("the reuse key kept changing; a job is made without offering it for reuse");
        Ok(Plan::Create(self.new_record(request, owner)))
    }

    /// A new `queued` job of `owner`'s.
    fn new_record(&self, request: TransformRequest, owner: Option<&str>) -> JobRecord {
        let mut record = JobRecord::new(request, self.deadline);
        record.owner = owner.map(str::to_owned);
        record
    }

    /// The job `id` names, waiting briefly for a record its creator may still be writing
    /// (it claims the reuse key first); `None` if it never appears.
    async fn settled_record(&self, id: &JobId) -> Result<Option<JobRecord>, ProducerError> {
        for _ in 0..20 {
            if let Some(job) = self.store.get(id).await? {
                return Ok(Some(job));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(None)
    }

    /// Reuse or follow `source` for `request` of `owner`'s, when it can be. Another owner's
    /// source (met only when reuse spans owners) is reused by copying its stored video into a
    /// new job of `owner`'s, never followed.
    fn reuse_of(
        &self,
        source: Option<JobRecord>,
        request: &TransformRequest,
        owner: Option<&str>,
    ) -> Option<Plan> {
        Some(match source? {
            JobRecord {
                id,
                state: JobState::Succeeded,
                output: Some(output),
                ..
            } => {
                let mut job = reuse::reused_record(request.clone(), self.deadline, &id, output);
                job.owner = owner.map(str::to_owned);
                Plan::Reuse(job, id)
            }
            // Following hands back the source job, whose webhook goes to its own callback: a
            // caller that asked for another webhook gets a job of its own instead.
            source
                if !source.state.is_terminal()
                    && source.owner.as_deref() == owner
                    && request
                        .callback_url()
                        .is_none_or(|url| source.request.callback_url() == Some(url)) =>
            {
                Plan::Follow(source)
            }
            _ => return None,
        })
    }

    /// The job an idempotency key already points at; its creator may still be writing it.
    async fn replay(&self, id: &JobId) -> Result<Enqueued, ProducerError> {
        for _ in 0..20 {
            if let Some(job) = self.store.get(id).await? {
                return Ok(Enqueued {
                    job,
                    outcome: EnqueueOutcome::Replayed,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ProducerError::IdempotencyPending)
    }

    /// Queues the job's step of `kind`, due now, under its step id: a no-op when that step is
    /// queued or running already, a revival when its task died.
    async fn push_step(&self, kind: TaskKind, id: &JobId) -> Result<Pushed, QueueError> {
        self.queue(kind)
            .enqueue_or_revive(&kind.task_id(id), &JobTask::new(*id), Duration::ZERO)
            .await
    }

    /// Queues the job's `submit` step, due now, in its owner's group of the fair order of
    /// submissions, at the job's priority (like [`Self::push_step`] otherwise).
    async fn push_submit(&self, job: &JobRecord) -> Result<Pushed, QueueError> {
        let kind = TaskKind::Submit;
        self.queue(kind)
            .enqueue_or_revive_in(
                &kind.task_id(&job.id),
                &JobTask::new(job.id),
                Duration::ZERO,
                submit_place(job),
            )
            .await
    }

    /// Waits (with `redis.min_replicas_acked`) until replicas hold the `created` jobs. When
    /// the WAIT itself fails — the primary that took them may have died before its replicas
    /// had them — each job is read again from whoever is primary now and created again if the
    /// failover lost it (same record, same id), then waited for again, for up to 30 s; past
    /// that the caller gets the store's error (the API answers 503: retry with the same
    /// `Idempotency-Key`) rather than a 202 for a job that may not exist.
    async fn make_durable(&self, created: &[JobRecord]) -> Result<(), ProducerError> {
        let Some(first) = created.first() else {
            return Ok(());
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut backoff = Duration::from_millis(50);
        loop {
            if !matches!(
                self.store.wait_replicas(&first.id).await,
                vidq_redis::WaitOutcome::Failed
            ) {
                return Ok(());
            }
            let mut last_err = None;
            for job in created {
                match self.store.get(&job.id).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        tracing::warn!(job.id = %job.id, "a failover lost a job just created; creating it again");
                        match self.store.create(job).await {
                            Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
                            Err(err) => last_err = Some(err),
                        }
                    }
                    Err(err) => last_err = Some(err),
                }
            }
            if std::time::Instant::now() >= deadline {
                let err = last_err.unwrap_or_else(|| {
                    StoreError::Redis(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "WAIT kept failing: the jobs could not be confirmed on a replica",
                    )))
                });
                return Err(err.into());
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn store_and_push(&self, record: &JobRecord) -> Result<(), ProducerError> {
        let id = record.id;
        self.store.create(record).await?;
        // With redis.min_replicas_acked, the job is on that many replicas before the API
        // answers (a failover right after cannot lose it silently).
        self.make_durable(std::slice::from_ref(record)).await?;
        if let Err(err) = self.push_submit(record).await {
            tracing::warn!(job.id = %id, error = %err, "job stored, but its first task could not be pushed; the reconciler will enqueue it");
        }
        Ok(())
    }

    /// Stores a new `queued` job for each of `requests` (of `options.owner`, within
    /// `options.quota`) in ONE Redis script call, then queues each created job's `submit`
    /// step through the same push as [`Self::enqueue`] (the pushes go out together on the
    /// multiplexed connection). The quota is checked job by job in order, in that one atomic
    /// step: the jobs that fit are created, the rest get [`StoreError::QuotaExceeded`] and
    /// nothing of them is written. A batch neither takes an idempotency key nor reuses
    /// identical work (`options.idempotency_key` and `options.reuse_within` are ignored).
    pub async fn enqueue_batch(
        &self,
        requests: Vec<TransformRequest>,
        options: &EnqueueOptions,
    ) -> Result<Vec<Result<JobRecord, ProducerError>>, ProducerError> {
        let owner = options.owner.as_deref();
        if owner.is_some_and(|o| !crate::settings::valid_tenant_name(o)) {
            return Err(StoreError::InvalidArgument {
                name: "owner",
                reason: "must be 1 to 64 ASCII letters, digits, `-`, `_` or `.`".into(),
            }
            .into());
        }
        let jobs: Vec<JobRecord> = requests
            .into_iter()
            .map(|request| {
                let mut job = self.new_record(request, owner);
                job.trace.clone_from(&options.trace);
                job
            })
            .collect();
        let outcomes = self.create_and_push(&jobs, &options.quota).await?;
        Ok(jobs
            .into_iter()
            .zip(outcomes)
            .map(|(job, outcome)| outcome.map(|()| job).map_err(ProducerError::from))
            .collect())
    }

    /// Stores `jobs` (one owner's) within `quota` in one script call, then queues the submit
    /// step of each one created. A push that fails is left to the reconciler, as in
    /// [`Self::enqueue`]: the job is durable once stored.
    async fn create_and_push(
        &self,
        jobs: &[JobRecord],
        quota: &CreateQuota,
    ) -> Result<Vec<Result<(), StoreError>>, ProducerError> {
        let outcomes = self.store.create_within(jobs, quota).await?;
        // One WAIT covers the whole script call (all job keys share the {jobs} slot).
        let created: Vec<JobRecord> = jobs
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.is_ok())
            .map(|(job, _)| job.clone())
            .collect();
        self.make_durable(&created).await?;
        let pushes = jobs
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| outcome.is_ok())
            .map(|(job, _)| async move {
                if let Err(err) = self.push_submit(job).await {
                    tracing::warn!(job.id = %job.id, error = %err, "job stored, but its first task could not be pushed; the reconciler will enqueue it");
                }
            });
        futures::future::join_all(pushes).await;
        Ok(outcomes)
    }

    /// The job's record, or `None` when there is no such job.
    pub async fn status(&self, id: &JobId) -> Result<Option<JobRecord>, ProducerError> {
        Ok(self.store.get(id).await?)
    }

    /// An operator's retry of a `failed` job (after fixing what failed it: a bucket, storage
    /// credentials, the API key): the job goes back to the step it failed at and that step's
    /// task is enqueued. Returns the state it reopened in.
    pub async fn retry(&self, id: &JobId) -> Result<JobState, ProducerError> {
        let job = self
            .store
            .get(id)
            .await?
            .ok_or(ProducerError::NotFound(*id))?;
        if job.state != JobState::Failed {
            return Err(ProducerError::NotRetryable(*id, job.state));
        }
        let failed_from = job
            .history
            .iter()
            .rev()
            .find(|t| t.to == JobState::Failed)
            .map_or(JobState::Queued, |t| t.from);
        let (to, kind) = match failed_from {
            JobState::Processing => (JobState::Processing, TaskKind::Poll),
            JobState::Transferring => (JobState::Transferring, TaskKind::Transfer),
            _ => (JobState::Queued, TaskKind::Submit),
        };
        match self
            .store
            .reopen(id, to, "retried by an operator", self.deadline)
            .await?
        {
            Transitioned::Applied { .. } => {
                if kind == TaskKind::Submit {
                    self.push_submit(&job).await?;
                } else {
                    self.push_step(kind, id).await?;
                }
                Ok(to)
            }
            Transitioned::Skipped { current } => Err(ProducerError::NotRetryable(*id, current)),
        }
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
            Transitioned::Applied { .. } => {
                self.notify_canceled(id).await;
                Ok(CancelOutcome::Canceled)
            }
            Transitioned::Skipped { current } => Ok(CancelOutcome::AlreadyFinished(current)),
        }
    }

    /// A canceled job with a `callback_url` gets its webhook like any finished job: the
    /// workers' `notify` queue posts it. The job stays canceled if this push fails, and stays
    /// in the active index, where the workers' reconciler queues the webhook later.
    async fn notify_canceled(&self, id: &JobId) {
        let wants_callback = match self.store.get(id).await {
            Ok(Some(job)) => job.request.callback_url().is_some(),
            Ok(None) => false,
            Err(err) => {
                tracing::warn!(job.id = %id, error = %err, "job canceled, but reading it for its webhook failed");
                return;
            }
        };
        if wants_callback && let Err(err) = self.push_step(TaskKind::Notify, id).await {
            tracing::warn!(job.id = %id, error = %err, "job canceled, but its webhook could not be enqueued yet");
            return;
        }
        if let Err(err) = self.store.remove_active(id).await {
            tracing::warn!(job.id = %id, error = %err, "job canceled, but dropping it from the active index failed");
        }
    }

    /// Queues job `id`'s webhook again (a `notify` task, due now), for an operator's "send
    /// again"; the worker sends it if the job has finished and has a `callback_url`.
    pub async fn resend_webhook(&self, id: &JobId) -> Result<(), ProducerError> {
        self.push_step(TaskKind::Notify, id).await?;
        Ok(())
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

    /// Deletes every task of `kind`'s queue dead now (not retried); returns how many.
    pub async fn purge_dead(&self, kind: TaskKind) -> Result<u64, ProducerError> {
        Ok(self.queue(kind).purge_dead().await?)
    }

    /// Pauses `kind`'s queue: workers claim none of its tasks until [`Producer::resume`],
    /// while its depth still counts and the tasks running go on. `true` if it was running.
    pub async fn pause(&self, kind: TaskKind) -> Result<bool, ProducerError> {
        Ok(self.queue(kind).pause().await?)
    }

    /// Resumes `kind`'s paused queue (idle workers are woken). `true` if it was paused.
    pub async fn resume(&self, kind: TaskKind) -> Result<bool, ProducerError> {
        Ok(self.queue(kind).resume().await?)
    }

    /// Whether `kind`'s queue is paused.
    pub async fn is_paused(&self, kind: TaskKind) -> Result<bool, ProducerError> {
        Ok(self.queue(kind).is_paused().await?)
    }

    /// How many tasks of `kind` are due, scheduled, leased and dead.
    pub async fn depth(&self, kind: TaskKind) -> Result<Depth, ProducerError> {
        Ok(self.queue(kind).depth().await?)
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
            TaskKind::Transfer => &self.queues[2],
            TaskKind::Notify => &self.queues[3],
        }
    }
}

/// The outcome of a one-job create.
fn first_outcome(outcomes: Vec<Result<(), StoreError>>) -> Result<(), ProducerError> {
    outcomes
        .into_iter()
        .next()
        .unwrap_or(Ok(()))
        .map_err(ProducerError::from)
}

/// Lowercase hex sha256 of the validated request's JSON (defaults filled in, keys in a fixed
/// order), so bodies that differ only in layout hash the same.
fn request_hash(request: &TransformRequest) -> Result<String, ProducerError> {
    let json = serde_json::to_vec(request).map_err(|e| StoreError::InvalidArgument {
        name: "request",
        reason: e.to_string(),
    })?;
    Ok(hex::encode(Sha256::digest(json)))
}

/// Where a job's `submit` task waits in the fair order: its owner's group (`~` for jobs with
/// no owner: no tenant name has one, as the worker's reconciler also pushes), at its priority.
fn submit_place(job: &JobRecord) -> Place<'_> {
    let priority = match job.request.priority() {
        vidq_core::Priority::High => vidq_queue::Priority::High,
        vidq_core::Priority::Normal => vidq_queue::Priority::Normal,
        vidq_core::Priority::Low => vidq_queue::Priority::Low,
    };
    Place::new(job.owner.as_deref().unwrap_or("~"), priority)
}
