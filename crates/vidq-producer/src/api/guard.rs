//! Middleware that bounds what a caller can cost: the shared per-token rate limit, the
//! requests served at once (load shedding), and the time a request may take.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::AppState;
use super::error::ApiError;
use crate::Scope;

/// The route whose responses are streams: never cut by the request timeout.
const STREAMING_ROUTE: &str = "/v1/jobs/{id}/events";

/// Takes one request from the caller's shared allowance (429 with `Retry-After` when none is
/// left). A request without a known token passes on: its handler answers 401 or 403.
pub(crate) async fn rate_limit(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let caller = state
        .tokens
        .authorize(headers, Scope::Read)
        .or_else(|_| state.tokens.authorize(headers, Scope::Write));
    if let Ok(caller) = caller
        && let Err(wait) = state
            .limiter
            .check(&format!("{}:{}", caller.tenant, caller.token))
            .await
    {
        return ApiError::rate_limited(wait).into_response();
    }
    next.run(request).await
}

/// At most `api.limits.max_concurrent` requests at once (one more is shed with 503
/// `overloaded` at once), each done within `api.limits.request_timeout` (else 503 `timeout`),
/// except the event stream, which `api.events_max` bounds.
pub(crate) async fn bound(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        return ApiError::overloaded().into_response();
    };
    let streaming = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| p.as_str() == STREAMING_ROUTE);
    if streaming {
        return next.run(request).await;
    }
    match tokio::time::timeout(state.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::timed_out(state.limits.request_timeout).into_response(),
    }
}
