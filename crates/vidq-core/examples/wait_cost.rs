//! What `redis.min_replicas_acked` costs a create: p50/p90/p99 of `JobStore::create` followed
//! by `wait_replicas`, with 0 and with 1, on a cluster or a Sentinel set. It writes jobs under
//! a fresh prefix and leaves them: point it at a throwaway deployment.
//!
//! ```text
//! VIDQ_WAIT_COST_MODE=cluster VIDQ_TEST_REDIS_CLUSTER_URLS=redis://127.0.0.1:7000 \
//!   cargo run --release -p vidq-core --example wait_cost
//! VIDQ_WAIT_COST_MODE=sentinel VIDQ_TEST_REDIS_SENTINELS=redis://127.0.0.1:26379 \
//!   VIDQ_TEST_REDIS_SENTINEL_MASTER=mymaster cargo run --release -p vidq-core --example wait_cost
//! ```

use std::time::{Duration, Instant};

use vidq_core::{JobRecord, JobStore, TransformRequest};
use vidq_redis::{Redis, RedisSettings};

const JOBS: usize = 300;

fn list(var: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn settings() -> RedisSettings {
    match std::env::var("VIDQ_WAIT_COST_MODE").as_deref() {
        Ok("sentinel") => RedisSettings::sentinel(
            list("VIDQ_TEST_REDIS_SENTINELS"),
            std::env::var("VIDQ_TEST_REDIS_SENTINEL_MASTER").unwrap_or_else(|_| "mymaster".into()),
        ),
        _ => RedisSettings::cluster(list("VIDQ_TEST_REDIS_CLUSTER_URLS")),
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut settings = settings();
    settings.replication_timeout = Duration::from_millis(500);
    println!("on {}", settings.describe());
    for acked in [0, 1] {
        settings.min_replicas_acked = acked;
        let redis = Redis::connect(&settings).await?;
        let store = JobStore::on_redis(&redis)
            .with_prefix(format!("waitcost-{:08x}", rand::random::<u32>()))?;
        let mut took = Vec::with_capacity(JOBS);
        for _ in 0..JOBS {
            let record = JobRecord::new(
                TransformRequest::new("https://videos.example/in.mp4", 2000)?,
                Duration::from_secs(1800),
            );
            let started = Instant::now();
            store.create(&record).await?;
            store.wait_replicas(&record.id).await;
            took.push(started.elapsed());
        }
        took.sort();
        println!(
            "min_replicas_acked={acked}: {JOBS} creates, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms",
            pct(&took, 0.5),
            pct(&took, 0.9),
            pct(&took, 0.99)
        );
    }
    Ok(())
}
