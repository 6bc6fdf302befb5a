//! (b) Scheduled work: N tasks due at the same instant (time from due to last done), and
//! lateness of tasks due at times spread over a window; both beside BullMQ's delayed jobs.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use futures::SinkExt as _;
use serde::{Deserialize, Serialize};
use vidq_queue::{RedisQueue, RunAfter};

use crate::ctx::{Ctx, unique};
use crate::drain::{Tally, new_queue, now_ms, settled, stop_signal};
use crate::report::Section;
use crate::stats::{fmt, percentile};

/// A task that knows when it was due.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Due {
    due: u64,
}

async fn on_due(task: Due, tally: Data<Arc<Tally>>) -> Result<(), BoxDynError> {
    tally.record(Some(task.due));
    Ok(())
}

const CONCURRENCY: usize = 200;

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let n_same: u64 = ctx.size(2_000, 50_000);
    let lead_ms: u64 = ctx.size(2_000, 10_000);
    let n_spread: u64 = ctx.size(300, 2_000);
    let window_ms: u64 = ctx.size(3_000, 20_000);
    let mut s = Section::new(format!(
        "(b) scheduled work: {n_same} tasks due at one instant; {n_spread} due over {} s",
        window_ms / 1000
    ));

    // Same instant.
    let due = now_ms() + lead_ms;
    let (tally, pushed_in_time) = run_batch(ctx, vec![due; usize::try_from(n_same)?]).await?;
    let peer = crate::bullmq::run(
        ctx,
        "due",
        &[
            ("n", n_same.to_string()),
            ("lead-ms", lead_ms.to_string()),
            ("concurrency", CONCURRENCY.to_string()),
        ],
    )
    .await?;
    anyhow::ensure!(
        pushed_in_time,
        "pushing took longer than the {lead_ms} ms lead"
    );
    anyhow::ensure!(
        peer.flag("pushed_before_due"),
        "BullMQ pushing took longer than the {lead_ms} ms lead"
    );
    let last = tally.last_ms.load(std::sync::atomic::Ordering::Relaxed);
    s.row(
        format!("{n_same} due at once: last done after due (ms)"),
        fmt(last as f64 - due as f64),
        fmt(peer.num("last_done_after_due_ms")),
        if ctx.quick { "" } else { "≤ 1,200 ms" },
    );
    s.row(
        "done / errors / early",
        format!(
            "{} / 0 / {}",
            tally.done(),
            tally.early.load(std::sync::atomic::Ordering::Relaxed)
        ),
        format!("{} / {} / –", peer.num("done"), peer.num("errors")),
        "all, no error",
    );

    // Spread over a window.
    let start = now_ms() + 1_000;
    let dues: Vec<u64> = (0..n_spread)
        .map(|_| start + rand::random_range(0..window_ms))
        .collect();
    let (tally, _) = run_batch(ctx, dues).await?;
    let peer = crate::bullmq::run(
        ctx,
        "spread",
        &[
            ("n", n_spread.to_string()),
            ("spread-ms", window_ms.to_string()),
            ("lead-ms", "1000".to_owned()),
            ("concurrency", CONCURRENCY.to_string()),
        ],
    )
    .await?;
    let mut late = tally.lateness();
    for (p, key) in [(50.0, "p50_ms"), (99.0, "p99_ms"), (100.0, "max_ms")] {
        let name = key.trim_end_matches("_ms");
        s.row(
            format!("spread: lateness {name} (ms)"),
            fmt(percentile(&mut late, p)),
            fmt(peer.num(key)),
            if p == 99.0 { "< 50 ms" } else { "" },
        );
    }
    s.row(
        "spread: tasks run early",
        tally
            .early
            .load(std::sync::atomic::Ordering::Relaxed)
            .to_string(),
        fmt(peer.num("early")),
        "0",
    );
    s.note(format!(
        "One idle worker (concurrency {CONCURRENCY}) waits before the due times; lateness is \
         the handler's start minus the due time (ms clocks of one machine). BullMQ: delayed \
         jobs (`delay` option) and one Worker at the same concurrency."
    ));
    Ok(s)
}

/// Starts an idle worker, pushes one task per due time (ms), waits for all of them to run.
/// Returns the tally and whether every push landed before the earliest due time.
async fn run_batch(ctx: &Ctx, dues: Vec<u64>) -> anyhow::Result<(Arc<Tally>, bool)> {
    let n = dues.len() as u64;
    let first_due = dues.iter().copied().min().unwrap_or(0);
    let last_due = dues.iter().copied().max().unwrap_or(0);
    let q: RedisQueue<Due> = new_queue(ctx, "scheduled").await?;
    let tally = Arc::new(Tally::default());
    let (stop, until) = stop_signal();
    let worker = WorkerBuilder::new(unique("bench-scheduled"))
        .backend(q.clone())
        .data(tally.clone())
        .concurrency(CONCURRENCY)
        .build(on_due);
    let run = tokio::spawn(worker.run_until(until));

    let mut sink = q.clone();
    for due in dues {
        // The queue takes delays (counted by Redis's clock from the push).
        let after = Duration::from_millis(due.saturating_sub(now_ms()));
        sink.feed(TaskBuilder::new(Due { due }).data(RunAfter(after)).build())
            .await?;
    }
    sink.flush().await?;
    let in_time = now_ms() < first_due;

    let wait = Duration::from_millis(last_due.saturating_sub(now_ms())) + Duration::from_secs(120);
    crate::wait::until(
        "every scheduled task to run",
        wait,
        Duration::from_millis(1),
        || async { Ok((tally.done() >= n).then_some(())) },
    )
    .await?;
    settled(&q, Duration::from_secs(30)).await?;
    let depth = q.depth().await?;
    anyhow::ensure!(depth.dead == 0, "{} scheduled tasks died", depth.dead);
    let _ = stop.send(());
    run.await??;
    Ok((tally, in_time))
}
