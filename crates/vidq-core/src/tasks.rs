//! The four task kinds and the payload every task carries: only the job id.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::JobId;

/// The version of [`JobTask`] this build writes. Readers accept this version and older ones,
/// and ignore fields they do not know, so workers of two releases can share the queues during
/// a rolling upgrade.
pub const TASK_VERSION: u8 = 1;

/// The payload of every vidq task: which job to work on. Everything else is in the job record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTask {
    /// Payload version (see [`TASK_VERSION`]).
    #[serde(default = "default_version")]
    pub v: u8,
    /// The job.
    pub job: JobId,
    /// When the task was meant to run (Unix ms), for tasks scheduled ahead: lets the worker
    /// measure how late it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_ms: Option<u64>,
}

fn default_version() -> u8 {
    TASK_VERSION
}

impl JobTask {
    /// A task for `job`, in the current payload version.
    #[must_use]
    pub fn new(job: JobId) -> Self {
        Self {
            v: TASK_VERSION,
            job,
            due_ms: None,
        }
    }

    /// A task for `job` meant to run at `due_ms` (Unix ms).
    #[must_use]
    pub fn due_at(job: JobId, due_ms: u64) -> Self {
        Self {
            due_ms: Some(due_ms),
            ..Self::new(job)
        }
    }
}

/// The task kinds, each on its own queue so each can have its own concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Submit the job upstream.
    Submit,
    /// Ask upstream once how the job is doing.
    Poll,
    /// Copy the finished video into storage.
    Transfer,
    /// Tell whoever asked that the job ended.
    Notify,
}

impl TaskKind {
    /// Every kind, in pipeline order.
    pub const ALL: [TaskKind; 4] = [Self::Submit, Self::Poll, Self::Transfer, Self::Notify];

    /// The queue task id of `job`'s step of this kind: `<job id>:<kind>`. Every push of a
    /// pipeline step uses it, and the queue keeps one live task per id, so the same step can
    /// never be queued twice for a job, whoever re-enqueues it.
    #[must_use]
    pub fn task_id(self, job: &JobId) -> String {
        format!("{job}:{}", self.queue_name())
    }

    /// The queue name of this kind (the queue's Redis hash tag).
    #[must_use]
    pub fn queue_name(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Poll => "poll",
            Self::Transfer => "transfer",
            Self::Notify => "notify",
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.queue_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_tolerant_of_unknown_fields_and_missing_version() {
        let id = JobId::new();
        let text = format!(r#"{{"job":"{id}","future_field":[1,2]}}"#);
        let task: JobTask = serde_json::from_str(&text).unwrap();
        assert_eq!(task, JobTask::new(id));
        let back: JobTask = serde_json::from_str(&serde_json::to_string(&task).unwrap()).unwrap();
        assert_eq!(back, task);
    }

    #[test]
    fn queue_names_are_distinct() {
        let names: std::collections::HashSet<_> =
            TaskKind::ALL.iter().map(|k| k.queue_name()).collect();
        assert_eq!(names.len(), TaskKind::ALL.len());
    }
}
