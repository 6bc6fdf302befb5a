//! (e) Jobs in flight: many jobs processing upstream at once (the simulator takes 10 minutes),
//! each polled every interval: worker RSS and CPU, poll lateness, Redis memory per job.

use std::time::{Duration, Instant};

use crate::ctx::{Ctx, unique};
use crate::drain::now_ms;
use crate::procs::{S3, Sim, Worker, cpu_secs, status_kib};
use crate::redis_stats::snapshot;
use crate::report::Section;
use crate::scenario::end_to_end::{enqueue, producer};
use crate::stats::{fmt, percentile};

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let n: u64 = ctx.size(300, 20_000);
    let interval = Duration::from_secs(ctx.size(1, 5));
    let window = Duration::from_secs(ctx.size(5, 60));
    let mut s = Section::new(format!(
        "(e) jobs in flight: {n} jobs processing upstream, polled every {} s, watched {} s",
        interval.as_secs(),
        window.as_secs()
    ));
    let s3 = S3::start(ctx).await?;
    let bucket = s3.bucket("bench-e")?;
    let sim = Sim::start(
        ctx,
        &[
            "--processing-min",
            "10m",
            "--processing-max",
            "10m",
            "--result-size",
            "1KiB",
        ],
    )
    .await?;
    let prefix = unique("bench-e");
    let interval_setting = format!("{}s", interval.as_secs());
    let mut worker = Worker::start(
        ctx,
        &prefix,
        &sim,
        &s3,
        &bucket,
        &[("VIDQ__JOBS__POLL_INTERVAL", interval_setting.as_str())],
    )?;
    let producer = producer(ctx, &prefix).await?;
    let mut admin = ctx.redis().await?;
    let before = snapshot(&mut admin).await?;
    enqueue(&producer, &prefix, n).await?;

    // Every job submitted: the submit queue is empty and every job has a poll task.
    let submit = [
        format!("{prefix}:{{submit}}:due"),
        format!("{prefix}:{{submit}}:lease"),
    ];
    let poll = [
        format!("{prefix}:{{poll}}:due"),
        format!("{prefix}:{{poll}}:lease"),
    ];
    let deadline = Instant::now() + Duration::from_secs(60 + n / 50);
    loop {
        worker.check_running()?;
        // One pipeline per queue: their keys live in two slots (`{submit}`, `{poll}`).
        let (a, b): (u64, u64) = redis::pipe()
            .zcard(&submit[0])
            .zcard(&submit[1])
            .query_async(&mut admin)
            .await?;
        let (c, d): (u64, u64) = redis::pipe()
            .zcard(&poll[0])
            .zcard(&poll[1])
            .query_async(&mut admin)
            .await?;
        if a + b == 0 && c + d >= n {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "jobs not all submitted in time: submit {a}+{b}, poll {c}+{d} of {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the polls settle into their rhythm before measuring.
    tokio::time::sleep(interval).await;

    let status0 = status_requests(&sim).await?;
    let cpu0 = cpu_secs(worker.pid)?;
    let start = Instant::now();
    let mut overdue = Vec::new();
    let mut rss_max = 0u64;
    while start.elapsed() < window {
        worker.check_running()?;
        // The oldest poll task still waiting: how late the earliest due poll is right now.
        let oldest: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&poll[0])
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut admin)
            .await?;
        let now = now_ms() as f64;
        overdue.push(oldest.first().map_or(0.0, |(_, due)| (now - due).max(0.0)));
        rss_max = rss_max.max(status_kib(worker.pid, "VmRSS")?);
        // Sampling on a fixed cadence; this is measurement, not synchronisation.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs(worker.pid)? - cpu0;
    let status = status_requests(&sim).await? - status0;
    let after = snapshot(&mut admin).await?;
    let hwm = status_kib(worker.pid, "VmHWM")?;

    let expected = n as f64 / interval.as_secs_f64();
    s.row(
        "worker RSS, max sampled / peak (MiB)",
        format!(
            "{} / {}",
            fmt(rss_max as f64 / 1024.0),
            fmt(hwm as f64 / 1024.0)
        ),
        "",
        "< 150 MiB",
    );
    s.row(
        "worker CPU (% of one core)",
        fmt(cpu / secs * 100.0),
        "",
        "",
    );
    s.row(
        "status requests/s (expected n ÷ interval)",
        format!("{} ({})", fmt(status as f64 / secs), fmt(expected)),
        "",
        "",
    );
    for (p, name) in [(50.0, "p50"), (99.0, "p99"), (100.0, "max")] {
        s.row(
            format!("poll lateness {name} (ms): oldest waiting poll, sampled every 50 ms"),
            fmt(percentile(&mut overdue, p)),
            "",
            if p == 99.0 { "< 1,000 ms" } else { "" },
        );
    }
    s.row(
        "Redis bytes per job in flight (job record + poll task)",
        fmt(after.memory_per(&before, n)),
        "",
        "",
    );
    s.note(
        "Poll lateness is read from Redis: every 50 ms, how long the earliest due poll task has \
         been waiting (0 when none is due). It bounds each poll's lateness from above at the \
         sampled instants. The simulator answers every status request at once. Status \
         requests/s below n ÷ interval mean each job's period is the interval plus the time \
         to run the poll (the next poll is scheduled when a poll finishes).",
    );
    Ok(s)
}

/// Status requests the simulator answered so far, over all jobs.
async fn status_requests(sim: &Sim) -> anyhow::Result<u64> {
    let stats = sim.stats().await?;
    Ok(stats["status_requests"].as_object().map_or(0, |m| {
        m.values().filter_map(serde_json::Value::as_u64).sum()
    }))
}
