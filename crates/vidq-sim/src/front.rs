//! The front door of the API endpoints: injected faults, then the key check and rate limit.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Notify;

use crate::api::GENERATE_PATH;
use crate::envelope;
use crate::state::Sim;
use crate::stats::bump;

/// Put in every request's extensions by the connection that carries it: notifying it closes
/// that connection at once, without an answer.
#[derive(Clone, Debug)]
pub(crate) struct DropConnection(pub(crate) Arc<Notify>);

/// Injects the configured faults around the API endpoints.
///
/// 429 and 5xx answer before the request is handled; a drop or a malformed body replaces the
/// answer after the request took effect, as a proxy failing on the way back would.
pub(crate) async fn faults(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    if request.uri().path() == GENERATE_PATH {
        bump(&sim.counters.submit_requests);
    }
    let faults = sim.faults();
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if sim.hit(faults.rate_429) {
        bump(&sim.counters.http_429);
        return envelope::too_many_requests(faults.retry_after_secs);
    }
    if sim.hit(faults.rate_5xx) {
        bump(&sim.counters.http_5xx);
        return envelope::server_error(sim.pick());
    }
    let connection = request.extensions().get::<DropConnection>().cloned();
    let response = next.run(request).await;
    if let Some(DropConnection(connection)) = connection
        && sim.hit(faults.rate_drop)
    {
        bump(&sim.counters.dropped);
        connection.notify_one();
        // The connection task drops this future together with the socket.
        return std::future::pending().await;
    }
    if sim.hit(faults.rate_malformed) {
        bump(&sim.counters.malformed);
        return malformed(response, sim.pick()).await;
    }
    response
}

/// HTTP 200 with the answer cut in half, or with a body that is not JSON at all.
async fn malformed(response: Response, pick: usize) -> Response {
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let broken = if pick.is_multiple_of(2) {
        body.slice(..body.len() / 2)
    } else {
        bytes::Bytes::from_static(b"<html><body>upstream connect error</body></html>")
    };
    let mut response = Response::new(Body::from(broken));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Checks `Authorization: Bearer <key>`, then the per-key request rate.
pub(crate) async fn auth(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if !presented.is_some_and(|key| same(key.as_bytes(), sim.config.api_key.as_bytes())) {
        bump(&sim.counters.unauthorized);
        return envelope::unauthorized();
    }
    if let Err(retry_after) = sim.take_rate() {
        bump(&sim.counters.rate_limited);
        return envelope::too_many_requests(retry_after);
    }
    next.run(request).await
}

/// Compares keys without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
