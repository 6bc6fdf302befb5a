//! Idempotency keys: the same key returns the same job.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::{Deserialize, Serialize};

use super::{JobId, JobStore, StoreError};

/// Longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// What [`JobStore::put_idempotency_key`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyOutcome {
    /// The key was free and now points at the given job.
    New,
    /// The key was already taken by job `id`; `same_body` tells whether that request had the
    /// same body hash (a different body under the same key is a caller error).
    Existing {
        /// The job the key points at.
        id: JobId,
        /// Whether the earlier request's body hash equals this one.
        same_body: bool,
    },
}

/// Deletes an idempotency key only while it still points at the given job.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local v = redis.call('GET', KEYS[1]) \
         if v and cjson.decode(v).id == ARGV[1] then return redis.call('DEL', KEYS[1]) end \
         return 0",
    )
});

#[derive(Serialize, Deserialize)]
struct Held {
    body_hash: String,
    id: JobId,
}

impl JobStore {
    /// Claims `key` for job `id` for `ttl` (at least 1 ms), atomically: the first caller gets
    /// [`IdempotencyOutcome::New`], later callers the job it points at. `body_hash` is any
    /// stable hash of the request body, compared on later calls.
    pub async fn put_idempotency_key(
        &self,
        key: &str,
        body_hash: &str,
        id: &JobId,
        ttl: Duration,
    ) -> Result<IdempotencyOutcome, StoreError> {
        self.put_tenant_idempotency_key(None, key, body_hash, id, ttl)
            .await
    }

    /// [`Self::put_idempotency_key`] within `tenant`'s keys: two tenants' same key are two
    /// keys (`None` is the unscoped key of callers without tenants).
    pub async fn put_tenant_idempotency_key(
        &self,
        tenant: Option<&str>,
        key: &str,
        body_hash: &str,
        id: &JobId,
        ttl: Duration,
    ) -> Result<IdempotencyOutcome, StoreError> {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
            return Err(StoreError::invalid(
                "idempotency key",
                "must be 1 to 255 bytes",
            ));
        }
        let redis_key = self.keys.idempotency(tenant, key);
        let value = serde_json::to_string(&Held {
            body_hash: body_hash.to_owned(),
            id: *id,
        })
        .map_err(|e| StoreError::invalid("idempotency key", e.to_string()))?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let held: Option<String> = self
            .scripts
            .idempotency
            .key(&redis_key)
            .arg(value)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await?;
        let Some(held) = held else {
            return Ok(IdempotencyOutcome::New);
        };
        let held: Held =
            serde_json::from_str(&held).map_err(|e| StoreError::corrupt(&redis_key, "value", e))?;
        Ok(IdempotencyOutcome::Existing {
            id: held.id,
            same_body: held.body_hash == body_hash,
        })
    }

    /// Frees `key` when it still points at job `id` (whose creation failed), so the caller's
    /// retry with the same key creates the job instead of finding a job that never existed.
    pub async fn release_idempotency_key(&self, key: &str, id: &JobId) -> Result<bool, StoreError> {
        self.release_tenant_idempotency_key(None, key, id).await
    }

    /// [`Self::release_idempotency_key`] within `tenant`'s keys.
    pub async fn release_tenant_idempotency_key(
        &self,
        tenant: Option<&str>,
        key: &str,
        id: &JobId,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = RELEASE
            .key(self.keys.idempotency(tenant, key))
            .arg(id.to_string())
            .invoke_async(&mut conn)
            .await?;
        Ok(n == 1)
    }
}
