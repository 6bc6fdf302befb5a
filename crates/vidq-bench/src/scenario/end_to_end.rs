//! (d) End to end: jobs per second through submit → poll → transfer → S3, with the simulator
//! processing instantly and 256 KiB results; Redis commands per job.

use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use vidq_core::{JobEvent, JobId, JobState, TransformRequest};
use vidq_producer::{Producer, ProducerSettings};

use crate::ctx::{Ctx, unique};
use crate::procs::{S3, Sim, Worker, cpu_secs, status_kib};
use crate::redis_stats::snapshot;
use crate::report::Section;
use crate::stats::fmt;

const POLL_INTERVAL: &str = "1s";

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let n: u64 = ctx.size(50, 3_000);
    let mut s = Section::new(format!(
        "(d) end to end: {n} jobs, instant upstream, 256 KiB results, one worker"
    ));
    let s3 = S3::start(ctx).await?;
    let bucket = s3.bucket("bench-d")?;
    let sim = Sim::start(
        ctx,
        &[
            "--processing-min",
            "0ms",
            "--processing-max",
            "0ms",
            "--result-size",
            "256KiB",
        ],
    )
    .await?;
    let prefix = unique("bench-d");
    let mut worker = Worker::start(
        ctx,
        &prefix,
        &sim,
        &s3,
        &bucket,
        &[("VIDQ__JOBS__POLL_INTERVAL", POLL_INTERVAL)],
    )?;
    let producer = producer(ctx, &prefix).await?;
    let events = subscribe(ctx, &producer).await?;

    let mut admin = ctx.redis().await?;
    let before = snapshot(&mut admin).await?;
    let cpu0 = cpu_secs(worker.pid)?;
    let start = Instant::now();
    enqueue(&producer, &prefix, n).await?;
    let enqueue_secs = start.elapsed().as_secs_f64();
    let (counts, first, last) = collect(events, n, &mut worker, start).await?;
    let secs = last.as_secs_f64();
    let after = snapshot(&mut admin).await?;
    let cpu = cpu_secs(worker.pid)? - cpu0;
    let rss = status_kib(worker.pid, "VmHWM")? as f64 / 1024.0;
    let succeeded = counts.iter().filter(|s| **s == JobState::Succeeded).count();
    anyhow::ensure!(
        succeeded as u64 == n,
        "only {succeeded} of {n} jobs succeeded: {counts:?}"
    );
    let cost = after.per(&before, n);

    s.row(
        "jobs/s, first enqueue → last succeeded",
        fmt(n as f64 / secs),
        "",
        "≥ 300",
    );
    s.row(
        "jobs/s, first succeeded → last succeeded",
        fmt((n - 1) as f64 / (last - first).as_secs_f64().max(1e-3)),
        "",
        "",
    );
    s.row(
        "enqueue rate (jobs/s, producer library)",
        fmt(n as f64 / enqueue_secs),
        "",
        "",
    );
    s.row("Redis commands per job", fmt(cost.commands), "", "");
    s.row("Redis script calls per job", fmt(cost.scripts), "", "");
    s.row("Redis CPU per job (µs)", fmt(cost.cpu_us), "", "");
    s.row(
        "worker CPU per job (ms)",
        fmt(cpu * 1000.0 / n as f64),
        "",
        "",
    );
    s.row("worker peak RSS (MiB)", fmt(rss), "", "");
    s.note(format!(
        "vidq-worker with its default concurrencies and `jobs.poll_interval = {POLL_INTERVAL}` \
         (the first poll of every job waits one interval); s3s-fs on local disk; jobs enqueued \
         by the producer library, 64 at a time; done = the job's terminal event."
    ));
    Ok(s)
}

pub(crate) async fn producer(ctx: &Ctx, prefix: &str) -> anyhow::Result<Producer> {
    let mut settings = ProducerSettings::default();
    settings.redis.url.clone_from(&ctx.redis_url);
    settings.redis.prefix = prefix.to_owned();
    Ok(Producer::connect(&settings).await?)
}

/// Enqueues `n` jobs, each with its own source URL, 64 at a time; returns their ids.
pub(crate) async fn enqueue(
    producer: &Producer,
    prefix: &str,
    n: u64,
) -> anyhow::Result<Vec<JobId>> {
    futures::stream::iter(0..n)
        .map(|i| async move {
            let url = format!("https://videos.example/{prefix}/{i}.mp4");
            let request = TransformRequest::new(&url, 2000)?;
            Ok::<JobId, anyhow::Error>(producer.enqueue(request).await?)
        })
        .buffer_unordered(64)
        .try_collect()
        .await
}

/// The terminal events, sharded (`SSUBSCRIBE`), subscribed before it returns so no event of
/// the jobs enqueued after it is missed.
async fn subscribe(ctx: &Ctx, producer: &Producer) -> anyhow::Result<vidq_redis::Subscription> {
    let settings = vidq_redis::RedisSettings::standalone(ctx.redis_url.as_str());
    let redis = vidq_redis::Redis::connect(&settings).await?;
    let mut events = redis.subscribe_sharded(vec![producer.store().events_channel()]);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(vidq_redis::Delivery::Subscribed)) => return Ok(events),
            Ok(Some(vidq_redis::Delivery::Message(_))) => {}
            Ok(None) | Err(_) => anyhow::bail!("could not subscribe to the job events"),
        }
    }
}

/// Terminal events until `n` arrived: their states, and when the first and last came.
async fn collect(
    mut stream: vidq_redis::Subscription,
    n: u64,
    worker: &mut Worker,
    start: Instant,
) -> anyhow::Result<(Vec<JobState>, Duration, Duration)> {
    let mut states = Vec::new();
    let mut first = None;
    let deadline = start + Duration::from_secs(120 + n / 10);
    while (states.len() as u64) < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {n} jobs finished in time",
            states.len()
        );
        worker.check_running()?;
        let Ok(Some(vidq_redis::Delivery::Message(msg))) =
            tokio::time::timeout(Duration::from_secs(1), stream.next()).await
        else {
            continue;
        };
        let event: JobEvent = serde_json::from_slice(msg.get_payload_bytes())?;
        first.get_or_insert_with(|| start.elapsed());
        states.push(event.state);
    }
    let last = start.elapsed();
    Ok((states, first.unwrap_or(last), last))
}
