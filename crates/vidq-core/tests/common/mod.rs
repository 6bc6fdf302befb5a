//! Test harness shared by the job store tests: a store on the Redis at
//! `VIDQ_TEST_REDIS_URL` under a random key prefix, and clean-up of that prefix's keys.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use redis::AsyncCommands;
use vidq_core::{JobRecord, JobStore, TransformRequest};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Harness {
    pub store: JobStore,
    pub client: redis::Client,
    pub prefix: String,
}

pub fn redis_url() -> String {
    std::env::var("VIDQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub async fn harness() -> Harness {
    let prefix = format!("vidqtest-{}", uuid::Uuid::new_v4().simple());
    let client = redis::Client::open(redis_url()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let store = JobStore::new(conn).with_prefix(&prefix).unwrap();
    Harness {
        store,
        client,
        prefix,
    }
}

impl Harness {
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Deletes every key this test created (never FLUSHDB).
    pub async fn cleanup(self) {
        let mut conn = self.conn().await;
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<String> =
                conn.scan_match(format!("{}:*", self.prefix)).await.unwrap();
            let mut keys = Vec::new();
            while let Some(key) = iter.next_item().await {
                keys.push(key.unwrap());
            }
            keys
        };
        if !keys.is_empty() {
            let _: () = conn.del(keys).await.unwrap();
        }
    }
}

pub fn request() -> TransformRequest {
    TransformRequest::new("https://videos.example/in.mp4", 2000).unwrap()
}

pub fn queued() -> JobRecord {
    JobRecord::new(request(), Duration::from_secs(1800))
}
