//! What the console needs from the server that mounts it: who a token is, the job store, the
//! queues' figures and dead sets, and the operator's actions. `vidq serve` implements it over
//! its `Producer` and token set, so the console acts exactly as the API does.

use std::future::Future;
use std::pin::Pin;

use vidq_core::workers::WorkerInfo;
use vidq_core::{JobId, JobRecord, JobState, JobStore, TaskKind};
use vidq_queue::{DeadTask, Depth};
use vidq_redis::Conn;

/// A failure of the backend, shown to the operator as a short message (never a secret).
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// Who a signed-in operator is: the token's name (its tenant) and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    /// The token's name: the tenant whose jobs it sees.
    pub tenant: String,
    /// The `admin` scope: every tenant's jobs, the queues and their dead tasks.
    pub admin: bool,
    /// The `write` scope (or `admin`): cancel and retry the tenant's jobs.
    pub write: bool,
}

/// What the replica's one subscription to job transitions delivers to the console's live
/// pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    /// Job `id` moved to `to` at `at_ms` (Redis's clock).
    Moved {
        /// The job.
        id: String,
        /// Its new state.
        to: JobState,
        /// When (Unix ms).
        at_ms: u64,
    },
    /// The subscription was (re)made or fell behind: what happened meanwhile was not received.
    Resync,
}

/// A stream of [`Live`] messages for one open page; it ends when the server stops.
pub type LiveStream = Pin<Box<dyn futures::Stream<Item = Live> + Send>>;

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canceled {
    /// The job was canceled now.
    Now,
    /// The job had already finished in this state.
    AlreadyFinished(JobState),
}

/// The server's side of the console. Every method is called after the console checked the
/// session's scopes and the job's tenant.
pub trait Backend: Send + Sync + 'static {
    /// The principal whose token is `token` (`None` for an unknown token or one without the
    /// `read` scope). The console never stores or logs the token.
    fn authenticate(&self, token: &str) -> Option<Principal>;

    /// The principal of the token whose SHA-256 digest is `digest`, if that token is still
    /// configured (tokens reload on SIGHUP): a session ends when its token is removed.
    fn authenticate_digest(&self, digest: &[u8; 32]) -> Option<Principal>;

    /// A new receiver of the replica's job transitions (`None` when the server has no feed:
    /// live pages then re-read on a timer).
    fn live(&self) -> Option<LiveStream>;

    /// Queues a `notify` task for a finished job with a `callback_url` (its webhook is sent
    /// again); false when it has no callback or has not finished.
    fn resend_webhook(
        &self,
        job: &JobRecord,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// The job store (records, per-tenant indexes, jobs per state).
    fn store(&self) -> &JobStore;

    /// A connection to the store's Redis (sessions are kept there under the store's prefix).
    fn redis(&self) -> Conn;

    /// How many tasks of `kind` are due, scheduled, leased and dead, and whether it is paused.
    fn depth(&self, kind: TaskKind) -> impl Future<Output = Result<Depth, BackendError>> + Send;

    /// Dead tasks of `kind`'s queue, newest first.
    fn dead_tasks(
        &self,
        kind: TaskKind,
        offset: usize,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DeadTask>, BackendError>> + Send;

    /// Puts one dead task back in its queue; false when there is no such task.
    fn retry_dead(
        &self,
        kind: TaskKind,
        task_id: &str,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// Puts every dead task of `kind` back in its queue; returns how many.
    fn retry_all_dead(
        &self,
        kind: TaskKind,
    ) -> impl Future<Output = Result<u64, BackendError>> + Send;

    /// Deletes every dead task of `kind`'s queue (they are not retried); returns how many.
    fn purge_dead(&self, kind: TaskKind) -> impl Future<Output = Result<u64, BackendError>> + Send;

    /// Pauses (`true`) or resumes `kind`'s queue; returns whether that changed its state.
    fn set_paused(
        &self,
        kind: TaskKind,
        paused: bool,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// The live worker processes (heartbeat not expired by Redis time), from the registry.
    fn workers(&self) -> impl Future<Output = Result<Vec<WorkerInfo>, BackendError>> + Send;

    /// Cancels a job that has not finished.
    fn cancel(&self, id: &JobId) -> impl Future<Output = Result<Canceled, BackendError>> + Send;

    /// Retries a `failed` job from the step it failed at; returns the state it reopened in.
    fn retry(&self, id: &JobId) -> impl Future<Output = Result<JobState, BackendError>> + Send;

    /// A presigned URL of a succeeded job's stored video (`None` without storage).
    fn video_url(
        &self,
        job: &JobRecord,
    ) -> impl Future<Output = Result<Option<String>, BackendError>> + Send;
}
