//! (a) The queue layer: N no-op tasks through vidq-queue with one apalis worker at its best
//! concurrency, beside BullMQ draining the same N no-op jobs on the same Redis, beside
//! `redis-benchmark`'s raw operations per second.

use anyhow::Context as _;

use crate::ctx::Ctx;
use crate::drain::{Drain, push_and_drain};
use crate::report::Section;
use crate::stats::{fmt, ratio};

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    if ctx.cluster.is_some() {
        return run_on_cluster(ctx).await;
    }
    let n: u64 = ctx.size(5_000, 200_000);
    let levels: &[usize] = if ctx.quick { &[100] } else { &[10, 100, 500] };
    let mut s = Section::new(format!(
        "(a) queue layer: {n} no-op tasks, one worker process"
    ));

    let mut best: Option<(usize, Drain)> = None;
    let mut peer_best: Option<(usize, crate::bullmq::Peer)> = None;
    for &c in levels {
        let d = push_and_drain(ctx, n, c).await?;
        let p = crate::bullmq::run(
            ctx,
            "drain",
            &[("n", n.to_string()), ("concurrency", c.to_string())],
        )
        .await?;
        s.row(
            format!("tasks/s at concurrency {c}"),
            fmt(d.tasks_per_s),
            fmt(p.num("tasks_per_s")),
            "",
        );
        if best
            .as_ref()
            .is_none_or(|(_, b)| d.tasks_per_s > b.tasks_per_s)
        {
            best = Some((c, d));
        }
        if peer_best
            .as_ref()
            .is_none_or(|(_, b)| p.num("tasks_per_s") > b.num("tasks_per_s"))
        {
            peer_best = Some((c, p));
        }
    }
    let (c, d) = best.context("no concurrency level ran")?;
    let (pc, p) = peer_best.context("no BullMQ level ran")?;
    let peer_rate = p.num("tasks_per_s");
    s.row(
        format!("best tasks/s (vidq at c{c}, BullMQ at c{pc})"),
        fmt(d.tasks_per_s),
        fmt(peer_rate),
        "",
    );
    s.row("vidq ÷ BullMQ", ratio(d.tasks_per_s, peer_rate), "", "≥ 4×");
    s.row(
        "Redis commands per task (scripts' inner commands included)",
        fmt(d.cost.commands),
        fmt(p.num("commands_per_task")),
        "",
    );
    s.row(
        "script calls per task",
        fmt(d.cost.scripts),
        fmt(p.num("scripts_per_task")),
        "",
    );
    s.row(
        "Redis CPU per task (µs)",
        fmt(d.cost.cpu_us),
        fmt(p.num("redis_cpu_us_per_task")),
        "",
    );
    s.row("client round trips per task", fmt(d.round_trips), "", "");

    let raw = redis_benchmark(ctx, ctx.size(20_000, 500_000)).await?;
    for (test, rps) in &raw {
        s.row(
            format!("redis-benchmark {test} ops/s (50 clients, no pipeline)"),
            "",
            fmt(*rps),
            "",
        );
    }
    if let Some((_, set)) = raw.iter().find(|(t, _)| t == "SET") {
        s.row(
            "vidq tasks/s ÷ raw SET ops/s",
            ratio(d.tasks_per_s, *set),
            ratio(peer_rate, *set),
            "",
        );
        s.row(
            "Redis commands/s executed while draining",
            fmt(d.tasks_per_s * d.cost.commands),
            fmt(peer_rate * p.num("commands_per_task")),
            "",
        );
    }
    s.note(format!(
        "vidq: `RedisQueue` (claim batch 200, batched acks) and one apalis worker in the harness \
         process; BullMQ {}: `Queue.addBulk` by 1,000 then one `Worker` in a Node.js process, \
         default job options (completed jobs kept). Times cover draining only; pushing is not \
         timed here. The peer column of redis-benchmark rows is Redis itself.",
        p.version()
    ));
    Ok(s)
}

/// (a) on a Redis Cluster (`--redis-cluster`): the same drain through the cluster connection,
/// its counters read on the primary holding the queue's slot. BullMQ and redis-benchmark are
/// left out (they would need their own cluster clients); run (a) without the option beside it.
async fn run_on_cluster(ctx: &Ctx) -> anyhow::Result<Section> {
    let n: u64 = ctx.size(5_000, 200_000);
    let levels: &[usize] = if ctx.quick { &[100] } else { &[10, 100, 500] };
    let nodes = ctx.cluster.as_ref().map_or(0, Vec::len);
    let mut s = Section::new(format!(
        "(a) queue layer on a Redis Cluster ({nodes} seed nodes): {n} no-op tasks, one worker \
         process"
    ));
    let mut best: Option<(usize, Drain)> = None;
    for &c in levels {
        let d = push_and_drain(ctx, n, c).await?;
        s.row(
            format!("tasks/s at concurrency {c}"),
            fmt(d.tasks_per_s),
            "",
            "",
        );
        if best
            .as_ref()
            .is_none_or(|(_, b)| d.tasks_per_s > b.tasks_per_s)
        {
            best = Some((c, d));
        }
    }
    let (c, d) = best.context("no concurrency level ran")?;
    s.row(
        format!("best tasks/s (at c{c})"),
        fmt(d.tasks_per_s),
        "",
        "",
    );
    s.row(
        "Redis commands per task on the queue's primary (scripts' inner commands included)",
        fmt(d.cost.commands),
        "",
        "",
    );
    s.row("script calls per task", fmt(d.cost.scripts), "", "");
    s.row(
        "Redis CPU per task on the queue's primary (µs)",
        fmt(d.cost.cpu_us),
        "",
        "",
    );
    s.row("client round trips per task", fmt(d.round_trips), "", "");
    s.note(
        "vidq: `RedisQueue` on a cluster connection (`redis.mode = cluster`, claim batch 200, \
         batched acks) and one apalis worker in the harness process; a queue's keys share one \
         hash slot, so one primary serves it. No peer column: BullMQ and redis-benchmark run \
         only in the standalone (a).",
    );
    Ok(s)
}

/// `redis-benchmark -t set,get,zadd --csv` against the measured Redis: (test, ops/s).
async fn redis_benchmark(ctx: &Ctx, requests: u64) -> anyhow::Result<Vec<(String, f64)>> {
    let (host, port) = ctx.redis_host_port()?;
    let out = tokio::process::Command::new("redis-benchmark")
        .args([
            "-h",
            &host,
            "-p",
            &port.to_string(),
            "-c",
            "50",
            "-t",
            "set,get,zadd",
        ])
        .args(["-n", &requests.to_string(), "--csv"])
        .kill_on_drop(true)
        .output()
        .await
        .context("running redis-benchmark (it comes with redis-server)")?;
    anyhow::ensure!(out.status.success(), "redis-benchmark failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        if let (Some(test), Some(rps)) = (cols.first(), cols.get(1).and_then(|r| r.parse().ok())) {
            rows.push(((*test).to_owned(), rps));
        }
    }
    anyhow::ensure!(
        !rows.is_empty(),
        "redis-benchmark printed no figures: {text}"
    );
    Ok(rows)
}
