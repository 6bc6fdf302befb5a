//! `vidq-sim`: runs the GoEnhanceAI simulator until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use vidq_core::telemetry::{self, LogFormat, LogSettings};
use vidq_sim::{Faults, SimConfig, SimServer};

/// A faithful simulator of the GoEnhanceAI video-to-video API, with fault injection.
///
/// Prints `listening on http://ADDR` as its first line on stdout. Stats at GET /_sim/stats,
/// faults changed at run time with POST /_sim/faults.
#[derive(Debug, Parser)]
#[command(name = "vidq-sim", version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The API key accepted in `Authorization: Bearer <key>`.
    #[arg(
        long,
        env = "VIDQ_SIM_API_KEY",
        default_value = "sim-key",
        hide_env_values = true
    )]
    api_key: String,
    /// Shortest job processing time (processing times are uniform between min and max).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    processing_min: Duration,
    /// Longest job processing time.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    processing_max: Duration,
    /// Size of every result video: bytes, or with a suffix (KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    result_size: u64,
    /// Bytes per second each result download is held to (0 = unlimited), e.g. 20MiB.
    #[arg(long, default_value = "0", value_parser = parse_size)]
    download_rate: u64,
    /// How long a signed result URL stays valid.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    url_ttl: Duration,
    /// Starting credit balance.
    #[arg(long, default_value_t = 1_000_000)]
    credits: i64,
    /// Credits charged per accepted job.
    #[arg(long, default_value_t = 10)]
    cost_per_job: i64,
    /// Concurrent unfinished jobs allowed (0 = unlimited); reported as `queueLimit`.
    #[arg(long, default_value_t = 0)]
    queue_limit: u32,
    /// API requests per second allowed for the key (0 = unlimited); over it: HTTP 429.
    #[arg(long = "rate-limit", default_value_t = 0)]
    rate_limit: u32,
    /// Seed for job outcomes, processing times and fault draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fault: delay added to every API answer.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// Fault: fraction of API requests answered HTTP 429 with Retry-After.
    #[arg(long = "rate-429", default_value_t = 0.0)]
    rate_429: f64,
    /// Fault: Retry-After seconds on injected 429s.
    #[arg(long = "retry-after", default_value_t = 1)]
    retry_after: u64,
    /// Fault: fraction of API requests answered HTTP 500/502/503.
    #[arg(long = "rate-5xx", default_value_t = 0.0)]
    rate_5xx: f64,
    /// Fault: fraction of API requests whose connection is closed without an answer.
    #[arg(long, default_value_t = 0.0)]
    rate_drop: f64,
    /// Fault: fraction of API answers sent as HTTP 200 with a truncated or non-JSON body.
    #[arg(long, default_value_t = 0.0)]
    rate_malformed: f64,
    /// Fault: fraction of jobs that end `failed`.
    #[arg(long, default_value_t = 0.0)]
    rate_job_failed: f64,
    /// Fault: report finished jobs as `completed` instead of `success`.
    #[arg(long)]
    completed_status: bool,
    /// Fault: fraction of status answers for running jobs carrying an unknown status.
    #[arg(long, default_value_t = 0.0)]
    rate_unknown_status: f64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    log_format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Human,
    Json,
}

impl Cli {
    fn config(self) -> SimConfig {
        SimConfig {
            listen: self.listen,
            api_key: self.api_key,
            processing_min: self.processing_min,
            processing_max: self.processing_max,
            result_size: self.result_size,
            download_rate: self.download_rate,
            url_ttl: self.url_ttl,
            credits: self.credits,
            cost_per_job: self.cost_per_job,
            queue_limit: self.queue_limit,
            rate_limit_per_sec: self.rate_limit,
            seed: self.seed,
            faults: Faults {
                latency: self.latency,
                rate_429: self.rate_429,
                retry_after_secs: self.retry_after,
                rate_5xx: self.rate_5xx,
                rate_drop: self.rate_drop,
                rate_malformed: self.rate_malformed,
                rate_job_failed: self.rate_job_failed,
                completed_status: self.completed_status,
                rate_unknown_status: self.rate_unknown_status,
            },
        }
    }
}

/// `1048576`, `1MiB`, `512 KiB`, `2GB`: binary suffixes are powers of 1024, decimal of 1000.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 1048576, 512KiB or 1GiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB, GiB)")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let format = match cli.log_format {
        Format::Human => LogFormat::Human,
        Format::Json => LogFormat::Json,
    };
    telemetry::init(&LogSettings {
        format,
        ..LogSettings::default()
    })
    .context("starting logs")?;
    let server = SimServer::start(cli.config())
        .await
        .context("starting the simulator")?;
    println!("listening on {}", server.base_url());
    let signal = shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    signal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_and_decimal_suffixes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert!(parse_size("1.5GiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn every_knob_is_a_flag() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "vidq-sim",
            "--listen=127.0.0.1:0",
            "--processing-min=100ms",
            "--processing-max=1s",
            "--result-size=4KiB",
            "--url-ttl=1m",
            "--queue-limit=3",
            "--rate-limit=50",
            "--latency=10ms",
            "--rate-429=0.1",
            "--rate-5xx=0.2",
            "--rate-drop=0.3",
            "--rate-malformed=0.4",
            "--rate-job-failed=0.5",
            "--completed-status",
            "--rate-unknown-status=0.6",
            "--retry-after=7",
        ])
        .unwrap();
        let config = cli.config();
        assert_eq!(config.processing_min, Duration::from_millis(100));
        assert_eq!(config.result_size, 4096);
        assert_eq!(config.rate_limit_per_sec, 50);
        assert_eq!(config.faults.retry_after_secs, 7);
        assert!(config.faults.completed_status);
        assert_eq!(config.faults.rate_unknown_status, 0.6);
    }
}
