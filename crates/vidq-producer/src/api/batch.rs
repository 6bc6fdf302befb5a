//! `POST /v1/jobs:batch`: many jobs in one request, each validated on its own (any invalid
//! one refuses the batch with 422 naming each, and nothing is written), created in one Redis
//! script call (quotas checked job by job in that atomic step), with a result per job.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use vidq_core::{StoreError, TransformRequest};

use super::AppState;
use super::error::{ApiError, ErrorBody, ErrorDetail};
use super::jobs::{check_bounds, is_json};
use super::schema::{CreateJob, JobView};
use crate::{ProducerError, Scope};

/// Largest batch body accepted, whatever `body_limit` times `batch_max` is.
const MAX_BATCH_BODY: usize = 8 << 20;

/// A batch of jobs to enqueue.
#[derive(ToSchema)]
#[allow(dead_code)] // parsed by hand (each job on its own); this type only documents it
pub(crate) struct BatchRequest {
    /// The jobs, 1 to `api.limits.batch_max` (100 by default), each like `POST /v1/jobs`'s body.
    #[schema(min_items = 1, max_items = 100)]
    jobs: Vec<CreateJob>,
}

/// What became of each job of a batch, in the request's order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchResponse {
    /// How many jobs were created.
    created: usize,
    /// One per job of the request, in its order.
    results: Vec<BatchItem>,
}

/// A batch refused for its jobs' content: nothing was created.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchRefused {
    /// What is wrong: the first invalid job's error (its `field` is `jobs[<index>].<field>`),
    /// or the batch's own (`field` `jobs` or `body`).
    error: ErrorDetail,
    /// Each invalid job's error, in order (absent when the batch itself is malformed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    results: Option<Vec<BatchItem>>,
}

/// One job of a batch: created (202, with the job) or not (with the error, as a single
/// `POST /v1/jobs` would have answered it: 422 invalid, 429 over a tenant quota, 503 over the
/// backlog cap or Redis unavailable).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchItem {
    /// Its position in `jobs`, from 0.
    index: usize,
    /// 202 when created, else the status of its error.
    status: u16,
    /// The new job, when created.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    job: Option<JobView>,
    /// Why it was not created.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    error: Option<ErrorDetail>,
}

/// Enqueue many jobs at once.
#[utoipa::path(
    post, path = "/v1/jobs:batch", tag = "jobs", operation_id = "create_batch",
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A result per job, in order: 202 created (with the job), 429 over a tenant quota, 503 over the backlog cap. Jobs are checked against the quotas one by one, in order: those that fit are created. `Retry-After` is set when a quota refused one.",
            body = BatchResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `write` scope", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A job is invalid (each one named in `results`), or the body is not an object with a `jobs` list of 1 to `api.limits.batch_max` jobs: nothing was created", body = BatchRefused),
        (status = 429, description = "Rate limited", body = ErrorBody, headers(("Retry-After" = u64))),
        (status = 503, description = "Redis unavailable, overloaded or timed out", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "POST /v1/jobs:batch", skip_all, fields(otel.kind = "server", http.request.method = "POST", http.route = "/v1/jobs:batch"))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    vidq_otel::continue_trace(&headers);
    let caller = state.authorize(&headers, Scope::Write)?;
    if !is_json(&headers) {
        return Err(ApiError::unsupported_media_type());
    }
    let max = state.limits.batch_max;
    let limit = state.body_limit.saturating_mul(max).min(MAX_BATCH_BODY);
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(ApiError::invalid_field(
            "body",
            "must be an object with a `jobs` list",
        ));
    };
    if let Some(unknown) = object.keys().find(|k| *k != "jobs") {
        return Err(ApiError::unknown_field(unknown.clone()));
    }
    let Some(Value::Array(items)) = object.remove("jobs") else {
        return Err(ApiError::invalid_field("jobs", "must be a list of jobs"));
    };
    if items.is_empty() || items.len() > max {
        return Err(ApiError::invalid_field(
            "jobs",
            format!("must hold 1 to {max} jobs"),
        ));
    }

    // Each job validated on its own: any invalid one refuses the whole batch, naming each.
    let total = items.len();
    let mut valid = Vec::with_capacity(total);
    let mut invalid = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match TransformRequest::try_from(item)
            .map_err(ApiError::from)
            .and_then(|request| check_bounds(&request).map(|()| request))
            .and_then(|request| state.check_callback(&request).map(|()| request))
        {
            Ok(request) => valid.push((index, request)),
            Err(err) => invalid.push(failed(index, err.at_item(index))),
        }
    }
    if !invalid.is_empty() {
        return Ok(refused(invalid, total));
    }
    let mut results: Vec<Option<BatchItem>> = (0..total).map(|_| None).collect();
    let options = crate::EnqueueOptions {
        trace: vidq_otel::job_trace(&headers),
        ..state.enqueue_options(&caller, None, String::new())
    };
    let (indexes, requests): (Vec<usize>, Vec<TransformRequest>) = valid.into_iter().unzip();
    let mut retry_after: Option<Duration> = None;
    let mut created = 0;
    if !requests.is_empty() {
        let outcomes = state.producer.enqueue_batch(requests, &options).await?;
        for (index, outcome) in indexes.into_iter().zip(outcomes) {
            let item = match outcome {
                Ok(job) => {
                    created += 1;
                    BatchItem {
                        index,
                        status: StatusCode::ACCEPTED.as_u16(),
                        job: Some(JobView::from(&job)),
                        error: None,
                    }
                }
                Err(ProducerError::Store(StoreError::QuotaExceeded(exceeded))) => {
                    let err = ApiError::quota(&exceeded, state.quotas.retry_after);
                    let (status, detail, after) = err.into_parts();
                    retry_after = retry_after.max(after);
                    BatchItem {
                        index,
                        status: status.as_u16(),
                        job: None,
                        error: Some(detail),
                    }
                }
                Err(other) => failed(index, ApiError::from(other)),
            };
            results[index] = Some(item);
        }
    }
    let results: Vec<BatchItem> = results.into_iter().flatten().collect();
    let mut response = (StatusCode::OK, Json(BatchResponse { created, results })).into_response();
    if let Some(after) = retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    Ok(response)
}

/// 422 naming every invalid job, the first one's error on top.
fn refused(invalid: Vec<BatchItem>, total: usize) -> Response {
    let first = invalid.first().and_then(|item| item.error.as_ref());
    let error = ErrorDetail {
        code: first.map_or("invalid_field", |e| e.code),
        field: first.and_then(|e| e.field.clone()),
        message: format!(
            "{} of the {total} jobs are invalid, so none was created; the first: {}",
            invalid.len(),
            first.map_or("", |e| e.message.as_str())
        ),
        quota: None,
        limit: None,
    };
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(BatchRefused {
            error,
            results: Some(invalid),
        }),
    )
        .into_response()
}

fn failed(index: usize, err: ApiError) -> BatchItem {
    let (status, detail, _) = err.into_parts();
    BatchItem {
        index,
        status: status.as_u16(),
        job: None,
        error: Some(detail),
    }
}
