//! `/_sim/*`: stats, faults and health, with no auth and no faults.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::Faults;
use crate::state::Sim;

/// `GET /_sim/stats`.
pub(crate) async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    // Hashing result bodies for the snapshot is CPU work: keep it off the async threads.
    match tokio::task::spawn_blocking(move || sim.stats()).await {
        Ok(stats) => Json(stats).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "stats snapshot failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "stats snapshot failed\n").into_response()
        }
    }
}

/// `GET /_sim/faults`.
pub(crate) async fn get_faults(State(sim): State<Arc<Sim>>) -> Json<Faults> {
    Json(Faults::clone(&sim.faults()))
}

/// `POST /_sim/faults` with a JSON [`Faults`] (missing fields take their defaults).
pub(crate) async fn set_faults(
    State(sim): State<Arc<Sim>>,
    Json(faults): Json<Faults>,
) -> Json<Faults> {
    tracing::info!(?faults, "faults changed");
    sim.set_faults(faults.clone());
    Json(faults)
}

/// `GET /_sim/health`.
pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}
