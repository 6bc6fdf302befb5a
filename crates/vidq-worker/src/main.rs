//! `vidq-worker`: loads settings, starts tracing, runs until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vidq_worker::WorkerSettings;

/// The vidq worker daemon: submits jobs to GoEnhanceAI, polls them, stores the videos.
///
/// Settings come from built-in defaults, then the optional --config file, then
/// VIDQ__SECTION__KEY environment variables (e.g. VIDQ__GOENHANCE__API_KEY,
/// VIDQ__STORAGE__BUCKET, VIDQ__REDIS__URL).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// A TOML settings file.
    #[arg(long, env = "VIDQ_CONFIG")]
    config: Option<PathBuf>,
    /// Print the built-in default settings and exit.
    #[arg(long)]
    print_defaults: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_defaults {
        print!("{}", vidq_worker::DEFAULTS);
        return ExitCode::SUCCESS;
    }
    let settings = match WorkerSettings::load(args.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("vidq-worker: {err}");
            return ExitCode::from(2);
        }
    };
    let otel = match vidq_otel::init(&settings.log, &settings.otel, "vidq-worker") {
        Ok(otel) => otel,
        Err(err) => {
            eprintln!("vidq-worker: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("vidq-worker: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(vidq_worker::run(settings, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "worker stopped on an error");
            ExitCode::FAILURE
        }
    };
    // After the graceful stop: the spans of the last tasks are exported before exit.
    otel.shutdown(std::time::Duration::from_secs(5));
    code
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
