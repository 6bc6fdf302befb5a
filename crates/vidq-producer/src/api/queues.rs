//! `GET /v1/queues` (each queue's depth and whether it is paused) and
//! `POST /v1/queues/{queue}/pause|resume` (admin scope): stop and restart the claiming of one
//! queue's tasks, e.g. `submit` during an upstream incident, while the others go on.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use vidq_core::TaskKind;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::{Producer, Scope};

/// Every queue.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueList {
    queues: Vec<QueueState>,
}

/// One queue: whether workers claim its tasks, and how many are in each state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueState {
    /// `submit`, `poll`, `transfer` or `notify`.
    queue: String,
    /// Paused: workers claim none of its tasks (those running go on).
    paused: bool,
    due: u64,
    scheduled: u64,
    leased: u64,
    dead: u64,
}

/// What a pause or resume did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PauseChange {
    queue: String,
    /// The queue's state now.
    paused: bool,
    /// False when it already was in that state.
    changed: bool,
}

fn kind(name: &str) -> Result<TaskKind, ApiError> {
    Producer::kinds()
        .iter()
        .copied()
        .find(|k| k.queue_name() == name)
        .ok_or_else(|| {
            ApiError::invalid_field(
                "queue",
                format!("no queue {name:?}: expected submit, poll, transfer or notify"),
            )
            .with_status(StatusCode::NOT_FOUND)
        })
}

/// List the queues: paused or not, and their depth.
#[utoipa::path(
    get, path = "/v1/queues", tag = "ops", operation_id = "list_queues",
    responses(
        (status = 200, description = "Every queue", body = QueueList),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<QueueList>, ApiError> {
    state.authorize(&headers, Scope::Admin)?;
    let mut queues = Vec::new();
    for &kind in Producer::kinds() {
        let depth = state.producer.depth(kind).await?;
        queues.push(QueueState {
            queue: kind.queue_name().to_owned(),
            paused: depth.paused,
            due: depth.due,
            scheduled: depth.scheduled,
            leased: depth.leased,
            dead: depth.dead,
        });
    }
    Ok(Json(QueueList { queues }))
}

/// Pause a queue: workers claim none of its tasks until it is resumed.
#[utoipa::path(
    post, path = "/v1/queues/{queue}/pause", tag = "ops",
    params(("queue" = String, Path, description = "submit, poll, transfer or notify")),
    responses(
        (status = 200, description = "The queue is paused", body = PauseChange),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn pause(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<PauseChange>, ApiError> {
    set_paused(&state, &headers, name, true).await
}

/// Resume a paused queue (idle workers are woken).
#[utoipa::path(
    post, path = "/v1/queues/{queue}/resume", tag = "ops",
    params(("queue" = String, Path, description = "submit, poll, transfer or notify")),
    responses(
        (status = 200, description = "The queue runs", body = PauseChange),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn resume(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<PauseChange>, ApiError> {
    set_paused(&state, &headers, name, false).await
}

/// Pauses (`true`) or resumes queue `name` for an admin caller: what both routes do.
async fn set_paused(
    state: &AppState,
    headers: &HeaderMap,
    name: String,
    paused: bool,
) -> Result<Json<PauseChange>, ApiError> {
    let caller = state.authorize(headers, Scope::Admin)?;
    let kind = kind(&name)?;
    let changed = if paused {
        state.producer.pause(kind).await?
    } else {
        state.producer.resume(kind).await?
    };
    tracing::info!(queue = %name, by = %caller.tenant, changed, paused, "queue paused or resumed");
    Ok(Json(PauseChange {
        queue: name,
        paused,
        changed,
    }))
}
