//! What the operator's console reads beside the records: jobs ended per minute (counted by the
//! transition script by Redis's clock), the `img_uuid` index, an idempotency key's job, and
//! each job's webhook delivery attempts (written by the worker's `notify` task).

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;

use serde::{Deserialize, Serialize};

use super::{JobId, JobState, JobStore, StoreError};

/// KEYS[1] the job's hash, KEYS[2] its deliveries list; ARGV[1] the attempt (JSON), ARGV[2] the
/// cap, ARGV[3] the TTL (ms) when the job's hash has none: the list expires with the record.
static RECORD_DELIVERY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "redis.call('LPUSH', KEYS[2], ARGV[1]) \
         redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1) \
         local ttl = redis.call('PTTL', KEYS[1]) \
         if ttl <= 0 then ttl = tonumber(ARGV[3]) end \
         redis.call('PEXPIRE', KEYS[2], ttl) return 1",
    )
});

/// Delivery attempts kept per job (the newest).
pub const DELIVERIES_CAP: isize = 20;

/// The jobs that ended in one minute (Redis's clock), per terminal state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MinuteCounts {
    /// Unix minute (Unix ms / 60 000).
    pub minute: u64,
    /// Jobs that reached `succeeded` in it.
    pub succeeded: u64,
    /// Jobs that reached `failed` in it (`expired` counts as failed: its deadline passed).
    pub failed: u64,
    /// Jobs canceled in it.
    pub canceled: u64,
}

/// One attempt to deliver a job's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// When the attempt ended (Unix ms).
    pub at_ms: u64,
    /// The attempt number of the `notify` task (1 for the first).
    pub attempt: u32,
    /// The receiver's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong (`None` when delivered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `delivered`, `retry`, `gave_up`, `rejected`, `refused` or `unsigned`.
    pub outcome: String,
}

impl JobStore {
    /// The jobs ended in each of the last `minutes` minutes by Redis's clock (at most 120),
    /// oldest first, the current minute last. One `TIME` and one pipeline.
    pub async fn finished_per_minute(&self, minutes: u32) -> Result<Vec<MinuteCounts>, StoreError> {
        let minutes = u64::from(minutes.clamp(1, 120));
        let now_minute = self.redis_now_ms().await? / 60_000;
        let first = now_minute + 1 - minutes;
        let prefix = self.keys.stats_minute_prefix();
        let mut pipe = redis::pipe();
        for minute in first..=now_minute {
            pipe.hgetall(format!("{prefix}{minute}"));
        }
        let mut conn = self.conn.clone();
        let replies: Vec<HashMap<String, u64>> = pipe.query_async(&mut conn).await?;
        Ok((first..=now_minute)
            .zip(replies)
            .map(|(minute, counts)| {
                let n = |s: JobState| counts.get(s.as_str()).copied().unwrap_or(0);
                MinuteCounts {
                    minute,
                    succeeded: n(JobState::Succeeded),
                    failed: n(JobState::Failed) + n(JobState::Expired),
                    canceled: n(JobState::Canceled),
                }
            })
            .collect())
    }

    /// The job holding upstream's `img_uuid`, from the index the transition script writes.
    pub async fn job_by_img_uuid(&self, img_uuid: &str) -> Result<Option<JobId>, StoreError> {
        if img_uuid.is_empty() || img_uuid.len() > 200 {
            return Ok(None);
        }
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(format!("{}{img_uuid}", self.keys.img_prefix()))
            .query_async(&mut conn)
            .await?;
        Ok(raw.and_then(|r| r.parse().ok()))
    }

    /// The job an idempotency key of `tenant` (or of no tenant) points at.
    pub async fn idempotent_job(
        &self,
        tenant: Option<&str>,
        key: &str,
    ) -> Result<Option<JobId>, StoreError> {
        #[derive(Deserialize)]
        struct Held {
            id: JobId,
        }
        if key.is_empty() || key.len() > super::MAX_IDEMPOTENCY_KEY_BYTES {
            return Ok(None);
        }
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.keys.idempotency(tenant, key))
            .query_async(&mut conn)
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str::<Held>(&r).ok().map(|h| h.id)))
    }

    /// Records one webhook delivery attempt of job `id` (newest first, the last
    /// [`DELIVERIES_CAP`] kept, for as long as a finished job's record).
    pub async fn record_delivery(
        &self,
        id: &JobId,
        delivery: &WebhookDelivery,
    ) -> Result<(), StoreError> {
        let key = self.keys.deliveries(id);
        let json = serde_json::to_string(delivery)
            .map_err(|e| StoreError::corrupt(&key, "delivery", e))?;
        let fallback = u64::try_from(super::DEFAULT_FINISHED_TTL.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.conn.clone();
        RECORD_DELIVERY
            .key(self.keys.job(id))
            .key(&key)
            .arg(json)
            .arg(DELIVERIES_CAP)
            .arg(fallback)
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    /// Job `id`'s recorded webhook delivery attempts, newest first (unreadable ones skipped).
    pub async fn deliveries(&self, id: &JobId) -> Result<Vec<WebhookDelivery>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.deliveries(id))
            .arg(0)
            .arg(DELIVERIES_CAP - 1)
            .query_async(&mut conn)
            .await?;
        Ok(raw
            .iter()
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect())
    }
}
