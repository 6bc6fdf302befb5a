//! (c) The poll step: what one "not ready yet, run again in 5 s" step costs in Redis — a task
//! that reschedules itself — beside BullMQ's `moveToDelayed` + `DelayedError`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use serde::{Deserialize, Serialize};
use vidq_queue::{RedisQueue, Reschedule};

use crate::ctx::{Ctx, unique};
use crate::drain::{Tally, new_queue, push, push_and_drain, settled, stop_signal};
use crate::redis_stats::snapshot;
use crate::report::Section;
use crate::stats::fmt;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Step {
    again: bool,
}

/// What vidq's poll task does when upstream is still processing: ask for the same task to run
/// again in 5 s, then return Ok (the backend settles it in its batched, fenced ack script).
async fn step(
    task: Step,
    again: Data<Reschedule>,
    tally: Data<Arc<Tally>>,
) -> Result<(), BoxDynError> {
    if task.again {
        again.after(AGAIN_IN);
    }
    tally.record(None);
    Ok(())
}

const CONCURRENCY: usize = 100;

/// How far the next step is scheduled. The step is "run again in 5 s"; the cost of a
/// step does not depend on the delay, and 5 minutes keeps every re-scheduled task from coming
/// due while a long run is still measuring.
const AGAIN_IN: Duration = Duration::from_secs(300);

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let n: u64 = ctx.size(2_000, 50_000);
    let mut s = Section::new(format!(
        "(c) the poll step: {n} \"not ready, run again in 5 s\" steps"
    ));
    let q: RedisQueue<Step> = new_queue(ctx, "poll-step").await?;
    push(&q, n, &Step { again: true }).await?;

    let mut admin = ctx.redis().await?;
    let tally = Arc::new(Tally::default());
    let trips0 = q.round_trips();
    let before = snapshot(&mut admin).await?;
    let (stop, until) = stop_signal();
    let worker = WorkerBuilder::new(unique("bench-poll-step"))
        .backend(q.clone())
        .data(tally.clone())
        .concurrency(CONCURRENCY)
        .build(step);
    let start = Instant::now();
    let run = tokio::spawn(worker.run_until(until));
    crate::wait::until(
        "every step to run",
        Duration::from_secs(600),
        Duration::from_millis(1),
        || async { Ok((tally.done() >= n).then_some(())) },
    )
    .await?;
    settled(&q, Duration::from_secs(30)).await?;
    let secs = start.elapsed().as_secs_f64();
    let after = snapshot(&mut admin).await?;
    let trips = (q.round_trips() - trips0) as f64 / n as f64;
    let _ = stop.send(());
    run.await??;
    let depth = q.depth().await?;
    anyhow::ensure!(
        depth.scheduled == n,
        "expected {n} re-scheduled tasks, found {depth:?}"
    );
    let cost = after.per(&before, n);
    let plain = push_and_drain(ctx, n, CONCURRENCY).await?;

    let peer = crate::bullmq::run(
        ctx,
        "poll-step",
        &[
            ("n", n.to_string()),
            ("concurrency", CONCURRENCY.to_string()),
            ("delay-ms", AGAIN_IN.as_millis().to_string()),
        ],
    )
    .await?;
    let peer_plain = crate::bullmq::run(
        ctx,
        "drain",
        &[
            ("n", n.to_string()),
            ("concurrency", CONCURRENCY.to_string()),
        ],
    )
    .await?;
    s.row(
        "script calls per step",
        fmt(cost.scripts),
        fmt(peer.num("scripts_per_task")),
        "1",
    );
    s.row(
        "Redis commands per step (scripts' inner commands included)",
        fmt(cost.commands),
        fmt(peer.num("commands_per_task")),
        "",
    );
    s.row(
        "… of which beyond a plain no-op task",
        fmt(cost.commands - plain.cost.commands),
        fmt(peer.num("commands_per_task") - peer_plain.num("commands_per_task")),
        "",
    );
    s.row("client round trips per step", fmt(trips), "", "");
    s.row(
        "Redis CPU per step (µs)",
        fmt(cost.cpu_us),
        fmt(peer.num("redis_cpu_us_per_task")),
        "",
    );
    s.row(
        "steps/s (one worker, concurrency 100)",
        fmt(n as f64 / secs),
        fmt(peer.num("steps_per_s")),
        "",
    );
    s.note(format!(
        "The step schedules the next run 5 min ahead rather than 5 s so none comes due during \
         the measurement (the cost does not depend on the delay). \
         vidq's step is a `Reschedule`: the handler asks for the same task to run again and \
         returns Ok; the backend settles it in its ack script, which moves the id from the \
         lease set back to the due set with the new score (payload kept, fencing token \
         checked, attempts counted from 1 again) and is batched with other settlements: one \
         atomic script call covers many steps (a plain no-op task here: {:.3} script calls, \
         {:.3} round trips per task). BullMQ's step is `moveToDelayed` then a `DelayedError`.",
        plain.cost.scripts, plain.round_trips
    ));
    Ok(s)
}
