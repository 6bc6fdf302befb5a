//! `vidq wait`: follows jobs until each has finished, printing each change of state.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vidq_core::{JobId, JobState};
use vidq_producer::Producer;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The job ids.
    #[arg(required = true)]
    ids: Vec<JobId>,
    /// Give up after this long (e.g. 10m).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Return as soon as any one of the jobs has finished (exit status 0), printing nothing.
    #[arg(long)]
    any: bool,
    /// How often to look.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    every: Duration,
}

const EXIT_SOME_FAILED: u8 = 1;
const EXIT_TIMEOUT: u8 = 3;

pub(crate) async fn run(producer: &Producer, args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut seen: BTreeMap<JobId, Option<JobState>> =
        args.ids.iter().map(|id| (*id, None)).collect();
    let mut ticker = tokio::time::interval(args.every);
    loop {
        ticker.tick().await;
        for (id, last) in &mut seen {
            if last.is_some_and(JobState::is_terminal) {
                continue;
            }
            let Some(job) = producer.status(id).await? else {
                anyhow::bail!("no job {id}");
            };
            if args.any && job.state.is_terminal() {
                return Ok(ExitCode::SUCCESS);
            }
            if *last != Some(job.state) && !args.any {
                let elapsed = started.elapsed().as_secs_f64();
                let mut line = format!("[{elapsed:6.1}s] {id} {}", job.state);
                if let Some(o) = &job.output {
                    line.push_str(&format!(" s3://{}/{} {} bytes", o.bucket, o.key, o.bytes));
                }
                if let Some(err) = &job.error {
                    line.push_str(&format!(" ({err})"));
                }
                println!("{line}");
                *last = Some(job.state);
            }
        }
        let done = seen
            .values()
            .filter(|s| s.is_some_and(JobState::is_terminal))
            .count();
        if done == seen.len() {
            let all_ok = seen.values().all(|s| *s == Some(JobState::Succeeded));
            println!(
                "{done}/{} jobs finished{}",
                seen.len(),
                if all_ok { ", all succeeded" } else { "" }
            );
            return Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_SOME_FAILED)
            });
        }
        if args.timeout.is_some_and(|t| started.elapsed() > t) {
            eprintln!("vidq: timed out with {done}/{} jobs finished", seen.len());
            return Ok(ExitCode::from(EXIT_TIMEOUT));
        }
    }
}
