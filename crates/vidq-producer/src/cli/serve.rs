//! `vidq serve`: the HTTP API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use vidq_core::EpochWatch;
use vidq_producer::{Api, Producer, ProducerSettings};
use vidq_storage::Storage;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Address to listen on; overrides `api.listen`.
    #[arg(long)]
    listen: Option<String>,
}

pub(crate) async fn run(
    producer: Producer,
    settings: &ProducerSettings,
    config: Option<&Path>,
    args: Args,
) -> anyhow::Result<ExitCode> {
    if settings.api.tokens.is_empty() {
        tracing::warn!("no [[api.tokens]] configured: every /v1 request will be refused");
    }
    let storage = match &settings.storage {
        Some(storage) => Some(
            Storage::new(storage)
                .await
                .context("configuring video storage")?,
        ),
        None => {
            tracing::warn!("no [storage] configured: video downloads answer 503");
            None
        }
    };
    let listen = args.listen.as_deref().unwrap_or(&settings.api.listen);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%addr, "serving the vidq API");
    println!("listening on http://{addr}");
    let epoch = epoch_watch(&producer, settings);
    let api = Api::new(producer, &settings.api, storage)
        .with_epoch_watch(epoch)
        .with_callback_policy(settings.webhooks.clone())
        .with_event_feed();
    let reloader = api.clone();
    let serving = api.serve(listener, shutdown_signal());
    tokio::pin!(serving);
    let mut reloads = Reloads::new(config.map(Path::to_path_buf));
    loop {
        tokio::select! {
            served = &mut serving => {
                served.context("serving")?;
                return Ok(ExitCode::SUCCESS);
            }
            () = reloads.next() => reloads.reload(&reloader),
        }
    }
}

/// SIGHUP: every source of tokens (`--config`, `VIDQ__API__TOKENS__…`, `api.tokens_file`) is
/// read again and replaces the token set; open connections stay. A set that does not load is
/// logged and the previous one kept.
struct Reloads {
    config: Option<PathBuf>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Reloads {
    fn new(config: Option<PathBuf>) -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let hangup = signal(SignalKind::hangup())
                .inspect_err(|error| {
                    tracing::warn!(%error, "cannot watch SIGHUP; tokens are read at start only");
                })
                .ok();
            Self { config, hangup }
        }
        #[cfg(not(unix))]
        Self { config }
    }

    /// The next SIGHUP (never, where there is none).
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(hangup) = &mut self.hangup
            && hangup.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await;
    }

    fn reload(&self, api: &Api) {
        match ProducerSettings::load(self.config.as_deref()) {
            Ok(settings) => {
                let count = api.replace_tokens(&settings.api.tokens);
                let names: std::collections::BTreeSet<&str> = settings
                    .api
                    .tokens
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect();
                tracing::info!(tokens = count, names = ?names, "SIGHUP: API tokens reloaded");
            }
            Err(error) => {
                // Only the first line: a TOML error quotes the offending line, which may hold a token.
                let error = error.to_string();
                let error = error.lines().next().unwrap_or_default();
                tracing::error!(
                    error,
                    "SIGHUP: API tokens not reloaded; the previous ones stay"
                );
            }
        }
    }
}

/// The watch of Redis's epoch marker, on the process's multiplexed connection (requests are
/// pipelined on it, so a slow API request does not hold the watch up).
fn epoch_watch(producer: &Producer, settings: &ProducerSettings) -> EpochWatch {
    EpochWatch::new(producer.redis_layer().conn(), &settings.redis.prefix)
        .with_unready_for(settings.redis.epoch_unready_for)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}
