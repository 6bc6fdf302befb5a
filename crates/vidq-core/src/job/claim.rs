//! The submission claim: a fenced compare-and-set on the job record, tied to one delivery of
//! its `submit` task, that a worker must hold to call upstream's (paid) `generate`.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{JobId, JobStore, StoreError};

static CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/claim_submission.lua")));

/// ARGV[1] token, ARGV[2] 'release' (drop the claim) or 'ended' (its call is over: the hold
/// ends now).
static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('HGET', KEYS[1], 'submit_claim') ~= ARGV[1] then return 0 end \
         if ARGV[2] == 'release' then redis.call('HDEL', KEYS[1], 'submit_claim', 'submit_claim_at') \
         else redis.call('HSET', KEYS[1], 'submit_claim_at', '0') end return 1",
    )
});

/// What asking for a job's submission claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmissionClaim {
    /// Held by this delivery; nobody called upstream for the job before.
    Taken,
    /// Held by this delivery; an earlier delivery held it and provably ended (its hold
    /// passed) without storing upstream's id: it may have been accepted (a possible duplicate).
    TakenOver {
        /// The earlier delivery's token.
        previous: String,
    },
    /// Another delivery holds it and may still be calling upstream: ask again after this.
    Busy {
        /// Until the other claim's hold ends.
        retry_in: Duration,
    },
    /// The job is unsubmitted and past its deadline: it must end without being submitted.
    Expired,
    /// The job is no longer waiting for a submission (submitted, ended): nothing to do.
    Moved(String),
    /// No such job.
    Gone,
}

impl JobStore {
    /// Takes the submission claim of job `id` (in `submitting`, without upstream's id) for the
    /// delivery `token`, unless another delivery took it less than `hold` ago. `hold` must be
    /// longer than an upstream call can last (its timeout and a margin).
    pub async fn claim_submission(
        &self,
        id: &JobId,
        token: &str,
        hold: Duration,
    ) -> Result<SubmissionClaim, StoreError> {
        let mut conn = self.conn.clone();
        let (what, detail): (String, String) = CLAIM
            .key(self.keys.job(id))
            .arg(token)
            .arg(u64::try_from(hold.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut conn)
            .await?;
        Ok(match what.as_str() {
            "taken" => SubmissionClaim::Taken,
            "taken_over" => SubmissionClaim::TakenOver { previous: detail },
            "busy" => SubmissionClaim::Busy {
                retry_in: Duration::from_millis(detail.parse().unwrap_or(1000)),
            },
            "expired" => SubmissionClaim::Expired,
            "moved" => SubmissionClaim::Moved(detail),
            _ => SubmissionClaim::Gone,
        })
    }

    /// Gives the claim back once upstream surely did not accept the call (a definite
    /// refusal), so the next attempt need not wait out its hold and is not uncertain. `false`
    /// if it was not held.
    pub async fn release_submission(&self, id: &JobId, token: &str) -> Result<bool, StoreError> {
        self.settle_submission(id, token, "release").await
    }

    /// Records that the claim's call is over without a stored upstream id (an unreadable
    /// reply, a timeout, a 5xx: upstream may have accepted it). The next attempt need not wait
    /// out the hold; it still counts as a possible duplicate. `false` if it was not held.
    pub async fn end_submission_call(&self, id: &JobId, token: &str) -> Result<bool, StoreError> {
        self.settle_submission(id, token, "ended").await
    }

    async fn settle_submission(
        &self,
        id: &JobId,
        token: &str,
        how: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = SETTLE
            .key(self.keys.job(id))
            .arg(token)
            .arg(how)
            .invoke_async(&mut conn)
            .await?;
        Ok(n == 1)
    }
}
