//! (g) Memory: Redis bytes per waiting task (200-byte payload) and per finished task, beside
//! BullMQ's.

use crate::ctx::Ctx;
use crate::drain::{PREFIX, drain, new_queue, push};
use crate::redis_stats::snapshot;
use crate::report::Section;
use crate::stats::fmt;

const PAYLOAD: usize = 200;

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let n: u64 = ctx.size(5_000, 100_000);
    let mut s = Section::new(format!(
        "(g) memory: {n} tasks with a {PAYLOAD}-byte payload"
    ));
    let q = new_queue::<String>(ctx, "memory").await?;
    let queue = q.settings().queue.clone();
    // A JSON string of PAYLOAD bytes: the quotes count.
    let payload = "x".repeat(PAYLOAD - 2);
    let mut admin = ctx.redis().await?;
    let m0 = snapshot(&mut admin).await?;
    push(&q, n, &payload).await?;
    let m1 = snapshot(&mut admin).await?;
    drain(ctx, &q, n, 100).await?;
    let m2 = snapshot(&mut admin).await?;
    // Every key a (non-fair) queue writes, by name: no `KEYS`/`SCAN`, which a cluster answers
    // for one node only. All share the queue's hash tag, so this is one slot's pipeline.
    let mut exists = redis::pipe();
    for kind in [
        "due", "lease", "data", "dlv", "dead", "why", "hold", "paused",
    ] {
        exists.exists(format!("{PREFIX}:{{{queue}}}:{kind}"));
    }
    let found: Vec<bool> = exists.query_async(&mut admin).await?;
    let left: Vec<bool> = found.into_iter().filter(|&e| e).collect();

    let peer = crate::bullmq::run(
        ctx,
        "memory",
        &[("n", n.to_string()), ("payload", PAYLOAD.to_string())],
    )
    .await?;
    let waiting = m1.memory_per(&m0, n);
    let peer_waiting = peer.num("waiting_bytes_per_task");
    s.row(
        "Redis bytes per waiting task",
        fmt(waiting),
        fmt(peer_waiting),
        "≤ half of BullMQ's",
    );
    s.row(
        "… vidq ÷ BullMQ",
        crate::stats::ratio(waiting, peer_waiting),
        "",
        "≤ 0.50×",
    );
    s.row(
        "Redis bytes per finished task",
        fmt(m2.memory_per(&m0, n)),
        fmt(peer.num("finished_bytes_per_task")),
        "0",
    );
    s.row(
        "keys left by the queue after the drain",
        left.len().to_string(),
        "",
        "0",
    );
    s.note(
        "Bytes are `used_memory` deltas of the private Redis around the pushes and the drain \
         (allocator rounding included). BullMQ keeps finished jobs by default \
         (`removeOnComplete` off), as the comparison in the issue asks.",
    );
    Ok(s)
}
