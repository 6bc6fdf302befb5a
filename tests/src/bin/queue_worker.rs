//! A tiny vidq-queue worker process for the multi-process queue tests.
//!
//! `queue_worker <redis-url> <prefix> <queue> <mode> [lease-ms] [max-deliveries] [concurrency]`
//!
//! Modes: `noop`; `sleep-<ms>`; `record` (HINCRBY `<prefix>:done` <task> 1);
//! `record-sleep-<ms>` (HINCRBY `<prefix>:started`, sleep, then record done);
//! `crash-always` (HINCRBY `<prefix>:started`, then abort the process).
//! Runs until SIGTERM, then drains and exits 0.

use std::time::Duration;

use anyhow::{Context, bail};
use apalis::prelude::*;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use vidq_queue::{QueueConfig, RedisQueue};

#[derive(Clone)]
struct Ctx {
    redis: ConnectionManager,
    prefix: String,
    mode: Mode,
}

#[derive(Clone, Copy)]
enum Mode {
    Noop,
    Sleep(u64),
    Record,
    RecordSleep(u64),
    CrashAlways,
}

fn parse_mode(s: &str) -> anyhow::Result<Mode> {
    Ok(match s {
        "noop" => Mode::Noop,
        "record" => Mode::Record,
        "crash-always" => Mode::CrashAlways,
        _ if s.starts_with("record-sleep-") => {
            Mode::RecordSleep(s["record-sleep-".len()..].parse()?)
        }
        _ if s.starts_with("sleep-") => Mode::Sleep(s["sleep-".len()..].parse()?),
        _ => bail!("unknown mode {s}"),
    })
}

async fn handle(task: u64, ctx: Data<Ctx>) -> Result<(), BoxDynError> {
    let mut redis = ctx.redis.clone();
    let started = format!("{}:started", ctx.prefix);
    let done = format!("{}:done", ctx.prefix);
    match ctx.mode {
        Mode::Noop => {}
        Mode::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Mode::Record => {
            let _: i64 = redis.hincr(&done, task, 1).await?;
        }
        Mode::RecordSleep(ms) => {
            let _: i64 = redis.hincr(&started, task, 1).await?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let _: i64 = redis.hincr(&done, task, 1).await?;
        }
        Mode::CrashAlways => {
            let _: i64 = redis.hincr(&started, task, 1).await?;
            std::process::abort();
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        bail!(
            "usage: queue_worker <redis-url> <prefix> <queue> <mode> [lease-ms] [max-deliveries] [concurrency]"
        );
    }
    let (url, prefix, queue, mode) = (&args[1], &args[2], &args[3], parse_mode(&args[4])?);
    let arg = |i: usize, default: u64| -> anyhow::Result<u64> {
        args.get(i)
            .map_or(Ok(default), |s| s.parse().context("numeric argument"))
    };
    let mut config = QueueConfig::new(queue.as_str())
        .with_prefix(prefix.as_str())
        .with_lease(Duration::from_millis(arg(5, 30_000)?));
    config.max_deliveries = arg(6, 10)?;
    let concurrency = usize::try_from(arg(7, 50)?)?;
    let backend: RedisQueue<u64> = RedisQueue::connect(url, config).await?;
    let client = redis::Client::open(url.as_str())?;
    let ctx = Ctx {
        redis: ConnectionManager::new(client).await?,
        prefix: prefix.clone(),
        mode,
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let worker = WorkerBuilder::new(format!("queue-worker-{}", std::process::id()))
        .backend(backend)
        .data(ctx)
        .concurrency(concurrency)
        .build(handle);
    worker
        .run_until(async move {
            term.recv().await;
            Ok::<(), std::io::Error>(())
        })
        .await?;
    Ok(())
}
