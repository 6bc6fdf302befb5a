//! `JobStore`: job records in Redis, moved between states by compare-and-set scripts.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use vidq_redis::Conn;

use super::codec::{self, encode_transition, to_json};
use super::keys::Keys;
use super::{CreateQuota, JobEvent, JobId, JobRecord, JobState, Patch, StoreError};

/// Key prefix used unless [`JobStore::with_prefix`] says otherwise.
pub const DEFAULT_PREFIX: &str = "vidq";
/// How long a finished job's keys are kept: 7 days.
pub const DEFAULT_FINISHED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How many transitions a job's history keeps (the newest).
pub const DEFAULT_HISTORY_CAP: u32 = 32;

/// What a compare-and-set did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transitioned {
    /// The job was in `from` (one of the expected states) and the change was written.
    Applied {
        /// The state the job was in.
        from: JobState,
        /// When the change was written, Unix ms.
        at_ms: u64,
    },
    /// The job was elsewhere (a duplicate or stale task): nothing was written.
    Skipped {
        /// The state the job is in.
        current: JobState,
    },
}

/// The job records in Redis. Cheap to clone: clones share one multiplexed connection.
///
/// Keys (prefix `vidq` by default), all with the hash tag `{jobs}` so every script and
/// pipeline of the store touches one Redis Cluster slot: `<prefix>:{jobs}:job:<id>` (hash),
/// `<prefix>:{jobs}:job:<id>:history` (list), `:transfer` and `:upload` per job,
/// `<prefix>:{jobs}:active` and `<prefix>:{jobs}:all` (indexes), `<prefix>:{jobs}:tenant:<owner>`
/// (one owner's jobs, the owners in the set `<prefix>:{jobs}:tenants`),
/// `<prefix>:{jobs}:idem:{<key>}` and `<prefix>:{jobs}:idem:<tenant>:{<key>}` (idempotency
/// keys), the unfinished jobs' ids in `<prefix>:{jobs}:unfinished` and
/// `<prefix>:{jobs}:tenant:<owner>:unfinished` (sets), each owner's creates per UTC day in
/// `<prefix>:{jobs}:tenant:<owner>:today`, the per-state counts `<prefix>:{jobs}:states`, and
/// the sharded pub/sub channels `<prefix>:{jobs}:events` and `<prefix>:{jobs}:events:transitions`.
#[derive(Clone)]
pub struct JobStore {
    pub(super) conn: Conn,
    pub(super) keys: Keys,
    finished_ttl: Duration,
    history_cap: u32,
    pub(super) scripts: Arc<Scripts>,
    /// The connection layer, for `WAIT` after writes a client relies on (see `replication.rs`).
    pub(super) layer: Option<vidq_redis::Redis>,
}

pub(super) struct Scripts {
    create: Script,
    transition: Script,
    pub(super) idempotency: Script,
    pub(super) touch_active: Script,
    pub(super) older_than: Script,
    pub(super) prune_unfinished: Script,
    pub(super) backfill_states: Script,
}

impl fmt::Debug for JobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobStore")
            .field("prefix", &self.keys.prefix())
            .field("finished_ttl", &self.finished_ttl)
            .field("history_cap", &self.history_cap)
            .finish_non_exhaustive()
    }
}

impl JobStore {
    /// A store on `conn` with the default prefix, finished TTL and history cap.
    #[must_use]
    pub fn new(conn: impl Into<Conn>) -> Self {
        Self {
            conn: conn.into(),
            keys: Keys::new(DEFAULT_PREFIX.to_owned()),
            finished_ttl: DEFAULT_FINISHED_TTL,
            history_cap: DEFAULT_HISTORY_CAP,
            scripts: Arc::new(Scripts {
                create: Script::new(include_str!("lua/create.lua")),
                transition: Script::new(include_str!("lua/transition.lua")),
                idempotency: Script::new(include_str!("lua/idempotency.lua")),
                touch_active: Script::new(include_str!("lua/touch_active.lua")),
                older_than: Script::new(include_str!("lua/older_than.lua")),
                prune_unfinished: Script::new(include_str!("lua/prune_unfinished.lua")),
                backfill_states: Script::new(include_str!("lua/backfill_states.lua")),
            }),
            layer: None,
        }
    }

    /// Connects to the Redis at `url` and builds a store on it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        Ok(Self::new(redis::aio::ConnectionManager::new(client).await?))
    }

    /// Uses `prefix` for every key. It must be non-empty and hold no `{` or `}` (those would
    /// break the `{jobs}` hash tag).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Result<Self, StoreError> {
        let prefix = prefix.into();
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(StoreError::invalid(
                "prefix",
                "must be non-empty and hold no `{` or `}`",
            ));
        }
        self.keys = Keys::new(prefix);
        Ok(self)
    }

    /// How long a finished job's keys are kept (at least 1 ms).
    #[must_use]
    pub fn with_finished_ttl(mut self, ttl: Duration) -> Self {
        self.finished_ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// How many transitions each job's history keeps (at least 1).
    #[must_use]
    pub fn with_history_cap(mut self, cap: u32) -> Self {
        self.history_cap = cap.max(1);
        self
    }

    /// The key prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// The sharded pub/sub channel (`SSUBSCRIBE`) where a [`JobEvent`] is published as JSON
    /// when a job finishes.
    #[must_use]
    pub fn events_channel(&self) -> String {
        self.keys.events()
    }

    /// The sharded pub/sub channel where every transition is published as JSON
    /// (`{"id", "from", "to", "at_ms", "note"}`): [`Self::events_channel`] plus `:transitions`.
    #[must_use]
    pub fn transitions_channel(&self) -> String {
        self.keys.transitions()
    }

    /// The Redis key of idempotency key `key` within `tenant`'s keys (for operators, the
    /// console and tests).
    #[must_use]
    pub fn idempotency_key(&self, tenant: Option<&str>, key: &str) -> String {
        self.keys.idempotency(tenant, key)
    }

    /// The Redis key of a job's hash (for operators and tests).
    #[must_use]
    pub fn job_key(&self, id: &JobId) -> String {
        self.keys.job(id)
    }

    /// The Redis key of a job's history list (for operators and tests).
    #[must_use]
    pub fn history_key(&self, id: &JobId) -> String {
        self.keys.history(id)
    }

    /// Stores a new job atomically, refusing an id that exists: its record, history, index
    /// entries (`{jobs}:all`, its owner's `{jobs}:tenant:<owner>`, and unless terminal
    /// `{jobs}:active`, expected at once by Redis's clock, and the unfinished sets) and its
    /// per-state count, in one script. No limit is checked ([`Self::create_within`] does).
    pub async fn create(&self, record: &JobRecord) -> Result<(), StoreError> {
        let outcome = self
            .create_within(std::slice::from_ref(record), &CreateQuota::default())
            .await?;
        outcome.into_iter().next().unwrap_or(Ok(()))
    }

    /// Stores new jobs of one owner (or all without one) like [`Self::create`], checking
    /// `quota` in the same atomic step (one script, one round trip for them all): a job over a
    /// limit gets [`StoreError::QuotaExceeded`] and nothing of it is written; one whose id
    /// exists gets [`StoreError::AlreadyExists`]. The others are created, in order, so a
    /// batch takes as many as fit. The owner's daily count counts every job created, a
    /// terminal one (reused) included; terminal jobs never count as unfinished.
    pub async fn create_within(
        &self,
        records: &[JobRecord],
        quota: &CreateQuota,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let Some(first) = records.first() else {
            return Ok(Vec::new());
        };
        let owner = first.owner.as_deref();
        if records.iter().any(|r| r.owner.as_deref() != owner) {
            return Err(StoreError::invalid(
                "records",
                "jobs created together must have one owner",
            ));
        }
        let owner_key = owner.unwrap_or("-");
        let mut call = self.scripts.create.prepare_invoke();
        call.key(self.keys.all())
            .key(self.keys.active())
            .key(self.keys.unfinished())
            .key(self.keys.tenants())
            .key(self.keys.tenant_all(owner_key))
            .key(self.keys.tenant_unfinished(owner_key))
            .key(self.keys.tenant_today(owner_key))
            .key(self.keys.states())
            .arg(owner.unwrap_or(""))
            .arg(self.ttl_ms())
            .arg(self.keys.events())
            .arg(CreateQuota::arg(quota.unfinished))
            .arg(CreateQuota::arg(quota.per_day))
            .arg(CreateQuota::arg(quota.backlog))
            .arg(records.len())
            // A nonce per call: the script knows itself run again (see create.lua).
            .arg(uuid::Uuid::now_v7().simple().to_string())
            .arg(self.keys.state_prefix());
        for record in records {
            let id = &record.id;
            let fields = codec::encode(record)?;
            let skip = record
                .history
                .len()
                .saturating_sub(self.history_cap as usize);
            let history = record.history[skip..]
                .iter()
                .map(encode_transition)
                .collect::<Result<Vec<_>, _>>()?;
            call.key(self.keys.job(id))
                .key(self.keys.history(id))
                .arg(if record.state.is_terminal() { "1" } else { "0" })
                .arg(record.created_at)
                .arg(id.to_string())
                .arg(self.event_json(id, record.state, record.updated_at)?)
                .arg(fields.len());
            for (name, value) in &fields {
                call.arg(*name).arg(value);
            }
            call.arg(history.len());
            for entry in &history {
                call.arg(entry);
            }
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = call.invoke_async(&mut conn).await?;
        let to_midnight = reply
            .get(1)
            .copied()
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0);
        if reply.len() != records.len() + 2 {
            return Err(StoreError::corrupt(
                &self.keys.all(),
                "create",
                "short script reply",
            ));
        }
        Ok(records
            .iter()
            .zip(&reply[2..])
            .map(|(record, &code)| match code {
                1 => Ok(()),
                0 => Err(StoreError::AlreadyExists(record.id)),
                _ => Err(quota.refusal(code, to_midnight).map_or_else(
                    || StoreError::corrupt(&self.keys.all(), "create", "unknown reply code"),
                    StoreError::QuotaExceeded,
                )),
            })
            .collect())
    }

    /// How many jobs are unfinished now: every owner's together, or `tenant`'s (for operators,
    /// metrics and tests; the quotas count the same sets).
    pub async fn unfinished_count(&self, tenant: Option<&str>) -> Result<u64, StoreError> {
        let key = match tenant {
            None => self.keys.unfinished(),
            Some(tenant) => self.keys.tenant_unfinished(tenant),
        };
        let mut conn = self.conn.clone();
        Ok(redis::cmd("SCARD").arg(key).query_async(&mut conn).await?)
    }

    /// Redis's clock, Unix ms (one `TIME`): the clock every due time and staleness cutoff is
    /// measured by, whatever the host's clock says.
    pub async fn redis_now_ms(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await?;
        Ok(secs.saturating_mul(1000).saturating_add(micros / 1000))
    }

    /// The job's record, or `None` when no such job exists (or it expired). One round trip.
    pub async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let mut found = self.get_many(std::slice::from_ref(id)).await?;
        found.pop().flatten().transpose()
    }

    /// Records of several jobs in one round trip, in order; `None` for a missing job.
    pub(super) async fn get_many(
        &self,
        ids: &[JobId],
    ) -> Result<Vec<Option<Result<JobRecord, StoreError>>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.job(id))
                .lrange(self.keys.history(id), 0, -1);
        }
        let mut conn = self.conn.clone();
        let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        let mut replies = replies.into_iter();
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            let (Some(hash), Some(list)) = (replies.next(), replies.next()) else {
                return Err(StoreError::corrupt(
                    &self.keys.job(id),
                    "reply",
                    "short pipeline reply",
                ));
            };
            let key = self.keys.job(id);
            let fields: HashMap<String, String> =
                redis::from_redis_value(hash).map_err(|e| StoreError::corrupt(&key, "hash", e))?;
            if fields.is_empty() {
                records.push(None);
                continue;
            }
            let history: Vec<String> = redis::from_redis_value(list)
                .map_err(|e| StoreError::corrupt(&key, "history", e))?;
            records.push(Some(codec::decode(&key, fields, history)));
        }
        Ok(records)
    }

    /// Moves the job to `to` if it is in one of `from`, applying `patch` in the same atomic
    /// step: sets `updated_at`, appends to the history (capped), and when `to` is terminal
    /// publishes a [`JobEvent`] and starts the finished TTL on the job's keys. A job found in
    /// another state is left alone ([`Transitioned::Skipped`]). Every `from → to` must be
    /// allowed by [`JobState::can_transition_to`]; terminal states are never left.
    ///
    /// A job that ends stays in the active index: whoever ended it queues what the job still
    /// owes (its webhook) and then calls [`JobStore::remove_active`]. If that caller dies in
    /// between, the reconciler finds the ended job there and finishes the follow-up.
    pub async fn transition(
        &self,
        id: &JobId,
        from: &[JobState],
        to: JobState,
        patch: Patch,
    ) -> Result<Transitioned, StoreError> {
        if from.is_empty() {
            return Err(StoreError::invalid("from", "no expected state given"));
        }
        if let Some(bad) = from.iter().find(|f| !f.can_transition_to(to)) {
            return Err(StoreError::InvalidTransition { from: *bad, to });
        }
        let outcome = self.compare_and_set(id, from, Some(to), &patch).await?;
        if let Transitioned::Applied { from, .. } = outcome {
            self.count_transition(Some(from), to).await;
        }
        Ok(outcome)
    }

    /// Applies `patch` without changing the state, if the job is in `expected` (e.g. a fresh
    /// result URL while processing). Compare-and-set like [`JobStore::transition`].
    pub async fn patch(
        &self,
        id: &JobId,
        expected: JobState,
        patch: Patch,
    ) -> Result<Transitioned, StoreError> {
        self.compare_and_set(id, &[expected], None, &patch).await
    }

    /// An operator's retry of a `failed` job: moves it back to `to`, the unfinished state it
    /// failed from, clearing its error, so its task can run again. Only failed jobs reopen;
    /// the history keeps the failure and the reopening. Its deadline becomes `deadline` from
    /// now (Redis time).
    pub async fn reopen(
        &self,
        id: &JobId,
        to: JobState,
        note: &str,
        deadline: Duration,
    ) -> Result<Transitioned, StoreError> {
        if to.is_terminal() {
            return Err(StoreError::InvalidTransition {
                from: JobState::Failed,
                to,
            });
        }
        // A retried job gets a new deadline, from Redis's clock.
        let deadline_at = self
            .redis_now_ms()
            .await?
            .saturating_add(u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX));
        let patch = Patch::new()
            .clear_error()
            .deadline_at(deadline_at)
            .note(note);
        let outcome = self
            .compare_and_set(id, &[JobState::Failed], Some(to), &patch)
            .await?;
        if let Transitioned::Applied { from, .. } = outcome {
            self.count_transition(Some(from), to).await;
            self.touch_active(id, Duration::ZERO).await?;
        }
        Ok(outcome)
    }

    async fn compare_and_set(
        &self,
        id: &JobId,
        from: &[JobState],
        to: Option<JobState>,
        patch: &Patch,
    ) -> Result<Transitioned, StoreError> {
        let (mut sets, clears) = patch.to_fields()?;
        // A nonce per call: the script knows itself run again (see transition.lua, `tx`).
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        sets.push(("tx", nonce[..16].to_owned()));
        let expected: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let terminal = to.is_some_and(JobState::is_terminal);
        // The script stamps the transition with Redis's time (the event's `at_ms` too).
        let event = match to {
            Some(state) if terminal => self.event_json(id, state, 0)?,
            _ => String::new(),
        };
        let mut call = self.scripts.transition.prepare_invoke();
        call.key(self.keys.job(id))
            .key(self.keys.history(id))
            .key(self.keys.unfinished())
            .key(self.keys.stats_minute_prefix())
            .key(self.keys.img_prefix())
            .key(self.keys.state_prefix())
            .arg(expected.join(" "))
            .arg(to.map_or("", JobState::as_str))
            .arg("")
            .arg(patch.note_json()?)
            .arg(patch.attempts_increment())
            .arg(if terminal { "1" } else { "0" })
            .arg(self.ttl_ms())
            .arg(self.history_cap)
            .arg(self.keys.events())
            .arg(event)
            .arg(self.keys.tenant_prefix())
            .arg(sets.len());
        for (name, value) in &sets {
            call.arg(*name).arg(value);
        }
        for name in &clears {
            call.arg(*name);
        }
        let mut conn = self.conn.clone();
        let (code, state, now): (i64, String, String) = call.invoke_async(&mut conn).await?;
        let parse = |state: &str| {
            state
                .parse::<JobState>()
                .map_err(|e| StoreError::corrupt(&self.keys.job(id), "state", e))
        };
        match code {
            1 => Ok(Transitioned::Applied {
                from: parse(&state)?,
                at_ms: now.parse().unwrap_or_default(),
            }),
            0 => Ok(Transitioned::Skipped {
                current: parse(&state)?,
            }),
            _ => Err(StoreError::NotFound(*id)),
        }
    }

    fn event_json(&self, id: &JobId, state: JobState, at_ms: u64) -> Result<String, StoreError> {
        to_json(
            "event",
            &JobEvent {
                id: *id,
                state,
                at_ms,
            },
        )
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.finished_ttl.as_millis()).unwrap_or(u64::MAX)
    }
}
