//! Operational endpoints: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, and the
//! JSON answers for unknown paths and methods.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::schema::Health;

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "Alive", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: Redis answers, and this process has not seen it lose its data lately (its
/// epoch marker missing or changed within `redis.epoch_unready_for`).
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Redis does not answer, or lost its data lately", body = ErrorBody),
    ))]
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Health>, ApiError> {
    if let Some(reason) = state.epoch.not_ready_reason() {
        return Err(ApiError::unavailable(reason));
    }
    state.producer.ping().await.map_err(|error| {
        tracing::warn!(%error, "not ready: redis does not answer");
        ApiError::unavailable("redis does not answer")
    })?;
    Ok(Json(Health { status: "ok" }))
}

/// Prometheus metrics: `vidq_api_requests_total{method,route,status}`,
/// `vidq_api_reuse_total{outcome}`, `vidq_api_idempotent_replays_total`,
/// `vidq_redis_epoch_changes_total`.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "The OpenAPI 3.1 document of this service", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi_json() -> Response {
    Json(super::openapi()).into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::conflict("not_found", "no such route").with_status(StatusCode::NOT_FOUND)
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::conflict("method_not_allowed", "method not allowed on this route")
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
}
