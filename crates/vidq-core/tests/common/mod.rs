//! Test harness shared by the job store tests: a store on the Redis at
//! `VIDQ_TEST_REDIS_URL` under a random key prefix, and clean-up of that prefix's keys.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use redis::AsyncCommands;
use vidq_core::{JobRecord, JobStore, TransformRequest};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Harness {
    pub store: JobStore,
    /// The standalone Redis at `VIDQ_TEST_REDIS_URL` (the epoch and worker-registry tests).
    pub client: redis::Client,
    /// The store's Redis: that one, or with `VIDQ_TEST_JOBS_ON_CLUSTER=1` the cluster at
    /// `VIDQ_TEST_REDIS_CLUSTER_URLS`.
    pub redis: vidq_redis::Redis,
    pub prefix: String,
}

pub fn redis_url() -> String {
    std::env::var("VIDQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The seed URLs of the cluster the job-store tests run on, when asked to.
fn cluster_urls() -> Option<Vec<String>> {
    if std::env::var("VIDQ_TEST_JOBS_ON_CLUSTER").is_ok_and(|v| v == "1") {
        let urls = std::env::var("VIDQ_TEST_REDIS_CLUSTER_URLS")
            .expect("VIDQ_TEST_JOBS_ON_CLUSTER=1 needs VIDQ_TEST_REDIS_CLUSTER_URLS");
        return Some(urls.split(',').map(|u| u.trim().to_owned()).collect());
    }
    None
}

pub async fn harness() -> Harness {
    let prefix = format!("vidqtest-{}", uuid::Uuid::new_v4().simple());
    let client = redis::Client::open(redis_url()).unwrap();
    let settings = match cluster_urls() {
        Some(urls) => vidq_redis::RedisSettings::cluster(urls),
        None => vidq_redis::RedisSettings::standalone(redis_url()),
    };
    let redis = vidq_redis::Redis::connect(&settings).await.unwrap();
    let store = JobStore::new(redis.conn()).with_prefix(&prefix).unwrap();
    Harness {
        store,
        client,
        redis,
        prefix,
    }
}

impl Harness {
    /// A connection to the store's Redis (routed by key on a cluster).
    pub async fn conn(&self) -> vidq_redis::Conn {
        self.redis.conn()
    }

    /// A connection to the standalone Redis.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        self.client
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Deletes every key this test created (never FLUSHDB): found by `SCAN` on the standalone
    /// Redis and on each cluster node given, deleted through the store's connection.
    pub async fn cleanup(self) {
        let mut nodes = vec![redis_url()];
        nodes.extend(cluster_urls().unwrap_or_default());
        let mut keys = Vec::new();
        for url in nodes {
            let client = redis::Client::open(url).unwrap();
            let mut node = client.get_multiplexed_async_connection().await.unwrap();
            let mut iter: redis::AsyncIter<String> =
                node.scan_match(format!("{}:*", self.prefix)).await.unwrap();
            while let Some(key) = iter.next_item().await {
                keys.push(key.unwrap());
            }
        }
        keys.sort();
        keys.dedup();
        let mut raw = self.raw().await;
        let mut conn = self.conn().await;
        for key in keys {
            // One key per DEL: a cluster refuses a DEL across slots.
            let _: () = raw.del(&key).await.unwrap();
            let _: () = conn.del(&key).await.unwrap();
        }
    }
}

pub fn request() -> TransformRequest {
    TransformRequest::new("https://videos.example/in.mp4", 2000).unwrap()
}

pub fn queued() -> JobRecord {
    JobRecord::new(request(), Duration::from_secs(1800))
}
