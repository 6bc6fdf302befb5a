//! `GET /v1/workers`: the live worker processes (admin scope), from the registry their
//! heartbeats keep ([`vidq_core::workers`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;
use vidq_core::workers::{WorkerInfo, WorkerRegistry};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::Scope;

/// The live worker processes, soonest to expire first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkerList {
    workers: Vec<WorkerView>,
}

/// One live worker process as its last heartbeat described it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkerView {
    /// Unique per process: `<host>-<pid>-<random>`.
    id: String,
    host: String,
    pid: u32,
    /// The vidq version it runs.
    version: String,
    queues: Vec<QueueView>,
    /// Its first heartbeat (Redis time, Unix ms).
    started_at_ms: u64,
    /// Its last heartbeat (Redis time, Unix ms).
    last_seen_ms: u64,
    /// When it drops out of this list unless it beats again (Redis time, Unix ms).
    expires_at_ms: u64,
}

/// One queue a worker runs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueView {
    /// `submit`, `poll`, `transfer` or `notify`.
    queue: String,
    /// Tasks it runs at once.
    concurrency: usize,
    /// Tasks it holds now (running, or claimed to run next).
    running: usize,
}

impl From<WorkerInfo> for WorkerView {
    fn from(w: WorkerInfo) -> Self {
        Self {
            id: w.id,
            host: w.host,
            pid: w.pid,
            version: w.version,
            queues: w
                .queues
                .into_iter()
                .map(|q| QueueView {
                    queue: q.queue,
                    concurrency: q.concurrency,
                    running: q.running,
                })
                .collect(),
            started_at_ms: w.started_at_ms,
            last_seen_ms: w.last_seen_ms,
            expires_at_ms: w.expires_at_ms,
        }
    }
}

/// List the live worker processes.
#[utoipa::path(
    get, path = "/v1/workers", tag = "ops", operation_id = "list_workers",
    responses(
        (status = 200, description = "The live workers (heartbeat not expired by Redis time)", body = WorkerList),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<WorkerList>, ApiError> {
    state.authorize(&headers, Scope::Admin)?;
    let registry = WorkerRegistry::new(
        state.producer.redis().clone(),
        state.producer.store().prefix(),
    );
    let workers = registry.list().await.map_err(|error| {
        tracing::warn!(%error, "could not list the live workers");
        ApiError::unavailable("redis does not answer")
    })?;
    Ok(Json(WorkerList {
        workers: workers.into_iter().map(WorkerView::from).collect(),
    }))
}
