//! Helpers shared by the queue's tests: each test gets its own prefix and queue name.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::{Duration, Instant};

pub mod proxy;

use vidq_queue::{QueueConfig, RedisQueue};

pub fn redis_url() -> String {
    std::env::var("VIDQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    format!("vqtest-{test}-{:016x}", rand::random::<u64>())
}

pub async fn queue<T>(
    url: &str,
    test: &str,
    adjust: impl FnOnce(QueueConfig) -> QueueConfig,
) -> RedisQueue<T> {
    let config = adjust(QueueConfig::new(test).with_prefix(unique_prefix(test)));
    connect(url, config).await.expect("connect to redis")
}

/// Poll `check` until it holds, or panic after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The cluster to run on instead of `redis_url()`: with `VIDQ_TEST_QUEUE_ON=cluster`, the
/// seeds of `VIDQ_TEST_REDIS_CLUSTER_URLS` (the single-node run stays the default).
pub fn cluster_urls() -> Option<Vec<String>> {
    if std::env::var("VIDQ_TEST_QUEUE_ON").ok().as_deref() != Some("cluster") {
        return None;
    }
    let urls = std::env::var("VIDQ_TEST_REDIS_CLUSTER_URLS")
        .expect("VIDQ_TEST_QUEUE_ON=cluster needs VIDQ_TEST_REDIS_CLUSTER_URLS");
    Some(urls.split(',').map(|u| u.trim().to_owned()).collect())
}

/// A queue on `url` — or, in the cluster run, on the cluster when `url` is `redis_url()`
/// (a proxy's URL stays a single node).
pub async fn connect<T>(
    url: &str,
    config: QueueConfig,
) -> Result<RedisQueue<T>, vidq_queue::QueueError> {
    match cluster_urls() {
        Some(urls) if url == redis_url() => {
            RedisQueue::connect_with(&vidq_redis::RedisSettings::cluster(urls), config).await
        }
        _ => RedisQueue::connect(url, config).await,
    }
}

/// A plain connection for a test's own reads and writes: to `url`, or to the cluster in the
/// cluster run (when `url` is `redis_url()`).
pub async fn admin(url: &str) -> vidq_redis::Conn {
    let settings = match cluster_urls() {
        Some(urls) if url == redis_url() => vidq_redis::RedisSettings::cluster(urls),
        _ => vidq_redis::RedisSettings::standalone(url),
    };
    vidq_redis::Redis::connect(&settings)
        .await
        .expect("connect to redis")
        .conn()
}

/// The nodes to SCAN: `url`, or every primary of the cluster in the cluster run.
async fn scan_nodes(url: &str) -> Vec<String> {
    let Some(urls) = cluster_urls().filter(|_| url == redis_url()) else {
        return vec![url.to_owned()];
    };
    let client = redis::Client::open(urls[0].as_str()).expect("cluster seed url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await
        .expect("CLUSTER NODES");
    nodes
        .lines()
        .filter(|line| {
            line.split(' ')
                .nth(2)
                .is_some_and(|flags| flags.contains("master"))
        })
        .filter_map(|line| line.split(' ').nth(1))
        .map(|addr| format!("redis://{}", addr.split('@').next().unwrap_or(addr)))
        .collect()
}

/// Every key under `prefix` (SCAN over our own prefix only; every primary on a cluster).
pub async fn keys_under(url: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for node in scan_nodes(url).await {
        keys.extend(keys_on_node(&node, prefix).await);
    }
    keys
}

async fn keys_on_node(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("scan");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// A stop signal for `Worker::run_until`.
pub fn stop_signal() -> (
    tokio::sync::oneshot::Sender<()>,
    impl Future<Output = Result<(), std::io::Error>> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
        Ok(())
    })
}
