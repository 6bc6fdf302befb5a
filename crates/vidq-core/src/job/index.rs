//! The job indexes: `{jobs}:active` for the reconciler, `{jobs}:all` for listing, and one
//! `{jobs}:tenant:<owner>` per owner for listing one tenant's jobs without scanning the others'.
//!
//! They are separate keys from the jobs, updated after a job's own change and idempotent, so
//! they can drift (a crash between the two writes); drift is repaired lazily:
//! - `{jobs}:all` and `{jobs}:tenant:<owner>` keep an id after its record expired;
//!   [`JobStore::list`] and [`JobStore::list_tenant`] drop such ids as they meet them and
//!   [`JobStore::prune_index`] sweeps the oldest ones of each (the reconciler calls it).
//! - `{jobs}:state:<state>` and `{jobs}:tenant:<owner>:state:<state>` (the jobs in one state
//!   now, for a filtered listing) move with the job in the create and transition scripts, so
//!   they never disagree with a live job; a finished job's id stays in its terminal state's
//!   index after the record expired and is dropped like `{jobs}:all`'s.
//! - `{jobs}:active` can keep a finished or vanished job; the reconciler meets it through
//!   [`JobStore::stale_active`] and calls [`JobStore::remove_active`].
//!
//! An index entry younger than [`INDEX_GRACE_MS`] is never dropped: its job may still be
//! being created.
//!
//! One clock: `{jobs}:active` is scored, and both indexes are aged, by Redis's `TIME` (in a
//! script, or one `TIME` read), never by the host's clock; callers pass relative delays and
//! ages, so a host whose clock is off changes nothing here.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use redis::AsyncCommands;

use super::{JobId, JobRecord, JobState, JobStore, StoreError};

/// Most jobs one [`JobStore::list`] call returns.
pub const MAX_PAGE: usize = 100;
/// An index entry younger than this is left alone even when its record is missing.
pub const INDEX_GRACE_MS: u64 = 60_000;
/// Jobs one [`JobStore::prune_index`] call puts in the per-state indexes while the one-time
/// backfill of jobs created before them runs ([`JobStore::backfill_state_index`]).
const BACKFILL_STEP: usize = 1_000;

/// Where the next page of [`JobStore::list`] starts: opaque text for API clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    created_at: u64,
    id: JobId,
}

impl fmt::Display for ListCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.created_at, self.id)
    }
}

impl FromStr for ListCursor {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StoreError::invalid("cursor", "not a cursor returned by a listing");
        let (at, id) = s.split_once('_').ok_or_else(bad)?;
        Ok(Self {
            created_at: at.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// One page of jobs, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// The jobs of this page (with a state filter, possibly fewer than asked for).
    pub jobs: Vec<JobRecord>,
    /// Where the next page starts; `None` when the listing is complete.
    pub next_cursor: Option<ListCursor>,
}

impl JobStore {
    /// Records that the job's next task is expected to run within `delay`, by Redis's clock
    /// (one small script); returns that expected-by time (Unix ms, Redis's clock).
    pub async fn touch_active(&self, id: &JobId, delay: Duration) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let at: u64 = self
            .scripts
            .touch_active
            .key(self.keys.active())
            .arg(id.to_string())
            .arg(millis(delay))
            .arg("")
            .invoke_async(&mut conn)
            .await?;
        Ok(at)
    }

    /// When the job's next task is expected (Unix ms, Redis's clock), or `None` when the job
    /// is not in the active index (for operators and tests).
    pub async fn active_expected_by(&self, id: &JobId) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn.clone();
        let score: Option<f64> = conn.zscore(self.keys.active(), id.to_string()).await?;
        Ok(score.map(|s| s as u64))
    }

    /// Drops the job from the active index (done by terminal transitions; the reconciler
    /// calls it for a finished or vanished job it finds there).
    pub async fn remove_active(&self, id: &JobId) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        conn.zrem::<_, _, ()>(self.keys.active(), id.to_string())
            .await?;
        Ok(())
    }

    /// At most `limit` active jobs whose next task was expected `stale_after` or longer ago
    /// by Redis's clock, oldest first, with that expected-by time. An unreadable index entry
    /// is dropped.
    pub async fn stale_active(
        &self,
        stale_after: Duration,
        limit: usize,
    ) -> Result<Vec<(JobId, u64)>, StoreError> {
        let key = self.keys.active();
        let entries = self.older_than(&key, millis(stale_after), limit).await?;
        let mut stale = Vec::with_capacity(entries.len());
        let mut conn = self.conn.clone();
        for (member, score) in entries {
            match member.parse::<JobId>() {
                Ok(id) => stale.push((id, score as u64)),
                Err(error) => {
                    tracing::warn!(index = %key, %error, "dropping unreadable active index entry");
                    conn.zrem::<_, _, ()>(&key, &member).await?;
                }
            }
        }
        Ok(stale)
    }

    /// Jobs newest first, `limit` at most (capped at [`MAX_PAGE`]), optionally only those in
    /// `state`, starting after `cursor`. With a state filter the page is read from that
    /// state's own index `{jobs}:state:<state>` (kept by the create and transition scripts in
    /// the same atomic step as the job's move), so a filtered page costs what an unfiltered
    /// one does, however few jobs are in that state. A job that moved between the index read
    /// and the record read is left out of the page. Ids whose record expired are dropped from
    /// the index as they are met; unreadable records are skipped with a warning.
    pub async fn list(
        &self,
        state: Option<JobState>,
        cursor: Option<&ListCursor>,
        limit: usize,
    ) -> Result<JobPage, StoreError> {
        let key = match state {
            Some(s) => self.keys.state(s.as_str()),
            None => self.keys.all(),
        };
        self.list_in(&key, None, state, cursor, limit).await
    }

    /// [`Self::list`] of the jobs `tenant` owns only, read from its own index
    /// `{jobs}:tenant:<tenant>` (written at create), or with a state filter
    /// `{jobs}:tenant:<tenant>:state:<state>`: the cost does not grow with other tenants'
    /// jobs. Jobs without an owner are never listed here.
    pub async fn list_tenant(
        &self,
        tenant: &str,
        state: Option<JobState>,
        cursor: Option<&ListCursor>,
        limit: usize,
    ) -> Result<JobPage, StoreError> {
        let key = match state {
            Some(s) => self.keys.tenant_state(tenant, s.as_str()),
            None => self.keys.tenant_all(tenant),
        };
        self.list_in(&key, Some(tenant), state, cursor, limit).await
    }

    async fn list_in(
        &self,
        key: &str,
        owner: Option<&str>,
        state: Option<JobState>,
        cursor: Option<&ListCursor>,
        limit: usize,
    ) -> Result<JobPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let batch = limit;
        let entries = self.index_page(key, cursor, batch).await?;
        let ids: Vec<JobId> = entries.iter().map(|(id, _)| *id).collect();
        let records = self.get_many(&ids).await?;

        let mut jobs = Vec::new();
        let mut last = None;
        // Ids without a record, with their creation time: dropped below once past the grace.
        let mut missing = Vec::new();
        for ((id, created_at), record) in entries.iter().zip(records) {
            last = Some(ListCursor {
                created_at: *created_at,
                id: *id,
            });
            match record {
                None => missing.push((*id, *created_at)),
                Some(Err(error)) => tracing::warn!(job.id = %id, %error, "skipping unreadable job"),
                Some(Ok(record))
                    if state.is_none_or(|s| s == record.state)
                        && owner.is_none_or(|o| record.owner.as_deref() == Some(o)) =>
                {
                    jobs.push(record);
                    if jobs.len() == limit {
                        break;
                    }
                }
                Some(Ok(_)) => {}
            }
        }
        if !missing.is_empty() {
            // Only a listing that met a missing record pays for the clock read.
            let now = self.redis_now_ms().await?;
            let vanished: Vec<String> = missing
                .iter()
                .filter(|(_, created_at)| created_at.saturating_add(INDEX_GRACE_MS) < now)
                .map(|(id, _)| id.to_string())
                .collect();
            if !vanished.is_empty() {
                let mut conn = self.conn.clone();
                conn.zrem::<_, _, ()>(key, vanished).await?;
            }
        }
        let more = jobs.len() == limit || entries.len() == batch;
        Ok(JobPage {
            jobs,
            next_cursor: if more { last } else { None },
        })
    }

    /// Sweeps the `limit` oldest entries of `{jobs}:all`, and of each owner's
    /// `{jobs}:tenant:<owner>`, older than [`INDEX_GRACE_MS`] by Redis's clock, dropping those
    /// whose record is gone; and `limit` sampled ids of the unfinished sets the quotas count
    /// (`{jobs}:unfinished`, each owner's `{jobs}:tenant:<owner>:unfinished`), dropping those
    /// whose job is gone or has ended. Returns how many were dropped. The reconciler calls it
    /// every round so the indexes do not outgrow the records, and a job deleted by hand does
    /// not hold its owner's quota for good.
    pub async fn prune_index(&self, limit: usize) -> Result<usize, StoreError> {
        self.backfill_state_index(BACKFILL_STEP).await?;
        let mut pruned = self.prune_zset(&self.keys.all(), limit).await?;
        for state in JobState::ALL {
            pruned += self
                .prune_zset(&self.keys.state(state.as_str()), limit)
                .await?;
        }
        pruned += self
            .prune_unfinished(&self.keys.unfinished(), limit)
            .await?;
        let mut conn = self.conn.clone();
        let tenants: Vec<String> = conn.smembers(self.keys.tenants()).await?;
        for tenant in tenants {
            pruned += self
                .prune_zset(&self.keys.tenant_all(&tenant), limit)
                .await?;
            for state in JobState::ALL {
                pruned += self
                    .prune_zset(&self.keys.tenant_state(&tenant, state.as_str()), limit)
                    .await?;
            }
            pruned += self
                .prune_unfinished(&self.keys.tenant_unfinished(&tenant), limit)
                .await?;
        }
        Ok(pruned)
    }

    /// One step of the one-time backfill of the per-state indexes for jobs created before they
    /// existed (an older release): the next `limit` entries of `{jobs}:all`, oldest first, each
    /// put in its state's index (and its owner's) as its record says now, in one script, the
    /// progress kept in `{jobs}:state_backfill`. Returns `true` once the backfill is finished
    /// (then each call is one `HGET`). [`Self::prune_index`] runs a step of 1,000 jobs each
    /// reconciler round; idempotent, so any number of replicas may
    /// run it. A job created since is in its index already.
    pub async fn backfill_state_index(&self, limit: usize) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let (done, _indexed): (u8, u64) = self
            .scripts
            .backfill_states
            .key(self.keys.all())
            .key(self.keys.state_backfill())
            .arg(self.keys.job_prefix())
            .arg(self.keys.state_prefix())
            .arg(self.keys.tenant_prefix())
            .arg(limit.clamp(1, 10_000))
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    /// [`Self::prune_index`] of one unfinished set: one script, `limit` sampled ids.
    async fn prune_unfinished(&self, key: &str, limit: usize) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let dropped: usize = self
            .scripts
            .prune_unfinished
            .key(key)
            .arg(self.keys.job_prefix())
            .arg(limit.clamp(1, 10_000))
            .invoke_async(&mut conn)
            .await?;
        Ok(dropped)
    }

    /// [`Self::prune_index`] of one index.
    async fn prune_zset(&self, key: &str, limit: usize) -> Result<usize, StoreError> {
        // Scored at or before now - grace - 1: strictly older than the grace.
        let entries = self
            .older_than(key, INDEX_GRACE_MS + 1, limit.clamp(1, 10_000))
            .await?;
        let old: Vec<String> = entries.into_iter().map(|(member, _)| member).collect();
        let mut conn = self.conn.clone();
        if old.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for member in &old {
            match member.parse::<JobId>() {
                Ok(id) => pipe.exists(self.keys.job(&id)),
                // Not a job id: treat as gone.
                Err(_) => pipe.cmd("ECHO").arg(0),
            };
        }
        let exists: Vec<bool> = pipe.query_async(&mut conn).await?;
        let gone: Vec<&String> = old
            .iter()
            .zip(exists)
            .filter(|(_, exists)| !exists)
            .map(|(member, _)| member)
            .collect();
        if !gone.is_empty() {
            conn.zrem::<_, _, ()>(key, &gone).await?;
        }
        Ok(gone.len())
    }

    /// At most `limit` entries of the zset `key` scored `age_ms` or more before Redis's clock,
    /// oldest first: one script, so the cutoff is Redis's own.
    async fn older_than(
        &self,
        key: &str,
        age_ms: u64,
        limit: usize,
    ) -> Result<Vec<(String, f64)>, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Vec<(String, f64)> = self
            .scripts
            .older_than
            .key(key)
            .arg(age_ms)
            .arg(limit.max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(reply)
    }

    /// Up to `batch` (id, created_at) entries of the index `key`, newest first, after `cursor`.
    async fn index_page(
        &self,
        key: &str,
        cursor: Option<&ListCursor>,
        batch: usize,
    ) -> Result<Vec<(JobId, u64)>, StoreError> {
        let mut conn = self.conn.clone();
        let count = batch as isize;
        let raw: Vec<(String, f64)> = match cursor {
            None => conn.zrevrange_withscores(key, 0, count - 1).await?,
            Some(cursor) => {
                let rank: Option<isize> = conn.zrevrank(key, cursor.id.to_string()).await?;
                match rank {
                    Some(rank) => {
                        conn.zrevrange_withscores(key, rank + 1, rank + count)
                            .await?
                    }
                    // The cursor's job left the index: continue below its creation time.
                    None => {
                        conn.zrevrangebyscore_limit_withscores(
                            key,
                            format!("({}", cursor.created_at),
                            "-inf",
                            0,
                            count,
                        )
                        .await?
                    }
                }
            }
        };
        Ok(raw
            .into_iter()
            .filter_map(|(member, score)| match member.parse::<JobId>() {
                Ok(id) => Some((id, score as u64)),
                Err(error) => {
                    tracing::warn!(index = %key, %error, "skipping unreadable job index entry");
                    None
                }
            })
            .collect())
    }
}

/// `d` in whole milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
