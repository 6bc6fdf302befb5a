//! The job model (request, state, record) and the Redis job store.

mod canonical;
mod claim;
mod codec;
mod counts;
mod dashboard;
mod error;
mod id;
mod idempotency;
mod index;
mod keys;
mod patch;
mod quota;
mod record;
mod replication;
mod request;
mod request_json;
mod state;
mod store;
mod uploads;

pub use claim::SubmissionClaim;
pub use dashboard::{DELIVERIES_CAP, MinuteCounts, WebhookDelivery};
pub use error::StoreError;
pub use id::{InvalidJobId, JobId};
pub use idempotency::{IdempotencyOutcome, MAX_IDEMPOTENCY_KEY_BYTES};
pub use index::{INDEX_GRACE_MS, JobPage, ListCursor, MAX_PAGE};
pub use patch::Patch;
pub use quota::{CreateQuota, QuotaExceeded, QuotaKind};
pub use record::{JobEvent, JobRecord, Output, SignedUrl, TraceContext, Transition, unix_ms_now};
pub use request::{
    NAMED_UPSTREAM_ARGS, Priority, Resolution, TransformRequest, TransformRequestInput,
    ValidationError,
};
pub use state::{JobState, UnknownJobState};
pub use store::{
    DEFAULT_FINISHED_TTL, DEFAULT_HISTORY_CAP, DEFAULT_PREFIX, JobStore, Transitioned,
};
pub use uploads::{RecordedPart, TransferRecord, TransferUpload};
