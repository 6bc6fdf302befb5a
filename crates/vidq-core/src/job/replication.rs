//! `WAIT` for replicas after the writes a client relies on (issue #13): a job created before
//! the API answers, an upstream `img_uuid` stored before the poll is scheduled.

use super::{JobId, JobStore};

impl JobStore {
    /// A store whose writes go through `redis` (its `conn()`), with
    /// [`JobStore::wait_replicas`] following `redis.min_replicas_acked`.
    #[must_use]
    pub fn on_redis(redis: &vidq_redis::Redis) -> Self {
        let mut store = Self::new(redis.conn());
        store.layer = Some(redis.clone());
        store
    }

    /// Waits (`WAIT`, on the store's connection and, in a cluster, on the primary holding
    /// job `id`) until `redis.min_replicas_acked` replicas hold what this store wrote so far,
    /// at most `redis.replication_timeout`. Never fails: a short acknowledgement is logged and
    /// counted (`vidq_redis_wait_short_total`). Without a connection layer, or with
    /// `min_replicas_acked = 0`, returns at once.
    pub async fn wait_replicas(&self, id: &JobId) -> vidq_redis::WaitOutcome {
        match &self.layer {
            Some(layer) => {
                let mut conn = self.conn.clone();
                layer.wait_replicas(&mut conn, &self.job_key(id)).await
            }
            None => vidq_redis::WaitOutcome::Skipped,
        }
    }
}
