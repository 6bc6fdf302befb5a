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

    /// `<prefix>:{jobs}:state:`: what a state follows in [`Self::state`] (the scripts build
    /// the key from the state they move a job to).
    pub(super) fn state_prefix(&self) -> String {
        format!("{}state:", self.base)
    }

    /// `<prefix>:{jobs}:state:<state>`: ZSET id → created_at of the jobs in that state now
    /// (kept by the create and transition scripts).
    pub(super) fn state(&self, state: &str) -> String {
        format!("{}state:{state}", self.base)
    }

    /// `<prefix>:{jobs}:tenant:<tenant>:state:<state>`: ZSET id → created_at of one owner's
    /// jobs in that state now. Tenant names hold no `:`, so this never names a tenant's index.
    pub(super) fn tenant_state(&self, tenant: &str, state: &str) -> String {
        format!("{}tenant:{tenant}:state:{state}", self.base)
    }

    /// `<prefix>:{jobs}:state_backfill`: hash of the one-time backfill's progress of the
    /// per-state indexes (`at`, `skip`, `done`).
    pub(super) fn state_backfill(&self) -> String {
        format!("{}state_backfill", self.base)
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

    /// `<prefix>:{jobs}:stats:minute:`: what the Unix minute (Redis's clock) follows in the
    /// hash of the jobs that ended in that minute, per terminal state (kept ~2 hours; the
    /// transition script builds the key from its clock).
    pub(super) fn stats_minute_prefix(&self) -> String {
        format!("{}:{{jobs}}:stats:minute:", self.prefix)
    }

    /// `<prefix>:{jobs}:img:`: what an upstream `img_uuid` follows in the key naming the job
    /// that holds it (the transition script writes it when it stores the `img_uuid`).
    pub(super) fn img_prefix(&self) -> String {
        format!("{}:{{jobs}}:img:", self.prefix)
    }

    /// `<prefix>:{jobs}:job:<id>:deliveries`: the capped list of the job's webhook delivery
    /// attempts (JSON, newest first).
    pub(super) fn deliveries(&self, id: &JobId) -> String {
        format!("{}:{{jobs}}:job:{id}:deliveries", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    //! The job store's key layout: every key and channel, and what each script and pipeline
    //! of the store is given, hashes to the one slot of `{jobs}` (redis-rs's own slot
    //! function, CRC16 of the hash tag as Redis Cluster computes it).

    use redis::cluster_routing::Slot;

    use super::*;

    fn ids() -> [JobId; 3] {
        [JobId::new(), JobId::new(), JobId::new()]
    }

    fn assert_one_slot(what: &str, keys: &[String]) {
        let jobs = Slot::for_key(JOBS_TAG);
        for key in keys {
            assert!(key.starts_with("vidq:{jobs}:"), "{what}: {key}");
            assert_eq!(
                Slot::for_key(key),
                jobs,
                "{what}: {key} is not in {{jobs}}'s slot"
            );
        }
    }

    #[test]
    fn every_key_and_channel_is_in_the_jobs_slot() {
        let k = Keys::new("vidq".to_owned());
        let [a, ..] = ids();
        let all = [
            k.job(&a),
            k.history(&a),
            k.transfer(&a),
            k.upload(&a),
            k.deliveries(&a),
            k.events(),
            k.transitions(),
            k.active(),
            k.all(),
            k.tenant_all("tenant-a"),
            k.tenants(),
            k.unfinished(),
            k.tenant_unfinished("tenant-a"),
            k.tenant_today("tenant-a"),
            k.state("queued"),
            k.state_backfill(),
            k.tenant_state("tenant-a", "succeeded"),
            k.states(),
            k.idempotency(None, "order-1"),
            k.idempotency(Some("tenant-a"), "order-1"),
            // A caller's key with braces of its own still lands in `{jobs}`'s slot: only the
            // first tag counts.
            k.idempotency(Some("tenant-a"), "{other}"),
            format!("{}29460000", k.stats_minute_prefix()),
            format!("{}0b1c-img", k.img_prefix()),
        ];
        assert_one_slot("key", &all);
        assert_eq!(k.transitions(), format!("{}:transitions", k.events()));
        assert_eq!(k.job(&a), format!("{}{a}", k.job_prefix()));
        assert_eq!(k.state("queued"), format!("{}queued", k.state_prefix()));
        assert_eq!(
            k.tenant_state("t", "queued"),
            format!("{}:state:queued", k.tenant_all("t"))
        );
        assert_eq!(
            k.tenant_state("t", "failed"),
            format!("{}t:state:failed", k.tenant_prefix())
        );
        assert_eq!(
            k.tenant_unfinished("t"),
            format!("{}t:unfinished", k.tenant_prefix())
        );
    }

    /// What each script of the store is handed as KEYS, and the keys it builds from a
    /// prefix it is handed (a prefix of `{jobs}` keys carries the tag, so they stay in the
    /// slot), and the channels it publishes on.
    #[test]
    fn each_script_and_pipeline_touches_one_slot() {
        let k = Keys::new("vidq".to_owned());
        let [a, b, c] = ids();
        let owner = "tenant-a";
        let scripts: Vec<(&str, Vec<String>)> = vec![
            (
                "create.lua (a batch of 3)",
                vec![
                    k.all(),
                    k.active(),
                    k.unfinished(),
                    k.tenants(),
                    k.tenant_all(owner),
                    k.tenant_unfinished(owner),
                    k.tenant_today(owner),
                    k.states(),
                    k.state_prefix(),
                    k.tenant_state(owner, "queued"),
                    k.job(&a),
                    k.history(&a),
                    k.job(&b),
                    k.history(&b),
                    k.job(&c),
                    k.history(&c),
                    k.events(),
                ],
            ),
            (
                "transition.lua",
                vec![
                    k.job(&a),
                    k.history(&a),
                    k.unfinished(),
                    k.stats_minute_prefix(),
                    k.img_prefix(),
                    k.state_prefix(),
                    k.state("processing"),
                    format!("{}{owner}:unfinished", k.tenant_prefix()),
                    format!("{}{owner}:state:processing", k.tenant_prefix()),
                    k.events(),
                    format!("{}:transitions", k.events()),
                ],
            ),
            ("claim_submission.lua", vec![k.job(&a)]),
            (
                "idempotency.lua, release",
                vec![k.idempotency(None, "x"), k.idempotency(Some(owner), "x")],
            ),
            (
                "older_than.lua",
                vec![k.all(), k.active(), k.tenant_all(owner)],
            ),
            (
                "backfill_states.lua",
                vec![
                    k.all(),
                    k.state_backfill(),
                    format!("{}{a}", k.job_prefix()),
                    k.state("queued"),
                    format!("{}{owner}:state:queued", k.tenant_prefix()),
                ],
            ),
            ("touch_active.lua", vec![k.active()]),
            (
                "prune_unfinished.lua",
                vec![
                    k.unfinished(),
                    k.tenant_unfinished(owner),
                    format!("{}{a}", k.job_prefix()),
                ],
            ),
            ("transfer scripts", vec![k.transfer(&a), k.upload(&a)]),
            ("record delivery", vec![k.job(&a), k.deliveries(&a)]),
            (
                "get_many pipeline",
                vec![k.job(&a), k.history(&a), k.job(&b), k.history(&b)],
            ),
            (
                "prune_zset pipeline",
                vec![
                    k.job(&a),
                    k.job(&b),
                    k.job(&c),
                    k.all(),
                    k.state("succeeded"),
                    k.tenant_state(owner, "failed"),
                ],
            ),
            ("count_transition pipeline", vec![k.states()]),
            (
                "finished_per_minute pipeline",
                vec![
                    format!("{}1", k.stats_minute_prefix()),
                    format!("{}2", k.stats_minute_prefix()),
                ],
            ),
        ];
        for (name, keys) in &scripts {
            assert_one_slot(name, keys);
        }
    }

    #[test]
    fn the_slot_function_is_redis_clusters() {
        // Redis Cluster's spec: CRC16/XMODEM("123456789") = 0x31C3, slot = crc % 16384; the
        // `{jobs}` tag's slot (also what `CLUSTER KEYSLOT vidq:{jobs}:all` answers).
        assert_eq!(Slot::for_key("123456789"), Slot::new(0x31C3).unwrap());
        assert_eq!(Slot::for_key("vidq:{jobs}:all"), Slot::new(9631).unwrap());
    }
}
