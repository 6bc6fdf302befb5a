//! Redis key names of the job store. Every key (and channel) of the job store carries the one
//! hash tag `{jobs}`: `<prefix>:{jobs}:<rest>`, so each script and pipeline of the store,
//! whichever jobs and indexes it touches, touches one Redis Cluster slot. The price: a
//! deployment's job records live on one shard (its queues, `<prefix>:{<queue>}:…`, spread
//! over the others).

use super::JobId;

/// The hash tag every key of the job store carries.
pub(super) const JOBS_TAG: &str = "{jobs}";

#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
    /// `<prefix>:{jobs}:`, what every key below starts with.
    base: String,
}

impl Keys {
    pub(super) fn new(prefix: String) -> Self {
        let base = format!("{prefix}:{JOBS_TAG}:");
        Self { prefix, base }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>:{jobs}:job:<id>`: the job's hash.
    pub(super) fn job(&self, id: &JobId) -> String {
        format!("{}job:{id}", self.base)
    }

    /// `<prefix>:{jobs}:job:<id>:history`: the job's capped transition list.
    pub(super) fn history(&self, id: &JobId) -> String {
        format!("{}job:{id}:history", self.base)
    }

    /// `<prefix>:{jobs}:job:<id>:transfer`: the job's transfer record (hash).
    pub(super) fn transfer(&self, id: &JobId) -> String {
        format!("{}job:{id}:transfer", self.base)
    }

    /// `<prefix>:{jobs}:job:<id>:upload`: the upload id older releases recorded (string).
    pub(super) fn upload(&self, id: &JobId) -> String {
        format!("{}job:{id}:upload", self.base)
    }

    /// `<prefix>:{jobs}:events`: sharded pub/sub channel of terminal events.
    pub(super) fn events(&self) -> String {
        format!("{}events", self.base)
    }

    /// `<prefix>:{jobs}:events:transitions`: sharded pub/sub channel of every transition (the
    /// transition script publishes on [`Self::events`] plus `:transitions`).
    pub(super) fn transitions(&self) -> String {
        format!("{}events:transitions", self.base)
    }

    /// `<prefix>:{jobs}:active`: ZSET id → time the job's next task is expected by.
    pub(super) fn active(&self) -> String {
        format!("{}active", self.base)
    }

    /// `<prefix>:{jobs}:all`: ZSET id → created_at.
    pub(super) fn all(&self) -> String {
        format!("{}all", self.base)
    }

    /// `<prefix>:{jobs}:tenant:<tenant>`: ZSET id → created_at of one owner's jobs.
    pub(super) fn tenant_all(&self, tenant: &str) -> String {
        format!("{}tenant:{tenant}", self.base)
    }

    /// `<prefix>:{jobs}:tenants`: SET of the owners that have a `tenant:<tenant>` index.
    pub(super) fn tenants(&self) -> String {
        format!("{}tenants", self.base)
    }

    /// `<prefix>:{jobs}:unfinished`: SET of the ids of every unfinished job (the backlog cap).
    pub(super) fn unfinished(&self) -> String {
        format!("{}unfinished", self.base)
    }

    /// `<prefix>:{jobs}:job:`: what `<id>` follows in a job's hash key (for a script that
    /// meets ids).
    pub(super) fn job_prefix(&self) -> String {
        format!("{}job:", self.base)
    }

    /// `<prefix>:{jobs}:tenant:`: what the owner's name and `:unfinished` follow in
    /// [`Self::tenant_unfinished`] (the transition script builds that key from the owner).
    pub(super) fn tenant_prefix(&self) -> String {
        format!("{}tenant:", self.base)
    }

    /// `<prefix>:{jobs}:tenant:<tenant>:unfinished`: SET of the ids of one owner's unfinished
    /// jobs (its quota). Tenant names hold no `:`, so this never names a tenant's index.
    pub(super) fn tenant_unfinished(&self, tenant: &str) -> String {
        format!("{}tenant:{tenant}:unfinished", self.base)
    }

    /// `<prefix>:{jobs}:tenant:<tenant>:today`: hash of the UTC day number (days since the
    /// Unix epoch, by Redis's clock) and the jobs the tenant created that day.
    pub(super) fn tenant_today(&self, tenant: &str) -> String {
        format!("{}tenant:{tenant}:today", self.base)
    }

    /// `<prefix>:{jobs}:states`: hash state → jobs in it now (unfinished states) or jobs that
    /// ever ended in it (terminal states).
    pub(super) fn states(&self) -> String {
        format!("{}states", self.base)
    }

    /// `<prefix>:{jobs}:idem:{<key>}` (no tenant) or `<prefix>:{jobs}:idem:<tenant>:{<key>}`:
    /// an idempotency key, scoped by its tenant. The braces around the caller's key only
    /// delimit it (tenant names hold no `{`); the slot is the first tag's, `{jobs}`.
    pub(super) fn idempotency(&self, tenant: Option<&str>, key: &str) -> String {
        match tenant {
            None => format!("{}idem:{{{key}}}", self.base),
            Some(tenant) => format!("{}idem:{tenant}:{{{key}}}", self.base),
        }
    }
}
