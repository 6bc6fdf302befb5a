#![doc = include_str!("../README.md")]

mod callback;
mod epoch;
mod job;
pub mod settings;
mod tasks;
pub mod telemetry;
pub mod workers;

pub use callback::{
    AddressClass, CallbackPolicy, CallbackRefused, CallbackTarget, classify as classify_address,
    is_localhost, list_or_comma_separated,
};
pub use epoch::{
    DEFAULT_EPOCH_PERIOD, DEFAULT_EPOCH_UNREADY_FOR, EPOCH_CHANGES_METRIC, EpochChange,
    EpochStatus, EpochWatch,
};
pub use job::Priority;
pub use job::TraceContext;
pub use job::{CreateQuota, QuotaExceeded, QuotaKind};
pub use job::{
    DEFAULT_FINISHED_TTL, DEFAULT_HISTORY_CAP, DEFAULT_PREFIX, INDEX_GRACE_MS, IdempotencyOutcome,
    InvalidJobId, JobEvent, JobId, JobPage, JobRecord, JobState, JobStore, ListCursor,
    MAX_IDEMPOTENCY_KEY_BYTES, MAX_PAGE, NAMED_UPSTREAM_ARGS, Output, Patch, Resolution, SignedUrl,
    StoreError, SubmissionClaim, TransformRequest, TransformRequestInput, Transition, Transitioned,
    UnknownJobState, ValidationError, unix_ms_now,
};
pub use job::{DELIVERIES_CAP, MinuteCounts, WebhookDelivery};
pub use job::{RecordedPart, TransferRecord, TransferUpload};
pub use settings::{SettingsError, load_settings};
pub use tasks::{JobTask, TASK_VERSION, TaskKind};
pub use telemetry::{LogFormat, LogSettings, TelemetryError};
