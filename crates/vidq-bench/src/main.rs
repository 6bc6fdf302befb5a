#![doc = include_str!("../README.md")]

mod bullmq;
mod ctx;
mod drain;
mod machine;
mod procs;
mod redis_stats;
mod report;
mod scenario;
mod stats;
mod wait;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

use crate::ctx::Ctx;
use crate::report::Section;

/// vidq's benchmark harness: runs scenarios, prints a table, optionally writes RESULTS.md.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Scenarios to run: a b c d e f g h (queue, scheduled, poll-step, end-to-end, in-flight,
    /// transfer, memory, console pages), or `all`.
    #[arg(required = true)]
    scenarios: Vec<String>,
    /// Small sizes, seconds per scenario: checks the harness works (asserts no speed).
    #[arg(long)]
    quick: bool,
    /// Write the results as Markdown to this file (e.g. bench/RESULTS.md).
    #[arg(long)]
    write: Option<PathBuf>,
    /// A Redis that nothing else uses: figures are deltas of its INFO counters.
    #[arg(
        long,
        env = "VIDQ_BENCH_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis: String,
    /// Seed nodes of a Redis Cluster (comma-separated `redis://` URLs) that scenario (a) runs
    /// on instead of `--redis` (scripts/bench --redis-cluster starts one). Only (a) supports it.
    #[arg(long, value_delimiter = ',')]
    redis_cluster: Option<Vec<String>>,
    /// Folder of the BullMQ peer (with node_modules installed).
    #[arg(long, default_value = "bench/peers/bullmq")]
    bullmq_dir: PathBuf,
    /// Folder holding vidq-sim and vidq-worker (default: next to this executable).
    #[arg(long)]
    bins: Option<PathBuf>,
    /// The exact command line to record in RESULTS.md (scripts/bench passes its own).
    #[arg(long, env = "VIDQ_BENCH_COMMAND")]
    command: Option<String>,
}

const ALL: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut chosen: Vec<&str> = Vec::new();
    for s in &args.scenarios {
        if s == "all" {
            chosen.extend(ALL);
        } else if let Some(one) = ALL.iter().find(|a| **a == s.as_str()) {
            chosen.push(one);
        } else {
            anyhow::bail!("unknown scenario {s:?}: use a..h or all");
        }
    }
    let bins = match args.bins {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .context("executable has no folder")?
            .to_path_buf(),
    };
    let mut ctx = Ctx::new(&args.redis, args.quick, bins, args.bullmq_dir).await?;
    if let Some(urls) = args.redis_cluster {
        anyhow::ensure!(
            chosen.iter().all(|s| *s == "a"),
            "--redis-cluster: only scenario a runs on a cluster (asked: {})",
            chosen.join(" ")
        );
        ctx.cluster = Some(urls);
    }
    let mut sections: Vec<Section> = Vec::new();
    for s in chosen {
        eprintln!(
            "==> scenario {s}{}",
            if ctx.quick { " (quick)" } else { "" }
        );
        let section = match s {
            "a" => scenario::queue::run(&ctx).await,
            "b" => scenario::scheduled::run(&ctx).await,
            "c" => scenario::poll_step::run(&ctx).await,
            "d" => scenario::end_to_end::run(&ctx).await,
            "e" => scenario::in_flight::run(&ctx).await,
            "f" => scenario::transfer::run(&ctx).await,
            "h" => scenario::console::run(&ctx).await,
            _ => scenario::memory::run(&ctx).await,
        }
        .with_context(|| format!("scenario {s}"))?;
        println!("{}", section.markdown());
        sections.push(section);
    }
    if let Some(path) = args.write {
        let command = args.command.unwrap_or_else(|| {
            let argv: Vec<String> = std::env::args().collect();
            argv.join(" ")
        });
        let text = report::document(&ctx, &command, &sections).await;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("==> wrote {}", path.display());
    }
    Ok(())
}
