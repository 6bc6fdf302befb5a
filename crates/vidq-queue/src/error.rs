//! Errors of the queue, and the error a handler returns to steer retries.

use std::time::Duration;

/// What went wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Redis refused or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A payload could not be serialized.
    #[error("could not encode a task payload: {0}")]
    Encode(#[source] serde_json::Error),
    /// Redis answered something the queue did not expect.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    /// The configuration is unusable.
    #[error("invalid queue configuration: {0}")]
    Config(String),
    /// A task id is unusable (empty, or longer than 512 bytes).
    #[error("invalid task id {0:?}: it must be 1 to 512 bytes")]
    InvalidId(String),
    /// A group name is unusable (empty, or longer than 128 bytes).
    #[error("invalid group {0:?}: it must be 1 to 128 bytes")]
    InvalidGroup(String),
    /// A push with a fresh random id found a task under that id (a collision): refused,
    /// nothing overwritten.
    #[error("task id {0} is taken: nothing was overwritten")]
    IdTaken(String),
    /// The worker lost the lease of the task it was running, which was stopped.
    #[error("the lease of task {id} on queue {queue} was lost; the work was stopped")]
    LeaseLost {
        /// The queue.
        queue: String,
        /// The task.
        id: String,
    },
}

/// The error a handler returns to steer what happens to a failed task.
///
/// Any other error a handler returns is retryable and follows the queue's [`RetryPolicy`]
/// (`crate::RetryPolicy`). The backend finds a `TaskError` anywhere in the error's
/// `source()` chain.
///
/// ```
/// use std::time::Duration;
/// use vidq_queue::TaskError;
///
/// let later = TaskError::retry_after(Duration::from_secs(30)).because("rate limited");
/// let never = TaskError::permanent("the video is too long");
/// assert!(later.to_string().contains("rate limited"));
/// assert!(never.is_permanent());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// Try again, not before `after` (still counts as an attempt).
    #[error("{reason} (retry after {after:?})")]
    RetryAfter {
        /// How long to wait before the next attempt.
        after: Duration,
        /// Why the attempt failed.
        reason: String,
    },
    /// Do not try again: the task goes to the dead set with this reason.
    #[error("{0}")]
    Permanent(String),
}

impl TaskError {
    /// Retry no sooner than `after`, overriding the policy's backoff for this attempt.
    #[must_use]
    pub fn retry_after(after: Duration) -> Self {
        Self::RetryAfter {
            after,
            reason: "retry requested".to_owned(),
        }
    }

    /// Give up on this task at once.
    #[must_use]
    pub fn permanent(reason: impl std::fmt::Display) -> Self {
        Self::Permanent(reason.to_string())
    }

    /// Attach a human-readable reason (kept in the dead set if the task dies).
    #[must_use]
    pub fn because(self, why: impl std::fmt::Display) -> Self {
        match self {
            Self::RetryAfter { after, .. } => Self::RetryAfter {
                after,
                reason: why.to_string(),
            },
            Self::Permanent(_) => Self::Permanent(why.to_string()),
        }
    }

    /// True when the task must not be retried.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }
}
