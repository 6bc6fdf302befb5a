//! Redis key names. A job's keys share the job's own hash tag, so every script on one job
//! touches one Redis Cluster slot; the indexes are separate keys, never touched by a script
//! together with a job.

use super::JobId;

#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: String) -> Self {
        Self { prefix }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>:job:{<id>}`: the job's hash.
    pub(super) fn job(&self, id: &JobId) -> String {
        format!("{}:job:{{{id}}}", self.prefix)
    }

    /// `<prefix>:job:{<id>}:history`: the job's capped transition list.
    pub(super) fn history(&self, id: &JobId) -> String {
        format!("{}:job:{{{id}}}:history", self.prefix)
    }

    /// `<prefix>:events`: pub/sub channel of terminal events.
    pub(super) fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// `<prefix>:jobs:active`: ZSET id → time the job's next task is expected by.
    pub(super) fn active(&self) -> String {
        format!("{}:jobs:active", self.prefix)
    }

    /// `<prefix>:jobs:all`: ZSET id → created_at.
    pub(super) fn all(&self) -> String {
        format!("{}:jobs:all", self.prefix)
    }

    /// `<prefix>:jobs:tenant:<tenant>`: ZSET id → created_at of one owner's jobs.
    pub(super) fn tenant_all(&self, tenant: &str) -> String {
        format!("{}:jobs:tenant:{tenant}", self.prefix)
    }

    /// `<prefix>:jobs:tenants`: SET of the owners that have a `jobs:tenant:<tenant>` index.
    pub(super) fn tenants(&self) -> String {
        format!("{}:jobs:tenants", self.prefix)
    }

    /// `<prefix>:jobs:unfinished`: SET of the ids of every unfinished job (the backlog cap).
    pub(super) fn unfinished(&self) -> String {
        format!("{}:jobs:unfinished", self.prefix)
    }

    /// `<prefix>:job:`: what `{<id>}` follows in a job's hash key (for a script that meets ids).
    pub(super) fn job_prefix(&self) -> String {
        format!("{}:job:", self.prefix)
    }

    /// `<prefix>:jobs:tenant:`: what the owner's name and `:unfinished` follow in
    /// [`Self::tenant_unfinished`] (the transition script builds that key from the owner).
    pub(super) fn tenant_prefix(&self) -> String {
        format!("{}:jobs:tenant:", self.prefix)
    }

    /// `<prefix>:jobs:tenant:<tenant>:unfinished`: SET of the ids of one owner's unfinished
    /// jobs (its quota). Tenant names hold no `:`, so this never names a tenant's index.
    pub(super) fn tenant_unfinished(&self, tenant: &str) -> String {
        format!("{}:jobs:tenant:{tenant}:unfinished", self.prefix)
    }

    /// `<prefix>:jobs:tenant:<tenant>:today`: hash of the UTC day number (days since the
    /// Unix epoch, by Redis's clock) and the jobs the tenant created that day.
    pub(super) fn tenant_today(&self, tenant: &str) -> String {
        format!("{}:jobs:tenant:{tenant}:today", self.prefix)
    }

    /// `<prefix>:jobs:states`: hash state → jobs in it now (unfinished states) or jobs that
    /// ever ended in it (terminal states).
    pub(super) fn states(&self) -> String {
        format!("{}:jobs:states", self.prefix)
    }

    /// `<prefix>:idem:{<key>}` (no tenant) or `<prefix>:idem:<tenant>:{<key>}`: an
    /// idempotency key, scoped by its tenant.
    pub(super) fn idempotency(&self, tenant: Option<&str>, key: &str) -> String {
        match tenant {
            None => format!("{}:idem:{{{key}}}", self.prefix),
            Some(tenant) => format!("{}:idem:{tenant}:{{{key}}}", self.prefix),
        }
    }
}
