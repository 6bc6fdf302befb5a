//! The `{"code", "msg", "data"}` envelope every JSON answer wears, and the error answers.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Envelope codes, as the real service uses them.
pub(crate) mod code {
    pub(crate) const OK: i64 = 0;
    pub(crate) const INVALID: i64 = 400;
    pub(crate) const UNAUTHORIZED: i64 = 401;
    pub(crate) const NO_CREDITS: i64 = 402;
    pub(crate) const NOT_FOUND: i64 = 404;
    pub(crate) const LIMITED: i64 = 429;
    pub(crate) const INTERNAL: i64 = 500;
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    code: i64,
    msg: &'a str,
    data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

static VARIANT: AtomicUsize = AtomicUsize::new(0);

/// One of `variants`, rotating, so nobody can rely on the exact case of `msg`.
pub(crate) fn vary(variants: &[&'static str]) -> &'static str {
    variants[VARIANT.fetch_add(1, Ordering::Relaxed) % variants.len()]
}

/// `text` as is, or behind a prefix whose case varies; field names stay verbatim.
pub(crate) fn vary_prefix(text: String) -> String {
    match vary(&[
        "",
        "Invalid parameter: ",
        "invalid params: ",
        "PARAM ERROR: ",
    ]) {
        "" => text,
        prefix => format!("{prefix}{text}"),
    }
}

/// A JSON response with the given HTTP status.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn encode<T: Serialize>(envelope: &Envelope<'_, T>) -> Vec<u8> {
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_vec(envelope).unwrap_or_default()
}

/// HTTP 200, code 0.
pub(crate) fn ok<T: Serialize>(data: T) -> Response {
    ok_with_request_id(data, None)
}

/// HTTP 200, code 0, with a top-level `request_id` when given.
pub(crate) fn ok_with_request_id<T: Serialize>(data: T, request_id: Option<&str>) -> Response {
    let msg = vary(&["success", "Success", "SUCCESS", "ok"]);
    let body = encode(&Envelope {
        code: code::OK,
        msg,
        data,
        request_id,
    });
    json_response(StatusCode::OK, body)
}

/// An error envelope (`data: null`) with the given HTTP status.
pub(crate) fn error(status: StatusCode, code: i64, msg: &str) -> Response {
    let body = encode(&Envelope {
        code,
        msg,
        data: (),
        request_id: None,
    });
    json_response(status, body)
}

/// HTTP 401, code 401.
pub(crate) fn unauthorized() -> Response {
    let msg = vary(&[
        "invalid api key",
        "Invalid API key",
        "Unauthorized",
        "api key is missing or invalid",
    ]);
    error(StatusCode::UNAUTHORIZED, code::UNAUTHORIZED, msg)
}

/// HTTP 429, code 429, with `Retry-After`.
pub(crate) fn too_many_requests(retry_after_secs: u64) -> Response {
    let msg = vary(&[
        "too many requests",
        "Too Many Requests",
        "rate limit exceeded",
    ]);
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, code::LIMITED, msg);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// HTTP 200, code 400, `msg` naming the field.
pub(crate) fn invalid(msg: String) -> Response {
    error(StatusCode::OK, code::INVALID, &vary_prefix(msg))
}

/// An HTTP 5xx in one of the shapes a real front end produces: an envelope or an HTML page.
pub(crate) fn server_error(pick: usize) -> Response {
    match pick % 4 {
        0 => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            vary(&[
                "internal server error",
                "Internal Server Error",
                "system busy",
            ]),
        ),
        1 => html(
            StatusCode::BAD_GATEWAY,
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n",
        ),
        2 => error(
            StatusCode::SERVICE_UNAVAILABLE,
            code::INTERNAL,
            vary(&["service unavailable", "Service Unavailable"]),
        ),
        _ => html(
            StatusCode::SERVICE_UNAVAILABLE,
            "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>\n",
        ),
    }
}

fn html(status: StatusCode, body: &'static str) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}
