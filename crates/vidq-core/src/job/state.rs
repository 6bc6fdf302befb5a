//! `JobState` and the transitions DESIGN §3 allows between states.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job is in its life (DESIGN §3):
///
/// ```text
/// queued → submitting → processing → transferring → succeeded
///    └──────────┴────────────┴──────────────┴──→ failed | canceled | expired
/// ```
///
/// plus `submitting → queued` when a submission hit a transient error and will be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Accepted, waiting for a `submit` task.
    Queued,
    /// A `submit` task is calling the upstream generate endpoint.
    Submitting,
    /// Upstream accepted the job (`img_uuid` is known); `poll` tasks follow its progress.
    Processing,
    /// Upstream finished; a `transfer` task is copying the video to storage.
    Transferring,
    /// The video is in storage. Terminal.
    Succeeded,
    /// Upstream refused or failed the job, or retries ran out. Terminal.
    Failed,
    /// The caller canceled the job. Terminal.
    Canceled,
    /// The job passed its deadline before finishing. Terminal.
    Expired,
}

/// A string that names no job state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job state `{0}` (expected one of queued, submitting, processing, transferring, succeeded, failed, canceled, expired)"
)]
pub struct UnknownJobState(String);

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
        JobState::Submitting,
        JobState::Processing,
        JobState::Transferring,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Canceled,
        JobState::Expired,
    ];

    /// The lowercase name used in JSON, in Redis and in URLs (`?state=queued`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Submitting => "submitting",
            JobState::Processing => "processing",
            JobState::Transferring => "transferring",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
            JobState::Expired => "expired",
        }
    }

    /// Whether the job is finished: a terminal state is set once and never left.
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Canceled | JobState::Expired
        )
    }

    /// Whether DESIGN §3 allows moving a job from `self` to `to`.
    #[must_use]
    pub const fn can_transition_to(self, to: JobState) -> bool {
        use JobState::*;
        match (self, to) {
            (from, _) if from.is_terminal() => false,
            (_, Failed | Canceled | Expired) => true,
            (Queued, Submitting)
            | (Submitting, Processing | Queued)
            | (Processing, Transferring)
            | (Transferring, Succeeded) => true,
            _ => false,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = UnknownJobState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownJobState(s.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::JobState::*;
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_and_serde() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(serde_json::from_str::<JobState>(&json).unwrap(), state);
        }
        let err = "done".parse::<JobState>().unwrap_err().to_string();
        assert!(err.contains("`done`"), "{err}");
    }

    #[test]
    fn allowed_transitions_follow_the_design() {
        let allowed: Vec<(JobState, JobState)> = JobState::ALL
            .into_iter()
            .flat_map(|a| JobState::ALL.into_iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.can_transition_to(*b))
            .collect();
        let mut expected = vec![
            (Queued, Submitting),
            (Submitting, Processing),
            (Submitting, Queued),
            (Processing, Transferring),
            (Transferring, Succeeded),
        ];
        for from in [Queued, Submitting, Processing, Transferring] {
            for to in [Failed, Canceled, Expired] {
                expected.push((from, to));
            }
        }
        assert_eq!(allowed.len(), expected.len(), "{allowed:?}");
        for pair in expected {
            assert!(allowed.contains(&pair), "{pair:?} should be allowed");
        }
        assert!(!Succeeded.can_transition_to(Failed));
        assert!(!Processing.can_transition_to(Processing));
    }
}
