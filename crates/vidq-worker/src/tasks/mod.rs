//! The task kinds, one per file. Each task carries only the job id, reads the job record, and
//! moves the job on by compare-and-set: a duplicate or stale delivery finds the job elsewhere
//! and does nothing.

pub(crate) mod notify;
pub(crate) mod poll;
pub(crate) mod submit;
pub(crate) mod transfer;

use std::time::Duration;

use apalis_core::error::BoxDynError;
use vidq_queue::TaskError;

/// What a task handler returns. An `Err` is retried by the queue with the kind's backoff
/// unless it is a [`TaskError`] asking otherwise.
pub(crate) type TaskResult = Result<(), BoxDynError>;

/// Records a task's duration in `vidq_task_duration_seconds{kind}` when dropped.
pub(crate) struct TaskTimer {
    kind: &'static str,
    started: std::time::Instant,
}

impl TaskTimer {
    pub(crate) fn start(kind: vidq_core::TaskKind) -> Self {
        Self {
            kind: kind.queue_name(),
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for TaskTimer {
    fn drop(&mut self) {
        metrics::histogram!("vidq_task_duration_seconds", "kind" => self.kind)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// Try again after `after` when upstream said when, else after the queue's backoff.
pub(crate) fn retry(after: Option<Duration>, reason: String) -> BoxDynError {
    match after {
        Some(after) => Box::new(TaskError::retry_after(after).because(reason)),
        None => reason.into(),
    }
}

/// Any other failure (Redis, a queue push): retried with the queue's backoff.
pub(crate) fn transient(err: impl Into<anyhow::Error>) -> BoxDynError {
    let err: anyhow::Error = err.into();
    format!("{err:#}").into()
}

/// Marks the current task span (`process <queue>`) failed when the task returns an error:
/// `otel.status_code = "ERROR"` and `error.type` — `permanent` (the task goes dead),
/// `retry_after` (upstream said when) or `transient` (retried with the queue's backoff).
pub(crate) fn outcome(result: TaskResult) -> TaskResult {
    if let Err(err) = &result {
        let kind = match err.downcast_ref::<TaskError>() {
            Some(TaskError::Permanent(_)) => "permanent",
            Some(_) => "retry_after",
            None => "transient",
        };
        let span = tracing::Span::current();
        span.record("otel.status_code", "ERROR");
        span.record("error.type", kind);
    }
    result
}
