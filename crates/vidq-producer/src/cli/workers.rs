//! `vidq workers`: the live worker processes, one per line, from the registry their
//! heartbeats keep ([`vidq_core::workers`]).

use std::process::ExitCode;

use anyhow::Context as _;
use vidq_core::workers::{WorkerInfo, WorkerRegistry};
use vidq_producer::{Producer, ProducerSettings};

pub(crate) async fn run(
    producer: &Producer,
    settings: &ProducerSettings,
) -> anyhow::Result<ExitCode> {
    let conn = producer.redis_layer().conn();
    let workers = WorkerRegistry::new(conn, &settings.redis.prefix)
        .list()
        .await
        .context("listing the live workers")?;
    println!("id\thost\tpid\tversion\tstarted_at_ms\tlast_seen_ms\tqueues (running/concurrency)");
    for w in &workers {
        println!("{}", line(w));
    }
    eprintln!("{} live workers", workers.len());
    Ok(ExitCode::SUCCESS)
}

fn line(w: &WorkerInfo) -> String {
    let queues: Vec<String> = w
        .queues
        .iter()
        .map(|q| format!("{}={}/{}", q.queue, q.running, q.concurrency))
        .collect();
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        w.id,
        w.host,
        w.pid,
        w.version,
        w.started_at_ms,
        w.last_seen_ms,
        queues.join(" ")
    )
}
