//! vidq-queue across real worker processes: SIGKILL mid-task, exactly-once across three
//! processes, and a task that aborts its process every time.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use vidq_queue::{Depth, QueueConfig, RedisQueue};

fn redis_url() -> String {
    std::env::var("VIDQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

struct Setup {
    url: String,
    prefix: String,
    queue: String,
    q: RedisQueue<u64>,
    redis: redis::aio::MultiplexedConnection,
}

async fn setup(test: &str, lease_ms: u64, max_deliveries: u64) -> Setup {
    let url = redis_url();
    let nonce: u64 = std::process::id().into();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("vqproc-{test}-{nonce}-{stamp}");
    let queue = test.to_owned();
    let mut config = QueueConfig::new(queue.as_str())
        .with_prefix(prefix.as_str())
        .with_lease(Duration::from_millis(lease_ms));
    config.max_deliveries = max_deliveries;
    let q = RedisQueue::connect(&url, config).await.unwrap();
    let redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    Setup {
        url,
        prefix,
        queue,
        q,
        redis,
    }
}

/// Kills (SIGKILL) the process on drop, so a failing test leaves no orphan.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Setup {
    fn spawn(&self, mode: &str, lease_ms: u64, max_deliveries: u64, concurrency: u64) -> Proc {
        Proc(
            Command::new(env!("CARGO_BIN_EXE_queue_worker"))
                .args([&self.url, &self.prefix, &self.queue, mode])
                .args([lease_ms, max_deliveries, concurrency].map(|n| n.to_string()))
                .spawn()
                .expect("start queue_worker"),
        )
    }

    async fn counts(&self, what: &str) -> HashMap<u64, u64> {
        let mut r = self.redis.clone();
        r.hgetall(format!("{}:{what}", self.prefix)).await.unwrap()
    }

    async fn cleanup(&self) {
        let mut r = self.redis.clone();
        let _: () = r
            .del(&[
                format!("{}:started", self.prefix),
                format!("{}:done", self.prefix),
            ])
            .await
            .unwrap();
        self.q.purge_dead().await.unwrap();
    }
}

async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sigterm(p: &Proc) {
    let status = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_of_a_killed_worker_runs_again_on_another_once_its_lease_expires() {
    let s = setup("sigkill", 1000, 10).await;
    let mut a = s.spawn("record-sleep-1500", 1000, 10, 4);
    s.q.enqueue(&42).await.unwrap();
    wait_until(Duration::from_secs(30), "task started on A", || async {
        s.counts("started").await.get(&42) == Some(&1)
    })
    .await;
    a.0.kill().unwrap(); // SIGKILL mid-task
    a.0.wait().unwrap();
    let killed_at = Instant::now();
    let b = s.spawn("record-sleep-1500", 1000, 10, 4);
    wait_until(Duration::from_secs(30), "task done on B", || async {
        s.counts("done").await.get(&42) == Some(&1)
    })
    .await;
    assert_eq!(
        s.counts("started").await.get(&42),
        Some(&2),
        "ran again after the kill"
    );
    assert!(killed_at.elapsed() < Duration::from_secs(10));
    wait_until(Duration::from_secs(10), "queue empty", || async {
        s.q.depth().await.unwrap() == Depth::default()
    })
    .await;
    sigterm(&b);
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_complete_each_of_20k_tasks_exactly_once() {
    let s = setup("three", 5000, 10).await;
    let tasks: Vec<u64> = (0..20_000).collect();
    s.q.enqueue_batch(&tasks).await.unwrap();
    let procs: Vec<Proc> = (0..3).map(|_| s.spawn("record", 5000, 10, 50)).collect();
    wait_until(Duration::from_secs(90), "20k tasks done", || async {
        let mut r = s.redis.clone();
        let n: u64 = r.hlen(format!("{}:done", s.prefix)).await.unwrap();
        n == 20_000 && s.q.depth().await.unwrap() == Depth::default()
    })
    .await;
    for p in &procs {
        sigterm(p);
    }
    for mut p in procs {
        let status = p.0.wait().unwrap();
        assert!(
            status.success(),
            "worker exited cleanly on SIGTERM: {status}"
        );
    }
    let done = s.counts("done").await;
    assert_eq!(done.len(), 20_000);
    let dupes: Vec<_> = done.iter().filter(|(_, c)| **c != 1).collect();
    assert!(dupes.is_empty(), "tasks not run exactly once: {dupes:?}");
    assert_eq!(s.q.depth().await.unwrap(), Depth::default());
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_aborts_its_worker_every_time_is_dead_after_max_deliveries() {
    let s = setup("crash", 300, 3).await;
    s.q.enqueue(&7).await.unwrap();
    // Start workers one after another until the task is dead; each aborts on it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut spawned = 0;
    while s.q.depth().await.unwrap().dead == 0 {
        assert!(Instant::now() < deadline, "crashing task never died");
        spawned += 1;
        assert!(spawned <= 8, "too many worker restarts");
        let mut p = s.spawn("crash-always", 300, 3, 1);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) && p.0.try_wait().unwrap().is_none() {
            if s.q.depth().await.unwrap().dead == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        s.counts("started").await.get(&7),
        Some(&3),
        "delivered exactly max times"
    );
    let dead = s.q.dead_tasks(0, 10).await.unwrap();
    assert!(
        dead[0].reason.contains("max deliveries 3"),
        "{}",
        dead[0].reason
    );
    s.cleanup().await;
}
