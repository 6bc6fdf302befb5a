//! Push N no-op tasks, then drain them with one apalis worker; print tasks/s, client round
//! trips per task (counted by the queue) and Redis commands per task (from `INFO
//! commandstats` deltas: approximate if other clients share the Redis) and Redis CPU per task
//! (`INFO cpu` deltas, likewise).
//!
//! `cargo run --release -p vidq-queue --example throughput -- --tasks 200000 --concurrency 100`
//! Optional: `--redis <url>` (default `VIDQ_TEST_REDIS_URL` or `redis://127.0.0.1:6379`),
//! `--payload <bytes>` (default 16) to also report Redis memory per waiting task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apalis::prelude::*;
use vidq_queue::{QueueConfig, RedisQueue};

struct Args {
    tasks: u64,
    concurrency: usize,
    redis: String,
    payload: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        tasks: 200_000,
        concurrency: 100,
        redis: std::env::var("VIDQ_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        payload: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--tasks" => a.tasks = value.parse()?,
            "--concurrency" => a.concurrency = value.parse()?,
            "--redis" => a.redis = value,
            "--payload" => a.payload = value.parse()?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(a)
}

async fn total_commands(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    Ok(info
        .lines()
        .filter_map(|l| l.split("calls=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum())
}

/// Redis's own CPU time so far (user + system, `INFO cpu`), in seconds.
async fn redis_cpu(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    Ok(info
        .lines()
        .filter(|l| l.starts_with("used_cpu_user:") || l.starts_with("used_cpu_sys:"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
        .sum())
}

async fn noop(_task: String, done: Data<Arc<AtomicU64>>) -> Result<(), BoxDynError> {
    done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let queue = format!("throughput-{:08x}", rand::random::<u32>());
    let mut config = QueueConfig::new(queue.as_str()).with_prefix("vidq-bench");
    config.claim_batch = 200;
    let q: RedisQueue<String> = RedisQueue::connect(&a.redis, config).await?;
    let mut admin = redis::Client::open(a.redis.as_str())?
        .get_multiplexed_async_connection()
        .await?;

    // Push.
    let payload = "x".repeat(a.payload);
    let batch: Vec<String> = vec![payload; 1000];
    let cmds0 = total_commands(&mut admin).await?;
    let cpu0 = redis_cpu(&mut admin).await?;
    let start = Instant::now();
    let mut pushed = 0;
    while pushed < a.tasks {
        let n = usize::try_from((a.tasks - pushed).min(1000))?;
        q.enqueue_batch(&batch[..n]).await?;
        pushed += n as u64;
    }
    let push_secs = start.elapsed().as_secs_f64();
    let cmds1 = total_commands(&mut admin).await?;
    let cpu1 = redis_cpu(&mut admin).await?;
    let mut bytes = 0u64;
    for kind in ["due", "data"] {
        let key = format!("vidq-bench:{{{queue}}}:{kind}");
        let b: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut admin)
            .await?;
        bytes += b.unwrap_or(0);
    }

    // Drain.
    let done = Arc::new(AtomicU64::new(0));
    let trips0 = q.round_trips();
    let cmds2 = total_commands(&mut admin).await?;
    let cpu2 = redis_cpu(&mut admin).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = WorkerBuilder::new("throughput")
        .backend(q.clone())
        .data(done.clone())
        .concurrency(a.concurrency)
        .build(noop);
    let start = Instant::now();
    let run = tokio::spawn(worker.run_until(async move {
        let _ = stop_rx.await;
        Ok::<(), std::io::Error>(())
    }));
    while done.load(Ordering::Relaxed) < a.tasks {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Every ack is awaited before its task completes, so the queue is empty now.
    let drain_secs = start.elapsed().as_secs_f64();
    let trips = q.round_trips() - trips0;
    let cmds3 = total_commands(&mut admin).await?;
    let cpu3 = redis_cpu(&mut admin).await?;
    let _ = stop_tx.send(());
    run.await??;
    let depth = q.depth().await?;

    let n = a.tasks as f64;
    println!(
        "queue {queue}: {} tasks, concurrency {}, payload {} B",
        a.tasks, a.concurrency, a.payload
    );
    println!(
        "push : {:>9.0} tasks/s  ({:.3} redis commands/task)",
        n / push_secs,
        (cmds1 - cmds0) as f64 / n
    );
    println!(
        "drain: {:>9.0} tasks/s  ({:.3} client round trips/task, ~{:.2} redis commands/task)",
        n / drain_secs,
        trips as f64 / n,
        (cmds3 - cmds2) as f64 / n
    );
    println!(
        "redis cpu: {:.2} µs/task pushing, {:.2} µs/task draining (INFO cpu, whole server)",
        (cpu1 - cpu0) * 1e6 / n,
        (cpu3 - cpu2) * 1e6 / n
    );
    println!(
        "redis memory per waiting task: ~{:.0} B (due + data keys)",
        bytes as f64 / n
    );
    println!("left after drain: {depth:?} (commands are approximate: the Redis is shared)");
    Ok(())
}
