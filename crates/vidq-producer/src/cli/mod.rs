//! The `vidq` command line. Each subcommand is one file.

mod dead;
mod enqueue;
mod queue;
mod serve;
mod status;
mod usage;
mod wait;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vidq_core::JobId;
use vidq_producer::{Producer, ProducerSettings};

/// Exit status of a command that failed for a reason of its own (bad input, Redis down).
pub(crate) const EXIT_ERROR: u8 = 2;

/// vidq: durable GoEnhanceAI video-to-video jobs.
///
/// Settings come from built-in defaults, the optional --config file, then VIDQ__SECTION__KEY
/// environment variables (VIDQ__REDIS__URL, VIDQ__REDIS__PREFIX, VIDQ__JOBS__DEADLINE).
#[derive(Parser)]
#[command(name = "vidq", version)]
pub(crate) struct Cli {
    /// A TOML settings file.
    #[arg(long, global = true, env = "VIDQ_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enqueue a job (from flags or a JSON file) and print its id.
    Enqueue(enqueue::Args),
    /// Show a job.
    Status(status::Args),
    /// Cancel a job that has not finished.
    Cancel {
        /// The job id.
        id: JobId,
    },
    /// Retry a failed job from the step it failed at (after fixing the cause).
    Retry {
        /// The job id.
        id: JobId,
    },
    /// Wait for jobs to finish, showing their progress. Exit status: 0 when every job
    /// succeeded, 1 when any ended otherwise, 3 on timeout.
    Wait(wait::Args),
    /// Inspect and replay dead tasks.
    #[command(subcommand)]
    Dead(dead::Command),
    /// Pause or resume the claiming of one queue's tasks; see which queues are paused.
    #[command(subcommand)]
    Queue(queue::Command),
    /// Today's usage: submissions, credits spent and the last known balance; jobs per state
    /// and queue depths.
    Usage,
    /// The live worker processes: id, host, pid, version, started and last seen (Redis time,
    /// Unix ms), and per queue the tasks held now over the concurrency.
    Workers,
    /// Serve the HTTP API (settings section `[api]`, and `[storage]` for video downloads).
    Serve(serve::Args),
}

pub(crate) async fn run(cli: Cli) -> ExitCode {
    let settings = match ProducerSettings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(err) => return fail(err),
    };
    let otel = match vidq_otel::init(&settings.log, &settings.otel, "vidq-api") {
        Ok(otel) => otel,
        Err(err) => return fail(err),
    };
    let producer = match Producer::connect(&settings).await {
        Ok(p) => p,
        Err(err) => {
            let target = match settings.redis.mode {
                vidq_redis::Mode::Standalone => redact_url(&settings.redis.url),
                _ => settings.redis.describe(),
            };
            return fail(format!("connecting to {target}: {err}"));
        }
    };
    let result = match cli.command {
        Command::Enqueue(args) => enqueue::run(&producer, args).await,
        Command::Status(args) => status::run(&producer, args).await,
        Command::Cancel { id } => status::cancel(&producer, id).await,
        Command::Retry { id } => status::retry(&producer, id).await,
        Command::Wait(args) => wait::run(&producer, args).await,
        Command::Dead(cmd) => dead::run(&producer, cmd).await,
        Command::Queue(cmd) => queue::run(&producer, cmd).await,
        Command::Usage => usage::run(&producer, &settings).await,
        Command::Workers => workers::run(&producer, &settings).await,
        Command::Serve(args) => serve::run(producer, &settings, cli.config.as_deref(), args).await,
    };
    // After the graceful stop: the last requests' spans are exported before exit.
    if otel.exporting() {
        let flushed = tokio::task::spawn_blocking(move || {
            otel.shutdown(std::time::Duration::from_secs(5));
        });
        let _ = flushed.await;
    }
    result.unwrap_or_else(fail)
}

fn fail(err: impl std::fmt::Display) -> ExitCode {
    eprintln!("vidq: {err:#}");
    ExitCode::from(EXIT_ERROR)
}

/// `url` fit to print: its userinfo (user and password) replaced by `***`. Everything between
/// the scheme and the last `@` goes, so a password holding `/`, `#` or `@` is hidden too.
pub(crate) fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_the_userinfo() {
        assert_eq!(
            redact_url("redis://:s3cret-pw@127.0.0.1:1/"),
            "redis://***@127.0.0.1:1/"
        );
        assert_eq!(
            redact_url("rediss://user:p/a#s@s@redis.example:6380/2"),
            "rediss://***@redis.example:6380/2"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact_url(":pw@host"), "***@host");
    }
}
