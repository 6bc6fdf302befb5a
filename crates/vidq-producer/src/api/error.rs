//! Every error the API answers with: a status and `{"error": {"code", "field", "message"}}`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use vidq_core::{QuotaExceeded, QuotaKind, StoreError, ValidationError};

use crate::ProducerError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Machine-readable: `unauthorized`, `forbidden`, `rate_limited`, `not_found`,
    /// `invalid_json`, `invalid_field`, `unknown_field`, `payload_too_large`,
    /// `unsupported_media_type`, `idempotency_conflict`, `conflict`, `not_ready`,
    /// `unavailable`, `quota_exceeded`, `backlog_full`, `overloaded`, `timeout`, `internal`.
    pub(crate) code: &'static str,
    /// The request field at fault, when there is one (`model`, `body`, `Idempotency-Key`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(crate) field: Option<String>,
    /// For a human.
    pub(crate) message: String,
    /// The quota that refused a create (`quota_exceeded`, `backlog_full`):
    /// `unfinished_jobs`, `daily_submissions` or `backlog`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(crate) quota: Option<&'static str>,
    /// That quota's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(crate) limit: Option<u64>,
}

/// An error response.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
    retry_after: Option<Duration>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            detail: ErrorDetail {
                code,
                field: None,
                message: message.into(),
                quota: None,
                limit: None,
            },
            retry_after: None,
        }
    }

    fn field(mut self, field: impl Into<String>) -> Self {
        self.detail.field = Some(field.into());
        self
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn forbidden(scope: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token lacks the `{scope}` scope"),
        )
    }

    pub(crate) fn rate_limited(retry_after: Duration) -> Self {
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests for this token; retry later",
        );
        err.retry_after = Some(retry_after);
        err
    }

    pub(crate) fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no job {what}"))
    }

    pub(crate) fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message).field("body")
    }

    pub(crate) fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).field(field)
    }

    pub(crate) fn unknown_field(field: impl Into<String>) -> Self {
        let field = field.into();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            format!("unknown field `{field}`"),
        )
        .field(field)
    }

    /// This error as the `index`th job's of a batch: its field becomes `jobs[<index>].<field>`.
    pub(crate) fn at_item(mut self, index: usize) -> Self {
        self.detail.field = Some(match self.detail.field.take() {
            Some(field) if field != "body" => format!("jobs[{index}].{field}"),
            _ => format!("jobs[{index}]"),
        });
        self
    }

    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body must be at most {limit} bytes"),
        )
        .field("body")
    }

    pub(crate) fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        )
        .field("Content-Type")
    }

    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// A create refused by a quota (429) or the backlog cap (503), with `Retry-After`: the
    /// quota's own, or `fallback` for those that free up as jobs end.
    pub(crate) fn quota(exceeded: &QuotaExceeded, fallback: Duration) -> Self {
        let (status, code) = match exceeded.kind {
            QuotaKind::Backlog => (StatusCode::SERVICE_UNAVAILABLE, "backlog_full"),
            QuotaKind::Unfinished | QuotaKind::PerDay => {
                (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded")
            }
        };
        let mut err = Self::new(status, code, format!("{exceeded}; retry later"));
        err.detail.quota = Some(exceeded.kind.as_str());
        err.detail.limit = Some(exceeded.limit);
        err.retry_after = Some(exceeded.retry_after.unwrap_or(fallback));
        err
    }

    /// More requests at once than this replica serves (`api.limits.max_concurrent`).
    pub(crate) fn overloaded() -> Self {
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in progress; retry shortly",
        );
        err.retry_after = Some(Duration::from_secs(1));
        err
    }

    /// The request took longer than `api.limits.request_timeout`.
    pub(crate) fn timed_out(limit: Duration) -> Self {
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {}; retry later",
                humantime::format_duration(limit)
            ),
        );
        err.retry_after = Some(Duration::from_secs(1));
        err
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub(crate) fn internal(error: &dyn std::fmt::Display) -> Self {
        // Logged once here, where it is turned into a response; the caller sees no detail.
        tracing::error!(%error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the service logs",
        )
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        let field = if err.field == "request" {
            "body".to_owned()
        } else {
            err.field
        };
        if err.reason == "unknown field" {
            Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_field",
                format!("unknown field `{field}`"),
            )
            .field(field)
        } else {
            let message = format!("{field}: {}", err.reason);
            Self::invalid_field(field, message)
        }
    }
}

impl From<ProducerError> for ApiError {
    fn from(err: ProducerError) -> Self {
        match err {
            ProducerError::NotFound(id) | ProducerError::Store(StoreError::NotFound(id)) => {
                Self::not_found(id)
            }
            ProducerError::IdempotencyConflict => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_conflict",
                err.to_string(),
            )
            .field("Idempotency-Key"),
            ProducerError::IdempotencyPending => Self::conflict("conflict", err.to_string()),
            ProducerError::Store(StoreError::QuotaExceeded(exceeded)) => {
                Self::quota(&exceeded, DEFAULT_QUOTA_RETRY_AFTER)
            }
            ProducerError::Redis(_)
            | ProducerError::Store(StoreError::Redis(_))
            | ProducerError::Queue(_) => Self::unavailable_after_log(&err),
            other => Self::internal(&other),
        }
    }
}

/// `Retry-After` of a quota refusal when no setting says otherwise.
const DEFAULT_QUOTA_RETRY_AFTER: Duration = Duration::from_secs(30);

impl ApiError {
    /// This error as one batch item's: its status and detail (no headers).
    pub(crate) fn into_parts(self) -> (StatusCode, ErrorDetail, Option<Duration>) {
        (self.status, self.detail, self.retry_after)
    }

    fn unavailable_after_log(err: &ProducerError) -> Self {
        tracing::error!(error = %err, "redis unavailable");
        Self::unavailable("the job store is unavailable; retry later")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(ErrorBody { error: self.detail })).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
