//! Tracing set-up shared by every binary.

use std::io::IsTerminal;

use serde::Deserialize;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, prelude::*};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Human,
    /// One JSON object per line, for log collectors in production.
    Json,
}

/// The `[log]` section of every binary's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// `human` or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `vidq_worker=debug,info`. `RUST_LOG`, when
    /// set, wins.
    #[serde(default = "default_filter")]
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            filter: default_filter(),
        }
    }
}

fn default_filter() -> String {
    "info".to_owned()
}

/// Why tracing could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `log.filter` (or `RUST_LOG`) is not a valid filter directive.
    #[error("invalid setting log.filter {filter:?}: {reason}")]
    Filter { filter: String, reason: String },
    /// A global subscriber was already installed.
    #[error("tracing was already initialised")]
    AlreadyInitialised,
}

/// Installs the global tracing subscriber: logs go to standard error.
pub fn init(settings: &LogSettings) -> Result<(), TelemetryError> {
    init_with(settings, None::<NoLayer>)
}

/// A layer type for [`init_with`] callers that add none.
pub type NoLayer = tracing_subscriber::layer::Identity;

/// Like [`init`], with `extra` (such as an OpenTelemetry export layer) beside the log lines.
/// `log.filter` filters the log lines only: `extra` brings its own filter.
pub fn init_with<L>(settings: &LogSettings, extra: Option<L>) -> Result<(), TelemetryError>
where
    L: Layer<Registry> + Send + Sync + 'static,
{
    let directive = std::env::var("RUST_LOG").unwrap_or_else(|_| settings.filter.clone());
    let filter = EnvFilter::try_new(&directive).map_err(|e| TelemetryError::Filter {
        filter: directive.clone(),
        reason: e.to_string(),
    })?;
    let registry = tracing_subscriber::registry().with(extra);
    let result = match settings.format {
        LogFormat::Human => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadyInitialised)
}
