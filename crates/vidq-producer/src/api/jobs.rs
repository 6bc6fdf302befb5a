//! `/v1/jobs`: enqueue, read, list, cancel, and download the video.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use vidq_core::{JobId, JobState, ListCursor, MAX_IDEMPOTENCY_KEY_BYTES, TransformRequest};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::schema::{CreateJob, JobList, JobView, ListQuery, State as StateView};
use crate::{CancelOutcome, EnqueueOutcome, Scope};

const DEFAULT_PAGE: usize = 20;

/// Parses a job id from the path: a malformed one is no job at all (404).
pub(crate) fn job_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("`{}`", raw.chars().take(64).collect::<String>())))
}

/// The `Idempotency-Key` header.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read from the headers by hand; this type only documents it
pub(crate) struct IdempotencyHeader {
    /// The same key and body return the same job; the same key with another body is 422.
    #[param(
        rename = "Idempotency-Key",
        pattern = r"^[!-~]{1,255}$",
        min_length = 1,
        max_length = 255
    )]
    idempotency_key: Option<String>,
}

/// Enqueue a job.
#[utoipa::path(
    post, path = "/v1/jobs", tag = "jobs",
    request_body(content = CreateJob, content_type = "application/json"),
    params(IdempotencyHeader),
    responses(
        (status = 202, description = "Accepted: the job (new; reused, i.e. `succeeded` at once with an identical earlier video; an identical job still in flight, to follow; or an idempotent replay)",
            body = JobView, headers(("Location" = String, description = "The job's URL"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `write` scope", body = ErrorBody),
        (status = 409, description = "A request with this idempotency key is still being processed", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid or unknown field, or idempotency key reused with another body", body = ErrorBody),
        (status = 429, description = "Rate limited, or over a tenant quota (`quota_exceeded`, naming it in `quota`)", body = ErrorBody, headers(("Retry-After" = u64))),
        (status = 503, description = "Redis unavailable, the backlog cap reached (`backlog_full`), overloaded or timed out", body = ErrorBody, headers(("Retry-After" = u64))),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "POST /v1/jobs", skip_all, fields(otel.kind = "server", http.request.method = "POST", http.route = "/v1/jobs"))]
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
    let idempotency_key = idempotency_key(&headers)?;
    let bytes = to_bytes(body, state.body_limit)
        .await
        .map_err(|_| ApiError::too_large(state.body_limit))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
    let request = TransformRequest::try_from(value)?;
    check_bounds(&request)?;
    state.check_callback(&request)?;
    let body_hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&request).map_err(|e| ApiError::internal(&e))?,
    ));
    let enqueued = match state
        .producer
        .enqueue_with(
            request,
            crate::EnqueueOptions {
                trace: vidq_otel::job_trace(&headers),
                ..state.enqueue_options(&caller, idempotency_key, body_hash)
            },
        )
        .await
    {
        Err(crate::ProducerError::Store(vidq_core::StoreError::QuotaExceeded(exceeded))) => {
            return Err(ApiError::quota(&exceeded, state.quotas.retry_after));
        }
        enqueued => enqueued?,
    };
    let mut response = (StatusCode::ACCEPTED, Json(JobView::from(&enqueued.job))).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", enqueued.job.id)) {
        headers.insert(header::LOCATION, location);
    }
    match enqueued.outcome {
        EnqueueOutcome::Created => {}
        EnqueueOutcome::Reused { .. } => {
            state
                .metrics
                .count("vidq_api_reuse_total", &[("outcome", "reused".into())]);
        }
        EnqueueOutcome::Followed => {
            state
                .metrics
                .count("vidq_api_reuse_total", &[("outcome", "followed".into())]);
        }
        EnqueueOutcome::Replayed => {
            state
                .metrics
                .count("vidq_api_idempotent_replays_total", &[]);
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
    }
    Ok(response)
}

/// Whether the body is declared JSON (`application/json` or `application/*+json`).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// Most entries of `extra`.
pub(crate) const MAX_EXTRA_ENTRIES: usize = 32;
/// Most bytes of `extra` as JSON.
pub(crate) const MAX_EXTRA_BYTES: usize = 8192;

/// Bounds on what a job stores beyond its named arguments: `extra` at most 32 entries and
/// 8 KiB of JSON (`metadata`'s bounds, 32 entries of 64/512 characters, are the request's).
pub(crate) fn check_bounds(request: &TransformRequest) -> Result<(), ApiError> {
    let extra = request.extra();
    if extra.len() > MAX_EXTRA_ENTRIES {
        return Err(ApiError::invalid_field(
            "extra",
            format!("extra: must have at most {MAX_EXTRA_ENTRIES} entries"),
        ));
    }
    let bytes = serde_json::to_vec(extra).map_or(usize::MAX, |json| json.len());
    if bytes > MAX_EXTRA_BYTES {
        return Err(ApiError::invalid_field(
            "extra",
            format!("extra: must be at most {MAX_EXTRA_BYTES} bytes of JSON"),
        ));
    }
    Ok(())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::invalid_field(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters"),
        )
    };
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_BYTES
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
}

/// Read a job.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job: state, upstream status, history with times, output, error", body = JobView),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 404, description = "No such job, or another tenant's (or a malformed id)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody, headers(("Retry-After" = u64))),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let caller = state.authorize(&headers, Scope::Read)?;
    let id = job_id(&id)?;
    let job = state.visible_job(&caller, &id).await?;
    Ok(Json(JobView::from(&job)))
}

/// List the caller's jobs, newest first (an `admin` token: every tenant's, or one's with
/// `tenant`).
#[utoipa::path(
    get, path = "/v1/jobs", tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobList),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 422, description = "Invalid query parameter", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody, headers(("Retry-After" = u64))),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<JobList>, ApiError> {
    let caller = state.authorize(&headers, Scope::Read)?;
    let mut filter_state = None;
    let mut tenant = None;
    let mut labels = Vec::new();
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    let query = query.unwrap_or_default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "state" => {
                let parsed: StateView = serde_json::from_value(Value::String(value.to_string()))
                    .map_err(|_| {
                        ApiError::invalid_field("state", "must be one of queued, submitting, processing, transferring, succeeded, failed, canceled, expired")
                    })?;
                filter_state = Some(JobState::from(parsed));
            }
            "metadata" => {
                let (k, v) = value
                    .split_once(':')
                    .ok_or_else(|| ApiError::invalid_field("metadata", "must be `key:value`"))?;
                labels.push((k.to_owned(), v.to_owned()));
            }
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=vidq_core::MAX_PAGE).contains(l))
                    .ok_or_else(|| ApiError::invalid_field("limit", "must be 1 to 100"))?;
            }
            "tenant" => {
                if !crate::settings::valid_tenant_name(&value) {
                    return Err(ApiError::invalid_field(
                        "tenant",
                        "must be 1 to 64 ASCII letters, digits, `-`, `_` or `.`",
                    ));
                }
                tenant = Some(value.into_owned());
            }
            "cursor" => {
                cursor = Some(value.parse::<ListCursor>().map_err(|_| {
                    ApiError::invalid_field("cursor", "must be a `next_cursor` of an earlier page")
                })?);
            }
            _ => {}
        }
    }
    let store = state.producer.store();
    // A tenant's listing reads its own index; only an admin without `tenant` reads `jobs:all`.
    // Anyone else sees only their own tenant's jobs: another tenant's are none of theirs.
    let tenant = match tenant {
        Some(asked) if !caller.admin && asked != caller.tenant => {
            return Ok(Json(JobList {
                jobs: Vec::new(),
                next_cursor: None,
            }));
        }
        None if !caller.admin => Some(caller.tenant.clone()),
        tenant => tenant,
    };
    let page = match tenant {
        None => store.list(filter_state, cursor.as_ref(), limit).await,
        Some(tenant) => {
            store
                .list_tenant(&tenant, filter_state, cursor.as_ref(), limit)
                .await
        }
    }
    .map_err(crate::ProducerError::from)?;
    let jobs = page
        .jobs
        .iter()
        .filter(|job| {
            labels
                .iter()
                .all(|(k, v)| job.request.metadata().get(k) == Some(v))
        })
        .map(JobView::from)
        .collect();
    Ok(Json(JobList {
        jobs,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// Cancel a job: queued work stops; an upstream job already running is left to end and its
/// result is discarded.
#[utoipa::path(
    delete, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job, now (or already) canceled", body = JobView),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `write` scope", body = ErrorBody),
        (status = 404, description = "No such job, or another tenant's (or a malformed id)", body = ErrorBody),
        (status = 409, description = "The job had already finished otherwise", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody, headers(("Retry-After" = u64))),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let caller = state.authorize(&headers, Scope::Write)?;
    let id = job_id(&id)?;
    // Another tenant's job is not there for this caller: 404 before anything changes.
    state.visible_job(&caller, &id).await?;
    match state.producer.cancel(&id).await? {
        CancelOutcome::Canceled | CancelOutcome::AlreadyFinished(JobState::Canceled) => {}
        CancelOutcome::AlreadyFinished(other) => {
            return Err(ApiError::conflict(
                "conflict",
                format!("the job had already finished: {other}"),
            ));
        }
    }
    let job = state
        .producer
        .status(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    Ok(Json(JobView::from(&job)))
}

/// Download the video: a redirect to a short-lived presigned URL.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/video", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 302, description = "Redirect to a short-lived presigned URL of the video",
            headers(("Location" = String, description = "Presigned URL"))),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 404, description = "No such job, or another tenant's (or a malformed id)", body = ErrorBody),
        (status = 409, description = "The video is not ready (the job has not succeeded)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody, headers(("Retry-After" = u64))),
        (status = 503, description = "Storage or Redis unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn video(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = state.authorize(&headers, Scope::Read)?;
    let id = job_id(&id)?;
    let job = state.visible_job(&caller, &id).await?;
    let output = match (&job.output, job.state) {
        (Some(output), JobState::Succeeded) => output,
        _ => {
            return Err(ApiError::conflict(
                "not_ready",
                format!("the video is not ready: the job is {}", job.state),
            ));
        }
    };
    let storage = state
        .storage
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("video storage is not configured"))?;
    if output.bucket != storage.bucket() {
        tracing::warn!(job.id = %id, bucket = %output.bucket, "video is in another bucket than the one configured");
    }
    let url = storage
        .presign_get(&output.key, None)
        .await
        .map_err(|error| {
            tracing::error!(job.id = %id, %error, "could not presign the video URL");
            ApiError::unavailable("could not sign a download URL; retry later")
        })?;
    let location = HeaderValue::from_str(&url).map_err(|e| ApiError::internal(&e))?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response())
}
