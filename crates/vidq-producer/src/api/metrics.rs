//! `/metrics` counters: requests by route and status, reuse hits, idempotent replays, and the
//! epoch changes this API saw (Redis lost its data).
//!
//! Each [`super::Api`] owns its own Prometheus recorder (not the process-global one), so
//! several APIs in one process (tests) keep separate counts.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Key, KeyName, Label, Level, Metadata, Recorder as _, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::AppState;

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

pub(crate) struct ApiMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    epoch_changes: Counter,
}

impl std::fmt::Debug for ApiMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiMetrics")
    }
}

impl ApiMetrics {
    pub(crate) fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let name = vidq_core::EPOCH_CHANGES_METRIC;
        recorder.describe_counter(
            KeyName::from_const_str(name),
            None,
            SharedString::const_str(
                "Times this process saw Redis lose its data (its epoch marker missing or changed).",
            ),
        );
        // Registered now, so it is rendered at zero from the start.
        let epoch_changes = recorder.register_counter(&Key::from_static_name(name), &METADATA);
        epoch_changes.absolute(0);
        Self {
            recorder,
            handle,
            epoch_changes,
        }
    }

    /// The counter of epoch changes, for the [`vidq_core::EpochWatch`] of this API.
    pub(crate) fn epoch_changes(&self) -> Counter {
        self.epoch_changes.clone()
    }

    /// Adds one to counter `name` with `labels`.
    pub(crate) fn count(&self, name: &'static str, labels: &[(&'static str, String)]) {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect();
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
            .increment(1);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        self.handle.render()
    }
}

/// Middleware: counts each request by method, matched route and status.
pub(crate) async fn count_requests(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Bounded labels: unknown methods in one bucket, unmatched paths in another.
    let method = match request.method().as_str() {
        known @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => known,
        _ => "other",
    }
    .to_owned();
    let response = next.run(request).await;
    state.metrics.count(
        "vidq_api_requests_total",
        &[
            ("method", method),
            ("route", route),
            ("status", response.status().as_u16().to_string()),
        ],
    );
    response
}
