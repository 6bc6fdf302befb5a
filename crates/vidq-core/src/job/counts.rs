//! Jobs per state, for metrics: a hash kept beside the records, updated after each applied
//! transition. Unfinished states count the jobs in them now; terminal states count the jobs
//! that ever ended there. It is a separate key (`<prefix>:{jobs}:states`, in the job store's
//! slot) written after the transition, not by its script, so a process dying between a
//! transition and its count leaves the figure off by one: good for dashboards, not for decisions.

use std::collections::BTreeMap;

use super::{JobState, JobStore, StoreError};

impl JobStore {
    /// Records that one job moved `from` (None: created) `to`. Best effort: a failure is
    /// logged, never returned, since the transition itself already happened.
    pub(super) async fn count_transition(&self, from: Option<JobState>, to: JobState) {
        let key = self.keys.states();
        let mut pipe = redis::pipe();
        if let Some(from) = from.filter(|f| !f.is_terminal()) {
            pipe.hincr(&key, from.as_str(), -1).ignore();
        }
        pipe.hincr(&key, to.as_str(), 1).ignore();
        let mut conn = self.conn.clone();
        if let Err(error) = pipe.query_async::<()>(&mut conn).await {
            tracing::debug!(%error, "could not update the jobs-per-state counts");
        }
    }

    /// Jobs per state: for unfinished states the jobs in them now, for terminal states the
    /// jobs that ended there since the counts began.
    pub async fn state_counts(&self) -> Result<BTreeMap<JobState, i64>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: BTreeMap<String, i64> = redis::cmd("HGETALL")
            .arg(self.keys.states())
            .query_async(&mut conn)
            .await?;
        Ok(raw
            .into_iter()
            .filter_map(|(state, n)| state.parse::<JobState>().ok().map(|s| (s, n)))
            .collect())
    }
}
