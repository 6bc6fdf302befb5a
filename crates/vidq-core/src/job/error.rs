//! `StoreError`: why a job store operation failed.

use super::{JobId, JobState};

/// Why a [`JobStore`](super::JobStore) operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or refused the command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No job has this id (it never existed, or its record expired).
    #[error("job {0} not found")]
    NotFound(JobId),
    /// `create` found a job with this id already.
    #[error("job {0} already exists")]
    AlreadyExists(JobId),
    /// A limit refused the create ([`super::CreateQuota`]); nothing was written.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(super::QuotaExceeded),
    /// DESIGN §3 does not allow this move; nothing was written.
    #[error("transition {from} → {to} is not allowed")]
    InvalidTransition {
        /// The state the caller expected the job in.
        from: JobState,
        /// The state the caller asked for.
        to: JobState,
    },
    /// A stored value does not decode; the data was left as it is.
    #[error("corrupt value in {key} field `{field}`: {reason}")]
    Corrupt {
        /// The Redis key holding the value.
        key: String,
        /// The field (hash field, or the part of the value) at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument the store cannot use (a malformed cursor, an empty idempotency key...).
    #[error("invalid argument {name}: {reason}")]
    InvalidArgument {
        /// Which argument.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl StoreError {
    pub(super) fn corrupt(key: &str, field: &str, reason: impl ToString) -> Self {
        StoreError::Corrupt {
            key: key.to_owned(),
            field: field.to_owned(),
            reason: reason.to_string(),
        }
    }

    pub(super) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        StoreError::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }
}
